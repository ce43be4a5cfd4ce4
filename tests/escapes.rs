//! Strings from the host, its sysctl.d files, profiles and snapshots never reach the
//! terminal raw: every command, text and JSON, coloured or not, stdout and stderr, shows
//! terminal controls, bidi and zero-width characters escaped.

mod common;

use std::path::Path;

use common::{copy_root, sysctune};
use sysctune::report::escape::unsafe_char;

/// An OSC that retitles the terminal, a CSI that clears it, an 8-bit CSI, DEL, a bidi
/// override and a zero-width space: none is one of the colours sysctune itself paints.
const EVIL: &str = "\x1b]0;pwned\x07\x1b[2J\u{9b}7m\x7f\u{202e}\u{200b}";

/// Everything sysctune writes, minus its own colours (`--color always`), must hold no
/// character a terminal acts on.
fn assert_clean(what: &str, out: &str) {
    let mut rest = out.to_string();
    for code in ["0", "1", "2", "31", "32", "33", "36"] {
        rest = rest.replace(&format!("\x1b[{code}m"), "");
    }
    if let Some((i, c)) = rest.char_indices().find(|(_, c)| *c != '\n' && unsafe_char(*c)) {
        let from = rest[..i].char_indices().rev().nth(40).map_or(0, |(j, _)| j);
        panic!("{what}: raw {c:?} after {:?}", &rest[from..i]);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A copy of the precedence root where every string sysctune shows is hostile.
fn evil_root() -> tempfile::TempDir {
    let dir = copy_root("precedence");
    let r = dir.path();
    write(&r.join("proc/sys/kernel/hostname"), &format!("host{EVIL}\n"));
    write(&r.join("proc/sys/kernel/osrelease"), &format!("6.18.44{EVIL}\n"));
    // A key only a pin reads, whose live value is hostile.
    write(&r.join("proc/sys/kernel/sysctune_evil"), &format!("1{EVIL}\n"));
    write(
        &r.join(format!("etc/sysctl.d/50-{EVIL}.conf")),
        &format!(
            "# comment {EVIL}\nvm.swappiness = 33{EVIL}\nkernel.sysctune_evil = 2{EVIL}\nnet.ipv4.conf.*{EVIL}.x = 1\nnot a line {EVIL}\n"
        ),
    );
    // The drop-in on disk is quoted in the diff.
    write(
        &r.join("etc/sysctl.d/90-sysctune.conf"),
        &format!("# Managed by sysctune\n# why {EVIL}\nvm.swappiness = 10\nkernel.sysctune_evil = 3{EVIL}\n"),
    );
    dir
}

fn evil_profile(dir: &Path) -> String {
    let p = dir.join("p.toml");
    // Pins refuse control characters in values, not bidi or zero-width ones.
    std::fs::write(
        &p,
        "name = \"evil\"\ndescription = \"\\u001b]0;pwned\\u0007\"\n[sysctl]\n\
         \"kernel.sysctune_evil\" = \"4\"\n",
    )
    .unwrap();
    p.display().to_string()
}

fn check(what: &str, args: &[&str]) -> common::Run {
    for color in ["never", "always"] {
        let mut all = vec!["--color", color];
        all.extend_from_slice(args);
        let run = sysctune(&all);
        assert!(run.code <= 2, "{what}: exit {}", run.code);
        assert_clean(&format!("{what} --color {color}: stdout"), &run.stdout);
        assert_clean(&format!("{what} --color {color}: stderr"), &run.stderr);
    }
    let mut all = vec!["--color", "never"];
    all.extend_from_slice(args);
    sysctune(&all)
}

#[test]
fn every_command_escapes_what_it_read() {
    let root = evil_root();
    let r = root.path().display().to_string();
    let profile = evil_profile(root.path());
    let mut seen = String::new();
    for format in ["text", "json"] {
        let f = ["--format", format];
        let runs = [
            ("show", check("show", &[&f[..], &["--root", &r, "show"]].concat())),
            (
                "show key",
                check(
                    "show key",
                    &[
                        &f[..],
                        &["--root", &r, "show", "vm.swappiness", "kernel.sysctune_evil"],
                    ]
                    .concat(),
                ),
            ),
            (
                "show --profile",
                check(
                    "show --profile",
                    &[&f[..], &["--root", &r, "show", "--profile", &profile]].concat(),
                ),
            ),
            (
                "plan",
                check(
                    "plan",
                    &[&f[..], &["--root", &r, "-v", "plan", "--profile", &profile]].concat(),
                ),
            ),
            (
                "apply --dry-run",
                check(
                    "apply --dry-run",
                    &[
                        &f[..],
                        &["--root", &r, "apply", "--dry-run", "--profile", &profile],
                    ]
                    .concat(),
                ),
            ),
            (
                "doctor",
                check("doctor", &[&f[..], &["--root", &r, "doctor"]].concat()),
            ),
        ];
        for (what, run) in runs {
            assert!(run.code < 2, "{what} {format}: {}", run.stderr);
            seen.push_str(&run.stdout);
        }
    }
    // Still shown, escaped: the hostname, a path, a value, a comment in the diff.
    for shown in [
        "host\\x1b]0;pwned\\x07\\x1b[2J\\u{9b}7m\\x7f\\u{202e}\\u{200b}",
        "/etc/sysctl.d/50-\\x1b]0;pwned",
        "33\\x1b]0;pwned",
        "# why \\x1b]0;pwned",
        // JSON: serde_json's escape for C0, ours for the rest.
        "host\\u001b]0;pwned\\u0007\\u001b[2J\\u009b7m\\u007f\\u202e\\u200b",
    ] {
        assert!(seen.contains(shown), "{shown:?} not in the output");
    }
}

/// status quotes sysctl.d files that may have changed since the apply (a later file that
/// wins at boot, its name and its value hostile), and rollback the paths of the record.
#[test]
fn status_and_rollback_escape_what_they_read() {
    let root = copy_root("article-batch");
    let r = root.path().display().to_string();
    let applied = sysctune(&["--root", &r, "apply", "--profile", "batch-client", "--no-live"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    write(
        &root.path().join(format!("etc/sysctl.d/99-{EVIL}.conf")),
        &format!("net.ipv4.ip_local_port_range = 1024 {EVIL} 65000\n"),
    );
    for format in ["text", "json"] {
        let run = check("status", &["--format", format, "--root", &r, "status"]);
        assert!(run.code < 2, "status {format}: {}", run.stderr);
        if format == "text" {
            for shown in ["/etc/sysctl.d/99-\\x1b]0;pwned", "1024 \\x1b]0;pwned"] {
                assert!(run.stdout.contains(shown), "{shown:?} not in {}", run.stdout);
            }
        }
        let run = check(
            "rollback --dry-run",
            &["--format", format, "--root", &r, "rollback", "--dry-run"],
        );
        assert!(run.code < 2, "rollback {format}: {}", run.stderr);
    }
}

#[test]
fn snapshots_and_fleets_escape_what_they_carry() {
    let root = evil_root();
    let r = root.path().display().to_string();
    // (Not --key kernel.sysctune_evil: a snapshot refuses control characters in values.)
    let snap = sysctune(&["--root", &r, "snapshot"]);
    assert_eq!(snap.code, 0, "{}", snap.stderr);
    assert_clean("snapshot", &snap.stdout);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join(format!("a{EVIL}.json"));
    std::fs::write(&good, &snap.stdout).unwrap();
    let broken = dir.path().join(format!("b{EVIL}.json"));
    std::fs::write(&broken, format!("{{\"schema\": \"{EVIL}\"")).unwrap();
    let g = good.display().to_string();
    let d = dir.path().display().to_string();
    for format in ["text", "json"] {
        let one = check(
            "plan --snapshot",
            &[
                "--format",
                format,
                "plan",
                "--profile",
                "web-server",
                "--snapshot",
                &g,
            ],
        );
        assert_eq!(one.code, 0, "{}", one.stderr);
        let fleet = check(
            "plan --snapshot DIR",
            &[
                "--format",
                format,
                "plan",
                "--profile",
                "web-server",
                "--snapshot",
                &d,
            ],
        );
        assert_eq!(fleet.code, 2, "the broken snapshot fails: {}", fleet.stderr);
        assert!(fleet.stderr.contains("b\\x1b]0;pwned"), "{}", fleet.stderr);
    }
}

#[test]
fn error_messages_escape_paths_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join(format!("no{EVIL}"));
    let m = missing.display().to_string();
    let run = check("--root missing", &["--root", &m, "show"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no\\x1b]0;pwned"), "{}", run.stderr);

    let run = check("--profile missing", &["plan", "--profile", &format!("{m}.toml")]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no\\x1b]0;pwned"), "{}", run.stderr);

    // A garbled live value of a known key is quoted in the error.
    let root = copy_root("modern");
    write(
        &root.path().join("proc/sys/net/ipv4/tcp_mem"),
        &format!("1 2 {EVIL}\n"),
    );
    let r = root.path().display().to_string();
    let run = check(
        "garbled tcp_mem",
        &["--root", &r, "plan", "--profile", "web-server"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);

    // A profile error quotes the offending line below the message: the line break stays.
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, format!("name = \"x\"\nheadroom = \"{EVIL}\"\n")).unwrap();
    let run = check(
        "bad profile",
        &["--root", &r, "plan", "--profile", &p.display().to_string()],
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("\n  2 | headroom = \"\\x1b]0;pwned"),
        "{}",
        run.stderr
    );

    // Command-line errors (clap's) quote the argument; clap drops 7-bit escape sequences.
    let run = check("bad flag value", &["--format", EVIL, "show"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("\\u{9b}7m\\u{202e}"), "{}", run.stderr);
}
