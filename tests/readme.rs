//! The README's `console` examples are what sysctune prints: each block starts with
//! `$ sysctune ARGS` and the rest is the expected output (at 100 columns, no colour).

mod common;

#[test]
fn readme_examples_are_true() {
    let readme = std::fs::read_to_string(common::manifest().join("README.md")).unwrap();
    let mut checked = 0;
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```console\n") {
        let body = &rest[start + "```console\n".len()..];
        let end = body.find("\n```").expect("closed block");
        let block = &body[..end];
        rest = &body[end..];
        let (command, expected) = block.split_once('\n').expect("a command line and output");
        let args: Vec<&str> = command
            .strip_prefix("$ sysctune ")
            .expect("starts with $ sysctune")
            .split(' ')
            .collect();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sysctune"))
            .args(&args)
            .current_dir(common::manifest())
            .env("COLUMNS", "100")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            stdout.trim_end(),
            expected.trim_end(),
            "README example `{command}` is out of date"
        );
        checked += 1;
    }
    assert!(checked >= 2, "no README examples found");
}

/// The README's `yaml` blocks of alerts are excerpts of the alert rules, verbatim.
#[test]
fn readme_rule_excerpts_are_the_rules() {
    let readme = std::fs::read_to_string(common::manifest().join("README.md")).unwrap();
    let rules =
        std::fs::read_to_string(common::manifest().join("examples/prometheus/sysctune.rules.yml")).unwrap();
    let mut checked = 0;
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + "```yaml\n".len()..];
        let end = body.find("\n```").expect("closed block");
        if !body[..end].trim_start().starts_with("- alert:") {
            rest = &body[end..];
            continue;
        }
        assert!(
            rules.contains(&body[..end]),
            "README excerpt not in examples/prometheus/sysctune.rules.yml:\n{}",
            &body[..end]
        );
        rest = &body[end..];
        checked += 1;
    }
    assert!(checked >= 2, "no rule excerpts found");
}
