//! Every JSON document sysctune prints matches its JSON Schema under `schemas/`: each JSON
//! snapshot of the test suite, and one live document of each kind made here.

mod common;

use std::path::Path;

use common::{copy_root, sysctune};
use serde_json::Value;

fn validator(schema_id: &str) -> jsonschema::Validator {
    let name = schema_id
        .strip_prefix("sysctune/")
        .and_then(|s| s.strip_suffix("/v1"))
        .unwrap_or_else(|| panic!("not a sysctune schema id: {schema_id}"));
    let path = common::manifest().join(format!("schemas/{name}.schema.json"));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(doc: &Value, origin: &str) {
    let id = doc["schema"]
        .as_str()
        .unwrap_or_else(|| panic!("{origin}: no schema field"));
    let v = validator(id);
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{origin} ({id}) does not match its schema:\n{}",
        errors.join("\n")
    );
}

#[test]
fn every_json_snapshot_matches_its_schema() {
    let dir = common::manifest().join("tests/snapshots");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "snap") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // insta: a `---` front matter, then the value.
        let body = text.splitn(3, "---\n").nth(2).unwrap_or("");
        let Ok(doc) = serde_json::from_str::<Value>(body) else {
            continue;
        };
        if doc
            .get("schema")
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with("sysctune/"))
        {
            check(&doc, &path.display().to_string());
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} JSON snapshots found");
}

fn doc(args: &[&str]) -> Value {
    let r = sysctune(args);
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {} {}", r.stdout, r.stderr));
    // Printed by sysctune itself: `schema` comes first.
    assert!(
        r.stdout.trim_start().starts_with("{\n  \"schema\": "),
        "{args:?}: schema is not first"
    );
    v
}

#[test]
fn every_kind_of_document_matches_its_schema() {
    let root = copy_root("article-batch");
    let r = root.path().display().to_string();
    let j =
        |args: &[&str]| -> Value { doc(&[&["--root", r.as_str(), "--format", "json"][..], args].concat()) };
    let mut docs = vec![
        ("plan", j(&["plan", "--profile", "batch-client"])),
        ("show", j(&["show"])),
        ("show --profile", j(&["show", "--profile", "batch-client"])),
        ("snapshot", j(&["snapshot"])),
        ("doctor", j(&["doctor"])),
        ("profiles", j(&["profiles"])),
        ("status before", j(&["status"])),
        ("apply", j(&["apply", "--profile", "batch-client"])),
        ("status", j(&["status"])),
        ("rollback --dry-run", j(&["rollback", "--dry-run"])),
        ("rollback", j(&["rollback"])),
        ("error", j(&["plan", "--profile", "no-such-profile"])),
        ("usage error", j(&["plan", "--no-such-flag"])),
    ];
    let healthy = common::root("doctor-ports").display().to_string();
    docs.push((
        "doctor ports",
        doc(&["--root", &healthy, "--format", "json", "doctor"]),
    ));
    docs.push((
        "recommend",
        doc(&["--root", &healthy, "--format", "json", "recommend"]),
    ));
    docs.push(("recommend, idle", j(&["recommend"])));
    for (what, d) in &docs {
        check(d, what);
    }
    let ids: std::collections::BTreeSet<&str> =
        docs.iter().map(|(_, d)| d["schema"].as_str().unwrap()).collect();
    for name in [
        "plan",
        "apply",
        "rollback",
        "status",
        "show",
        "doctor",
        "snapshot",
        "error",
        "profiles",
        "recommend",
    ] {
        assert!(
            ids.contains(format!("sysctune/{name}/v1").as_str()),
            "no {name} document checked"
        );
        assert!(Path::new(&common::manifest().join(format!("schemas/{name}.schema.json"))).exists());
    }
}

#[test]
fn the_schemas_refuse_what_scripts_must_not_get() {
    let plan = validator("sysctune/plan/v1");
    let root = common::root("article-batch").display().to_string();
    let good = doc(&[
        "--root",
        &root,
        "--format",
        "json",
        "plan",
        "--profile",
        "batch-client",
    ]);
    assert!(plan.is_valid(&good));
    let mut bad = good.clone();
    bad["settings"][0]["recommended"] = serde_json::json!(381201);
    assert!(!plan.is_valid(&bad), "a kernel value as a number");
    let mut bad = good.clone();
    bad["capacity"]["ports_available"]["current"] = serde_json::json!("28232");
    assert!(!plan.is_valid(&bad), "a figure as a string");
    let mut bad = good;
    bad["findings"][0]["severity"] = serde_json::json!("fatal");
    assert!(!plan.is_valid(&bad), "an unknown severity");
    // A fleet's line for a host that failed is a plan document of its own shape.
    assert!(plan.is_valid(&serde_json::json!({"schema": "sysctune/plan/v1", "host": {"snapshot": "/x/a.json"}, "error": "a.json: truncated JSON"})));
    assert!(!plan.is_valid(&serde_json::json!({"schema": "sysctune/plan/v1", "host": {}, "error": "x"})));
    let error = validator("sysctune/error/v1");
    assert!(!error.is_valid(&serde_json::json!({"schema": "sysctune/error/v1", "error": "x", "exit": 0})));
}

/// The schemas list every finding code, and only those: a new code is added to both.
#[test]
fn the_schemas_list_the_finding_codes() {
    let codes: Vec<&str> = sysctune::rules::Code::ALL.iter().map(|c| c.as_str()).collect();
    for name in ["plan", "doctor"] {
        let path = format!("{}/schemas/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let enums: Vec<Vec<String>> = text
            .split("\"rule\": {")
            .skip(1)
            .map(|rest| {
                let v: Value =
                    serde_json::from_str(&format!("{{{}", &rest[..rest.find('}').unwrap() + 1])).unwrap();
                serde_json::from_value(v["enum"].clone()).unwrap()
            })
            .collect();
        assert!(!enums.is_empty(), "{name}: no rule property");
        for e in enums {
            assert_eq!(e, codes, "{name}.schema.json");
        }
    }
}
