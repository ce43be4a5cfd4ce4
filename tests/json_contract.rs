//! The JSON documents carry every field the README documents, with its type: the
//! contract with scripts and config management.

mod common;

use common::{copy_root, profile, root, sysctune};
use serde_json::Value;

fn doc(args: &[&str]) -> Value {
    let run = sysctune(args);
    assert!(run.code == 0 || run.code == 1, "{args:?}: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn is_u64(v: &Value) -> bool {
    v.as_u64().is_some()
}

fn is_str_or_null(v: &Value) -> bool {
    v.is_string() || v.is_null()
}

#[test]
fn plan_v1() {
    let r = root("article-proxy").display().to_string();
    let p = doc(&[
        "--root",
        &r,
        "plan",
        "--profile",
        &profile("article-proxy.toml"),
        "--format",
        "json",
    ]);
    assert_eq!(p["schema"], "sysctune/plan/v1");
    assert!(p["profile"].is_string());
    for f in [
        "mem_total",
        "swap_total",
        "hugetlb",
        "page_size",
        "commit_limit",
        "committed_as",
    ] {
        assert!(is_u64(&p["host"][f]), "host.{f}");
    }
    assert!(p["host"]["kernel"].is_string());
    for s in p["settings"].as_array().unwrap() {
        assert!(s["key"].is_string());
        assert!(is_str_or_null(&s["current"]));
        assert!(s["recommended"].is_string());
        assert!(s["change"].is_boolean());
        assert!(s["rules"].as_array().unwrap().iter().all(Value::is_string));
        assert!(s["reason"].is_string());
        assert!(["host", "netns"].contains(&s["scope"].as_str().unwrap()), "{s}");
        assert!(
            ["safe", "unsafe", "node-only"].contains(&s["kubernetes"].as_str().unwrap()),
            "{s}"
        );
        // kernel format: single spaces
        assert!(!s["recommended"].as_str().unwrap().contains("  "));
    }
    for f in [
        "per_connection_worst",
        "per_connection_expected",
        "max_connections_worst",
        "max_connections_expected",
        "pressure_connections_worst",
        "pressure_connections_expected",
        "ports_available",
        "max_new_per_second_per_destination",
        "commit_limit",
    ] {
        let fig = &p["capacity"][f];
        assert!(
            is_u64(&fig["current"]) && is_u64(&fig["recommended"]),
            "capacity.{f}: {fig}"
        );
    }
    // revision 2: the reuse figure is null where reuse does not apply; TIME_WAIT in seconds
    let reuse = &p["capacity"]["max_new_per_second_with_reuse"];
    for v in [&reuse["current"], &reuse["recommended"]] {
        assert!(
            is_u64(v) || v.is_null(),
            "capacity.max_new_per_second_with_reuse: {reuse}"
        );
    }
    let tw = &p["capacity"]["tw_seconds"];
    for v in [&tw["current"], &tw["recommended"]] {
        assert!(v.as_f64().is_some_and(|s| s >= 60.0), "capacity.tw_seconds: {tw}");
    }
    for f in p["findings"].as_array().unwrap() {
        assert!(["info", "warning", "error"].contains(&f["severity"].as_str().unwrap()));
        assert!(f["rule"].is_string() && f["message"].is_string());
    }
    let d = &p["dropin"];
    assert!(
        d["path"].is_string()
            && d["changed"].is_boolean()
            && d["content"].is_string()
            && d["diff"].is_string()
    );
    assert!(p["changed"].is_boolean());
}

#[test]
fn apply_v1_and_rollback() {
    let tree = copy_root("article-batch");
    let r = tree.path().display().to_string();
    let a = doc(&[
        "--root",
        &r,
        "apply",
        "--profile",
        "batch-client",
        "--format",
        "json",
    ]);
    assert_eq!(a["schema"], "sysctune/apply/v1");
    assert!(a["changed"].is_boolean());
    assert!(a["dropin"]["path"].is_string() && a["dropin"]["changed"].is_boolean());
    for c in a["live"].as_array().unwrap() {
        assert!(c["key"].is_string() && is_str_or_null(&c["from"]) && c["to"].is_string());
    }
    assert!(a["rollback"].is_string());
    let rb = doc(&["--root", &r, "rollback", "--format", "json"]);
    assert_eq!(rb["schema"], "sysctune/rollback/v1");
    assert!(rb["changed"].is_boolean());
}

#[test]
fn show_v1() {
    let r = root("precedence").display().to_string();
    let s = doc(&["--root", &r, "show", "--format", "json"]);
    assert_eq!(s["schema"], "sysctune/show/v1");
    assert!(is_u64(&s["host"]["mem_total"]) && s["host"]["kernel"].is_string());
    let files = s["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .all(|f| f.as_str().is_some_and(|p| p.starts_with('/') && !p.contains(&r)))
    );
    for k in s["keys"].as_array().unwrap() {
        assert!(k["key"].is_string() && is_str_or_null(&k["live"]));
        match &k["boot"] {
            Value::Null => {}
            b => assert!(
                b["value"].is_string() && b["file"].is_string() && is_u64(&b["line"]),
                "{b}"
            ),
        }
        for sh in k["shadowed"].as_array().unwrap() {
            assert!(sh["file"].is_string() && is_u64(&sh["line"]) && sh["value"].is_string());
        }
    }
}

#[test]
fn doctor_v1() {
    let r = root("doctor-ports").display().to_string();
    let d = doc(&["--root", &r, "doctor", "--format", "json"]);
    assert_eq!(d["schema"], "sysctune/doctor/v1");
    assert!(!d["findings"].as_array().unwrap().is_empty());
    assert!(d["facts"].is_object());
    assert!(d["facts"]["sockstat"].is_object(), "{}", d["facts"]);
}
