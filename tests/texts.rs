//! What people read, snapshot-tested: `explain` for every rule, the texts of apply,
//! rollback and status, and the rollback record and applied state as written.

mod common;

use std::path::Path;

use common::{copy_root, sysctune};

fn run(root: &Path, args: &[&str]) -> common::Run {
    let r = root.display().to_string();
    let mut full = vec!["--root", r.as_str(), "--color", "never"];
    full.extend_from_slice(args);
    sysctune(&full)
}

/// Temporary roots and times differ per run.
fn settle(root: &Path, text: &str) -> String {
    let t = text.replace(&root.display().to_string(), "[ROOT]");
    let mut out = String::new();
    for line in t.lines() {
        let mut l = line.to_string();
        if let Some(i) = l.find("20") {
            let tail = &l[i..];
            if tail.len() >= 20 && tail.as_bytes()[10] == b'T' && tail.as_bytes()[19] == b'Z' {
                l = format!("{}[TIME]{}", &l[..i], &tail[20..]);
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[test]
fn explain_every_rule() {
    for rule in sysctune::rules::RULES {
        let r = sysctune(&["explain", rule.id()]);
        assert_eq!(r.code, 0);
        insta::assert_snapshot!(format!("explain-{}", rule.id()), r.stdout);
    }
}

/// `explain profile` is the profile reference in the repository (docs/profile.md, which
/// a unit test checks against the fields the parser accepts), and `profiles show` points
/// at it.
#[test]
fn explain_profile_prints_the_reference() {
    let r = sysctune(&["explain", "profile"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = std::fs::read_to_string(common::manifest().join("docs/profile.md")).unwrap();
    assert_eq!(r.stdout, doc);
    for name in ["reverse-proxy", "batch-client", "web-server", "database"] {
        let r = sysctune(&["profiles", "show", name]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout
                .ends_with("\n# Every field, with its unit and default: sysctune explain profile\n"),
            "{}",
            r.stdout
        );
        // still a profile
        let t: toml::Table = toml::from_str(&r.stdout).unwrap();
        assert_eq!(t["name"].as_str(), Some(name));
    }
}

#[test]
fn apply_rollback_and_status_texts() {
    let root = copy_root("article-batch");
    let p = root.path();
    let apply = run(p, &["apply", "--profile", "batch-client"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    insta::assert_snapshot!("text-apply", settle(p, &apply.stdout));
    let record = std::fs::read_to_string(p.join("var/lib/sysctune/rollback.conf")).unwrap();
    insta::assert_snapshot!("rollback-record", record);
    let applied = std::fs::read_to_string(p.join("var/lib/sysctune/applied.conf")).unwrap();
    insta::assert_snapshot!("applied-state", settle(p, &applied));
    let status = run(p, &["status"]);
    assert_eq!(status.code, 0);
    insta::assert_snapshot!("text-status", settle(p, &status.stdout));
    let again = run(p, &["apply", "--profile", "batch-client"]);
    insta::assert_snapshot!("text-apply-nothing", settle(p, &again.stdout));
    let dry = run(p, &["rollback", "--dry-run"]);
    insta::assert_snapshot!("text-rollback-dry-run", settle(p, &dry.stdout));
    let rollback = run(p, &["rollback"]);
    assert_eq!(rollback.code, 0);
    insta::assert_snapshot!("text-rollback", settle(p, &rollback.stdout));
    let none = run(p, &["rollback"]);
    insta::assert_snapshot!("text-rollback-nothing", settle(p, &none.stdout));
}
