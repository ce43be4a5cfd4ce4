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
    // Every rule's DOC is in one format: the five sections in this order (a rule may add
    // one of its own between them), each heading an unindented line of its own (a
    // parenthesis may follow it), every other line indented;
    // plain text for a terminal (no Markdown), citing the kernel's source, not files that
    // are not in the repository.
    const SECTIONS: [&str; 5] = ["What it does", "Why", "Arithmetic", "Choices", "References"];
    for rule in sysctune::rules::RULES {
        let id = rule.id();
        let doc = rule.doc();
        let headings: Vec<&str> = doc
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("  "))
            .map(|l| l.split(" (").next().unwrap_or(l))
            .collect();
        let mut at = headings.iter();
        for section in SECTIONS {
            assert!(
                at.any(|h| *h == section),
                "{id}: no {section:?} heading in order in {headings:?}:\n{doc}"
            );
        }
        assert_eq!(headings.last(), Some(&"References"), "{id}: References come last");
        assert!(
            doc.starts_with("What it does\n"),
            "{id}: its DOC starts with a title of its own"
        );
        for line in doc.lines() {
            assert!(
                line.chars().count() <= 90,
                "{id}: a DOC line wider than 90 columns: {line:?}"
            );
        }
        for bad in ["`", "**", "\n#", "cli.md", "arithmetic.md", "shared/", "the spec"] {
            assert!(!doc.contains(bad), "{id}: its DOC contains {bad:?}");
        }
        let refs = &doc[doc.find("\nReferences").unwrap()..];
        assert!(
            refs.contains(".c") && refs.contains("()"),
            "{id}: its References name no kernel function and source file:\n{refs}"
        );
        let r = sysctune(&["explain", id]);
        assert_eq!(r.code, 0, "{id}");
        let title = format!("Rule {id} — keys: ");
        assert!(r.stdout.starts_with(&title), "{id}: {}", r.stdout);
        assert!(
            r.stdout.ends_with(&format!("{}\n", doc.trim_end())),
            "{id}: explain prints its DOC"
        );
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
