//! Every bad input is a clear error on stderr, exit 2, nothing on stdout.

mod common;

use common::{copy_root, root, scrub, sysctune, sysctune_in};

fn fails(args: &[&str]) -> String {
    let run = sysctune(args);
    assert_eq!(
        run.code, 2,
        "args {args:?}: stdout {} stderr {}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    scrub(&run.stderr)
}

fn profile_file(dir: &std::path::Path, body: &str) -> String {
    let p = dir.join("p.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn bad_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let modern = root("modern").display().to_string();
    let cases: &[(&str, &str)] = &[
        ("malformed-toml", "name = \"x\"\n[connections\nconcurrent = 5\n"),
        (
            "unknown-field",
            "name = \"x\"\n[connections]\nconcurrent = 5\nrmem_defualt = \"43KiB\"\n",
        ),
        (
            "wrong-unit",
            "name = \"x\"\n[connections]\nrmem_default = \"43 kilobytes\"\n",
        ),
        (
            "negative-rate",
            "name = \"x\"\n[outbound]\nnew_per_second = -400\n",
        ),
        ("zero-ram", "name = \"x\"\n[host]\nram = \"0GiB\"\n"),
        ("headroom-below-one", "name = \"x\"\nheadroom = 0.8\n"),
        // Absurd headrooms: named with the range, no 301-digit expansion, no wrap-around
        // (the 35-digit one overflowed into a plausible 1.8544).
        ("headroom-half", "name = \"x\"\nheadroom = 0.5\n"),
        ("headroom-1000", "name = \"x\"\nheadroom = 1000\n"),
        ("headroom-1e300", "name = \"x\"\nheadroom = 1e300\n"),
        ("headroom-nan", "name = \"x\"\nheadroom = nan\n"),
        (
            "headroom-overflow",
            "name = \"x\"\nheadroom = \"34028236692093846346337460743176823\"\n",
        ),
        (
            "headroom-beyond-64-bits",
            "name = \"x\"\nheadroom = 99999999999999999999\n",
        ),
        (
            "count-beyond-64-bits",
            "name = \"x\"\n[connections]\nconcurrent = 99999999999999999999\n",
        ),
        (
            "share-above-one",
            "name = \"x\"\n[connections]\ntcp_memory_share = 1.5\n",
        ),
        (
            "small-buffer",
            "name = \"x\"\n[connections]\nrmem_default = 1024\n",
        ),
        ("zero-processes", "name = \"x\"\n[connections]\nprocesses = 0\n"),
        (
            "key-with-dotdot",
            "name = \"x\"\n[sysctl]\n\"net/../../../etc/shadow\" = \"1\"\n",
        ),
        (
            "value-with-newline",
            "name = \"x\"\n[sysctl]\n\"net.core.somaxconn\" = \"4096\\nvm.swappiness = 100\"\n",
        ),
        (
            "pin-out-of-range",
            "name = \"x\"\n[sysctl]\n\"vm.overcommit_memory\" = \"3\"\n",
        ),
        (
            "reserved-above-ram",
            "name = \"x\"\n[host]\nram = \"8GiB\"\n[connections]\nconcurrent = 10\nreserved_memory = \"9GiB\"\n",
        ),
        ("missing-name", "[connections]\nconcurrent = 10\n"),
        // Keys that would display, or be read by sysctl.d, as something else.
        (
            "key-bidi",
            "name = \"x\"\n[sysctl]\n\"net.ipv4.tcp_\u{202e}rmem\" = \"4096 87380 6291456\"\n",
        ),
        (
            "key-bidi-toml-escape",
            "name = \"x\"\n[sysctl]\n\"net.ipv4.tcp_\\u2066rmem\\u2069\" = \"1\"\n",
        ),
        (
            "key-zero-width",
            "name = \"x\"\n[sysctl]\n\"net.core.\u{200b}somaxconn\" = \"4096\"\n",
        ),
        (
            "key-comment",
            "name = \"x\"\n[sysctl]\n\"#net.ipv4.tcp_mem\" = \"1 2 3\"\n",
        ),
        (
            "key-quote",
            "name = \"x\"\n[sysctl]\n\"'net.core.somaxconn'\" = \"4096\"\n",
        ),
    ];
    for (name, body) in cases {
        let path = profile_file(dir.path(), body);
        let err = fails(&["--root", &modern, "plan", "--profile", &path]);
        let err = err.replace(&path, "p.toml");
        // Nothing invisible reaches the terminal: the message reads as what the file holds.
        assert!(
            !err.contains(['\u{202e}', '\u{2066}', '\u{2069}', '\u{200b}']),
            "{name}: {err:?}"
        );
        insta::assert_snapshot!(format!("bad-{name}"), err);
    }
}

/// `plan --profile reverse-proxy EXTRA...` on the modern host fails; its stderr.
fn plan_fails(extra: &[&str]) -> String {
    let modern = root("modern").display().to_string();
    let mut args = vec!["--root", modern.as_str(), "plan", "--profile", "reverse-proxy"];
    args.extend_from_slice(extra);
    fails(&args)
}

#[test]
fn bad_flags_and_names() {
    let modern = root("modern").display().to_string();
    insta::assert_snapshot!(
        "bad-unknown-profile",
        fails(&["--root", &modern, "plan", "--profile", "reverse-prxy"])
    );
    insta::assert_snapshot!(
        "bad-set-unknown-field",
        plan_fails(&["--set", "connections.concurent=5"])
    );
    insta::assert_snapshot!(
        "bad-set-negative",
        plan_fails(&["--set", "connections.concurrent=-5"])
    );
    insta::assert_snapshot!(
        "bad-show-key-dotdot",
        fails(&["--root", &modern, "show", "net/../../etc/passwd"])
    );
    insta::assert_snapshot!("bad-explain", fails(&["explain", "tcp-mem"]));
    insta::assert_snapshot!("bad-set-table-as-value", plan_fails(&["--set", "connections=5"]));
    insta::assert_snapshot!(
        "bad-root-not-a-directory",
        fails(&["--root", "/nonexistent", "plan", "--profile", "reverse-proxy"])
    );
    insta::assert_snapshot!("bad-only-glob", plan_fails(&["--only", "net.[ipv4"]));
    insta::assert_snapshot!("bad-dropin-relative", plan_fails(&["--dropin", "../x.conf"]));
}

#[test]
fn bad_host_data() {
    let missing = copy_root("modern");
    std::fs::remove_file(missing.path().join("proc/meminfo")).unwrap();
    let garbled_meminfo = copy_root("modern");
    std::fs::write(garbled_meminfo.path().join("proc/meminfo"), "MemTotal: lots kB\n").unwrap();
    let garbled_sysctl = copy_root("modern");
    std::fs::write(
        garbled_sysctl.path().join("proc/sys/net/ipv4/tcp_mem"),
        "287898 abc\n",
    )
    .unwrap();
    let garbled_sockstat = copy_root("modern");
    std::fs::write(
        garbled_sockstat.path().join("proc/net/sockstat"),
        "TCP: inuse many\n",
    )
    .unwrap();
    let unreadable = copy_root("modern");
    let f = unreadable.path().join("proc/sys/vm/swappiness");
    std::fs::remove_file(&f).unwrap();
    std::fs::create_dir(&f).unwrap();
    // The kernel never holds these: they used to give "0 usable ports" and "0 B RAM"
    // figures, or an error blaming the profile.
    let with = |path: &str, text: &str| {
        let dir = copy_root("modern");
        std::fs::write(dir.path().join(path), text).unwrap();
        dir
    };
    let range = "proc/sys/net/ipv4/ip_local_port_range";
    let reversed_range = with(range, "60999\t32768\n");
    let garbled_range = with(range, "abc\n");
    let range_beyond = with(range, "1 70000\n");
    let zero_meminfo = std::fs::read_to_string(root("modern").join("proc/meminfo"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("MemTotal:") {
                "MemTotal:              0 kB"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let zero_memtotal = with("proc/meminfo", &zero_meminfo);
    for (name, dir) in [
        ("missing-meminfo", &missing),
        ("garbled-meminfo", &garbled_meminfo),
        ("garbled-sysctl", &garbled_sysctl),
        ("garbled-sockstat", &garbled_sockstat),
        ("unreadable-sysctl", &unreadable),
        ("reversed-port-range", &reversed_range),
        ("garbled-port-range", &garbled_range),
        ("port-range-beyond-65535", &range_beyond),
        ("zero-memtotal", &zero_memtotal),
    ] {
        let r = dir.path().display().to_string();
        let err = fails(&["--root", &r, "plan", "--profile", "reverse-proxy"]).replace(&r, "[ROOT]");
        insta::assert_snapshot!(format!("host-{name}"), err);
    }
    // doctor and show read the same facts, and say the same.
    for dir in [&reversed_range, &zero_memtotal] {
        let r = dir.path().display().to_string();
        let plan = fails(&["--root", &r, "plan", "--profile", "reverse-proxy"]);
        assert_eq!(fails(&["--root", &r, "doctor"]), plan);
        assert_eq!(fails(&["--root", &r, "show"]), plan);
    }
}

#[test]
fn bad_snapshot_figures() {
    let modern = root("modern").display().to_string();
    let run = sysctune(&["--root", &modern, "snapshot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let snap: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut zero_memtotal = snap.clone();
    zero_memtotal["meminfo"]["mem_total"] = 0.into();
    let mut reversed_range = snap.clone();
    reversed_range["sysctl"]["net.ipv4.ip_local_port_range"] = "60999 32768".into();
    for (name, doc) in [
        ("zero-memtotal", zero_memtotal),
        ("reversed-port-range", reversed_range),
    ] {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, doc.to_string()).unwrap();
        let f = file.display().to_string();
        let err = fails(&["plan", "--profile", "web-server", "--snapshot", &f]).replace(&f, "[FILE]");
        insta::assert_snapshot!(format!("snapshot-{name}"), err);
    }
}

#[test]
fn profile_paths_are_relative_to_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        "name = \"mine\"\n[memory]\nswappiness = 5\n",
    )
    .unwrap();
    let modern = root("modern").display().to_string();
    let run = sysctune_in(
        dir.path(),
        &[
            "--root",
            &modern,
            "plan",
            "--profile",
            "mine.toml",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("\"vm.swappiness\""));
}

/// Pins that make the kernel run a program as root, or that act when written, are refused
/// unless `--allow-key` names them; the host's own sysctl.d files may set them.
#[test]
fn dangerous_pins_need_allow_key() {
    let dir = tempfile::tempdir().unwrap();
    let modern = root("modern").display().to_string();
    let plan = |body: &str, extra: &[&str]| {
        let path = profile_file(dir.path(), body);
        let mut args = vec!["--root", modern.as_str(), "plan", "--profile", path.as_str()];
        args.extend_from_slice(extra);
        let err = fails(&args);
        err.replace(&path, "p.toml")
    };
    let pipe = "name = \"x\"\n[sysctl]\n\"kernel.core_pattern\" = \"|/bin/sh -c evil\"\n";
    let err = plan(pipe, &[]);
    assert!(
        err.contains("\"kernel.core_pattern\"") && err.contains("--allow-key kernel.core_pattern"),
        "{err}"
    );
    insta::assert_snapshot!("bad-pin-core-pattern-pipe", err);
    // Allowing another key does not allow this one.
    let err = plan(pipe, &["--allow-key", "kernel.modprobe"]);
    assert!(err.contains("--allow-key kernel.core_pattern"), "{err}");
    insta::assert_snapshot!(
        "bad-pin-modprobe",
        plan("name = \"x\"\n[sysctl]\n\"kernel.modprobe\" = \"/tmp/m\"\n", &[])
    );
    insta::assert_snapshot!(
        "bad-pin-binfmt-register",
        plan(
            "name = \"x\"\n[sysctl]\n\"fs/binfmt_misc/register\" = \":evil:E::sh::/tmp/i:C\"\n",
            &[]
        )
    );
    let err = plan_fails(&["--set", "sysctl.net.ipv4.tcp_\u{202e}rmem=1"]);
    assert!(!err.contains('\u{202e}'), "{err:?}");
    insta::assert_snapshot!("bad-set-key-bidi", err);
    insta::assert_snapshot!(
        "bad-set-drop-caches",
        plan_fails(&["--set", "sysctl.vm.drop_caches=3"])
    );
    // show --profile plans the profile too.
    let path = profile_file(dir.path(), pipe);
    let err = fails(&["--root", &modern, "show", "--profile", &path]);
    assert!(err.contains("--allow-key kernel.core_pattern"), "{err}");

    // apply refuses before it takes the lock or writes anything.
    let host = copy_root("modern");
    let r = host.path().display().to_string();
    let err = fails(&["--root", &r, "apply", "--profile", &path]);
    assert!(err.contains("--allow-key kernel.core_pattern"), "{err}");
    assert!(!host.path().join("etc").exists(), "apply wrote under the root");
    assert!(!host.path().join("run").exists(), "apply took the lock");

    // Named on the command line, the pin is planned.
    std::fs::write(host.path().join("proc/sys/kernel/core_pattern"), "core\n").unwrap();
    for cmd in ["plan", "show"] {
        let run = sysctune(&[
            "--root",
            &r,
            cmd,
            "--profile",
            &path,
            "--allow-key",
            "kernel.core_pattern",
            "--format",
            "json",
        ]);
        assert_eq!(run.code, 0, "{cmd}: {}", run.stderr);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let keys = doc[if cmd == "plan" { "settings" } else { "keys" }]
            .as_array()
            .unwrap();
        let pin = keys
            .iter()
            .find(|k| k["key"] == "kernel.core_pattern")
            .unwrap_or_else(|| panic!("{cmd}: no core_pattern in {}", run.stdout));
        assert_eq!(pin["recommended"], "|/bin/sh -c evil", "{cmd}");
    }

    // plan --snapshot plans the profile offline: the same refusal.
    let snap = sysctune(&["--root", &r, "snapshot"]);
    assert_eq!(snap.code, 0, "{}", snap.stderr);
    let file = dir.path().join("host.json");
    std::fs::write(&file, &snap.stdout).unwrap();
    let file = file.display().to_string();
    let err = fails(&["plan", "--profile", &path, "--snapshot", &file]);
    assert!(err.contains("--allow-key kernel.core_pattern"), "{err}");
    let run = sysctune(&[
        "plan",
        "--profile",
        &path,
        "--snapshot",
        &file,
        "--allow-key",
        "kernel.core_pattern",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // A core_pattern that names a file is an ordinary setting.
    let path = profile_file(
        dir.path(),
        "name = \"x\"\n[sysctl]\n\"kernel.core_pattern\" = \"core.%p\"\n",
    );
    let run = sysctune(&["--root", &r, "plan", "--profile", &path]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("core.%p"), "{}", run.stdout);
}

/// The host's sysctl.d files are its state: a piped core_pattern there (systemd's
/// 50-coredump.conf) is shown and planned around, never refused.
#[test]
fn dangerous_keys_in_the_hosts_sysctl_d_are_not_refused() {
    let host = copy_root("modern");
    std::fs::create_dir_all(host.path().join("usr/lib/sysctl.d")).unwrap();
    std::fs::write(
        host.path().join("usr/lib/sysctl.d/50-coredump.conf"),
        "kernel.core_pattern=|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\nvm.drop_caches = 3\n",
    )
    .unwrap();
    std::fs::write(
        host.path().join("proc/sys/kernel/core_pattern"),
        "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n",
    )
    .unwrap();
    let r = host.path().display().to_string();
    let run = sysctune(&["--root", &r, "plan", "--profile", "web-server"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = sysctune(&["--root", &r, "show", "kernel.core_pattern", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("50-coredump.conf") && run.stdout.contains("systemd-coredump %P"),
        "{}",
        run.stdout
    );
}
