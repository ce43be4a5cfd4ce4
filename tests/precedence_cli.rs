//! `show` and `plan` on a root with several sysctl.d files: which file sets each key at
//! boot, what it shadows, drift, and the drop-in being shadowed (fixture
//! `tests/roots/precedence`: a vendor file, a same-name override, a /dev/null mask, a glob
//! and a negative match, the drop-in, a later file that beats it, and /etc/sysctl.conf).

mod common;

use common::{root, scrub, sysctune};
use serde_json::Value;

const KEYS: &[&str] = &[
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_tw_reuse",
    "vm.swappiness",
    "kernel.panic",
    "fs.file-max",
    "net.ipv4.conf.all.rp_filter",
    "net/ipv4/conf/lo/rp_filter",
];

fn run(args: &[&str]) -> String {
    let r = root("precedence");
    let rs = r.display().to_string();
    let mut all = vec!["--root", &rs, "--color", "never"];
    all.extend_from_slice(args);
    let out = sysctune(&all);
    assert_eq!(out.code, 0, "{}", out.stderr);
    scrub(&out.stdout)
}

fn show_json(keys: &[&str]) -> Value {
    let mut args = vec!["--format", "json", "show"];
    args.extend_from_slice(keys);
    serde_json::from_str(&run(&args)).expect("valid JSON")
}

fn key<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn show_json_follows_the_contract() {
    let doc = show_json(&[]);
    assert_eq!(doc["schema"], "sysctune/show/v1");
    assert_eq!(doc["host"]["name"], "precedence-1");
    // Apply order; the mask and the overridden copies are left out.
    assert_eq!(
        doc["files"],
        serde_json::json!([
            "/usr/lib/sysctl.d/50-default.conf",
            "/etc/sysctl.d/60-vendor.conf",
            "/run/sysctl.d/80-runtime.conf",
            "/etc/sysctl.d/90-sysctune.conf",
            "/etc/sysctl.d/95-local.conf",
        ])
    );
    assert_eq!(doc["masked"], serde_json::json!(["/etc/sysctl.d/70-swap.conf"]));
    let swap = key(&doc, "vm.swappiness");
    assert_eq!(swap["live"], "60");
    assert_eq!(
        swap["boot"],
        serde_json::json!({"value": "30", "file": "/etc/sysctl.d/95-local.conf", "line": 2})
    );
    assert_eq!(
        swap["shadowed"],
        serde_json::json!([
            {"file": "/usr/lib/sysctl.d/50-default.conf", "line": 4, "value": "60"},
            {"file": "/etc/sysctl.d/90-sysctune.conf", "line": 3, "value": "10"},
        ])
    );
    assert_eq!(swap["drift"], true);
    // Duplicate key in one file: the last line wins.
    assert_eq!(key(&doc, "fs.file-max")["boot"]["line"], 4);
    // The same-name override: /etc's copy is read, /usr/lib's never.
    assert_eq!(
        key(&doc, "kernel.panic")["boot"]["file"],
        "/etc/sysctl.d/60-vendor.conf"
    );
    assert_eq!(key(&doc, "net.ipv4.tcp_rmem")["shadowed"], serde_json::json!([]));
    // procps reads /etc/sysctl.conf last.
    assert_eq!(
        key(&doc, "net.ipv4.tcp_rmem")["procps_instead"]["file"],
        "/etc/sysctl.conf"
    );
    // `-key = value` still sets the key.
    assert_eq!(key(&doc, "net.ipv4.tcp_tw_reuse")["boot"]["value"], "1");
    // No file sets it.
    assert_eq!(key(&doc, "net.ipv4.tcp_mem")["boot"], Value::Null);
    assert!(
        doc["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("/etc/sysctl.d/60-vendor.conf:4:")
    );
}

#[test]
fn show_json_globs_and_negative_matches() {
    let doc = show_json(&["net.ipv4.conf.all.rp_filter", "net/ipv4/conf/lo/rp_filter"]);
    let all = key(&doc, "net.ipv4.conf.all.rp_filter");
    assert_eq!(all["boot"]["glob"], "net.ipv4.conf.*.rp_filter");
    assert_eq!(all["boot"]["value"], "2");
    let lo = key(&doc, "net.ipv4.conf.lo.rp_filter");
    assert_eq!(lo["boot"], Value::Null);
    assert_eq!(
        lo["excluded"],
        serde_json::json!({"file": "/run/sysctl.d/80-runtime.conf", "line": 2})
    );
}

#[test]
fn snapshots_show() {
    insta::assert_snapshot!("show-text", run(&["show"]));
    let mut args = vec!["show"];
    args.extend_from_slice(KEYS);
    insta::assert_snapshot!("show-text-keys", run(&args));
    insta::assert_json_snapshot!("show-json-keys", show_json(KEYS));
}

#[test]
fn plan_warns_when_a_later_file_shadows_the_drop_in() {
    let doc: Value =
        serde_json::from_str(&run(&["--format", "json", "plan", "--profile", "web-server"])).unwrap();
    let messages: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "sysctl.d" || f["rule"] == "drift")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    let shadow = messages
        .iter()
        .find(|m| m.starts_with("vm.swappiness = 10 would not survive a reboot"))
        .unwrap_or_else(|| panic!("{messages:#?}"));
    assert!(shadow.contains("/etc/sysctl.d/95-local.conf:2"), "{shadow}");
    assert!(
        shadow.contains("--dropin /etc/sysctl.d/99-sysctune.conf"),
        "{shadow}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("procps sysctl --system would set net.ipv4.tcp_rmem")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("vm.swappiness is 60 now, but /etc/sysctl.d/95-local.conf:2 sets 30")),
        "{messages:#?}"
    );
    let swap = doc["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "vm.swappiness")
        .unwrap();
    assert_eq!(swap["boot"]["file"], "/etc/sysctl.d/95-local.conf");

    // A drop-in that sorts after 95-local.conf wins: no shadow warning any more.
    let doc: Value = serde_json::from_str(&run(&[
        "--format",
        "json",
        "plan",
        "--profile",
        "web-server",
        "--dropin",
        "/etc/sysctl.d/99-sysctune.conf",
    ]))
    .unwrap();
    let text = doc["findings"].to_string();
    assert!(!text.contains("would not survive a reboot"), "{text}");
}

#[test]
fn plan_warns_when_the_drop_in_is_masked_or_overridden() {
    let masked = run(&[
        "plan",
        "--profile",
        "web-server",
        "--dropin",
        "/usr/lib/sysctl.d/70-swap.conf",
    ]);
    assert!(
        masked.contains("/etc/sysctl.d/70-swap.conf is a symlink to /dev/null that masks the name"),
        "{masked}"
    );
    let overridden = run(&[
        "--format",
        "json",
        "plan",
        "--profile",
        "web-server",
        "--dropin",
        "/usr/lib/sysctl.d/60-vendor.conf",
    ]);
    assert!(
        overridden.contains("/etc/sysctl.d/60-vendor.conf has the same name in an earlier directory"),
        "{overridden}"
    );
    let outside = run(&["plan", "--profile", "web-server", "--dropin", "/tmp/x.conf"]);
    assert!(outside.contains("systemd-sysctl does not read it"), "{outside}");
}

#[test]
fn snapshot_plan_text() {
    insta::assert_snapshot!("plan-text", run(&["plan", "--profile", "web-server"]));
}

#[test]
fn show_with_a_profile_puts_live_boot_and_recommended_side_by_side() {
    let doc: Value = serde_json::from_str(&run(&["--format", "json", "show", "--profile", "web-server"]))
        .expect("valid JSON");
    let swappiness = key(&doc, "vm.swappiness");
    assert_eq!(swappiness["live"], "60");
    assert_eq!(swappiness["boot"]["value"], "30");
    assert_eq!(swappiness["boot"]["file"], "/etc/sysctl.d/95-local.conf");
    assert_eq!(swappiness["recommended"], "10");
    // a key the profile does not manage
    assert_eq!(
        key(&doc, "net.ipv4.ip_local_port_range")["recommended"],
        Value::Null
    );
    let text = run(&[
        "show",
        "--profile",
        "web-server",
        "vm.swappiness",
        "net.ipv4.tcp_wmem",
    ]);
    insta::assert_snapshot!("show-text-with-profile", text);
    // Without --profile there is no recommended field at all.
    assert!(
        show_json(&["vm.swappiness"])["keys"][0]
            .get("recommended")
            .is_none()
    );
}
