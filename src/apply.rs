//! Carrying out a plan: the lock, the rollback record, the atomic drop-in, live writes
//! with read-back, and rollback. All or nothing: on any failure every key already written
//! and the drop-in are restored before the error is reported.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result, describe_io};
use crate::host;
use crate::keys;
use crate::plan::Plan;
use crate::rules::Finding;

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
pub const LOCK_PATH: &str = "/run/lock/sysctune.lock";
const RECORD: &str = "rollback.conf";
const RECORD_DROPIN: &str = "rollback.dropin";

/// Where apply and rollback read and write, all resolved under the root.
#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
    /// The drop-in as seen inside the root, and on disk.
    pub dropin_shown: String,
    pub dropin: PathBuf,
    /// The state directory as seen inside the root, and on disk.
    pub state_shown: String,
    pub state: PathBuf,
    pub lock: PathBuf,
}

impl Paths {
    pub fn record(&self) -> PathBuf {
        self.state.join(RECORD)
    }
    pub fn record_shown(&self) -> String {
        format!("{}/{RECORD}", self.state_shown.trim_end_matches('/'))
    }
    fn record_dropin(&self) -> PathBuf {
        self.state.join(RECORD_DROPIN)
    }
}

/// A path as seen inside the root: absolute, no `..`, no control characters.
pub fn inside_root(root: &Path, flag: &str, shown: &str) -> Result<PathBuf> {
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
    Ok(root.join(p.strip_prefix("/").unwrap_or(p)))
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

/// Refuse when a directory on the way to `path` (below the root) is a symlink: a write
/// there could land anywhere.
fn check_no_symlinked_dirs(root: &Path, path: &Path) -> Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let rel = parent.strip_prefix(root).unwrap_or(parent);
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::Write(format!(
                    "{}: is a symlink; refusing to write through it (sysctune writes only real directories under the root)",
                    cur.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::Write(format!("{}: {}", cur.display(), describe_io(&e)))),
        }
    }
    Ok(())
}

/// Refuse when `path` itself is a symlink (or not a regular file).
fn check_not_symlink(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Write(format!(
            "{}: is a symlink; refusing to follow it (remove it, or point --dropin at the real file)",
            path.display()
        ))),
        Ok(m) if !m.is_file() => Err(Error::Write(format!(
            "{}: exists and is not a regular file",
            path.display()
        ))),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// The lock

/// An exclusive lock on `ROOT/run/lock/sysctune.lock`, held until dropped. A second apply
/// or rollback waits up to `timeout`, then fails naming the holder.
pub struct Lock {
    _file: nix::fcntl::Flock<File>,
}

impl Lock {
    pub fn acquire(path: &Path, timeout: Duration) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| Error::Write(format!("{}: {}", dir.display(), describe_io(&e))))?;
        }
        check_not_symlink(path)?;
        let start = Instant::now();
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| Error::Write(format!("lock {}: {}", path.display(), describe_io(&e))))?;
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(mut locked) => {
                    // Who holds it, for the next one's message.
                    let _ = locked.set_len(0);
                    let _ = locked.write_all(format!("{}\n", std::process::id()).as_bytes());
                    return Ok(Lock { _file: locked });
                }
                Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                    if start.elapsed() >= timeout {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let holder = holder.trim();
                        return Err(Error::Write(format!(
                            "another sysctune apply or rollback holds {}{}; waited {} s (--lock-timeout)",
                            path.display(),
                            if holder.is_empty() {
                                String::new()
                            } else {
                                format!(" (pid {holder})")
                            },
                            timeout.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, errno)) => {
                    return Err(Error::Write(format!("lock {}: {}", path.display(), errno.desc())));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Files

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Write `content` to `path` atomically: a temporary file in the same directory (never
/// named `*.conf`, so no reader picks it up), fsync, rename, fsync of the directory.
/// Readers see the old bytes or the new ones, never a mix, whenever the process dies.
pub fn atomic_write(path: &Path, content: &[u8]) -> Result<()> {
    let fail = |what: &str, e: &std::io::Error| {
        Error::Write(format!("{}: {what}: {}", path.display(), describe_io(e)))
    };
    check_not_symlink(path)?;
    let dir = path
        .parent()
        .ok_or_else(|| Error::Write(format!("{}: no parent directory", path.display())))?;
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| fail("creating its directory", &e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.sysctune-tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| fail("creating a temporary file", &e))?;
        f.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(|e| fail("chmod", &e))?;
        f.write_all(content).map_err(|e| fail("writing", &e))?;
        f.sync_all().map_err(|e| fail("fsync", &e))?;
        fs::rename(&tmp, path).map_err(|e| fail("rename", &e))?;
        fsync_dir(dir).map_err(|e| fail("fsync of the directory", &e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Remove temporary files a killed apply left behind (we hold the lock, so none is live).
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.sysctune-tmp.", name.to_string_lossy());
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

fn remove_file_durably(path: &Path) -> Result<()> {
    check_not_symlink(path)?;
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                let _ = fsync_dir(dir);
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Write(format!(
            "{}: removing: {}",
            path.display(),
            describe_io(&e)
        ))),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    check_not_symlink(path)?;
    match fs::read(path) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| Error::host(path, "not UTF-8 text")),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, &e)),
    }
}

/// Put a file back as it was: the old content, or no file.
fn restore_file(path: &Path, previous: Option<&str>) -> Result<()> {
    match previous {
        Some(text) => atomic_write(path, text.as_bytes()),
        None => remove_file_durably(path),
    }
}

// ---------------------------------------------------------------------------------------
// Live values

/// Write one key under `ROOT/proc/sys` with a single write() at offset 0, then read it
/// back and compare after whitespace normalisation. The error is the kernel's.
pub fn write_live(root: &Path, key: &str, value: &str) -> std::result::Result<(), String> {
    let path = host::proc_sys_path(root, key);
    if !on_procfs(&path) {
        return write_tree_value(&path, value);
    }
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => "no such key on this kernel (ENOENT)".to_string(),
            _ => kernel_error(&e),
        })?;
    let line = format!("{value}\n");
    let n = f.write(line.as_bytes()).map_err(|e| kernel_error(&e))?;
    if n != line.len() {
        return Err(format!("short write ({n} of {} bytes)", line.len()));
    }
    drop(f);
    let back = fs::read_to_string(&path).map_err(|e| format!("reading back: {}", kernel_error(&e)))?;
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    if norm(&back) != norm(value) {
        return Err(format!("read back {:?} after writing {value:?}", norm(&back)));
    }
    Ok(())
}

fn on_procfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
}

/// A value under a `--root` tree that is not procfs (an image, a fixture): a regular file,
/// replaced atomically so a kill never leaves it empty.
fn write_tree_value(path: &Path, value: &str) -> std::result::Result<(), String> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Err("no such key on this kernel (ENOENT)".into()),
        Err(e) => return Err(kernel_error(&e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(format!("{} is a symlink; not followed", path.display()));
        }
        Ok(_) => {}
    }
    remove_stale_temporaries(path);
    atomic_write(path, format!("{value}\n").as_bytes()).map_err(|e| e.to_string())
}

fn kernel_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let errno = nix::errno::Errno::from_raw(code);
            format!("{} ({errno:?})", errno.desc())
        }
        None => describe_io(e),
    }
}

/// One live change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveChange {
    pub key: String,
    pub from: Option<String>,
    pub to: String,
}

/// The order in which to write: the kernel checks some keys against others.
/// - `ip_local_port_range` must start at or above `ip_unprivileged_port_start`: when the
///   start goes up, the range moves first; when it goes down, the start moves first.
/// - `vm.overcommit_ratio`/`kbytes` before `vm.overcommit_memory`, so strict mode starts
///   with its new limit.
/// - `kernel.panic` before `vm.panic_on_oom`, so an OOM panic already reboots.
pub fn write_order(changes: &mut [LiveChange]) {
    let unpriv_rises = changes.iter().any(|c| {
        c.key == "net.ipv4.ip_unprivileged_port_start"
            && c.from
                .as_deref()
                .and_then(|f| f.parse::<u64>().ok())
                .zip(c.to.parse::<u64>().ok())
                .is_some_and(|(f, t)| t > f)
    });
    let rank = |key: &str| -> (usize, usize) {
        let base = keys::order(key);
        let adjusted = match key {
            "vm.overcommit_ratio" | "vm.overcommit_kbytes" => keys::order("vm.overcommit_memory"),
            "kernel.panic" => keys::order("vm.panic_on_oom"),
            "net.ipv4.ip_unprivileged_port_start" if unpriv_rises => {
                keys::order("net.ipv4.ip_local_port_range") + 1
            }
            _ => base,
        };
        let tie = match key {
            "vm.overcommit_ratio" | "vm.overcommit_kbytes" | "kernel.panic" => 0,
            _ => 1,
        };
        (adjusted, tie)
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
fn write_all_or_nothing(root: &Path, changes: &[LiveChange]) -> std::result::Result<(), String> {
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
        for (k, v) in &self.live {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s
    }

    pub fn parse(text: &str, saved_dropin: Option<String>, origin: &Path) -> Result<Record> {
        let header = |name: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(&format!("# {name}: "))
                    .map(|v| v.trim().to_string())
            })
        };
        let bad = |what: &str| Error::host(origin, format!("not a sysctune rollback record: {what}"));
        let profile = header("profile").ok_or_else(|| bad("no '# profile:' line"))?;
        let dropin_path = header("dropin").ok_or_else(|| bad("no '# dropin:' line"))?;
        let dropin_previous = match header("dropin-previous").as_deref() {
            Some("unchanged") => None,
            Some("absent") => Some(None),
            Some("saved") => {
                Some(Some(saved_dropin.ok_or_else(|| {
                    bad("the saved drop-in rollback.dropin is missing")
                })?))
            }
            _ => return Err(bad("no valid '# dropin-previous:' line")),
        };
        let complete = match header("state").as_deref() {
            Some("incomplete") => false,
            Some("complete") | None => true,
            Some(other) => return Err(bad(&format!("unknown state {other:?}"))),
        };
        let parsed = crate::dropin::parse(text);
        if let Some(b) = parsed.bad.first() {
            return Err(Error::host(origin, format!("line {}: {}", b.line, b.message)));
        }
        let mut live = Vec::new();
        for e in parsed.entries {
            let key = keys::normalize_key(&e.key)
                .map_err(|m| Error::host(origin, format!("line {}: {m}", e.line)))?;
            let value = keys::normalize_value(&e.value)
                .map_err(|m| Error::host(origin, format!("line {}: {m}", e.line)))?;
            live.push((key, value));
        }
        Ok(Record {
            profile,
            dropin_path,
            dropin_previous,
            live,
            complete,
        })
    }
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

fn read_record(paths: &Paths) -> Result<Option<Record>> {
    let Some(text) = read_optional(&paths.record())? else {
        return Ok(None);
    };
    let saved = read_optional(&paths.record_dropin())?;
    Record::parse(&text, saved, &paths.record()).map(Some)
}

/// The record files as they are, to put back if the apply fails.
struct RecordBackup {
    record: Option<String>,
    dropin: Option<String>,
}

fn backup_record(paths: &Paths) -> Result<RecordBackup> {
    Ok(RecordBackup {
        record: read_optional(&paths.record())?,
        dropin: read_optional(&paths.record_dropin())?,
    })
}

fn restore_record(paths: &Paths, b: &RecordBackup) -> Result<()> {
    restore_file(&paths.record_dropin(), b.dropin.as_deref())?;
    restore_file(&paths.record(), b.record.as_deref())
}

fn write_record(paths: &Paths, record: &Record) -> Result<()> {
    check_no_symlinked_dirs(&paths.root, &paths.record())?;
    fs::create_dir_all(&paths.state)
        .map_err(|e| Error::Write(format!("{}: {}", paths.state.display(), describe_io(&e))))?;
    match &record.dropin_previous {
        Some(Some(text)) => atomic_write(&paths.record_dropin(), text.as_bytes())?,
        _ => remove_file_durably(&paths.record_dropin())?,
    }
    // The record itself last: it is the commit point.
    atomic_write(&paths.record(), record.render().as_bytes())
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
    pub findings: Vec<Finding>,
}

/// Refuse live writes to the real /proc/sys without root, before anything is touched.
pub fn check_privileges(root: &Path, live: bool) -> Result<()> {
    let real_root = root.canonicalize().map(|p| p == Path::new("/")).unwrap_or(false);
    if live && real_root && !nix::unistd::geteuid().is_root() {
        return Err(Error::Write(
            "writing live values under / needs root (run with sudo), or pass --no-live to write only the drop-in \
             (that needs write access to its directory), or --root DIR for a tree"
                .into(),
        ));
    }
    Ok(())
}

/// Carry out `plan` (computed under the lock). Writes nothing when nothing changes.
pub fn apply(paths: &Paths, plan: &Plan, opts: Options) -> Result<ApplyReport> {
    check_no_symlinked_dirs(&paths.root, &paths.dropin)?;
    check_not_symlink(&paths.dropin)?;
    check_no_symlinked_dirs(&paths.root, &paths.record())?;
    check_not_symlink(&paths.record())?;
    check_not_symlink(&paths.record_dropin())?;

    let mut live: Vec<LiveChange> = if opts.live {
        plan.settings
            .iter()
            .filter(|s| s.change)
            .map(|s| LiveChange {
                key: s.key.clone(),
                from: s.current.clone(),
                to: s.recommended.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    write_order(&mut live);
    if let Some(absent) = live.iter().find(|c| c.from.is_none()) {
        return Err(Error::Write(format!(
            "{} does not exist on this kernel ({}); nothing was written. Remove it from the profile, or use --only \
             to leave it out (or --no-live to write only the drop-in)",
            absent.key,
            host::proc_sys_path(&paths.root, &absent.key).display()
        )));
    }
    let file_changes = opts.file && plan.dropin.changed;
    let existing_record = paths.record().exists().then(|| paths.record_shown());
    if live.is_empty() && !file_changes {
        return Ok(ApplyReport {
            schema: APPLY_SCHEMA,
            profile: plan.profile.clone(),
            changed: false,
            dropin: DropinResult {
                path: plan.dropin.path.clone(),
                changed: false,
            },
            live,
            rollback: existing_record,
            findings: plan.findings.clone(),
        });
    }

    remove_stale_temporaries(&paths.dropin);
    let previous_dropin = read_optional(&paths.dropin)?;
    let mut record = Record {
        profile: plan.profile.clone(),
        dropin_path: paths.dropin_shown.clone(),
        dropin_previous: file_changes.then(|| previous_dropin.clone()),
        live: live
            .iter()
            .map(|c| (c.key.clone(), c.from.clone().unwrap_or_default()))
            .collect(),
        complete: false,
    };
    let backup = backup_record(paths)?;
    if let Some(unfinished) = read_record(paths)?.filter(|r| !r.complete) {
        record = carry_over(unfinished, record);
    }
    write_record(paths, &record)?;

    if let Err(msg) = write_all_or_nothing(&paths.root, &live) {
        let rec = match restore_record(paths, &backup) {
            Ok(()) => {
                "the drop-in was not touched and the previous rollback record is back in place".to_string()
            }
            Err(e) => {
                format!("the drop-in was not touched, but restoring the previous rollback record failed: {e}")
            }
        };
        return Err(Error::Write(format!("{msg}; {rec}")));
    }
    if file_changes {
        check_dropin_writable(paths)?;
        if let Err(e) = atomic_write(&paths.dropin, plan.dropin.content.as_bytes()) {
            let undo = inverse(&live);
            let restored = match write_all_or_nothing(&paths.root, &undo) {
                Ok(()) if undo.is_empty() => "no live value had been changed".to_string(),
                Ok(()) => format!(
                    "restored the live values of {}",
                    undo.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(", ")
                ),
                Err(m) => format!("restoring the live values failed: {m}"),
            };
            let _ = restore_record(paths, &backup);
            return Err(Error::Write(format!(
                "{e}; {restored}; the previous drop-in is unchanged"
            )));
        }
    }
    // Done: mark the record complete, so the next apply starts a record of its own.
    record.complete = true;
    write_record(paths, &record)?;
    Ok(ApplyReport {
        schema: APPLY_SCHEMA,
        profile: plan.profile.clone(),
        changed: true,
        dropin: DropinResult {
            path: plan.dropin.path.clone(),
            changed: file_changes,
        },
        live,
        rollback: Some(paths.record_shown()),
        findings: plan.findings.clone(),
    })
}

fn check_dropin_writable(paths: &Paths) -> Result<()> {
    check_no_symlinked_dirs(&paths.root, &paths.dropin)?;
    check_not_symlink(&paths.dropin)
}

// ---------------------------------------------------------------------------------------
// rollback

#[derive(Clone, Debug, Serialize)]
pub struct RollbackReport {
    pub schema: &'static str,
    pub changed: bool,
    /// The record that was restored (null when there was none).
    pub record: Option<String>,
    pub dropin: Option<DropinResult>,
    pub live: Vec<LiveChange>,
    pub message: String,
}

/// Restore what the last apply recorded, all or nothing, then remove the record so a
/// second rollback is a no-op.
pub fn rollback(paths: &Paths) -> Result<RollbackReport> {
    check_no_symlinked_dirs(&paths.root, &paths.record())?;
    let Some(record) = read_record(paths)? else {
        return Ok(RollbackReport {
            schema: ROLLBACK_SCHEMA,
            changed: false,
            record: None,
            dropin: None,
            live: Vec::new(),
            message: format!(
                "nothing to roll back: no rollback record at {}",
                paths.record_shown()
            ),
        });
    };
    let dropin = inside_root(&paths.root, "rollback record's dropin", &record.dropin_path)?;
    check_no_symlinked_dirs(&paths.root, &dropin)?;
    check_not_symlink(&dropin)?;

    let mut live = Vec::new();
    for (key, value) in &record.live {
        let current = host::read_sysctl(&paths.root, key)?;
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
    write_all_or_nothing(&paths.root, &live).map_err(|m| {
        Error::Write(format!(
            "rollback: {m}; the drop-in was not touched and the record is kept"
        ))
    })?;

    let mut dropin_result = None;
    if let Some(previous) = &record.dropin_previous {
        let now = read_optional(&dropin)?;
        let changed = now.as_deref() != previous.as_deref();
        if changed && let Err(e) = restore_file(&dropin, previous.as_deref()) {
            let restored = match write_all_or_nothing(&paths.root, &inverse(&live)) {
                Ok(()) => "the live values are as they were before the rollback".to_string(),
                Err(m) => format!("putting the live values back failed: {m}"),
            };
            return Err(Error::Write(format!(
                "rollback: {e}; {restored}; the record is kept"
            )));
        }
        dropin_result = Some(DropinResult {
            path: record.dropin_path.clone(),
            changed,
        });
    }
    remove_file_durably(&paths.record())?;
    remove_file_durably(&paths.record_dropin())?;
    let changed = !live.is_empty() || dropin_result.as_ref().is_some_and(|d| d.changed);
    Ok(RollbackReport {
        schema: ROLLBACK_SCHEMA,
        changed,
        record: Some(paths.record_shown()),
        dropin: dropin_result,
        live,
        message: format!(
            "restored what the last apply (profile {}) recorded",
            record.profile
        ),
    })
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
            dropin_previous: Some(Some("old\n".into())),
            live: vec![("net.ipv4.ip_local_port_range".into(), "32768 60999".into())],
            complete: false,
        };
        let text = r.render();
        let parsed = crate::dropin::parse(&text);
        assert!(parsed.bad.is_empty());
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(
            Record::parse(&text, Some("old\n".into()), Path::new("x")).unwrap(),
            r
        );
        assert!(Record::parse(&text, None, Path::new("x")).is_err());
        assert!(Record::parse("garbage\n", None, Path::new("x")).is_err());
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
