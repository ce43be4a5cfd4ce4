//! The processes under `ROOT/proc`: for each `/proc/PID`, its name (`comm`, else the name
//! in `stat`), its command line, its open descriptors (the entries of `fd/`, each link read
//! with readlinkat, never followed: `socket:[INODE]` names a socket) and its
//! `RLIMIT_NOFILE` (`limits`, "Max open files"), like `ss -p` and `lsof` find them.
//!
//! Everything goes through [`crate::host::fs`]: under a root other than `/` the tree is a
//! fixture or an image (never procfs), and is untrusted: a PID directory that is a FIFO,
//! a symlink loop, a `limits` that is not the kernel's format or an `fd/` with millions of
//! entries gives a note and the process is skipped; nothing panics or hangs. The procfs
//! crate parses what is read (`Limits`, `FDTarget`); its own readers open files with
//! `openat` following symlinks and blocking on a FIFO, which is right for the kernel's
//! /proc but not for an image, so they are not used.
//!
//! The work is bounded: at most [`MAX_PROCESSES`] PID directories and [`MAX_FDS`]
//! descriptors in all; past either the scan stops and says so. A process that exits while
//! it is read (its directory or files vanish: ENOENT, ESRCH) is skipped and counted, not
//! an error: on a live host that is normal.

use std::ffi::OsStr;
use std::str::FromStr;

use nix::errno::Errno;
use procfs::FromRead;
use procfs::process::{FDTarget, LimitValue, Limits};
use serde::Serialize;

use super::fs::{self, ReadDir, Root, errno_text};

/// PID directories read, at most.
pub const MAX_PROCESSES: usize = 65_536;
/// Descriptors read across all processes, at most (a process with a million sockets fits).
pub const MAX_FDS: u64 = 1 << 21;
/// Notes kept (skipped processes, beyond the counts).
pub const MAX_NOTES: usize = 8;
/// The command line kept, at most (characters).
const CMDLINE_MAX: usize = 200;

/// One process as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessRead {
    pub pid: u32,
    pub comm: String,
    /// NUL-separated arguments joined by spaces, cut at 200 characters.
    pub cmdline: String,
    /// Open descriptors (entries of `fd/`).
    pub fds: u64,
    /// Its `fd/` was not read to the end ([`MAX_FDS`]): `fds` is a lower bound.
    pub fds_capped: bool,
    /// The inodes of its socket descriptors, in descriptor order.
    pub sockets: Vec<u64>,
    /// `RLIMIT_NOFILE`, soft and hard; `None` is unlimited.
    pub nofile_soft: Option<u64>,
    pub nofile_hard: Option<u64>,
}

/// All processes read.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessScan {
    #[serde(skip)]
    pub processes: Vec<ProcessRead>,
    /// PID directories found (up to the cap).
    pub found: u64,
    /// Processes read whole.
    pub read: u64,
    /// Processes that exited while they were read.
    pub exited: u64,
    /// Processes whose descriptors this user may not read (another user's, without
    /// CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE).
    pub denied: u64,
    /// Processes skipped because what was there is not what the kernel writes.
    pub malformed: u64,
    /// Descriptors read.
    pub fds_read: u64,
    /// Why the scan stopped early, `null` when it did not.
    pub capped: Option<String>,
    /// The first skipped processes, with why.
    pub notes: Vec<String>,
}

/// Why a process was not read.
#[derive(Debug)]
enum Skip {
    Exited,
    Denied,
    Malformed(String),
}

impl ProcessScan {
    fn note(&mut self, text: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(text);
        }
    }
}

/// `socket:[12345]` → 12345; anything else (a file, a pipe, `anon_inode:[eventpoll]`) →
/// `None`.
pub fn socket_inode(link: &OsStr) -> Option<u64> {
    let text = link.to_str()?;
    match FDTarget::from_str(text) {
        Ok(FDTarget::Socket(inode)) => Some(inode),
        _ => None,
    }
}

/// `Max open files` of a `/proc/PID/limits` text: soft and hard (`None`: unlimited). The
/// procfs crate's parser, after a check of the shape it assumes (a header, then lines of
/// a name and 2 or 3 more fields, all 16 limits), so that other text is an error naming
/// the line, not a panic.
pub fn parse_nofile(text: &str) -> Result<(Option<u64>, Option<u64>), String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.starts_with("Limit") => {}
        _ => return Err("line 1: expected the header \"Limit  Soft Limit  Hard Limit  Units\"".into()),
    }
    for (i, line) in lines.enumerate() {
        let fields = line.split_whitespace().count();
        let unitless = line.starts_with("Max nice priority") || line.starts_with("Max realtime priority");
        let least = 5;
        if fields < least || !line.starts_with("Max ") {
            return Err(format!(
                "line {}: expected \"Max NAME SOFT HARD{}\", found {line:?}",
                i + 2,
                if unitless { "" } else { " UNITS" }
            ));
        }
    }
    let limits = Limits::from_read(text.as_bytes()).map_err(|e| {
        let e = e.to_string();
        // procfs's "Internal Unwrap Error: ... NoneError": a limit is missing
        if e.contains("NoneError") {
            "a limit is missing (the kernel writes 16, \"Max cpu time\" to \"Max realtime timeout\")"
                .to_string()
        } else {
            e
        }
    })?;
    let value = |v: LimitValue| match v {
        LimitValue::Unlimited => None,
        LimitValue::Value(n) => Some(n),
    };
    let nofile = limits.max_open_files;
    Ok((value(nofile.soft_limit), value(nofile.hard_limit)))
}

/// The process name: `comm`, else the name in `stat` (between the first `(` and the last
/// `)`), else `?`; control characters are shown by the report's escaping.
fn name(dir: &ReadDir<'_>) -> Result<String, Skip> {
    let read = |file: &str| {
        dir.read(file, fs::MAX_SMALL)
            .map_err(|e| Skip::Malformed(e.to_string()))
    };
    if let Some(bytes) = read("comm")? {
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        if !text.is_empty() {
            return Ok(text.chars().take(64).collect());
        }
    }
    if let Some(bytes) = read("stat")? {
        let text = String::from_utf8_lossy(&bytes);
        if let (Some(a), Some(b)) = (text.find('('), text.rfind(')'))
            && a < b
        {
            return Ok(text[a + 1..b].chars().take(64).collect());
        }
    }
    Ok("?".into())
}

fn cmdline(dir: &ReadDir<'_>) -> Result<String, Skip> {
    let bytes = dir
        .read("cmdline", fs::MAX_SMALL)
        .map_err(|e| Skip::Malformed(e.to_string()))?
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let joined = text.trim_end_matches('\0').replace('\0', " ");
    Ok(joined.chars().take(CMDLINE_MAX).collect())
}

fn errno_skip(e: Errno, shown: &std::path::Path) -> Skip {
    match e {
        Errno::ENOENT | Errno::ESRCH => Skip::Exited,
        Errno::EACCES | Errno::EPERM => Skip::Denied,
        e => Skip::Malformed(format!("{}: {}", shown.display(), errno_text(e))),
    }
}

/// Read one process. `budget`: descriptors it may still read.
fn read_one(root: &Root, pid: u32, budget: &mut u64) -> Result<ProcessRead, Skip> {
    let inside = format!("/proc/{pid}");
    // On the live /proc a file that vanishes is a process that exited; in a tree of files
    // it is a process directory missing a file.
    let missing = |dir: &ReadDir<'_>, name: &str| {
        if root.is_host() {
            Skip::Exited
        } else {
            Skip::Malformed(format!("{}: no such file", dir.shown(name).display()))
        }
    };
    let dir = match root.open_dir(&inside) {
        Ok(Some(d)) => d,
        Ok(None) => return Err(Skip::Exited),
        Err(e) => return Err(Skip::Malformed(e.to_string())),
    };
    let comm = name(&dir)?;
    let limits = match dir.read("limits", fs::MAX_SMALL) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(missing(&dir, "limits")),
        Err(e) => return Err(Skip::Malformed(e.to_string())),
    };
    let (nofile_soft, nofile_hard) = match std::str::from_utf8(&limits) {
        Ok(text) => parse_nofile(text)
            .map_err(|e| Skip::Malformed(format!("{}: {e}", dir.shown("limits").display())))?,
        Err(_) => {
            return Err(Skip::Malformed(format!(
                "{}: not UTF-8 text",
                dir.shown("limits").display()
            )));
        }
    };
    let cmdline = cmdline(&dir)?;
    let fd_dir = match dir.open_dir("fd") {
        Ok(Some(d)) => d,
        Ok(None) => return Err(missing(&dir, "fd")),
        Err(e) => return Err(Skip::Malformed(e.to_string())),
    };
    let mut p = ProcessRead {
        pid,
        comm,
        cmdline,
        nofile_soft,
        nofile_hard,
        ..ProcessRead::default()
    };
    let mut bad: Option<(String, Errno)> = None;
    let cap = usize::try_from(*budget).unwrap_or(usize::MAX);
    let more = fd_dir
        .each_name(cap, |name| {
            if bad.is_some() {
                return;
            }
            p.fds += 1;
            match fd_dir.read_link(name) {
                Ok(target) => {
                    if let Some(inode) = socket_inode(&target) {
                        p.sockets.push(inode);
                    }
                }
                // closed between the listing and the readlink: not open any more
                Err(Errno::ENOENT) => p.fds -= 1,
                Err(e) => bad = Some((name.to_string_lossy().into_owned(), e)),
            }
        })
        .map_err(|e| errno_skip(e, &fd_dir.shown("")))?;
    if let Some((name, e)) = bad {
        let shown = fd_dir.shown(&name);
        return Err(match e {
            Errno::EINVAL => Skip::Malformed(format!(
                "{}: not a symlink (the kernel's fd entries are links such as socket:[12345])",
                shown.display()
            )),
            e => errno_skip(e, &shown),
        });
    }
    *budget = budget.saturating_sub(p.fds);
    p.fds_capped = more;
    Ok(p)
}

/// Read every process under `root` (see the module's documentation for the bounds).
pub fn scan(root: &Root) -> ProcessScan {
    scan_with(root, MAX_FDS)
}

/// [`scan`] reading at most `max_fds` descriptors.
fn scan_with(root: &Root, max_fds: u64) -> ProcessScan {
    let mut out = ProcessScan::default();
    let proc_dir = match root.open_dir("/proc") {
        Ok(Some(d)) => d,
        Ok(None) => return out,
        Err(e) => {
            out.note(e.to_string());
            return out;
        }
    };
    let mut pids = Vec::new();
    // /proc also holds some 60 other names; a tree with millions is cut short
    let listed = proc_dir.each_name(MAX_PROCESSES + 4096, |name| {
        if let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok())
            && !name.as_encoded_bytes().starts_with(b"0")
        {
            pids.push(pid);
        }
    });
    let more = match listed {
        Ok(more) => more,
        Err(e) => {
            out.note(format!("{}: {}", proc_dir.shown("").display(), errno_text(e)));
            return out;
        }
    };
    pids.sort_unstable();
    if more || pids.len() > MAX_PROCESSES {
        pids.truncate(MAX_PROCESSES);
        out.capped = Some(format!(
            "more than {MAX_PROCESSES} entries in {}: the rest were not read",
            proc_dir.shown("").display()
        ));
    }
    out.found = pids.len() as u64;
    let mut budget = max_fds;
    for pid in pids {
        if budget == 0 {
            out.capped.get_or_insert(format!(
                "{max_fds} descriptors read: processes from PID {pid} on were not read"
            ));
            break;
        }
        match read_one(root, pid, &mut budget) {
            Ok(p) => {
                out.read += 1;
                out.fds_read += p.fds;
                if p.fds_capped {
                    out.capped.get_or_insert(format!(
                        "{max_fds} descriptors read: PID {pid} has more than the {} counted",
                        p.fds
                    ));
                }
                out.processes.push(p);
            }
            Err(Skip::Exited) => out.exited += 1,
            Err(Skip::Denied) => out.denied += 1,
            Err(Skip::Malformed(why)) => {
                out.malformed += 1;
                out.note(format!("PID {pid} skipped: {why}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max file size             unlimited            unlimited            bytes     \n\
Max data size             unlimited            unlimited            bytes     \n\
Max stack size            8388608              unlimited            bytes     \n\
Max core file size        0                    unlimited            bytes     \n\
Max resident set          unlimited            unlimited            bytes     \n\
Max processes             63354                63354                processes \n\
Max open files            1024                 524288               files     \n\
Max locked memory         8388608              8388608              bytes     \n\
Max address space         unlimited            unlimited            bytes     \n\
Max file locks            unlimited            unlimited            locks     \n\
Max pending signals       63354                63354                signals   \n\
Max msgqueue size         819200               819200               bytes     \n\
Max nice priority         0                    0                    \n\
Max realtime priority     0                    0                    \n\
Max realtime timeout      unlimited            unlimited            us        \n";

    #[test]
    fn nofile_of_the_kernels_limits() {
        assert_eq!(parse_nofile(LIMITS), Ok((Some(1024), Some(524288))));
        let unlimited = LIMITS.replace(
            "Max open files            1024                 524288",
            "Max open files            unlimited            unlimited",
        );
        assert_eq!(parse_nofile(&unlimited), Ok((None, None)));
    }

    #[test]
    fn malformed_limits_are_errors_not_panics() {
        for (text, want) in [
            ("", "line 1: expected the header"),
            ("garbage\n", "line 1: expected the header"),
            ("Limit\nMax\n", "line 2: expected \"Max NAME SOFT HARD UNITS\""),
            ("Limit\nMax open files\n", "line 2:"),
            (
                "Limit\nMax nice priority 0\n",
                "line 2: expected \"Max NAME SOFT HARD\"",
            ),
            ("Limit\n\n", "line 2:"),
            ("Limit\nMax open files 10 20 files\n", "a limit is missing"),
        ] {
            let e = parse_nofile(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let bad = LIMITS.replace("1024                 524288", "lots                 524288");
        let e = parse_nofile(&bad).unwrap_err();
        assert!(e.contains("lots"), "{e}");
    }

    /// A tree with processes as make-doctor-fixtures.sh writes them.
    fn tree(pids: &[(u32, usize)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for &(pid, sockets) in pids {
            let p = dir.path().join(format!("proc/{pid}"));
            std::fs::create_dir_all(p.join("fd")).unwrap();
            std::fs::write(p.join("comm"), format!("p{pid}\n")).unwrap();
            std::fs::write(p.join("limits"), LIMITS).unwrap();
            std::os::unix::fs::symlink("/dev/null", p.join("fd/0")).unwrap();
            for i in 0..sockets {
                std::os::unix::fs::symlink(format!("socket:[{}]", 100 + i), p.join(format!("fd/{}", i + 1)))
                    .unwrap();
            }
        }
        dir
    }

    #[test]
    fn a_tree_read_whole_and_capped() {
        let dir = tree(&[(10, 3), (20, 50), (30, 1)]);
        let root = Root::open(dir.path()).unwrap();
        let s = scan(&root);
        assert_eq!((s.found, s.read, s.fds_read, s.capped.clone()), (3, 3, 57, None));
        let p = &s.processes[1];
        assert_eq!(
            (p.pid, p.comm.as_str(), p.fds, p.sockets.len()),
            (20, "p20", 51, 50)
        );
        assert_eq!((p.nofile_soft, p.nofile_hard), (Some(1024), Some(524288)));
        // 30 descriptors: PID 10 whole (4), PID 20 cut at 26, PID 30 not read
        let s = scan_with(&root, 30);
        assert_eq!(s.read, 2);
        assert!(s.processes[1].fds_capped);
        assert_eq!(s.processes[1].fds, 26);
        assert_eq!(
            s.capped.as_deref(),
            Some("30 descriptors read: PID 20 has more than the 26 counted")
        );
    }

    #[test]
    fn a_process_that_exited_is_skipped() {
        let root = Root::open(std::path::Path::new("/")).unwrap();
        let me = read_one(&root, std::process::id(), &mut 1_000_000).unwrap();
        assert!(me.fds >= 3, "{me:?}");
        assert!(me.nofile_soft.is_some());
        // reaped: its /proc/PID is gone
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(matches!(read_one(&root, pid, &mut 1_000_000), Err(Skip::Exited)));
        // a zombie (exited, not reaped): no descriptors left, read whole
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        child.kill().unwrap(); // SIGKILL, not waited for
        let stat = format!("/proc/{pid}/stat");
        for _ in 0..500 {
            if std::fs::read_to_string(&stat).is_ok_and(|s| s.contains(") Z ")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        match read_one(&root, pid, &mut 1_000_000) {
            Ok(z) => assert_eq!(z.fds, 0, "{z:?}"),
            Err(Skip::Exited) => {}
            Err(e) => panic!("a zombie: {e:?}"),
        }
        child.wait().unwrap();
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(OsStr::new("socket:[20054]")), Some(20054));
        assert_eq!(socket_inode(OsStr::new("/dev/null")), None);
        assert_eq!(socket_inode(OsStr::new("anon_inode:[eventpoll]")), None);
        assert_eq!(socket_inode(OsStr::new("pipe:[1]")), None);
        assert_eq!(socket_inode(OsStr::new("socket:[x]")), None);
        assert_eq!(socket_inode(OsStr::new("socket:")), None);
        assert_eq!(socket_inode(OsStr::new("socket:[99999999999999999999999]")), None);
    }
}
