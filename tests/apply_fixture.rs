//! `apply` and `rollback` on fixture roots: idempotence, the rollback round trip,
//! all-or-nothing on a failed write, refusals, the lock, and kills at any point.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{copy_root, sysctune, tree};
use serde_json::Value;

fn run(root: &Path, args: &[&str]) -> common::Run {
    let r = root.display().to_string();
    let mut full = vec!["--root", r.as_str(), "--color", "never"];
    full.extend_from_slice(args);
    sysctune(&full)
}

fn json(run: &common::Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", run.stdout, run.stderr))
}

fn dropin(root: &Path) -> PathBuf {
    root.join("etc/sysctl.d/90-sysctune.conf")
}

#[test]
fn apply_is_idempotent_and_rollback_restores_the_tree() {
    let root = copy_root("article-batch");
    let before = tree(root.path());

    let first = run(
        root.path(),
        &["apply", "--profile", "batch-client", "--format", "json"],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    let a = json(&first);
    assert_eq!(a["schema"], "sysctune/apply/v1");
    assert_eq!(a["changed"], true);
    assert_eq!(a["dropin"]["changed"], true);
    assert_eq!(a["rollback"], "/var/lib/sysctune/rollback.conf");
    let live: Vec<(String, String)> = a["live"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                c["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        live.contains(&("net.ipv4.ip_local_port_range".into(), "32768 65535".into())),
        "{live:?}"
    );
    assert!(live.contains(&("vm.swappiness".into(), "10".into())));
    let read = |k: &str| std::fs::read_to_string(root.path().join("proc/sys").join(k)).unwrap();
    assert_eq!(read("net/ipv4/ip_local_port_range"), "32768 65535\n");
    assert_eq!(read("vm/swappiness"), "10\n");
    let content = std::fs::read_to_string(dropin(root.path())).unwrap();
    assert!(content.contains("net.ipv4.ip_local_port_range = 32768 65535\n"));
    let meta = std::fs::metadata(dropin(root.path())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    // The rollback record is a sysctl.d file of the previous values.
    let record = std::fs::read_to_string(root.path().join("var/lib/sysctune/rollback.conf")).unwrap();
    assert!(
        record.contains("net.ipv4.ip_local_port_range = 32768 60999\n"),
        "{record}"
    );
    assert!(record.contains("vm.swappiness = 60\n"));
    assert!(record.contains("# dropin-previous: absent\n"));

    // Second apply: nothing written, drop-in not even renamed.
    let mtime = meta.modified().unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    std::thread::sleep(Duration::from_millis(20));
    let second = run(
        root.path(),
        &["apply", "--profile", "batch-client", "--format", "json"],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    let b = json(&second);
    assert_eq!(b["changed"], false);
    assert_eq!(b["dropin"]["changed"], false);
    assert_eq!(b["live"], serde_json::json!([]));
    let meta2 = std::fs::metadata(dropin(root.path())).unwrap();
    assert_eq!(meta2.modified().unwrap(), mtime);
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&meta2), ino);
    // and plan agrees: nothing pending
    assert_eq!(
        run(root.path(), &["plan", "--profile", "batch-client", "--exit-code"]).code,
        0
    );

    let rb = run(root.path(), &["rollback", "--format", "json"]);
    assert_eq!(rb.code, 0, "{}", rb.stderr);
    let r = json(&rb);
    assert_eq!(r["schema"], "sysctune/rollback/v1");
    assert_eq!(r["changed"], true);
    let mut after = tree(root.path());
    // Directories sysctune created stay (empty); every file is as it was.
    after.retain(|k, _| !k.starts_with("var/lib/sysctune/"));
    assert_eq!(after, before);

    let again = run(root.path(), &["rollback", "--format", "json"]);
    assert_eq!(again.code, 0);
    assert_eq!(json(&again)["changed"], false);
    let text = run(root.path(), &["rollback"]);
    assert!(text.stdout.contains("nothing to roll back"), "{}", text.stdout);
}

#[test]
fn rollback_restores_a_previous_dropin() {
    let root = copy_root("article-batch");
    std::fs::create_dir_all(root.path().join("etc/sysctl.d")).unwrap();
    std::fs::write(dropin(root.path()), "# hand-written\nvm.swappiness = 1\n").unwrap();
    assert_eq!(
        run(root.path(), &["apply", "--profile", "batch-client", "--no-live"]).code,
        0
    );
    assert!(
        std::fs::read_to_string(dropin(root.path()))
            .unwrap()
            .contains("Managed by sysctune")
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness"))
            .unwrap()
            .trim(),
        "60"
    );
    assert_eq!(run(root.path(), &["rollback"]).code, 0);
    assert_eq!(
        std::fs::read_to_string(dropin(root.path())).unwrap(),
        "# hand-written\nvm.swappiness = 1\n"
    );
}

#[test]
fn an_apply_that_died_half_way_keeps_the_original_values_for_rollback() {
    let root = copy_root("article-batch");
    let original = tree(root.path());
    // What a killed apply leaves: the port range already written, the record incomplete,
    // no drop-in yet.
    std::fs::write(
        root.path().join("proc/sys/net/ipv4/ip_local_port_range"),
        "32768 65535\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("var/lib/sysctune")).unwrap();
    std::fs::write(
        root.path().join("var/lib/sysctune/rollback.conf"),
        "# profile: batch-client\n# dropin: /etc/sysctl.d/90-sysctune.conf\n# dropin-previous: absent\n# state: incomplete\nnet.ipv4.ip_local_port_range = 32768 60999\nvm.swappiness = 60\n",
    )
    .unwrap();
    let a = json(&run(
        root.path(),
        &["apply", "--profile", "batch-client", "--format", "json"],
    ));
    assert_eq!(a["changed"], true);
    let record = std::fs::read_to_string(root.path().join("var/lib/sysctune/rollback.conf")).unwrap();
    assert!(
        record.contains("net.ipv4.ip_local_port_range = 32768 60999\n"),
        "{record}"
    );
    assert!(record.contains("# state: complete\n"), "{record}");
    assert_eq!(run(root.path(), &["rollback"]).code, 0);
    let mut after = tree(root.path());
    after.retain(|k, _| !k.starts_with("var/lib/sysctune/"));
    assert_eq!(after, original);
}

#[test]
fn no_file_writes_only_live_values() {
    let root = copy_root("article-batch");
    let a = json(&run(
        root.path(),
        &[
            "apply",
            "--profile",
            "batch-client",
            "--no-file",
            "--format",
            "json",
        ],
    ));
    assert_eq!(a["changed"], true);
    assert_eq!(a["dropin"]["changed"], false);
    assert!(!dropin(root.path()).exists());
}

#[test]
fn dry_run_is_plan() {
    let root = copy_root("article-batch");
    let before = tree(root.path());
    let r = run(
        root.path(),
        &[
            "apply",
            "--profile",
            "batch-client",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0);
    assert_eq!(json(&r)["schema"], "sysctune/plan/v1");
    assert_eq!(tree(root.path()), before);
}

/// A key whose file is a symlink: it reads fine, but sysctune's write (O_NOFOLLOW) fails,
/// like a value the kernel rejects in the middle of an apply.
fn break_key(root: &Path, rel: &str) {
    let p = root.join("proc/sys").join(rel);
    let target = root.join("proc/elsewhere");
    std::fs::copy(&p, &target).unwrap();
    std::fs::remove_file(&p).unwrap();
    // Relative, so it resolves inside the root when read.
    std::os::unix::fs::symlink("../../elsewhere", &p).unwrap();
}

#[test]
fn a_failed_write_mid_apply_leaves_everything_as_it_was() {
    let root = copy_root("article-batch");
    // vm.swappiness is written after net.ipv4.ip_local_port_range
    break_key(root.path(), "vm/swappiness");
    // an earlier apply's record must survive the failed one
    std::fs::create_dir_all(root.path().join("var/lib/sysctune")).unwrap();
    let old_record = "# sysctune rollback record\n# profile: x\n# dropin: /etc/sysctl.d/90-sysctune.conf\n# dropin-previous: unchanged\nvm.swappiness = 30\n";
    std::fs::write(root.path().join("var/lib/sysctune/rollback.conf"), old_record).unwrap();
    let before = tree(root.path());
    let r = run(root.path(), &["apply", "--profile", "batch-client"]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("writing vm.swappiness = \"10\" failed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("restored net.ipv4.ip_local_port_range = 32768 60999"),
        "{}",
        r.stderr
    );
    assert_eq!(tree(root.path()), before);
}

#[test]
fn refusals_leave_the_tree_untouched() {
    let root = copy_root("article-batch");
    std::fs::create_dir_all(root.path().join("etc/sysctl.d")).unwrap();
    let before = tree(root.path());
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "sysctl.net/../../../etc/passwd=1"], "'..' segment"),
        (&["--set", "sysctl./etc/passwd=1"], "absolute path"),
        (
            &["--set", "sysctl.net.core.somaxconn=\"4096\\nvm.swappiness = 1\""],
            "control character",
        ),
        (
            &["--dropin", "/etc/passwd"],
            "refusing to write outside the sysctl.d directories",
        ),
        (
            &["--dropin", "/etc/sysctl.d/../../x.conf"],
            "refusing to write outside",
        ),
        (
            &[
                "--dropin",
                "/etc/sysctl.d/../../x.conf",
                "--allow-any-dropin-path",
            ],
            "'..'",
        ),
        (&["--set", "sysctl.vm.swappiness=500"], "out of range"),
    ];
    for (extra, expect) in cases {
        let mut args = vec!["apply", "--profile", "batch-client"];
        args.extend_from_slice(extra);
        let r = run(root.path(), &args);
        assert_eq!(r.code, 2, "{extra:?}: {}", r.stderr);
        assert!(r.stderr.contains(expect), "{extra:?}: {}", r.stderr);
        assert_eq!(tree(root.path()), before, "{extra:?} touched the tree");
        assert!(
            !root.path().join("var/lib/sysctune").exists(),
            "{extra:?} took the lock"
        );
    }
}

#[test]
fn symlinks_at_the_dropin_or_the_record_are_not_followed() {
    for planted in [
        "etc/sysctl.d/90-sysctune.conf",
        "var/lib/sysctune/rollback.conf",
        "var/lib/sysctune/rollback.dropin",
    ] {
        let root = copy_root("article-batch");
        let victim = root.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let link = root.path().join(planted);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let before = tree(root.path());
        let r = run(root.path(), &["apply", "--profile", "batch-client"]);
        assert_eq!(r.code, 2, "{planted}: {}", r.stderr);
        assert!(r.stderr.contains("is a symlink"), "{planted}: {}", r.stderr);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        let mut after = tree(root.path());
        after.retain(|k, _| !k.starts_with("run/"));
        assert_eq!(after, before, "{planted}");
    }
    // A symlinked directory on the way is refused too.
    let root = copy_root("article-batch");
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("etc/sysctl.d")).unwrap();
    let r = run(root.path(), &["apply", "--profile", "batch-client"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is a symlink"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn a_second_apply_waits_for_the_lock_then_fails_clearly() {
    let root = copy_root("article-batch");
    let lock = root.path().join("var/lib/sysctune/lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        lock.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(&lock, "").unwrap();
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "5"])
        .stdin(Stdio::null())
        .spawn()
        .expect("flock(1) from util-linux");
    std::thread::sleep(Duration::from_millis(300));
    let before = tree(root.path());
    let r = run(
        root.path(),
        &["apply", "--profile", "batch-client", "--lock-timeout", "1"],
    );
    holder.kill().ok();
    holder.wait().ok();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("another sysctune apply or rollback holds"),
        "{}",
        r.stderr
    );
    assert_eq!(tree(root.path()), before);
    // Once free, it goes through.
    assert_eq!(run(root.path(), &["apply", "--profile", "batch-client"]).code, 0);
}

#[test]
fn killing_apply_never_leaves_a_partial_dropin() {
    let old = "# Managed by sysctune, profile \"old\".\nvm.swappiness = 1\n".to_string();
    let mut saw_new = 0;
    let mut saw_old = 0;
    for i in 0..40u64 {
        let root = copy_root("article-batch");
        std::fs::create_dir_all(root.path().join("etc/sysctl.d")).unwrap();
        std::fs::write(dropin(root.path()), &old).unwrap();
        let original = tree(root.path());
        let r = root.path().display().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sysctune"))
            .args(["--root", &r, "apply", "--profile", "batch-client"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kill over the apply's lifetime (a few milliseconds).
        std::thread::sleep(Duration::from_micros(500 * (i % 40)));
        let _ = child.kill();
        let _ = child.wait();
        let now = std::fs::read_to_string(dropin(root.path())).unwrap();
        if now == old {
            saw_old += 1;
        } else {
            assert!(
                now.starts_with("# Managed by sysctune, profile \"batch-client\""),
                "partial drop-in: {now:?}"
            );
            assert!(
                now.ends_with("fs.nr_open = 1048576\n"),
                "partial drop-in: {now:?}"
            );
            saw_new += 1;
        }
        // Only the drop-in and possibly a temporary file that no reader picks up (*.conf only).
        for e in std::fs::read_dir(root.path().join("etc/sysctl.d")).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            assert!(
                name == "90-sysctune.conf" || (name.starts_with('.') && !name.ends_with(".conf")),
                "{name}"
            );
        }
        // A later apply converges and cleans up.
        assert_eq!(run(root.path(), &["apply", "--profile", "batch-client"]).code, 0);
        let names: Vec<String> = std::fs::read_dir(root.path().join("etc/sysctl.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["90-sysctune.conf"]);
        assert_eq!(
            run(root.path(), &["plan", "--profile", "batch-client", "--exit-code"]).code,
            0
        );
        // However far the killed apply got, rollback goes back to before it: the record of
        // an apply that died half-way is carried over, not overwritten.
        assert_eq!(run(root.path(), &["rollback"]).code, 0);
        let mut after = tree(root.path());
        after.retain(|k, _| !k.starts_with("var/lib/sysctune/"));
        assert_eq!(
            after, original,
            "kill #{i}: rollback did not restore the original state"
        );
    }
    eprintln!("killed apply: {saw_old} times before the rename, {saw_new} after");
}

#[test]
fn live_writes_under_the_real_root_need_root() {
    if !nix_is_root() {
        eprintln!("skipped: needs root to drop privileges");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_sysctune");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin,
            "apply",
            "--profile",
            "batch-client",
        ])
        .output()
        .expect("setpriv from util-linux");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root"), "{err}");
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
