//! Carrying out a plan: the lock, the rollback record, the atomic drop-in, live writes
//! with read-back, and rollback. All or nothing: on any failure every key already written
//! and the drop-in are restored before the error is reported.
//!
//! Every file is reached through [`host::fs`]: no symlink is followed on the way to
//! anything written, and the state directory (the lock and the record) is a mode 0700
//! directory owned by the user who runs sysctune.

use std::io::{Read, Write};
use std::path::{Component, Path};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host;
use crate::host::fs::{self, Dir, Ownership, Root};
use crate::keys;
use crate::plan::Plan;
use crate::rules::Finding;
use crate::state;

pub const APPLY_SCHEMA: &str = "sysctune/apply/v1";
pub const ROLLBACK_SCHEMA: &str = "sysctune/rollback/v1";
/// The directories systemd-sysctl reads; a drop-in elsewhere needs `--allow-any-dropin-path`.
pub const SYSCTL_D_DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sysctune";
/// In the state directory: the lock, the record, the drop-in as it was.
const LOCK: &str = "lock";
const RECORD: &str = "rollback.conf";
const RECORD_DROPIN: &str = "rollback.dropin";
/// The state directory's owner-only mode.
const STATE_MODE: u32 = 0o700;

/// Where apply and rollback read and write, as seen inside the root (validated by
/// [`Paths::new`]).
#[derive(Clone, Debug)]
pub struct Paths {
    pub dropin_shown: String,
    pub state_shown: String,
}

impl Paths {
    /// Check the drop-in and the state directory: absolute paths inside the root, and a
    /// state directory that no boot reads (a record inside a sysctl.d directory is itself
    /// a valid sysctl.d file that sorts after the drop-in: it would undo the apply at every
    /// boot).
    pub fn new(dropin: &str, state: &str) -> Result<Paths> {
        check_inside("--dropin", dropin)?;
        check_inside("--state-dir", state)?;
        let clean = |p: &str| -> String {
            let c: std::path::PathBuf = Path::new(p).components().collect();
            c.display().to_string()
        };
        let state_clean = clean(state);
        for dir in SYSCTL_D_DIRS.iter().chain(&["/etc/sysctl.conf", "/proc", "/sys"]) {
            if Path::new(&state_clean).starts_with(dir) || Path::new(dir).starts_with(&state_clean) {
                return Err(Error::input(format!(
                    "--state-dir {state}: refusing a state directory {} {dir} (the rollback record is a sysctl.d \
                     file: there it would be applied at boot and undo the apply); give a directory of its own, \
                     e.g. {DEFAULT_STATE_DIR}",
                    if Path::new(&state_clean).starts_with(dir) {
                        "inside"
                    } else {
                        "that holds"
                    }
                )));
            }
        }
        Ok(Paths {
            dropin_shown: clean(dropin),
            state_shown: state_clean,
        })
    }

    pub fn record_shown(&self) -> String {
        format!("{}/{RECORD}", self.state_shown.trim_end_matches('/'))
    }

    /// The drop-in's directory and name, as seen inside the root.
    fn dropin_parts(&self) -> (&str, &str) {
        split(&self.dropin_shown)
    }
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

/// A path as seen inside the root: absolute, no `..`, no control characters, a file name.
fn check_inside(flag: &str, shown: &str) -> Result<()> {
    let p = Path::new(shown);
    if !p.is_absolute() {
        let example = if flag == "--dropin" {
            crate::plan::DEFAULT_DROPIN
        } else {
            DEFAULT_STATE_DIR
        };
        return Err(Error::input(format!(
            "{flag} {shown:?}: give an absolute path as seen inside the root, e.g. {example}"
        )));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) || shown.chars().any(char::is_control) {
        return Err(Error::input(format!(
            "{flag} {shown:?}: '..' and control characters are not allowed"
        )));
    }
    if p.file_name().is_none() {
        return Err(Error::input(format!(
            "{flag} {shown:?}: names no file or directory"
        )));
    }
    Ok(())
}

/// A path as seen inside the root, checked (for `--dropin` of plan and snapshots).
pub fn inside_root(flag: &str, shown: &str) -> Result<()> {
    check_inside(flag, shown)
}

/// The drop-in must be a `*.conf` file directly in one of the sysctl.d directories,
/// unless the operator says otherwise.
pub fn check_dropin_location(shown: &str, anywhere: bool) -> Result<()> {
    if anywhere {
        return Ok(());
    }
    let p = Path::new(shown);
    let parent = p.parent().map(|d| d.display().to_string()).unwrap_or_default();
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !SYSCTL_D_DIRS.contains(&parent.as_str()) || !name.ends_with(".conf") || name.starts_with('.') {
        return Err(Error::input(format!(
            "--dropin {shown}: refusing to write outside the sysctl.d directories; give a *.conf file in one of {} \
             (systemd-sysctl reads only those), or pass --allow-any-dropin-path",
            SYSCTL_D_DIRS.join(", ")
        )));
    }
    Ok(())
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The state directory, created mode 0700 when missing, never through a symlink, and
/// refused when another user owns it or can write in it.
fn state_dir<'r>(root: &'r Root, paths: &Paths) -> Result<Dir<'r>> {
    let dir = root.dir(&paths.state_shown, Some(STATE_MODE))?.ok_or_else(|| {
        Error::Write(format!(
            "{}: could not be created",
            root.shown(&paths.state_shown).display()
        ))
    })?;
    dir.secure(&Ownership {
        uid: euid(),
        mode: STATE_MODE,
    })?;
    Ok(dir)
}

/// The state directory if it exists (rollback and status never create it).
fn existing_state_dir<'r>(root: &'r Root, paths: &Paths) -> Result<Option<Dir<'r>>> {
    let Some(dir) = root.dir(&paths.state_shown, None)? else {
        return Ok(None);
    };
    dir.secure(&Ownership {
        uid: euid(),
        mode: STATE_MODE,
    })?;
    Ok(Some(dir))
}

// ---------------------------------------------------------------------------------------
// The lock

/// An exclusive lock on `STATE/lock`, held until dropped. A second apply or rollback
/// waits up to `timeout` (saying once who holds it), then fails naming the holder.
pub struct Lock {
    _file: nix::fcntl::Flock<std::fs::File>,
}

impl Lock {
    pub fn acquire(state: &Dir<'_>, timeout: Duration) -> Result<Lock> {
        let shown = state.shown(LOCK);
        let start = Instant::now();
        let mut said = false;
        loop {
            let file = state.open_lock(LOCK, euid())?;
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(mut locked) => {
                    // Who holds it, for the next one's message.
                    let _ = locked.set_len(0);
                    let _ = locked.write_all(format!("{}\n", std::process::id()).as_bytes());
                    return Ok(Lock { _file: locked });
                }
                Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                    let mut holder = String::new();
                    let _ = (&mut file).take(64).read_to_string(&mut holder);
                    let holder = holder.trim();
                    let who = if holder.is_empty() || !holder.bytes().all(|b| b.is_ascii_digit()) {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    };
                    if start.elapsed() >= timeout {
                        return Err(Error::Write(format!(
                            "another sysctune apply or rollback holds {}{who}; waited {} s (--lock-timeout)",
                            shown.display(),
                            timeout.as_secs()
                        )));
                    }
                    if !said {
                        said = true;
                        let _ = writeln!(
                            std::io::stderr(),
                            "sysctune: waiting for {}, held by another sysctune{who}; up to {} s (--lock-timeout)",
                            shown.display(),
                            timeout.as_secs()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, errno)) => {
                    return Err(Error::Write(format!(
                        "lock {}: {}",
                        shown.display(),
                        errno.desc()
                    )));
                }
            }
        }
    }
}

/// Take the lock of the state directory, then remove what killed runs left there and in
/// the drop-in's directory.
pub fn lock<'r>(root: &'r Root, paths: &Paths, timeout: Duration) -> Result<(Lock, Dir<'r>)> {
    // Refuse a drop-in behind a symlink before anything, the state directory included, is made.
    read_dropin(root, paths)?;
    let state = state_dir(root, paths)?;
    let lock = Lock::acquire(&state, timeout)?;
    remove_stale_temporaries(root, paths, &state);
    Ok((lock, state))
}

/// What killed runs left: temporary files in the state directory, the drop-in's
/// directory, and (in a tree, not procfs) the directories of the values.
pub fn remove_stale_temporaries(root: &Root, paths: &Paths, state: &Dir<'_>) {
    state.remove_stale_temporaries();
    let mut dirs: Vec<String> = vec![paths.dropin_parts().0.to_string()];
    for k in keys::KNOWN {
        let inside = host::proc_sys_inside(k.name);
        let dir = split(&inside).0.to_string();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for (i, dir) in dirs.iter().enumerate() {
        if let Ok(Some(d)) = root.dir(dir, None)
            && (i == 0 || !d.is_procfs())
        {
            d.remove_stale_temporaries();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The drop-in

fn read_dropin(root: &Root, paths: &Paths) -> Result<Option<String>> {
    let (dir, name) = paths.dropin_parts();
    match root.dir(dir, None)? {
        Some(d) => d.read(name, fs::MAX_CONFIG),
        None => Ok(None),
    }
}

/// Put the drop-in back as it was: the old content, or no file.
fn restore_dropin(root: &Root, paths: &Paths, previous: Option<&str>) -> Result<()> {
    let (dir, name) = paths.dropin_parts();
    match previous {
        Some(text) => root
            .dir(dir, Some(0o755))?
            .ok_or_else(|| Error::Write(format!("{dir}: could not be created")))?
            .write_atomic(name, text.as_bytes(), 0o644),
        None => match root.dir(dir, None)? {
            Some(d) => d.remove(name),
            None => Ok(()),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Live values

/// Write one key under `ROOT/proc/sys` with a single write() at offset 0, then read it
/// back and compare after whitespace normalisation. The error is the kernel's. Every
/// directory on the way is checked (no symlink); under a root that is not procfs (an
/// image, a fixture) the value file is replaced atomically instead.
pub fn write_live(root: &Root, key: &str, value: &str) -> std::result::Result<(), String> {
    let inside = host::proc_sys_inside(key);
    let (dir, name) = split(&inside);
    let dir = match root.dir(dir, None) {
        Ok(Some(d)) => d,
        Ok(None) => return Err("no such key on this kernel (ENOENT)".into()),
        Err(e) => return Err(e.to_string()),
    };
    if !dir.is_procfs() {
        return match dir.exists(name) {
            Ok(false) => Err("no such key on this kernel (ENOENT)".into()),
            Ok(true) => dir
                .write_atomic(name, format!("{value}\n").as_bytes(), 0o644)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
    }
    let mut f = dir.open_write(name).map_err(|e| match e {
        nix::errno::Errno::ENOENT => "no such key on this kernel (ENOENT)".to_string(),
        e => kernel_error(e),
    })?;
    let line = format!("{value}\n");
    let n = f.write(line.as_bytes()).map_err(io_kernel_error)?;
    if n != line.len() {
        return Err(format!("short write ({n} of {} bytes)", line.len()));
    }
    drop(f);
    let back = dir
        .open_read(name)
        .and_then(|f| fs::read_capped(f, fs::MAX_SMALL, &dir.shown(name)))
        .map_err(|e| format!("reading back: {e}"))?;
    let back = String::from_utf8_lossy(&back);
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    if norm(&back) != norm(value) {
        return Err(format!("read back {:?} after writing {value:?}", norm(&back)));
    }
    Ok(())
}

fn kernel_error(errno: nix::errno::Errno) -> String {
    format!("{} ({errno:?})", errno.desc())
}

fn io_kernel_error(e: std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => kernel_error(nix::errno::Errno::from_raw(code)),
        None => crate::error::describe_io(&e),
    }
}
/// One live change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveChange {
    pub key: String,
    pub from: Option<String>,
    pub to: String,
}

/// The order in which to write: the key table's order, adjusted by the facts of
/// [`keys::WRITE_BEFORE`] (a key goes just before the one it must precede) and
/// [`keys::FLOOR_OF`] (a floor that rises goes after the range it bounds, one that falls
/// before it), so that every write is one the kernel accepts given those already made.
pub fn write_order(changes: &mut [LiveChange]) {
    let num = |v: Option<&str>| v.and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
    let rises = |key: &str| {
        changes.iter().any(|c| {
            c.key == key
                && num(c.from.as_deref())
                    .zip(num(Some(&c.to)))
                    .is_some_and(|(f, t)| t > f)
        })
    };
    let after: Vec<(&str, &str)> = keys::FLOOR_OF
        .iter()
        .filter(|(floor, _)| rises(floor))
        .copied()
        .collect();
    let rank = |key: &str| -> (usize, usize) {
        if let Some((_, then)) = keys::WRITE_BEFORE.iter().find(|(first, _)| *first == key) {
            return (keys::order(then), 0);
        }
        if let Some((_, range)) = after.iter().find(|(floor, _)| *floor == key) {
            return (keys::order(range) + 1, 1);
        }
        (keys::order(key), 1)
    };
    changes.sort_by(|a, b| rank(&a.key).cmp(&rank(&b.key)).then(a.key.cmp(&b.key)));
}

/// The changes that undo `changes`, in reverse order.
fn inverse(changes: &[LiveChange]) -> Vec<LiveChange> {
    changes
        .iter()
        .rev()
        .filter_map(|c| {
            c.from.clone().map(|f| LiveChange {
                key: c.key.clone(),
                from: Some(c.to.clone()),
                to: f,
            })
        })
        .collect()
}

/// Write `changes` in order; on the first failure, put back every key already written
/// (in reverse) and return a message naming the key, the value, the kernel's error and
/// what was restored.
fn write_all_or_nothing(root: &Root, changes: &[LiveChange]) -> std::result::Result<(), String> {
    for (i, c) in changes.iter().enumerate() {
        if let Err(kernel) = write_live(root, &c.key, &c.to) {
            let mut restored = Vec::new();
            let mut not_restored = Vec::new();
            for done in changes[..i].iter().rev() {
                let Some(from) = &done.from else { continue };
                match write_live(root, &done.key, from) {
                    Ok(()) => restored.push(format!("{} = {from}", done.key)),
                    Err(e) => not_restored.push(format!("{} (still {}: {e})", done.key, done.to)),
                }
            }
            let mut msg = format!("writing {} = {:?} failed: {kernel}", c.key, c.to);
            if restored.is_empty() && not_restored.is_empty() {
                msg.push_str("; no key had been written yet");
            }
            if !restored.is_empty() {
                msg.push_str(&format!("; restored {}", restored.join(", ")));
            }
            if !not_restored.is_empty() {
                msg.push_str(&format!("; COULD NOT RESTORE {}", not_restored.join(", ")));
            }
            return Err(msg);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The rollback record

/// What an apply recorded: the previous live values and the previous drop-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub profile: String,
    pub dropin_path: String,
    /// `None`: the drop-in was not touched. `Some(None)`: it did not exist.
    /// `Some(Some(text))`: its previous content (kept in `rollback.dropin`).
    pub dropin_previous: Option<Option<String>>,
    /// Previous live values, in the order they were written.
    pub live: Vec<(String, String)>,
    /// Written `false` before the apply changes anything and `true` once it is done: a
    /// record still `false` is that of an apply that died half-way, whose values are the
    /// true previous state and must not be lost to the next apply.
    pub complete: bool,
    /// The network namespace it was made in (`net:[4026531840]`) when applied to this
    /// machine's `/`: values of another namespace are not this one's to restore.
    pub netns: String,
}

/// What a record read back from disk is checked against: it is untrusted input (under
/// `--root IMAGE` it is the image's), validated as apply validates a profile.
pub struct Trust<'a> {
    /// The kernel release, for the ranges of values.
    pub kernel: &'a str,
    /// `--allow-any-dropin-path`: the drop-in may be outside the sysctl.d directories.
    pub any_dropin: bool,
    /// `--allow-key`: dangerous keys the operator allows by name.
    pub allowed_keys: &'a [String],
}

impl Trust<'_> {
    /// A key and value as apply would accept them, or why not.
    fn check(&self, key: &str, value: &str) -> std::result::Result<(), String> {
        if let Some(info) = keys::info(key)
            && info.format == keys::Format::ReadOnly
        {
            return Err(format!("{key} is read-only; sysctune never writes it"));
        }
        if let Some(why) = keys::danger(key, value)
            && !self.allowed_keys.iter().any(|k| k == key)
        {
            return Err(format!(
                "{key:?} = {value:?}: {why}; sysctune never sets it unless told by name (--allow-key {key})"
            ));
        }
        keys::check_shape(key, value)
            .map(|_| ())
            .map_err(|e| format!("{key}: {e}"))
    }
}

impl Record {
    /// The record's text: a valid sysctl.d file of the previous live values, with what is
    /// needed to restore the drop-in in its header comments.
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# sysctune rollback record, written by `sysctune apply` before it changed anything.\n\
             # `sysctune rollback` restores these live values and the drop-in named below.\n",
        );
        s.push_str(&format!("# profile: {}\n", self.profile));
        s.push_str(&format!("# dropin: {}\n", self.dropin_path));
        let state = match &self.dropin_previous {
            None => "unchanged",
            Some(None) => "absent",
            Some(Some(_)) => "saved",
        };
        s.push_str(&format!("# dropin-previous: {state}\n"));
        s.push_str(&format!(
            "# state: {}\n",
            if self.complete { "complete" } else { "incomplete" }
        ));
        if !self.netns.is_empty() {
            s.push_str(&format!("# netns: {}\n", self.netns));
        }
        for (k, v) in &self.live {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s
    }

    /// Parse and check a record: every error names the file and line, and says what a
    /// record sysctune wrote would hold there.
    pub fn parse(
        text: &str,
        saved_dropin: Option<String>,
        origin: &Path,
        trust: &Trust<'_>,
    ) -> Result<Record> {
        let header = |name: &str| {
            text.lines().enumerate().find_map(|(i, l)| {
                l.strip_prefix(&format!("# {name}: "))
                    .map(|v| (i + 1, v.trim().to_string()))
            })
        };
        let bad = |what: &str| Error::host(origin, format!("not a sysctune rollback record: {what}"));
        let at = |line: usize, what: String| {
            Error::host(origin, format!("line {line}: {what}; nothing was restored"))
        };
        let (line, profile) = header("profile").ok_or_else(|| bad("no '# profile:' line"))?;
        if profile.chars().any(char::is_control) {
            return Err(at(
                line,
                format!("the profile name {profile:?} holds control characters"),
            ));
        }
        let (line, dropin_path) = header("dropin").ok_or_else(|| bad("no '# dropin:' line"))?;
        if !dropin_path.starts_with('/') {
            return Err(at(
                line,
                format!(
                    "the drop-in path {dropin_path:?} is relative; a record names it as seen inside the root, e.g. {} \
                     (sysctune did not write this record)",
                    crate::plan::DEFAULT_DROPIN
                ),
            ));
        }
        check_inside("the record's drop-in", &dropin_path).map_err(|e| at(line, e.to_string()))?;
        check_dropin_location(&dropin_path, trust.any_dropin).map_err(|_| {
            at(
                line,
                format!(
                    "the drop-in {dropin_path} is not a *.conf file in {}; rollback writes only there (pass \
                     --allow-any-dropin-path if the apply used it)",
                    SYSCTL_D_DIRS.join(", ")
                ),
            )
        })?;
        let dropin_previous = match header("dropin-previous").map(|(_, v)| v).as_deref() {
            Some("unchanged") => None,
            Some("absent") => Some(None),
            Some("saved") => {
                let saved =
                    saved_dropin.ok_or_else(|| bad("the saved drop-in rollback.dropin is missing"))?;
                check_saved_dropin(&saved, origin, trust)?;
                Some(Some(saved))
            }
            _ => {
                return Err(bad(
                    "no valid '# dropin-previous:' line (unchanged, absent or saved)",
                ));
            }
        };
        let complete = match header("state").map(|(_, v)| v).as_deref() {
            Some("incomplete") => false,
            Some("complete") | None => true,
            Some(other) => return Err(bad(&format!("unknown state {other:?} (complete or incomplete)"))),
        };
        let netns = match header("netns") {
            Some((line, v)) if !v.starts_with("net:[") || v.chars().any(char::is_control) => {
                return Err(at(
                    line,
                    format!("{v:?} is not a network namespace (net:[INODE])"),
                ));
            }
            Some((_, v)) => v,
            None => String::new(),
        };
        let parsed = crate::dropin::parse(text);
        if let Some(b) = parsed.bad.first() {
            return Err(at(b.line, b.message.clone()));
        }
        let mut live: Vec<(String, String)> = Vec::new();
        for e in parsed.entries {
            let key = keys::normalize_key(&e.key).map_err(|m| at(e.line, m))?;
            let value = keys::normalize_value(&e.value).map_err(|m| at(e.line, m))?;
            trust.check(&key, &value).map_err(|m| at(e.line, m))?;
            if live.iter().any(|(k, _)| *k == key) {
                return Err(at(
                    e.line,
                    format!("{key} appears twice; a record holds each key once"),
                ));
            }
            live.push((key, value));
        }
        Ok(Record {
            profile,
            dropin_path,
            dropin_previous,
            live,
            complete,
            netns,
        })
    }
}

/// The drop-in as it was before the apply: it goes back into a sysctl.d directory, so it
/// must be a sysctl.d file whose keys apply would accept.
fn check_saved_dropin(text: &str, origin: &Path, trust: &Trust<'_>) -> Result<()> {
    let saved = origin.with_file_name(RECORD_DROPIN);
    let at =
        |line: usize, what: String| Error::host(&saved, format!("line {line}: {what}; nothing was restored"));
    let parsed = crate::dropin::parse_sysctl_d(text);
    if let Some(b) = parsed.bad.first() {
        return Err(at(b.line, b.message.clone()));
    }
    for e in &parsed.entries {
        if e.glob {
            continue;
        }
        let key = keys::normalize_key(&e.key).map_err(|m| at(e.line, m))?;
        let value = keys::normalize_value(&e.value).map_err(|m| at(e.line, m))?;
        trust.check(&key, &value).map_err(|m| at(e.line, m))?;
    }
    Ok(())
}

/// A new record on top of one an apply left incomplete (it died half-way): the earlier
/// record holds the values from before that apply, so they win for every key and for the
/// drop-in, and rollback goes back to the state before either.
fn carry_over(unfinished: Record, new: Record) -> Record {
    let mut live = unfinished.live;
    for (k, v) in new.live {
        if !live.iter().any(|(key, _)| *key == k) {
            live.push((k, v));
        }
    }
    let dropin_previous = if unfinished.dropin_path == new.dropin_path {
        unfinished.dropin_previous.or(new.dropin_previous)
    } else {
        new.dropin_previous
    };
    Record {
        dropin_previous,
        live,
        ..new
    }
}

fn read_record(state: &Dir<'_>, trust: &Trust<'_>) -> Result<Option<Record>> {
    let Some(text) = state.read(RECORD, fs::MAX_CONFIG)? else {
        return Ok(None);
    };
    let saved = state.read(RECORD_DROPIN, fs::MAX_CONFIG)?;
    Record::parse(&text, saved, &state.shown(RECORD), trust).map(Some)
}

/// The record files as they are, to put back if the apply fails.
struct RecordBackup {
    record: Option<String>,
    dropin: Option<String>,
}

fn backup_record(state: &Dir<'_>) -> Result<RecordBackup> {
    Ok(RecordBackup {
        record: state.read(RECORD, fs::MAX_CONFIG)?,
        dropin: state.read(RECORD_DROPIN, fs::MAX_CONFIG)?,
    })
}

fn put_back(state: &Dir<'_>, name: &str, previous: Option<&str>) -> Result<()> {
    match previous {
        Some(text) => state.write_atomic(name, text.as_bytes(), 0o600),
        None => state.remove(name),
    }
}

fn restore_record(state: &Dir<'_>, b: &RecordBackup) -> Result<()> {
    put_back(state, RECORD_DROPIN, b.dropin.as_deref())?;
    put_back(state, RECORD, b.record.as_deref())
}

fn write_record(state: &Dir<'_>, record: &Record) -> Result<()> {
    match &record.dropin_previous {
        Some(Some(text)) => state.write_atomic(RECORD_DROPIN, text.as_bytes(), 0o600)?,
        _ => state.remove(RECORD_DROPIN)?,
    }
    // The record itself last: it is the commit point.
    state.write_atomic(RECORD, record.render().as_bytes(), 0o600)
}

// ---------------------------------------------------------------------------------------
// apply

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub live: bool,
    pub file: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct DropinResult {
    pub path: String,
    pub changed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApplyReport {
    pub schema: &'static str,
    pub profile: String,
    pub changed: bool,
    pub dropin: DropinResult,
    pub live: Vec<LiveChange>,
    /// The rollback record of the last apply that changed something (null when none).
    pub rollback: Option<String>,
    /// The command that undoes this apply (shell-quoted).
    pub undo_command: String,
    /// `--force` overrode a refusal; `overridden` says which.
    pub forced: bool,
    pub overridden: Vec<String>,
    pub findings: Vec<Finding>,
}

/// Refuse live writes to the real /proc/sys without root, before anything is touched.
pub fn check_privileges(root: &Root, live: bool, what: &str) -> Result<()> {
    if live && root.is_host() && !nix::unistd::geteuid().is_root() {
        return Err(Error::Write(format!(
            "{what} live values under / needs root (run it with sudo); it would write /proc/sys and keep its \
             record in {DEFAULT_STATE_DIR}, which only root may change{}",
            if what == "writing" {
                "; or pass --no-live to write only the drop-in (that needs write access to its directory), or \
                 --root DIR for a tree"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// The trust a record written by this apply gets when read back: the same as rollback's.
pub fn trust_for<'a>(kernel: &'a str, any_dropin: bool, allowed_keys: &'a [String]) -> Trust<'a> {
    Trust {
        kernel,
        any_dropin,
        allowed_keys,
    }
}

/// How apply was invoked, kept in `applied.conf` for `status` and later plans.
pub struct Invocation<'a> {
    pub spec: &'a str,
    pub sets: &'a [String],
    pub only: &'a [String],
    /// The network namespace (`net:[N]`) when the root is this machine's `/`, else empty.
    pub netns: String,
}

/// The state directory's `applied.conf`, checked; `None` when absent.
pub fn read_applied_in(state: &Dir<'_>) -> Result<Option<state::Applied>> {
    match state.read(state::FILE, fs::MAX_CONFIG)? {
        Some(text) => state::Applied::parse(&text, &state.shown(state::FILE)).map(Some),
        None => Ok(None),
    }
}

/// `applied.conf` under `root` for a plan: `Ok(None)` when there is none, or when the
/// state directory cannot be read by this user (a plan as non-root: the directory is
/// root's own, mode 0700); a tampered file is an error naming it.
pub fn read_applied(root: &Root, state_shown: &str) -> Result<Option<state::Applied>> {
    match root.dir(state_shown, None) {
        Ok(Some(dir)) => match read_applied_in(&dir) {
            Err(Error::Host { message, .. }) if message == "permission denied" => Ok(None),
            other => other,
        },
        Ok(None) => Ok(None),
        Err(Error::Host { message, .. }) if message == "permission denied" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Carry out `plan` (computed under the lock, held with `state`). Writes nothing when
/// nothing changes.
pub fn apply(
    root: &Root,
    paths: &Paths,
    state: &Dir<'_>,
    plan: &Plan,
    opts: Options,
    trust: &Trust<'_>,
    inv: &Invocation<'_>,
) -> Result<ApplyReport> {
    // The drop-in's directory and the file itself: no symlink on the way, a regular file.
    let previous_dropin = read_dropin(root, paths)?;
    let live = live_changes(root, plan, opts)?;
    let file_changes = opts.file && plan.dropin.changed;
    if live.is_empty() && !file_changes {
        let existing_record = state.exists(RECORD)?.then(|| paths.record_shown());
        return Ok(ApplyReport::of(plan, false, live, existing_record));
    }

    let record = Record {
        profile: plan.profile.clone(),
        dropin_path: paths.dropin_shown.clone(),
        dropin_previous: file_changes.then(|| previous_dropin.clone()),
        live: live
            .iter()
            .map(|c| (c.key.clone(), c.from.clone().unwrap_or_default()))
            .collect(),
        complete: false,
        netns: inv.netns.clone(),
    };
    let backup = backup_record(state)?;
    let mut record = start_record(state, trust, record)?;
    write_in_order(
        root,
        paths,
        state,
        &backup,
        &live,
        file_changes.then_some(&plan.dropin.content),
    )?;
    record_applied(state, paths, plan, opts, inv, &live)?;
    // Done: mark the record complete, so the next apply starts a record of its own.
    record.complete = true;
    write_record(state, &record)?;
    let mut report = ApplyReport::of(plan, true, live, Some(paths.record_shown()));
    report.dropin.changed = file_changes;
    Ok(report)
}

impl ApplyReport {
    /// The report of `plan` carried out (`changed`) or not, before `--force`'s overrides
    /// and the undo command are added; `dropin.changed` only when it was written.
    fn of(plan: &Plan, changed: bool, live: Vec<LiveChange>, rollback: Option<String>) -> Self {
        ApplyReport {
            schema: APPLY_SCHEMA,
            profile: plan.profile.clone(),
            changed,
            dropin: DropinResult {
                path: plan.dropin.path.clone(),
                changed: false,
            },
            live,
            rollback,
            undo_command: String::new(),
            forced: false,
            overridden: Vec::new(),
            findings: plan.findings.clone(),
        }
    }
}

/// The live writes of `plan`, in the order the kernel accepts them; an error, before
/// anything is written, when a key to change does not exist on this kernel.
fn live_changes(root: &Root, plan: &Plan, opts: Options) -> Result<Vec<LiveChange>> {
    let mut live: Vec<LiveChange> = plan
        .settings
        .iter()
        .filter(|s| opts.live && s.change)
        .map(|s| LiveChange {
            key: s.key.clone(),
            from: s.current.clone(),
            to: s.recommended.clone(),
        })
        .collect();
    write_order(&mut live);
    if let Some(absent) = live.iter().find(|c| c.from.is_none()) {
        return Err(Error::Write(format!(
            "{} does not exist on this kernel ({}); nothing was written. Remove it from the profile, or use --only \
             to leave it out (or --no-live to write only the drop-in)",
            absent.key,
            root.shown(&host::proc_sys_inside(&absent.key)).display()
        )));
    }
    Ok(live)
}

/// Write the rollback record before anything else. An unfinished record (an apply that
/// died half-way) is carried over, so a rollback still restores the values from before
/// it; one from another network namespace is an error.
fn start_record(state: &Dir<'_>, trust: &Trust<'_>, record: Record) -> Result<Record> {
    let mut record = record;
    if let Some(unfinished) = read_record(state, trust)?.filter(|r| !r.complete) {
        if unfinished.netns != record.netns {
            return Err(Error::Write(format!(
                "{}: an apply in network namespace {} died half-way; its values are that namespace's. Roll it back \
                 there (sysctune rollback), or remove the record; nothing was written",
                state.shown(RECORD).display(),
                if unfinished.netns.is_empty() {
                    "(none)"
                } else {
                    &unfinished.netns
                }
            )));
        }
        record = carry_over(unfinished, record);
    }
    write_record(state, &record)?;
    Ok(record)
}

/// The live values, then the drop-in (`dropin`: its new content, when it changes). A
/// failure puts back what was already written and the previous rollback record.
fn write_in_order(
    root: &Root,
    paths: &Paths,
    state: &Dir<'_>,
    backup: &RecordBackup,
    live: &[LiveChange],
    dropin: Option<&String>,
) -> Result<()> {
    if let Err(msg) = write_all_or_nothing(root, live) {
        let rec = match restore_record(state, backup) {
            Ok(()) => {
                "the drop-in was not touched and the previous rollback record is back in place".to_string()
            }
            Err(e) => {
                format!("the drop-in was not touched, but restoring the previous rollback record failed: {e}")
            }
        };
        return Err(Error::Write(format!("{msg}; {rec}")));
    }
    if let Some(content) = dropin
        && let Err(e) = restore_dropin(root, paths, Some(content))
    {
        let undo = inverse(live);
        let restored = match write_all_or_nothing(root, &undo) {
            Ok(()) if undo.is_empty() => "no live value had been changed".to_string(),
            Ok(()) => format!(
                "restored the live values of {}",
                undo.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(", ")
            ),
            Err(m) => format!("restoring the live values failed: {m}"),
        };
        let _ = restore_record(state, backup);
        return Err(Error::Write(format!(
            "{e}; {restored}; the previous drop-in is unchanged"
        )));
    }
    Ok(())
}

/// What sysctune has set live (applied.conf), for status and for keys that later leave
/// management: each key's value from before sysctune first wrote it.
fn record_applied(
    state: &Dir<'_>,
    paths: &Paths,
    plan: &Plan,
    opts: Options,
    inv: &Invocation<'_>,
    live: &[LiveChange],
) -> Result<()> {
    let mut applied = read_applied_in(state)?.unwrap_or_default();
    for c in live {
        if let Some(from) = &c.from {
            applied.set.entry(c.key.clone()).or_insert_with(|| from.clone());
        }
    }
    if opts.live {
        for s in plan
            .settings
            .iter()
            .filter(|s| s.rules.iter().any(|r| r == crate::plan::RELEASED))
        {
            applied.set.remove(&s.key);
        }
    }
    let applied = state::Applied {
        profile: plan.profile.clone(),
        spec: inv.spec.to_string(),
        sets: inv.sets.to_vec(),
        only: inv.only.to_vec(),
        dropin: paths.dropin_shown.clone(),
        time: state::now_utc(),
        netns: inv.netns.clone(),
        set: applied.set,
    };
    state.write_atomic(state::FILE, applied.render().as_bytes(), 0o600)
}

// ---------------------------------------------------------------------------------------
// rollback

#[derive(Clone, Debug, Serialize)]
pub struct RollbackReport {
    pub schema: &'static str,
    /// With `--dry-run`: `changed` says what rollback would change; nothing was written.
    pub dry_run: bool,
    pub changed: bool,
    /// The record that was restored (null when there was none).
    pub record: Option<String>,
    pub dropin: Option<DropinResult>,
    pub live: Vec<LiveChange>,
    pub message: String,
}

/// Restore what the last apply recorded, all or nothing, then remove the record so a
/// second rollback is a no-op. The record is checked first (as apply checks a profile):
/// anything it would not have written is refused with the line named, nothing written.
pub fn rollback(
    root: &Root,
    paths: &Paths,
    state: Option<&Dir<'_>>,
    trust: &Trust<'_>,
    netns: &str,
    dry_run: bool,
) -> Result<RollbackReport> {
    let nothing = || RollbackReport {
        schema: ROLLBACK_SCHEMA,
        dry_run,
        changed: false,
        record: None,
        dropin: None,
        live: Vec::new(),
        message: format!(
            "nothing to roll back: no rollback record at {}",
            paths.record_shown()
        ),
    };
    let Some(state) = state else {
        return Ok(nothing());
    };
    let Some(record) = read_record(state, trust)? else {
        return Ok(nothing());
    };
    same_namespace(state, &record, netns)?;
    let record_paths = Paths {
        dropin_shown: record.dropin_path.clone(),
        state_shown: paths.state_shown.clone(),
    };
    let live = restores(root, paths, &record)?;
    let dropin_change = dropin_restore(root, paths, &record_paths, &record)?;
    let report = |message: String| RollbackReport {
        schema: ROLLBACK_SCHEMA,
        dry_run,
        changed: !live.is_empty() || dropin_change.is_some(),
        record: Some(paths.record_shown()),
        dropin: record.dropin_previous.as_ref().map(|_| DropinResult {
            path: record.dropin_path.clone(),
            changed: dropin_change.is_some(),
        }),
        live: live.clone(),
        message,
    };
    if dry_run {
        return Ok(report(format!(
            "dry run: this is what rollback would restore of the last apply (profile {}); nothing was written",
            record.profile
        )));
    }
    write_all_or_nothing(root, &live).map_err(|m| {
        Error::Write(format!(
            "rollback: {m}; the drop-in was not touched and the record is kept"
        ))
    })?;
    if let Some(previous) = &dropin_change
        && let Err(e) = restore_dropin(root, &record_paths, previous.as_deref())
    {
        let restored = match write_all_or_nothing(root, &inverse(&live)) {
            Ok(()) => "the live values are as they were before the rollback".to_string(),
            Err(m) => format!("putting the live values back failed: {m}"),
        };
        return Err(Error::Write(format!(
            "rollback: {e}; {restored}; the record is kept"
        )));
    }
    state.remove(RECORD)?;
    state.remove(RECORD_DROPIN)?;
    // Keys back at the value they had before sysctune first set them are no longer its.
    if let Some(mut applied) = read_applied_in(state)? {
        applied
            .set
            .retain(|k, original| record.live.iter().all(|(rk, rv)| rk != k || rv != original));
        state.write_atomic(state::FILE, applied.render().as_bytes(), 0o600)?;
    }
    Ok(report(format!(
        "restored what the last apply (profile {}) recorded",
        record.profile
    )))
}

/// A record is restored only in the network namespace whose values it holds.
fn same_namespace(state: &Dir<'_>, record: &Record, netns: &str) -> Result<()> {
    if record.netns == netns {
        return Ok(());
    }
    let name = |n: &str| {
        if n.is_empty() {
            "a tree under --root".to_string()
        } else {
            format!("network namespace {n}")
        }
    };
    Err(Error::Write(format!(
        "{}: the record was made in {}, and this is {}: its values are not this one's to restore; run rollback \
         where the apply ran; nothing was restored",
        state.shown(RECORD).display(),
        name(&record.netns),
        name(netns)
    )))
}

/// The live writes that put back the recorded values, in the order the kernel accepts;
/// an error when a recorded key no longer exists.
fn restores(root: &Root, paths: &Paths, record: &Record) -> Result<Vec<LiveChange>> {
    let mut live = Vec::new();
    for (key, value) in &record.live {
        let current = host::read_sysctl(root, key)?;
        if current.as_deref() != Some(value.as_str()) {
            live.push(LiveChange {
                key: key.clone(),
                from: current,
                to: value.clone(),
            });
        }
    }
    write_order(&mut live);
    if let Some(absent) = live.iter().find(|c| c.from.is_none()) {
        return Err(Error::Write(format!(
            "{} no longer exists on this kernel; nothing was restored (the record {} is kept)",
            absent.key,
            paths.record_shown()
        )));
    }
    Ok(live)
}

/// The drop-in to put back, if it changed since: only if it is still the one sysctune
/// wrote (or gone), since a record must never replace or delete a file somebody else put
/// there. `Some(None)`: remove it.
fn dropin_restore(
    root: &Root,
    paths: &Paths,
    record_paths: &Paths,
    record: &Record,
) -> Result<Option<Option<String>>> {
    let Some(previous) = &record.dropin_previous else {
        return Ok(None);
    };
    let now = read_dropin(root, record_paths)?;
    if now.as_deref() == previous.as_deref() {
        return Ok(None);
    }
    if let Some(text) = &now
        && !text.starts_with(&format!("# {}", crate::dropin::HEADER_START))
    {
        return Err(Error::Write(format!(
            "{}: not written by sysctune (it does not start with \"# {}\"); rollback replaces only its own \
             drop-in, so nothing was restored (the record {} is kept)",
            root.shown(&record.dropin_path).display(),
            crate::dropin::HEADER_START,
            paths.record_shown()
        )));
    }
    Ok(Some(previous.clone()))
}

/// The state directory for rollback: `None` when it does not exist.
pub fn rollback_state<'r>(root: &'r Root, paths: &Paths) -> Result<Option<Dir<'r>>> {
    existing_state_dir(root, paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, from: &str, to: &str) -> LiveChange {
        LiveChange {
            key: key.into(),
            from: Some(from.into()),
            to: to.into(),
        }
    }

    #[test]
    fn unprivileged_start_moves_after_the_range_when_it_rises() {
        let mut c = vec![
            change("net.ipv4.ip_unprivileged_port_start", "1024", "20000"),
            change("net.ipv4.ip_local_port_range", "10000 60999", "20000 65535"),
        ];
        write_order(&mut c);
        assert_eq!(c[0].key, "net.ipv4.ip_local_port_range");
        let mut c = vec![
            change("net.ipv4.ip_local_port_range", "20000 65535", "1024 65535"),
            change("net.ipv4.ip_unprivileged_port_start", "20000", "1024"),
        ];
        write_order(&mut c);
        assert_eq!(c[0].key, "net.ipv4.ip_unprivileged_port_start");
    }

    #[test]
    fn limits_before_modes() {
        let mut c = vec![
            change("vm.overcommit_memory", "0", "2"),
            change("vm.overcommit_ratio", "50", "80"),
            change("vm.panic_on_oom", "0", "1"),
            change("kernel.panic", "0", "10"),
        ];
        write_order(&mut c);
        let keys: Vec<_> = c.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "vm.overcommit_ratio",
                "vm.overcommit_memory",
                "kernel.panic",
                "vm.panic_on_oom"
            ]
        );
    }

    #[test]
    fn record_round_trips_and_is_sysctl_d() {
        let r = Record {
            profile: "batch-client".into(),
            dropin_path: "/etc/sysctl.d/90-sysctune.conf".into(),
            dropin_previous: Some(Some("old = 1\n".into())),
            live: vec![("net.ipv4.ip_local_port_range".into(), "32768 60999".into())],
            complete: false,
            netns: "net:[4026531840]".into(),
        };
        let text = r.render();
        let parsed = crate::dropin::parse(&text);
        assert!(parsed.bad.is_empty());
        assert_eq!(parsed.entries.len(), 1);
        let trust = trust_for("6.1.0", false, &[]);
        assert_eq!(
            Record::parse(&text, Some("old = 1\n".into()), Path::new("x"), &trust).unwrap(),
            r
        );
        assert!(Record::parse(&text, None, Path::new("x"), &trust).is_err());
        assert!(Record::parse("garbage\n", None, Path::new("x"), &trust).is_err());
    }

    #[test]
    fn dropin_location() {
        assert!(check_dropin_location("/etc/sysctl.d/90-sysctune.conf", false).is_ok());
        assert!(check_dropin_location("/usr/lib/sysctl.d/50-x.conf", false).is_ok());
        assert!(check_dropin_location("/etc/passwd", false).is_err());
        assert!(check_dropin_location("/etc/sysctl.d/x.txt", false).is_err());
        assert!(check_dropin_location("/etc/sysctl.d/sub/x.conf", false).is_err());
        assert!(check_dropin_location("/tmp/x.conf", true).is_ok());
    }
}
