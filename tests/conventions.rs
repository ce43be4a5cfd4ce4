//! What people expect of a CLI: help with examples, completions, a man page, clean exits.

mod common;

use common::sysctune;

const COMMANDS: &[&str] = &[
    "show",
    "plan",
    "apply",
    "rollback",
    "profiles",
    "recommend",
    "explain",
    "completions",
    "man",
];

#[test]
fn every_command_help_shows_an_example() {
    let top = sysctune(&["--help"]);
    assert_eq!(top.code, 0);
    assert!(top.stdout.contains("Examples:"), "{}", top.stdout);
    for cmd in COMMANDS {
        assert!(top.stdout.contains(cmd), "top-level help does not list {cmd}");
        let r = sysctune(&[cmd, "--help"]);
        assert_eq!(r.code, 0, "{cmd}: {}", r.stderr);
        assert!(
            r.stdout.contains("Examples:\n  sysctune"),
            "{cmd} --help has no example:\n{}",
            r.stdout
        );
    }
}

#[test]
fn completions_are_valid_scripts() {
    let bash = sysctune(&["completions", "bash"]);
    assert_eq!(bash.code, 0);
    for cmd in COMMANDS {
        assert!(bash.stdout.contains(cmd), "bash completion lacks {cmd}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sysctune.bash");
    std::fs::write(&file, &bash.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .unwrap();
    assert!(check.success(), "bash -n rejects the completion script");
    assert!(
        sysctune(&["completions", "zsh"])
            .stdout
            .starts_with("#compdef sysctune")
    );
    assert!(
        sysctune(&["completions", "fish"])
            .stdout
            .contains("complete -c sysctune")
    );
    let bad = sysctune(&["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("possible values: bash, zsh, fish"),
        "{}",
        bad.stderr
    );
}

#[test]
fn man_page_names_every_command() {
    let man = sysctune(&["man"]);
    assert_eq!(man.code, 0);
    assert!(
        man.stdout.contains(".TH sysctune 8"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    for cmd in COMMANDS {
        assert!(man.stdout.contains(cmd), "man page lacks {cmd}");
    }
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::process::{Command, Stdio};
    let root = common::root("article-proxy").display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sysctune"))
        .args(["--root", &root, "plan", "--profile", "reverse-proxy", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, like `| head -0`
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn explain_prints_a_rules_documentation() {
    // Every rule's DOC has its sections, each a heading line of its own, in this order
    // (the title line is prepended by explain, so it proves nothing about the DOC).
    for rule in sysctune::rules::RULES {
        let r = sysctune(&["explain", rule.id()]);
        assert_eq!(r.code, 0, "{}", rule.id());
        let doc: Vec<&str> = r.stdout.lines().skip(1).collect();
        let mut at = 0;
        for section in ["What it does", "Why", "Arithmetic", "Choices", "References"] {
            let found = doc[at..]
                .iter()
                .position(|l| l.trim_start_matches('#').trim().starts_with(section))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: no {section:?} heading after line {at}:\n{}",
                        rule.id(),
                        r.stdout
                    )
                });
            at += found + 1;
        }
    }
    for (topic, expect) in [
        ("net.ipv4.ip_local_port_range", "managed by rule port-range"),
        ("net/ipv4/tcp_mem", "managed by rule tcp-memory"),
        ("vm.overcommit_kbytes", "managed by rule overcommit"),
    ] {
        let r = sysctune(&["explain", topic]);
        assert_eq!(r.code, 0, "{topic}");
        assert!(r.stdout.contains(expect), "{topic}: {}", r.stdout);
    }
}
