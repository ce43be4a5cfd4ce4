//! Exit codes are 0, 1 or 2 whatever happens to the output streams (README, "Exit codes"):
//! a full disk behind stdout or stderr is an error (2), never a panic (101).

mod common;

use std::process::{Command, Stdio};

use common::root;

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

/// The exit code and stderr of sysctune with stdout or stderr (or both) on /dev/full.
fn run_full(args: &[&str], stdout_full: bool, stderr_full: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysctune"));
    cmd.args(args).stdin(Stdio::null());
    cmd.stdout(if stdout_full { dev_full() } else { Stdio::null() });
    if stderr_full {
        cmd.stderr(dev_full());
    }
    let out = cmd.output().expect("run sysctune");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_error_with_stderr_full_is_still_exit_2() {
    let args = ["--root", "/nonexistent", "plan", "--profile", "web-server"];
    assert_eq!(run_full(&args, false, true).0, 2);
    // clap's own errors too
    assert_eq!(run_full(&["plan", "--no-such-flag"], false, true).0, 2);
}

#[test]
fn stdout_full_is_exit_2_and_said_on_stderr() {
    let modern = root("modern").display().to_string();
    let args = ["--root", &modern, "plan", "--profile", "web-server"];
    let (code, stderr) = run_full(&args, true, false);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "sysctune: error: writing output: No space left on device\n"
    );
    // and with nowhere to say so
    assert_eq!(run_full(&args, true, true).0, 2);
}
