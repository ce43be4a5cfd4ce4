//! The command a plan says to run is the command: executed as printed, it does what the
//! plan was asked for (the same root, the profile as given, every --set, --only,
//! --dropin, --state-dir), and the undo line after an apply undoes it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{copy_root, sysctune, tree};

/// Run a printed command line through sh, with this build's sysctune first on PATH.
fn sh(line: &str, cwd: &Path) -> (i32, String) {
    let bin = Path::new(env!("CARGO_BIN_EXE_sysctune"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(cwd)
        .env("PATH", path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_apply_line_is_the_apply() {
    let dir = tempfile::tempdir().unwrap();
    // A profile file named like a built-in: it must stay the file.
    let profile = dir.path().join("my proxy.toml");
    std::fs::write(
        &profile,
        "name = \"batch-client\"\n[outbound]\nnew_per_second = 600\n[memory]\nswappiness = 7\n",
    )
    .unwrap();
    let p = profile.display().to_string();
    let args = |root: &str| -> Vec<String> {
        [
            "--root",
            root,
            "--color",
            "never",
            "plan",
            "--profile",
            &p,
            "--set",
            "memory.swappiness=8",
            "--only",
            "vm.*",
            "--only",
            "net.ipv4.ip_local_port_range",
            "--dropin",
            "/etc/sysctl.d/70-my tune.conf",
            "--state-dir",
            "/var/lib/my state",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let printed = copy_root("article-batch");
    let r = printed.path().display().to_string();
    let a = args(&r);
    let plan = sysctune(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let line = plan
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Changes pending. Apply with: "))
        .expect("an apply line")
        .to_string();
    assert!(
        line.contains("'--dropin' ") || line.contains("--dropin '/etc/sysctl.d/70-my tune.conf'"),
        "{line}"
    );
    let (code, out) = sh(&line, dir.path());
    assert_eq!(code, 0, "{line}: {out}");

    // The intended apply, on a fresh copy of the same root.
    let intended = copy_root("article-batch");
    let ri = intended.path().display().to_string();
    let mut b = args(&ri);
    b[4] = "apply".into();
    let direct = sysctune(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(direct.code, 0, "{}", direct.stderr);
    let strip =
        |t: std::collections::BTreeMap<String, String>| -> std::collections::BTreeMap<String, String> {
            t.into_iter()
                .filter(|(k, _)| !k.ends_with("/lock"))
                .map(|(k, v)| {
                    (
                        k,
                        v.lines()
                            .filter(|l| !l.starts_with("# time:"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )
                })
                .collect()
        };
    let got = strip(tree(printed.path()));
    assert_eq!(
        got,
        strip(tree(intended.path())),
        "the printed line did something else: {line}"
    );
    assert!(got.contains_key("etc/sysctl.d/70-my tune.conf"));
    assert!(got["proc/sys/vm/swappiness"] == "8", "--set was lost");

    // The undo line of that apply restores the tree.
    let again = sysctune(
        &[
            &["--root", r.as_str()][..],
            &[
                "--color",
                "never",
                "apply",
                "--profile",
                &p,
                "--set",
                "memory.swappiness=9",
                "--only",
                "vm.*",
                "--dropin",
                "/etc/sysctl.d/70-my tune.conf",
                "--state-dir",
                "/var/lib/my state",
            ][..],
        ]
        .concat(),
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let undo = again
        .stdout
        .lines()
        .find_map(|l| l.split_once("undo with: ").map(|(_, c)| c.to_string()))
        .expect("an undo line");
    let (code, out) = sh(&undo, dir.path());
    assert_eq!(code, 0, "{undo}: {out}");
    assert_eq!(
        std::fs::read_to_string(printed.path().join("proc/sys/vm/swappiness"))
            .unwrap()
            .trim(),
        "8"
    );
}
