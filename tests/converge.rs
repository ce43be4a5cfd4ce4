//! Switching profiles converges: after `apply --profile A` then `apply --profile B`, every
//! key sysctune ever set has its live value equal to the one it gets at boot, `status`
//! says so, and `plan --exit-code` has nothing to do. State belongs to the network
//! namespace it was made in.

mod common;

use std::path::Path;
use std::process::Command;

use common::{copy_root, sysctune};
use serde_json::Value;

fn run(root: &Path, args: &[&str]) -> common::Run {
    let r = root.display().to_string();
    let mut full = vec!["--root", r.as_str(), "--color", "never"];
    full.extend_from_slice(args);
    sysctune(&full)
}

fn json(r: &common::Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", r.stdout, r.stderr))
}

fn live(root: &Path, key: &str) -> String {
    let p = root.join("proc/sys").join(key.replace('.', "/"));
    std::fs::read_to_string(p)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn switching_profiles_leaves_live_equal_to_boot() {
    for (a, b) in [
        ("batch-client", "web-server"),
        ("web-server", "batch-client"),
        ("reverse-proxy", "database"),
    ] {
        let root = copy_root("article-batch");
        let original = |k: &str| live(&common::root("article-batch"), k);
        let ra = run(root.path(), &["apply", "--profile", a, "--format", "json"]);
        assert_eq!(ra.code, 0, "{a}: {}", ra.stderr);
        let touched: Vec<String> = json(&ra)["live"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].as_str().unwrap().to_string())
            .collect();
        let rb = run(root.path(), &["apply", "--profile", b, "--format", "json"]);
        assert_eq!(rb.code, 0, "{b}: {}", rb.stderr);
        // Every key A set: in B's drop-in with its live value, or back to what it was.
        let dropin = std::fs::read_to_string(root.path().join("etc/sysctl.d/90-sysctune.conf")).unwrap();
        for key in &touched {
            let line = dropin.lines().find(|l| l.starts_with(&format!("{key} = ")));
            let want = match line {
                Some(l) => l.split_once(" = ").unwrap().1.to_string(),
                None => original(key),
            };
            assert_eq!(live(root.path(), key), want, "{a} then {b}: {key}");
        }
        let st = run(root.path(), &["status", "--format", "json"]);
        assert_eq!(st.code, 0, "{a} then {b}: {}", st.stdout);
        let s = json(&st);
        assert_eq!(s["schema"], "sysctune/status/v1");
        assert_eq!(s["in_sync"], true);
        assert_eq!(s["applied"]["profile"], b);
        let plan = run(root.path(), &["plan", "--profile", b, "--exit-code"]);
        assert_eq!(
            plan.code, 0,
            "{a} then {b}: a plan after apply still has changes:\n{}",
            plan.stdout
        );
        // Comments come from B's plan only.
        assert!(dropin.starts_with(&format!("# Managed by sysctune, profile \"{b}\"")));
    }
}

#[test]
fn a_key_leaving_management_is_shown_and_returned() {
    let root = copy_root("article-batch");
    assert_eq!(run(root.path(), &["apply", "--profile", "batch-client"]).code, 0);
    assert_eq!(live(root.path(), "net.ipv4.ip_local_port_range"), "32768 65535");
    // web-server does not manage the port range: the plan shows it going back.
    let p = json(&run(
        root.path(),
        &["plan", "--profile", "web-server", "--format", "json"],
    ));
    let s = p["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "net.ipv4.ip_local_port_range")
        .expect("the released key is in the plan");
    assert_eq!(s["rules"], serde_json::json!(["released"]));
    assert_eq!(s["recommended"], "32768 60999");
    assert_eq!(s["change"], true);
    assert_eq!(s["pinned"], false);
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("no longer managed by profile web-server")
    );
    assert!(
        !p["dropin"]["content"]
            .as_str()
            .unwrap()
            .contains("ip_local_port_range")
    );
    // With --only elsewhere, it is left alone.
    let p = json(&run(
        root.path(),
        &[
            "plan",
            "--profile",
            "web-server",
            "--only",
            "vm.*",
            "--format",
            "json",
        ],
    ));
    assert!(
        p["settings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["key"] != "net.ipv4.ip_local_port_range")
    );
}

#[test]
fn status_marks_drift_and_says_why() {
    let root = copy_root("article-batch");
    assert_eq!(
        run(root.path(), &["status"]).code,
        0,
        "nothing applied is in sync"
    );
    assert_eq!(run(root.path(), &["apply", "--profile", "batch-client"]).code, 0);
    // Someone changes a live value, and a later file overrides the drop-in at boot.
    std::fs::write(root.path().join("proc/sys/vm/swappiness"), "33\n").unwrap();
    std::fs::write(
        root.path().join("etc/sysctl.d/99-later.conf"),
        "net.ipv4.ip_local_port_range = 40000 60999\n",
    )
    .unwrap();
    let st = run(root.path(), &["status"]);
    assert_eq!(st.code, 1, "{}", st.stdout);
    assert!(st.stdout.contains("! vm.swappiness"), "{}", st.stdout);
    assert!(
        st.stdout.contains("live 33 differs from the drop-in's 10"),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout
            .contains("at boot /etc/sysctl.d/99-later.conf:1 sets 40000 60999 and wins over the drop-in"),
        "{}",
        st.stdout
    );
    let by = format!(
        "by: sysctune --root {} apply --profile batch-client",
        root.path().display()
    );
    assert!(st.stdout.contains(&by), "{}", st.stdout);
    let s = json(&run(root.path(), &["status", "--format", "json"]));
    assert_eq!(s["in_sync"], false);
}

#[test]
fn rollback_dry_run_writes_nothing() {
    let root = copy_root("article-batch");
    assert_eq!(run(root.path(), &["apply", "--profile", "batch-client"]).code, 0);
    let before = common::tree(root.path());
    let r = run(root.path(), &["rollback", "--dry-run", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["changed"], true);
    assert!(
        v["live"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"] == "vm.swappiness" && c["to"] == "60")
    );
    assert!(v["message"].as_str().unwrap().starts_with("dry run"));
    assert_eq!(common::tree(root.path()), before);
}

fn unshare_ok() -> bool {
    common::namespaces(&["-n"], false, "the network namespace test")
}

/// A record made in one network namespace is refused in another: both run with the same
/// state directory (a temporary one: nothing is left on the machine).
#[test]
fn a_record_belongs_to_its_network_namespace() {
    if !unshare_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let bin = env!("CARGO_BIN_EXE_sysctune");
    let prof = common::profile("netns.toml");
    let ns = |script: &str| {
        let out = Command::new("unshare")
            .args(["-n", "sh", "-c", script])
            .env("BIN", bin)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let s = state.display();
    // The second namespace is made while the first is alive (nested): a namespace's
    // inode is reused once it is gone, and two namespaces in turn could share one.
    let (code, out) = ns(&format!(
        "set -e\n\"$BIN\" --root / apply --profile {prof} --only 'net.ipv4.*' --no-file --state-dir {s} >/dev/null\n\
         echo first=$(readlink /proc/self/ns/net)\n\
         set +e\n\
         unshare -n sh -c '\"$BIN\" --root / rollback --state-dir {s}; echo rollback=$?; \"$BIN\" --root / status --state-dir {s}; echo status=$?' 2>&1"
    ));
    assert_eq!(code, 0, "{out}");
    let first = out
        .lines()
        .find_map(|l| l.strip_prefix("first="))
        .expect("the first namespace")
        .to_string();
    let record = std::fs::read_to_string(state.join("rollback.conf")).unwrap();
    assert!(record.contains(&format!("# netns: {first}")), "{record}");
    assert!(out.contains("rollback=2"), "{out}");
    assert!(
        out.contains(&format!(
            "the record was made in network namespace {first}, and this is network namespace net:["
        )),
        "{out}"
    );
    assert!(out.contains("nothing was restored"), "{out}");
    assert!(state.join("rollback.conf").exists(), "the record is kept");
    assert!(out.contains("status=1"), "{out}");
    assert!(
        out.contains(&format!("the last apply ran in network namespace {first}")),
        "{out}"
    );
}
