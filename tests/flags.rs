//! Flags that do not apply to a command are errors that say what the command does
//! instead, never silently ignored (an `apply --snapshot` used to apply to the local root).

mod common;

use common::{copy_root, sysctune, tree};

#[test]
fn flags_that_do_not_apply_are_errors() {
    let root = copy_root("article-batch");
    let r = root.path().display().to_string();
    let before = tree(root.path());
    for (args, expect) in [
        (
            vec!["apply", "--profile", "batch-client", "--snapshot", "host.json"],
            "apply --snapshot: apply writes to the host under --root, never to a snapshot",
        ),
        (
            vec!["apply", "--profile", "batch-client", "--exit-code"],
            "apply --exit-code: only with --dry-run",
        ),
        (
            vec!["--format", "json", "explain", "tcp-memory"],
            "explain --format json: explain prints a rule's documentation as text",
        ),
        (
            vec!["completions", "bash", "--format", "json"],
            "completions prints a shell script",
        ),
        (
            vec!["man", "--format", "json"],
            "man prints a roff man page, never JSON",
        ),
        (
            vec!["snapshot", "--format", "text"],
            "snapshot --format text: a snapshot is a JSON document",
        ),
    ] {
        let mut full = vec!["--root", r.as_str()];
        full.extend(args.iter().copied());
        let out = sysctune(&full);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        if args.windows(2).any(|w| w == ["--format", "json"]) {
            // With --format json the error is a document on stdout too.
            let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            assert_eq!(doc["schema"], "sysctune/error/v1");
            assert_eq!(doc["exit"], 2);
            assert!(doc["error"].as_str().unwrap().contains(expect), "{args:?}: {doc}");
        } else {
            assert!(out.stdout.is_empty(), "{args:?}");
        }
        assert!(out.stderr.contains(expect), "{args:?}: {}", out.stderr);
        assert_eq!(tree(root.path()), before, "{args:?} wrote something");
    }
    // What does apply: --exit-code with --dry-run, a snapshot in JSON.
    let out = sysctune(&[
        "--root",
        &r,
        "apply",
        "--profile",
        "batch-client",
        "--dry-run",
        "--exit-code",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let out = sysctune(&["--root", &r, "snapshot", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
