//! Running the real binary on fixture roots.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn root(name: &str) -> PathBuf {
    manifest().join("tests/roots").join(name)
}

pub fn profile(name: &str) -> String {
    manifest().join("tests/profiles").join(name).display().to_string()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run sysctune with a fixed width and no colour, in `cwd` (the manifest dir by default).
pub fn sysctune_in(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sysctune"))
        .args(args)
        .current_dir(cwd)
        .env("COLUMNS", "110")
        .env_remove("NO_COLOR")
        .output()
        .expect("run sysctune");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

pub fn sysctune(args: &[&str]) -> Run {
    sysctune_in(&manifest(), args)
}

/// Replace the absolute manifest path so snapshots are the same on every clone.
pub fn scrub(s: &str) -> String {
    s.replace(&manifest().display().to_string(), "[REPO]")
}

/// A copy of a fixture root in a temporary directory, for tests that write or break it.
pub fn copy_root(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&root(name), dir.path());
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            // Masks (links to /dev/null) stay links.
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir` → its content; proc/sys values whitespace-normalised (the
/// kernel prints tabs, sysctune writes spaces). The lock file is not state.
pub fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
            if ft.is_dir() {
                walk(base, &p, out);
            } else if ft.is_symlink() {
                out.insert(rel, format!("-> {}", std::fs::read_link(&p).unwrap().display()));
            } else if !ft.is_file() {
                out.insert(rel, "<not a regular file>".into());
            } else if rel != "var/lib/sysctune/lock" {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                let text = if rel.starts_with("proc/sys/") {
                    text.split_whitespace().collect::<Vec<_>>().join(" ")
                } else {
                    text
                };
                out.insert(rel, text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Whether `unshare FLAGS true` works here (and python3 runs, when the test needs it). In
/// CI it must: a skip there would hide a failure, so it fails instead; elsewhere the
/// reason is printed and the caller skips.
pub fn namespaces(flags: &[&str], python: bool, what: &str) -> bool {
    let reason = match Command::new("unshare").args(flags).arg("true").output() {
        Err(e) => Some(format!("cannot run unshare: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "unshare {} refused ({}): {}",
            flags.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_)
            if python
                && !Command::new("python3")
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success()) =>
        {
            Some("python3 is not available".into())
        }
        Ok(_) => None,
    };
    match reason {
        None => true,
        Some(reason) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set and {what} cannot run: {reason} (they must run as root)"
            );
            eprintln!("skipping {what}: {reason}");
            false
        }
    }
}

/// Run a shell script in new namespaces, bounded: `files` (the script first, then what it
/// uses) are written to a temporary directory DIR, then `timeout SECONDS unshare FLAGS sh
/// DIR/SCRIPT BIN DIR HOST_NS ARGS...` runs with `COLUMNS=110` (BIN: sysctune; HOST_NS:
/// this process's network namespace, for the script to check it left it). Panics with the
/// script's stderr when it fails; the directory holds what it wrote.
pub fn namespace_script(
    flags: &[&str],
    seconds: u32,
    files: &[(&str, &str)],
    args: &[&str],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let out = Command::new("timeout")
        .arg(seconds.to_string())
        .arg("unshare")
        .args(flags)
        .arg("sh")
        .arg(dir.path().join(files[0].0))
        .arg(env!("CARGO_BIN_EXE_sysctune"))
        .arg(dir.path())
        .arg(&host_ns)
        .args(args)
        .env("COLUMNS", "110")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "namespace script failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}
