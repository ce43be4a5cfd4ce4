//! sysctune run as an attacker would have it run: on images with symlinks, FIFOs,
//! devices, hard links and procfs planted, with tampered rollback records and a lock held
//! by another user. Every attack is exit 2 with a message naming the problem, and no
//! byte changes outside the root (a decoy beside it is checked after each).

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{copy_root, tree};

/// A fixture root and, beside it, a decoy directory nothing may touch.
struct Scene {
    root: tempfile::TempDir,
    outside: tempfile::TempDir,
}

const DECOY: &str = "decoy: outside the root\n";

impl Scene {
    fn new(fixture: &str) -> Scene {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("proc/sys/vm")).unwrap();
        std::fs::create_dir_all(outside.path().join("etc")).unwrap();
        std::fs::write(outside.path().join("proc/sys/vm/swappiness"), "60\n").unwrap();
        std::fs::write(outside.path().join("etc/passwd"), DECOY).unwrap();
        std::fs::write(outside.path().join("secret"), DECOY).unwrap();
        Scene {
            root: copy_root(fixture),
            outside,
        }
    }
    fn root(&self) -> &Path {
        self.root.path()
    }
    fn outside(&self) -> &Path {
        self.outside.path()
    }
    fn at(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.at(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn replace_with_link(&self, rel: &str, target: &Path) {
        let p = self.at(rel);
        if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            let _ = std::fs::remove_file(&p);
        }
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }
    fn fifo(&self, rel: &str) {
        let p = self.at(rel);
        let _ = std::fs::remove_file(&p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    }
    /// Run sysctune on the root, killed (and failed) if it does not end in 20 s.
    fn run(&self, args: &[&str]) -> common::Run {
        let r = self.root().display().to_string();
        let mut full = vec!["--root", r.as_str(), "--color", "never"];
        full.extend_from_slice(args);
        run_bounded(&full, Duration::from_secs(20))
    }
    fn assert_decoy_untouched(&self) {
        let t = tree(self.outside());
        let want: Vec<(&str, &str)> = vec![
            ("etc/passwd", DECOY),
            ("proc/sys/vm/swappiness", "60"),
            ("secret", DECOY),
        ];
        let got: Vec<(&str, &str)> = t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want, "something outside the root changed");
    }
}

fn run_bounded(args: &[&str], limit: Duration) -> common::Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sysctune"))
        .args(args)
        .env("COLUMNS", "110")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("sysctune {args:?} hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn refused(r: &common::Run, expect: &str) {
    assert_eq!(r.code, 2, "stdout {}\nstderr {}", r.stdout, r.stderr);
    assert!(r.stderr.contains(expect), "expected {expect:?} in:\n{}", r.stderr);
}

const APPLY: &[&str] = &["apply", "--profile", "batch-client"];

#[test]
fn fifos_are_errors_not_hangs() {
    for (rel, cmd) in [
        ("proc/meminfo", &["plan", "--profile", "batch-client"][..]),
        ("proc/net/sockstat", &["show"][..]),
        (
            "proc/sys/vm/swappiness",
            &["plan", "--profile", "batch-client"][..],
        ),
        ("proc/net/tcp", &["doctor"][..]),
        (
            "etc/sysctl.d/90-sysctune.conf",
            &["plan", "--profile", "batch-client"][..],
        ),
        ("etc/sysctl.d/90-sysctune.conf", APPLY),
        ("etc/sysctl.d/10-planted.conf", &["snapshot"][..]),
    ] {
        let s = Scene::new("article-batch");
        s.write("proc/net/tcp", "  sl  local_address rem_address   st\n");
        s.fifo(rel);
        let before = tree(s.root());
        let r = s.run(cmd);
        if rel.ends_with("10-planted.conf") {
            // systemd-sysctl fails on it too: a note, and the command still ends.
            assert_eq!(r.code, 0, "{rel}: {}", r.stderr);
            assert!(r.stdout.contains("is not a regular file"), "{rel}: {}", r.stdout);
        } else {
            refused(&r, "is a FIFO (named pipe), not a regular file");
            assert!(r.stderr.contains(rel), "{rel}: {}", r.stderr);
        }
        let mut after = tree(s.root());
        after.retain(|k, _| !k.starts_with("var/lib/sysctune"));
        assert_eq!(after, before, "{rel}");
        s.assert_decoy_untouched();
    }
}

#[test]
fn devices_and_huge_files_are_refused() {
    let s = Scene::new("article-batch");
    // /dev/zero planted in the image, and meminfo pointing at it.
    std::fs::create_dir_all(s.at("dev")).unwrap();
    let dev = nix::sys::stat::makedev(1, 5);
    nix::sys::stat::mknod(
        &s.at("dev/zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        dev,
    )
    .expect("mknod (tests run as root)");
    s.replace_with_link("proc/meminfo", Path::new("/dev/zero"));
    let r = s.run(&["plan", "--profile", "batch-client"]);
    refused(
        &r,
        "proc/meminfo: is a character device (/proc/meminfo resolves to /dev/zero), not a regular file",
    );
    // The host's /dev/zero is not reachable from the image at all.
    std::fs::remove_file(s.at("dev/zero")).unwrap();
    refused(&s.run(&["show"]), "proc/meminfo: no such file");
    // A regular file that never ends is capped.
    let big = std::fs::File::create(s.at("proc/meminfo.big")).unwrap();
    big.set_len(2 << 20).unwrap();
    std::fs::remove_file(s.at("proc/meminfo")).unwrap();
    std::fs::rename(s.at("proc/meminfo.big"), s.at("proc/meminfo")).unwrap();
    refused(
        &s.run(&["show"]),
        "proc/meminfo: larger than 1 MiB, the most sysctune reads of such a file",
    );
    s.assert_decoy_untouched();
}

#[test]
fn symlinks_out_of_the_root_resolve_inside_it() {
    let s = Scene::new("article-batch");
    // An image whose /etc/sysctl.d and a value point outside: read as the image sees them.
    s.replace_with_link("etc/sysctl.d", &s.outside().join("etc"));
    s.replace_with_link("proc/sys/vm", &s.outside().join("proc/sys/vm"));
    let r = s.run(&["show", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("decoy"), "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let swappiness = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "vm.swappiness")
        .unwrap();
    assert_eq!(
        swappiness["live"],
        serde_json::Value::Null,
        "read outside the root"
    );
    // apply writes nothing through them.
    let r = s.run(APPLY);
    refused(&r, "etc/sysctl.d: is a symlink; refusing to write through it");
    s.assert_decoy_untouched();
}

#[test]
fn live_writes_check_every_directory_on_the_way() {
    let s = Scene::new("article-batch");
    // ROOT/proc/sys/vm -> /outside/proc/sys/vm (the old code replaced
    // /outside/.../swappiness): reads resolve inside the root (absent), and the write never
    // goes through the link.
    s.replace_with_link("proc/sys/vm", &s.outside().join("proc/sys/vm"));
    let r = s.run(&[
        "apply",
        "--profile",
        "batch-client",
        "--set",
        "sysctl.vm.swappiness=1",
    ]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    s.assert_decoy_untouched();
}

#[test]
fn an_image_cannot_reach_the_live_kernel_with_a_symlink() {
    // proc/sys/net -> /proc/sys/net in an image: inside the root that is itself.
    let s = Scene::new("article-batch");
    s.replace_with_link("proc/sys/net", Path::new("/proc/sys/net"));
    let r = s.run(APPLY);
    refused(&r, "too many levels of symbolic links");
    s.assert_decoy_untouched();
}

fn unshare_available() -> bool {
    common::namespaces(&["-m", "-n"], false, "the procfs-under-an-image test")
}

#[test]
fn an_image_with_the_live_proc_mounted_is_refused() {
    if !unshare_available() {
        return;
    }
    // A bind mount of the live /proc over the image's proc (as a chroot has), in a
    // private mount and network namespace: apply must refuse before writing anything.
    let s = Scene::new("article-batch");
    let script = format!(
        "set -e\nmount --bind /proc {root}/proc\nbefore=$(cat /proc/sys/net/ipv4/ip_local_port_range)\nset +e\n\
         \"$BIN\" --root {root} apply --profile batch-client --only 'net.ipv4.*' 2>&1; echo rc=$?\n\
         after=$(cat /proc/sys/net/ipv4/ip_local_port_range)\n[ \"$before\" = \"$after\" ] && echo unchanged",
        root = s.root().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "-n", "--propagation", "private", "sh", "-c", &script])
        .env("BIN", env!("CARGO_BIN_EXE_sysctune"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("is on the live kernel's procfs under --root"),
        "{text}"
    );
    assert!(text.contains("rc=2"), "{text}");
    assert!(text.contains("unchanged"), "{text}");
}

#[test]
fn a_swapped_directory_never_redirects_a_write() {
    // A process that exchanges the drop-in's directory with a symlink to the outside in
    // a loop while apply runs again and again: no apply may write outside the root.
    let s = Scene::new("article-batch");
    std::fs::create_dir_all(s.at("etc/sysctl.d")).unwrap();
    symlink(s.outside().join("etc"), s.at("etc/swap")).unwrap();
    let etc = s.at("etc");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let swapper = std::thread::spawn(move || {
        let mut n = 0u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) && n < 5_000_000 {
            let _ = nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &etc.join("sysctl.d"),
                nix::fcntl::AT_FDCWD,
                &etc.join("swap"),
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            );
            n += 1;
        }
        n
    });
    for i in 0..60 {
        // Alternate profiles so every apply writes the drop-in.
        let profile = if i % 2 == 0 { "batch-client" } else { "web-server" };
        let _ = s.run(&["apply", "--profile", profile, "--no-live"]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(swapper.join().unwrap() > 0);
    s.assert_decoy_untouched();
}

/// A rollback record planted or tampered with: refused before anything is written.
#[test]
fn tampered_records_are_refused() {
    let header = |dropin: &str, previous: &str| {
        format!(
            "# sysctune rollback record\n# profile: batch-client\n# dropin: {dropin}\n# dropin-previous: {previous}\n# state: complete\n"
        )
    };
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        (
            header("/etc/passwd", "absent"),
            None,
            "line 3: the drop-in /etc/passwd is not a *.conf file in /etc/sysctl.d",
        ),
        (
            header("/root/.ssh/authorized_keys", "saved"),
            Some("ssh-ed25519 AAAA attacker\n"),
            "line 3: the drop-in /root/.ssh/authorized_keys is not a *.conf file",
        ),
        (
            header("etc/sysctl.d/90-sysctune.conf", "absent"),
            None,
            "line 3: the drop-in path \"etc/sysctl.d/90-sysctune.conf\" is relative",
        ),
        (
            header("/etc/sysctl.d/90-sysctune.conf", "unchanged")
                + "kernel.core_pattern = |/bin/sh -c 'id > /tmp/pwned'\n",
            None,
            "line 6: \"kernel.core_pattern\" = \"|/bin/sh -c 'id > /tmp/pwned'\": ",
        ),
        (
            header("/etc/sysctl.d/90-sysctune.conf", "saved"),
            Some("kernel.modprobe = /tmp/evil\n"),
            "rollback.dropin: line 1: \"kernel.modprobe\" = \"/tmp/evil\"",
        ),
        (
            header("/etc/sysctl.d/90-sysctune.conf", "unchanged") + "net.ipv4.tcp_mem = 1 2 x\n",
            None,
            "line 6: net.ipv4.tcp_mem: expected 3 integers, found \"1 2 x\"",
        ),
        (
            header("/etc/sysctl.d/90-sysctune.conf", "unchanged") + "fs.file-nr = 1 2 3\n",
            None,
            "line 6: fs.file-nr is read-only",
        ),
        (
            header("/etc/sysctl.d/90-sysctune.conf", "unchanged") + "../../etc/shadow = x\n",
            None,
            "line 6: key \"../../etc/shadow\"",
        ),
    ];
    for (record, saved, expect) in cases {
        let s = Scene::new("article-batch");
        s.write("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
        s.write("root/.ssh/authorized_keys", "ssh-ed25519 AAAA owner\n");
        s.write("var/lib/sysctune/rollback.conf", &record);
        std::fs::set_permissions(s.at("var/lib/sysctune"), PermissionsExt::from_mode(0o700)).unwrap();
        if let Some(text) = saved {
            s.write("var/lib/sysctune/rollback.dropin", text);
        }
        let before = tree(s.root());
        let r = s.run(&["rollback"]);
        refused(&r, expect);
        assert!(r.stderr.contains("nothing was restored"), "{}", r.stderr);
        assert_eq!(tree(s.root()), before, "{expect}");
        s.assert_decoy_untouched();
    }
}

#[test]
fn rollback_never_replaces_a_dropin_sysctune_did_not_write() {
    let s = Scene::new("article-batch");
    // A valid record naming another file in sysctl.d.
    s.write("etc/sysctl.d/10-operator.conf", "net.core.somaxconn = 1024\n");
    s.write(
        "var/lib/sysctune/rollback.conf",
        "# profile: x\n# dropin: /etc/sysctl.d/10-operator.conf\n# dropin-previous: absent\n# state: complete\n",
    );
    std::fs::set_permissions(s.at("var/lib/sysctune"), PermissionsExt::from_mode(0o700)).unwrap();
    let before = tree(s.root());
    refused(&s.run(&["rollback"]), "10-operator.conf: not written by sysctune");
    assert_eq!(tree(s.root()), before);
}

#[test]
fn the_state_directory_is_ours_alone() {
    // Owned by another user: refused before the lock is taken.
    let s = Scene::new("article-batch");
    std::fs::create_dir_all(s.at("var/lib/sysctune")).unwrap();
    nix::unistd::chown(
        &s.at("var/lib/sysctune"),
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
    )
    .unwrap();
    let before = tree(s.root());
    refused(
        &s.run(APPLY),
        "var/lib/sysctune: owned by uid 65534, not by uid 0",
    );
    assert_eq!(tree(s.root()), before);

    // World-writable, with a lock another user made (setpriv drops to nobody): refused.
    let s = Scene::new("article-batch");
    std::fs::create_dir_all(s.at("var/lib/sysctune")).unwrap();
    std::fs::set_permissions(s.at("var/lib/sysctune"), PermissionsExt::from_mode(0o777)).unwrap();
    let made = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "touch"])
        .arg(s.at("var/lib/sysctune/lock"))
        .status()
        .expect("setpriv from util-linux");
    assert!(made.success());
    refused(
        &s.run(APPLY),
        "var/lib/sysctune: mode 0777 lets other users write in it",
    );

    // Our directory, but the lock is a hard link to a file outside: never truncated.
    let s = Scene::new("article-batch");
    std::fs::create_dir_all(s.at("var/lib/sysctune")).unwrap();
    std::fs::set_permissions(s.at("var/lib/sysctune"), PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::hard_link(s.outside().join("secret"), s.at("var/lib/sysctune/lock")).unwrap();
    refused(
        &s.run(APPLY),
        "the lock file has 2 hard links; refusing to use it",
    );
    s.assert_decoy_untouched();

    // A symlinked lock.
    let s = Scene::new("article-batch");
    std::fs::create_dir_all(s.at("var/lib/sysctune")).unwrap();
    std::fs::set_permissions(s.at("var/lib/sysctune"), PermissionsExt::from_mode(0o700)).unwrap();
    symlink(s.outside().join("secret"), s.at("var/lib/sysctune/lock")).unwrap();
    refused(
        &s.run(APPLY),
        "var/lib/sysctune/lock: is a symlink; refusing to follow it",
    );
    s.assert_decoy_untouched();

    // Made by apply: 0700, and the lock 0600.
    let s = Scene::new("article-batch");
    assert_eq!(s.run(APPLY).code, 0);
    let mode = |rel: &str| std::fs::metadata(s.at(rel)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("var/lib/sysctune"), 0o700);
    assert_eq!(mode("var/lib/sysctune/lock"), 0o600);
    assert_eq!(mode("var/lib/sysctune/rollback.conf"), 0o600);
}

#[test]
fn a_state_directory_in_sysctl_d_is_refused() {
    for dir in [
        "/etc/sysctl.d",
        "/etc/sysctl.d/state",
        "/usr/lib/sysctl.d/x",
        "/etc",
    ] {
        let s = Scene::new("article-batch");
        let before = tree(s.root());
        let r = s.run(&["apply", "--profile", "batch-client", "--state-dir", dir]);
        refused(&r, &format!("--state-dir {dir}: refusing a state directory"));
        assert_eq!(tree(s.root()), before);
    }
}

#[test]
fn temporaries_of_killed_runs_are_removed_under_the_lock() {
    let s = Scene::new("article-batch");
    s.write(
        "etc/sysctl.d/.90-sysctune.conf.sysctune-tmp.4242",
        "# half a drop-in\n",
    );
    s.write("proc/sys/net/ipv4/.tcp_mem.sysctune-tmp.4242", "1 2");
    s.write("var/lib/sysctune/.rollback.conf.sysctune-tmp.4242", "# half\n");
    std::fs::set_permissions(s.at("var/lib/sysctune"), PermissionsExt::from_mode(0o700)).unwrap();
    // The first apply changes things, the second nothing: both clean up.
    for _ in 0..2 {
        assert_eq!(s.run(APPLY).code, 0);
        let left: Vec<String> = tree(s.root())
            .into_keys()
            .filter(|k| k.contains(".sysctune-tmp."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        s.write("etc/sysctl.d/.90-sysctune.conf.sysctune-tmp.4243", "# half\n");
    }
}

#[test]
fn live_writes_under_slash_need_root() {
    // As nobody, on the real root: refused before anything is read or written.
    for cmd in [&["rollback"][..], &["apply", "--profile", "batch-client"][..]] {
        let out = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_sysctune"))
            .args(["--root", "/"])
            .args(cmd)
            .output()
            .expect("setpriv from util-linux");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("live values under / needs root (run it with sudo)"),
            "{err}"
        );
    }
}

mod any_tree {
    use super::*;
    use proptest::prelude::*;

    /// Places in an image where a planted link matters.
    const SPOTS: &[&str] = &[
        "etc/sysctl.d",
        "etc/sysctl.d/90-sysctune.conf",
        "etc/sysctl.d/50-x.conf",
        "etc/sysctl.conf",
        "usr/lib/sysctl.d",
        "lib",
        "proc/sys/vm",
        "proc/sys/vm/swappiness",
        "proc/sys/net/ipv4",
        "proc/sys/net/ipv4/ip_local_port_range",
        "proc/meminfo",
        "proc/net",
        "var/lib/sysctune",
        "var/lib/sysctune/rollback.conf",
        "var",
    ];

    #[derive(Clone, Debug)]
    enum Target {
        Outside(&'static str),
        Up(&'static str),
        Inside(&'static str),
        Proc(&'static str),
    }

    fn target() -> impl Strategy<Value = Target> {
        let rels = prop::sample::select(vec![
            "",
            "etc",
            "secret",
            "proc/sys/vm",
            "etc/passwd",
            "proc/sys/vm/swappiness",
        ]);
        prop_oneof![
            rels.clone().prop_map(Target::Outside),
            rels.clone().prop_map(Target::Up),
            prop::sample::select(SPOTS.to_vec()).prop_map(Target::Inside),
            prop::sample::select(vec!["/proc/sys", "/proc/sys/vm", "/proc/self/fd/0", "/dev/zero"])
                .prop_map(Target::Proc),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn no_command_reads_or_writes_outside_the_root(
            links in prop::collection::vec((prop::sample::select(SPOTS.to_vec()), target()), 1..4)
        ) {
            let s = Scene::new("article-batch");
            for (spot, t) in &links {
                let to: PathBuf = match t {
                    Target::Outside(rel) => s.outside().join(rel),
                    Target::Up(rel) => Path::new("../../../../../..").join(s.outside().strip_prefix("/").unwrap()).join(rel),
                    Target::Inside(rel) => Path::new("/").join(rel),
                    Target::Proc(p) => PathBuf::from(p),
                };
                // Plant without going through a link planted before.
                let p = s.at(spot);
                if p.ancestors().skip(1).take_while(|a| *a != s.root()).any(|a| a.is_symlink()) {
                    continue;
                }
                s.replace_with_link(spot, &to);
            }
            for cmd in [
                &["show"][..],
                &["plan", "--profile", "batch-client", "--format", "json"][..],
                &["snapshot"][..],
                &["doctor"][..],
                &["apply", "--profile", "batch-client", "--set", "sysctl.vm.swappiness=1"][..],
                &["rollback"][..],
            ] {
                let r = s.run(cmd);
                prop_assert!(r.code == 0 || r.code == 1 || r.code == 2, "{cmd:?}: exit {}", r.code);
                prop_assert!(!r.stdout.contains("decoy") && !r.stderr.contains("decoy"), "{cmd:?} read outside: {}", r.stdout);
            }
            s.assert_decoy_untouched();
        }
    }
}
