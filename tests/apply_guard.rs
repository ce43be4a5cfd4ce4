//! apply refuses plans that would hurt the host it runs on (exit 2, nothing written),
//! unless `--force` says so, and then says what it overrode. A `[host]` that describes
//! another machine is never applied.

mod common;

use std::path::Path;

use common::{copy_root, sysctune, tree};
use serde_json::Value;

fn run(root: &Path, args: &[&str]) -> common::Run {
    let r = root.display().to_string();
    let mut full = vec!["--root", r.as_str(), "--color", "never"];
    full.extend_from_slice(args);
    sysctune(&full)
}

/// Refused with `expect` in the message, and the tree (state directory included) untouched.
/// `plan` with the same arguments says so first: `expect` is in one of its error findings
/// (the same check decides both).
fn refused(fixture: &str, args: &[&str], expect: &str) -> tempfile::TempDir {
    let root = copy_root(fixture);
    if args[0] == "apply" && !args.iter().any(|a| a.starts_with("host.")) {
        let plan_args: Vec<&str> = ["plan", "--format", "json"]
            .into_iter()
            .chain(args[1..].iter().copied().filter(|a| *a != "--force"))
            .collect();
        let p = run(root.path(), &plan_args);
        assert_eq!(p.code, 0, "{plan_args:?}: {}", p.stderr);
        let v: Value = serde_json::from_str(&p.stdout).unwrap();
        // as apply quotes them
        let errors: Vec<String> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .map(|f| {
                format!(
                    "error finding {}: {}",
                    f["rule"].as_str().unwrap(),
                    f["message"].as_str().unwrap()
                )
            })
            .collect();
        assert!(
            errors.iter().any(|m| m.contains(expect)),
            "plan {plan_args:?} does not show {expect:?}: {errors:?}"
        );
    }
    let before = tree(root.path());
    let r = run(root.path(), args);
    assert_eq!(r.code, 2, "{args:?}: {} {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("apply refused, nothing was written"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(expect),
        "{args:?}: expected {expect:?} in {}",
        r.stderr
    );
    assert_eq!(tree(root.path()), before, "{args:?} wrote something");
    assert!(
        !root.path().join("var").exists(),
        "{args:?} made the state directory"
    );
    root
}

#[test]
fn an_error_finding_is_refused_unless_forced() {
    let args = [
        "apply",
        "--profile",
        "reverse-proxy",
        "--set",
        // infeasible with a budget still above what TCP uses now (sockstat), and not so
        // many that their control blocks alone exceed RAM (a validation error)
        "connections.concurrent=1000000",
        "--set",
        "connections.average_memory=100KiB",
        // the profile reserves 25% of RAM: on this host (TCP holds 45.4 GiB now) that
        // budget is below current use, which the guard refuses on its own
        "--set",
        "connections.reserved_memory=4GiB",
    ];
    let root = refused(
        "article-proxy",
        &args,
        "error finding tcp-memory: 1 000 000 connections need",
    );
    let r = run(
        root.path(),
        &[&args[..], &["--force", "--format", "json"]].concat(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["changed"], true);
    assert_eq!(v["forced"], true);
    let overridden = v["overridden"].as_array().unwrap();
    assert_eq!(overridden.len(), 1, "{overridden:?}");
    assert!(
        overridden[0]
            .as_str()
            .unwrap()
            .starts_with("error finding tcp-memory")
    );
    // Not forced: `forced` is false and nothing is listed.
    let r = run(
        root.path(),
        &[
            "apply",
            "--profile",
            "reverse-proxy",
            "--set",
            "connections.reserved_memory=4GiB",
            "--format",
            "json",
        ],
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (v["forced"].clone(), v["overridden"].clone()),
        (Value::Bool(false), serde_json::json!([]))
    );
}

#[test]
fn a_profile_for_another_host_is_never_applied() {
    for (set, expect) in [
        (
            "host.page_size=65536",
            "host.page_size = 65536, but this host has 4096 (the page size)",
        ),
        (
            "host.ram=1TiB",
            "host.ram = 1 TiB, but this host has 62 GiB (MemTotal)",
        ),
        (
            "host.swap=8GiB",
            "host.swap = 8 GiB, but this host has 0 B (SwapTotal)",
        ),
    ] {
        for force in [false, true] {
            let mut args = vec!["apply", "--profile", "reverse-proxy", "--set", set];
            if force {
                args.push("--force");
            }
            refused("article-proxy", &args, expect);
        }
    }
    // The same figures as the host's are no override.
    let root = copy_root("article-proxy");
    let r = run(
        root.path(),
        &[
            "apply",
            "--profile",
            "reverse-proxy",
            "--set",
            "host.page_size=4096",
            // a budget above what TCP uses now (see an_error_finding_is_refused_unless_forced)
            "--set",
            "connections.reserved_memory=4GiB",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn values_that_break_the_host_now_are_refused() {
    // sockstat says TCP uses 900 pages.
    refused(
        "article-batch",
        &[
            "apply",
            "--profile",
            "batch-client",
            "--set",
            "sysctl.net.ipv4.tcp_mem=\"100 200 300\"",
        ],
        "net.ipv4.tcp_mem high 300 is at or below the 900 pages TCP uses now (sockstat mem)",
    );
    refused(
        "article-batch",
        &[
            "apply",
            "--profile",
            "batch-client",
            "--set",
            "sysctl.net.ipv4.tcp_mem=\"0 0 0\"",
        ],
        "net.ipv4.tcp_mem = 0 0 0 has a zero",
    );
    // Committed_AS is 3.2 GiB; strict mode with a ratio of 1 leaves a CommitLimit of 155 MiB.
    refused(
        "article-batch",
        &[
            "apply",
            "--profile",
            "batch-client",
            "--set",
            "sysctl.vm.overcommit_memory=2",
            "--set",
            "sysctl.vm.overcommit_ratio=1",
        ],
        "strict overcommit with a CommitLimit of",
    );
    // One destination holds 85 ports of 40000 40099 now.
    refused(
        "doctor-ports",
        &[
            "apply",
            "--profile",
            "batch-client",
            "--only",
            "net.ipv4.ip_local_port_range",
            "--set",
            "sysctl.net.ipv4.ip_local_port_range=\"40000 40009\"",
        ],
        "net.ipv4.ip_local_port_range = 40000 40009 leaves 10 usable ports, fewer than the 85 one destination holds now",
    );
}

#[test]
fn the_plan_says_which_figures_came_from_the_profile() {
    let root = copy_root("article-proxy");
    let r = run(
        root.path(),
        &["plan", "--profile", "reverse-proxy", "--set", "host.ram=1TiB"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let header: Vec<&str> = r.stdout.lines().take(3).collect();
    assert!(
        header[1].starts_with("1 TiB RAM (from the profile), no swap, page 4096 B,"),
        "{header:?}"
    );
    assert_eq!(
        header[2],
        "This plan is for the host the profile's [host] describes: apply refuses it here."
    );
    let j = run(
        root.path(),
        &[
            "plan",
            "--profile",
            "reverse-proxy",
            "--set",
            "host.ram=1TiB",
            "--format",
            "json",
        ],
    );
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["host"]["from_profile"], serde_json::json!(["ram"]));
    // The host's own figure given again is no override.
    let same = run(
        root.path(),
        &[
            "plan",
            "--profile",
            "reverse-proxy",
            "--set",
            "host.page_size=4096",
        ],
    );
    assert!(!same.stdout.contains("(from the profile)"), "{}", same.stdout);
    assert!(!same.stdout.contains("apply refuses it here"), "{}", same.stdout);
}
