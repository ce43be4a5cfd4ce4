//! The one way to the files under a root. Every read and write of sysctune (host facts,
//! sysctl.d, the drop-in, the state directory, live values) goes through here.
//!
//! A path is walked one component at a time with directory file descriptors
//! (`openat(O_NOFOLLOW | O_DIRECTORY)` relative to the directory before it), and files are
//! opened, written, renamed and removed relative to the directory's descriptor. Nothing is
//! ever resolved by the kernel from a path string, so swapping a directory for a symlink
//! between a check and a write cannot redirect the write.
//!
//! Two policies:
//! - **Reading** ([`Root::read`], [`Root::lookup`], [`Root::list`]) follows symlinks as if
//!   the root were `/`, the way the image itself sees them: an absolute target restarts at
//!   the root, `..` stops there (like `openat2(RESOLVE_IN_ROOT)`, done by hand so it works on
//!   every kernel). `/lib -> usr/lib` in an image resolves inside the image.
//! - **Writing** ([`Root::dir`]) follows no symlink at all: every directory on the way must
//!   be a real directory, and the file written must not be a symlink.
//!
//! Only regular files are read (a FIFO would hang every command, a device never end), and
//! at most a stated number of bytes. Under a root other than the machine's `/`, nothing on
//! procfs is read or written (an image's `proc` mounted, or bind-mounted from the live
//! `/proc`, would read or write the live kernel), nor the machine's own `/`.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::sys::statfs::{PROC_SUPER_MAGIC, SYSFS_MAGIC, fstatfs};
use nix::unistd::{UnlinkatFlags, fsync, unlinkat};

use crate::error::{Error, Result};

/// At most this much of a small host file: meminfo, sockstat, a /proc/sys value.
pub const MAX_SMALL: u64 = 1 << 20;
/// At most this much of a configuration file: a sysctl.d file, a profile, the drop-in, a
/// rollback record.
pub const MAX_CONFIG: u64 = 16 << 20;
/// At most this much of a snapshot document (a fleet host with many sysctl.d files).
pub const MAX_SNAPSHOT: u64 = 256 << 20;
/// Symlinks followed in one lookup, as the kernel's limit (`MAXSYMLINKS`).
const MAX_HOPS: u32 = 40;

/// The root of a host's filesystem, held open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// The root is this machine's own `/`.
    host: bool,
    /// `(st_dev, st_ino)` of this machine's `/`, never entered under another root.
    host_id: Option<(u64, u64)>,
}

/// What a name resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    File,
    Dir,
    CharDevice,
    /// A FIFO, socket or block device.
    Other(&'static str),
}

/// A path looked up under the root (symlinks followed inside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// It exists: what it is, and its resolved path inside the root.
    Found { inside: String, node: Node },
    /// A component does not exist (or is not a directory); the path it would have.
    Missing { inside: String },
}

fn id(st: &FileStat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

fn node_of(st: &FileStat) -> Node {
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => Node::File,
        SFlag::S_IFDIR => Node::Dir,
        SFlag::S_IFCHR => Node::CharDevice,
        SFlag::S_IFIFO => Node::Other("a FIFO (named pipe)"),
        SFlag::S_IFSOCK => Node::Other("a socket"),
        SFlag::S_IFBLK => Node::Other("a block device"),
        SFlag::S_IFLNK => Node::Other("a symlink"),
        _ => Node::Other("not a regular file"),
    }
}

fn describe(node: Node) -> &'static str {
    match node {
        Node::File => "a regular file",
        Node::Dir => "a directory",
        Node::CharDevice => "a character device",
        Node::Other(what) => what,
    }
}

fn is_symlink(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
}

/// The plain reason of an errno, as operators read it.
pub fn errno_text(e: Errno) -> String {
    match e {
        Errno::ENOENT => "no such file".into(),
        Errno::EACCES | Errno::EPERM => "permission denied".into(),
        other => other.desc().to_string(),
    }
}

/// Components of a path as given: `.` and empty ones dropped, `..` kept for the walk.
fn parts(path: &OsStr) -> VecDeque<OsString> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

fn join_inside(names: &[OsString]) -> String {
    if names.is_empty() {
        return "/".into();
    }
    let mut s = String::new();
    for n in names {
        s.push('/');
        s.push_str(&n.to_string_lossy());
    }
    s
}

/// The directories opened so far below the root: a stack, so `..` pops one (and stops at
/// the root) without ever asking the kernel for `..`.
struct Walk<'r> {
    root: &'r Root,
    dirs: Vec<OwnedFd>,
    names: Vec<OsString>,
}

impl<'r> Walk<'r> {
    fn new(root: &'r Root) -> Self {
        Walk {
            root,
            dirs: Vec::new(),
            names: Vec::new(),
        }
    }
    fn cur(&self) -> BorrowedFd<'_> {
        self.dirs.last().map_or(self.root.fd.as_fd(), |d| d.as_fd())
    }
    fn inside(&self) -> String {
        join_inside(&self.names)
    }
    fn inside_with(&self, name: &OsStr) -> String {
        let mut n = self.names.clone();
        n.push(name.to_os_string());
        join_inside(&n)
    }
    fn pop(&mut self) {
        self.dirs.pop();
        self.names.pop();
    }
    fn reset(&mut self) {
        self.dirs.clear();
        self.names.clear();
    }
}

/// How a walk ends.
enum Walked<'r> {
    /// Every component was a directory; the walk holds the last one.
    Dir(Walk<'r>),
    /// The last component is not a directory: its directory, name and status.
    Entry(Walk<'r>, OsString, FileStat),
    /// A component is missing; the path inside the root it would have.
    Missing(String),
}

/// How a walk treats symlinks and missing directories.
#[derive(Clone, Copy)]
struct Policy {
    follow: bool,
    /// Create missing directories with this mode (writing only).
    create: Option<u32>,
}

/// Reading: symlinks followed inside the root, nothing created.
const READING: Policy = Policy {
    follow: true,
    create: None,
};

impl Root {
    /// Open `path` as the root. `/` (by identity, not by name) is this machine's own root.
    pub fn open(path: &Path) -> Result<Root> {
        let bad = |what: String| {
            Error::input(format!(
                "--root {}: {what}; give the root of a host's filesystem (default /)",
                path.display()
            ))
        };
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOTDIR => bad("not a directory".into()),
            Errno::ENOENT => bad("no such directory".into()),
            e => bad(errno_text(e)),
        })?;
        let st = fstat(&fd).map_err(|e| bad(errno_text(e)))?;
        let host_id = nix::sys::stat::stat("/").ok().map(|s| id(&s));
        let host = host_id == Some(id(&st));
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            host,
            host_id,
        })
    }

    /// The root as given on the command line.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the root is this machine's own `/` (live values are the kernel's).
    pub fn is_host(&self) -> bool {
        self.host
    }

    /// Where `inside` is on this machine, for messages.
    pub fn shown(&self, inside: &str) -> PathBuf {
        self.path.join(inside.trim_start_matches('/'))
    }

    /// Refuse what a root other than `/` must never reach: procfs or sysfs (the live
    /// kernel's), and this machine's own `/` (a bind mount or a loop in an image).
    fn check_fd(&self, fd: BorrowedFd<'_>, inside: &str) -> Result<()> {
        if self.host {
            return Ok(());
        }
        if let Ok(fs) = fstatfs(fd)
            && (fs.filesystem_type() == PROC_SUPER_MAGIC || fs.filesystem_type() == SYSFS_MAGIC)
        {
            return Err(Error::host(
                &self.shown(inside),
                format!(
                    "is on the live kernel's {} under --root {}; refusing to read or write the running kernel through \
                     an image (give a tree of plain files, e.g. one made with `sysctune snapshot`, or --root /)",
                    if fs.filesystem_type() == PROC_SUPER_MAGIC {
                        "procfs"
                    } else {
                        "sysfs"
                    },
                    self.path.display()
                ),
            ));
        }
        if let (Some(host), Ok(st)) = (self.host_id, fstat(fd))
            && id(&st) == host
        {
            return Err(Error::host(
                &self.shown(inside),
                format!(
                    "is this machine's own / (a bind mount or a loop), under --root {}; refusing to leave the root",
                    self.path.display()
                ),
            ));
        }
        Ok(())
    }

    fn err(&self, inside: &str, e: Errno) -> Error {
        Error::host(&self.shown(inside), errno_text(e))
    }

    /// Walk `inside` under the policy.
    fn walk(&self, inside: &str, policy: Policy) -> Result<Walked<'_>> {
        let mut pending = parts(OsStr::new(inside));
        let mut w = Walk::new(self);
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            if c == ".." {
                w.pop();
                continue;
            }
            let st = match fstatat(w.cur(), c.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::ENOENT) if !pending.is_empty() || policy.create.is_some() => {
                    let Some(mode) = policy.create else {
                        let mut rest = w.names.clone();
                        rest.push(c);
                        rest.extend(pending);
                        return Ok(Walked::Missing(join_inside(&rest)));
                    };
                    match mkdirat(w.cur(), c.as_os_str(), Mode::from_bits_truncate(mode)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(Error::Write(format!(
                                "{}: creating the directory: {}",
                                self.shown(&w.inside_with(&c)).display(),
                                errno_text(e)
                            )));
                        }
                    }
                    pending.push_front(c);
                    continue;
                }
                Err(Errno::ENOENT) => return Ok(Walked::Missing(w.inside_with(&c))),
                Err(e) => return Err(self.err(&w.inside_with(&c), e)),
            };
            if is_symlink(&st) {
                if !policy.follow {
                    return Err(Error::Write(format!(
                        "{}: is a symlink; refusing to write through it (sysctune writes only real directories and \
                         files under the root)",
                        self.shown(&w.inside_with(&c)).display()
                    )));
                }
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(Error::host(
                        &self.shown(inside),
                        "too many levels of symbolic links (a loop?)",
                    ));
                }
                let target =
                    readlinkat(w.cur(), c.as_os_str()).map_err(|e| self.err(&w.inside_with(&c), e))?;
                if target.as_bytes().starts_with(b"/") {
                    w.reset();
                }
                let mut next = parts(&target);
                next.extend(pending);
                pending = next;
                continue;
            }
            if node_of(&st) != Node::Dir {
                if pending.is_empty() {
                    return Ok(Walked::Entry(w, c, st));
                }
                if policy.create.is_some() {
                    return Err(Error::Write(format!(
                        "{}: is {}, not a directory",
                        self.shown(&w.inside_with(&c)).display(),
                        describe(node_of(&st))
                    )));
                }
                // A file where a directory is needed: the path does not exist.
                let mut rest = w.names.clone();
                rest.push(c);
                rest.extend(pending);
                return Ok(Walked::Missing(join_inside(&rest)));
            }
            let fd = openat(
                w.cur(),
                c.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                Errno::ELOOP | Errno::ENOTDIR => Error::host(
                    &self.shown(&w.inside_with(&c)),
                    "changed while it was being read (a directory replaced by a symlink?); nothing was done through it",
                ),
                e => self.err(&w.inside_with(&c), e),
            })?;
            let here = w.inside_with(&c);
            self.check_fd(fd.as_fd(), &here)?;
            w.dirs.push(fd);
            w.names.push(c);
        }
        Ok(Walked::Dir(w))
    }

    /// What `inside` resolves to, symlinks followed inside the root.
    pub fn lookup(&self, inside: &str) -> Result<Lookup> {
        Ok(match self.walk(inside, READING)? {
            Walked::Dir(w) => Lookup::Found {
                inside: w.inside(),
                node: Node::Dir,
            },
            Walked::Entry(w, name, st) => Lookup::Found {
                inside: w.inside_with(&name),
                node: node_of(&st),
            },
            Walked::Missing(inside) => Lookup::Missing { inside },
        })
    }

    /// Open the regular file at `inside` for reading (symlinks followed inside the root);
    /// `None` when it does not exist. Anything but a regular file is an error naming it.
    pub fn open_file(&self, inside: &str) -> Result<Option<File>> {
        match self.walk(inside, READING)? {
            Walked::Missing(_) => Ok(None),
            Walked::Dir(w) => Err(Error::host(
                &self.shown(inside),
                format!(
                    "is a directory{}, not a file",
                    if w.inside() == inside {
                        String::new()
                    } else {
                        format!(" ({})", w.inside())
                    }
                ),
            )),
            Walked::Entry(w, name, st) => {
                let resolved = w.inside_with(&name);
                open_regular(w.cur(), &name, &st, &self.shown(inside), &resolved, inside)
                    .and_then(|f| {
                        self.check_fd(f.as_fd(), &resolved)?;
                        Ok(f)
                    })
                    .map(Some)
            }
        }
    }

    /// Read the regular file at `inside`, at most `cap` bytes; `None` when it does not exist.
    pub fn read(&self, inside: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        match self.open_file(inside)? {
            None => Ok(None),
            Some(f) => read_capped(f, cap, &self.shown(inside)).map(Some),
        }
    }

    /// Read `inside` as UTF-8 text; `None` when it does not exist.
    pub fn read_text(&self, inside: &str, cap: u64) -> Result<Option<String>> {
        match self.read(inside, cap)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| Error::host(&self.shown(inside), "not UTF-8 text")),
        }
    }

    /// The names in the directory at `inside` (symlinks followed inside the root), and
    /// the directory's resolved path; `None` when it does not exist.
    pub fn list(&self, inside: &str) -> Result<Option<(String, Vec<OsString>)>> {
        match self.walk(inside, READING)? {
            Walked::Missing(_) => Ok(None),
            Walked::Entry(_, _, st) => Err(Error::host(
                &self.shown(inside),
                format!("is {}, not a directory", describe(node_of(&st))),
            )),
            Walked::Dir(w) => {
                let names = list_fd(w.cur()).map_err(|e| self.err(inside, e))?;
                Ok(Some((w.inside(), names)))
            }
        }
    }

    /// The directory at `inside` for writing: no symlink anywhere on the way. With
    /// `create`, missing directories are made with that mode; without, `None` when missing.
    pub fn dir(&self, inside: &str, create: Option<u32>) -> Result<Option<Dir<'_>>> {
        match self.walk(
            inside,
            Policy {
                follow: false,
                create,
            },
        )? {
            Walked::Missing(_) => Ok(None),
            Walked::Entry(w, name, st) => Err(Error::Write(format!(
                "{}: is {}, not a directory",
                self.shown(&w.inside_with(&name)).display(),
                describe(node_of(&st))
            ))),
            Walked::Dir(w) => {
                let (fd, inside) = self.walked_dir(w)?;
                Ok(Some(Dir {
                    root: self,
                    fd,
                    inside,
                }))
            }
        }
    }
}

impl Root {
    /// The last directory of a walk (the root itself when the walk is empty) and its path
    /// inside the root.
    fn walked_dir(&self, mut w: Walk<'_>) -> Result<(OwnedFd, String)> {
        let inside = w.inside();
        let fd = match w.dirs.pop() {
            Some(fd) => fd,
            None => self.fd.try_clone().map_err(|e| Error::io(&self.path, &e))?,
        };
        Ok((fd, inside))
    }

    /// The directory at `inside` for reading names and links in it (symlinks on the way
    /// followed inside the root, as [`Root::list`]); `None` when it does not exist. What
    /// is read in it is read relative to its descriptor and never through a symlink: the
    /// entries of `/proc/PID/fd` are links whose targets (`socket:[INODE]`) are read with
    /// readlinkat, not followed.
    pub fn open_dir(&self, inside: &str) -> Result<Option<ReadDir<'_>>> {
        match self.walk(inside, READING)? {
            Walked::Missing(_) => Ok(None),
            Walked::Entry(_, _, st) => Err(Error::host(
                &self.shown(inside),
                format!("is {}, not a directory", describe(node_of(&st))),
            )),
            Walked::Dir(w) => {
                let (fd, inside) = self.walked_dir(w)?;
                Ok(Some(ReadDir {
                    root: self,
                    fd,
                    inside,
                }))
            }
        }
    }
}

/// A directory under the root, for reading: names listed in bounded numbers, links read
/// without following them, files read only when regular and not symlinks.
pub struct ReadDir<'r> {
    root: &'r Root,
    fd: OwnedFd,
    inside: String,
}

impl ReadDir<'_> {
    /// The directory as resolved inside the root.
    pub fn inside(&self) -> &str {
        &self.inside
    }

    /// `name` in this directory on this machine, for messages.
    pub fn shown(&self, name: &str) -> PathBuf {
        self.root
            .shown(&format!("{}/{name}", self.inside.trim_end_matches('/')))
    }

    /// Call `f` with each name (`.` and `..` left out), in directory order, at most `cap`
    /// of them; `true` when more were left. The errno is the kernel's (ENOENT or ESRCH:
    /// the process of a `/proc/PID` directory exited).
    pub fn each_name(&self, cap: usize, mut f: impl FnMut(&OsStr)) -> std::result::Result<bool, Errno> {
        let fd = openat(
            &self.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut d = nix::dir::Dir::from_fd(fd)?;
        let mut seen = 0;
        for entry in d.iter() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if seen == cap {
                return Ok(true);
            }
            seen += 1;
            f(OsStr::from_bytes(name));
        }
        Ok(false)
    }

    /// The target of the symlink `name`, not followed. EINVAL: `name` is not a symlink.
    pub fn read_link(&self, name: &OsStr) -> std::result::Result<OsString, Errno> {
        readlinkat(&self.fd, name)
    }

    /// The subdirectory `name`, never through a symlink; `None` when it does not exist.
    pub fn open_dir(&self, name: &str) -> Result<Option<ReadDir<'_>>> {
        let shown = self.shown(name);
        let fd = match openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(Error::host(&shown, "is a symlink, not a directory")),
            Err(Errno::ENOTDIR) => {
                let what = fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_or("not a directory", |st| describe(node_of(&st)));
                return Err(Error::host(&shown, format!("is {what}, not a directory")));
            }
            Err(e) => return Err(Error::host(&shown, errno_text(e))),
        };
        let inside = format!("{}/{name}", self.inside.trim_end_matches('/'));
        self.root.check_fd(fd.as_fd(), &inside)?;
        Ok(Some(ReadDir {
            root: self.root,
            fd,
            inside,
        }))
    }

    /// Read the regular file `name` (never through a symlink), at most `cap` bytes; `None`
    /// when it does not exist.
    pub fn read(&self, name: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let shown = self.shown(name);
        let st = match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::host(&shown, errno_text(e))),
        };
        if is_symlink(&st) {
            return Err(Error::host(
                &shown,
                "is a symlink; sysctune reads this file only as a regular file",
            ));
        }
        let f = open_regular(self.fd.as_fd(), OsStr::new(name), &st, &shown, name, name)?;
        read_capped(f, cap, &shown).map(Some)
    }
}

/// Open `name` in `dir`, which a stat just showed to be `st`: refused unless a regular
/// file; opened without following a symlink and without blocking (a FIFO swapped in after
/// the stat does not hang), and checked to be the same file.
fn open_regular(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    st: &FileStat,
    shown: &Path,
    resolved: &str,
    asked: &str,
) -> Result<File> {
    let via = if resolved != asked {
        format!(" ({asked} resolves to {resolved})")
    } else {
        String::new()
    };
    let node = node_of(st);
    if node != Node::File {
        return Err(Error::host(
            shown,
            format!(
                "is {}{via}, not a regular file; sysctune reads only regular files (a FIFO would hang the read, a \
                 device never end it)",
                describe(node)
            ),
        ));
    }
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::host(shown, errno_text(e)))?;
    let now = fstat(&fd).map_err(|e| Error::host(shown, errno_text(e)))?;
    if node_of(&now) != Node::File || id(&now) != id(st) {
        return Err(Error::host(
            shown,
            "changed while it was being read; nothing was read from it",
        ));
    }
    Ok(File::from(fd))
}

/// Read to the end, at most `cap` bytes.
pub fn read_capped(f: impl Read, cap: u64, shown: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(shown, &e))?;
    if buf.len() as u64 > cap {
        return Err(Error::host(
            shown,
            format!(
                "larger than {}, the most sysctune reads of such a file; is it the right file?",
                crate::units::human_bytes(u128::from(cap))
            ),
        ));
    }
    Ok(buf)
}

/// Read a file named on the command line (a profile, a snapshot): symlinks followed as
/// usual, but only a regular file, and at most `cap` bytes.
pub fn read_named(path: &Path, cap: u64) -> std::result::Result<Vec<u8>, String> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_text)?;
    let st = fstat(&fd).map_err(errno_text)?;
    let node = node_of(&st);
    if node != Node::File {
        return Err(format!("is {}, not a regular file", describe(node)));
    }
    read_capped(File::from(fd), cap, path).map_err(|e| match e {
        Error::Host { message, .. } => message,
        other => other.to_string(),
    })
}

fn list_fd(dir: BorrowedFd<'_>) -> std::result::Result<Vec<OsString>, Errno> {
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// A directory under the root, reached without following any symlink, for writing.
/// Every operation is relative to its descriptor.
pub struct Dir<'r> {
    root: &'r Root,
    fd: OwnedFd,
    inside: String,
}

/// The owner and permission bits a directory or file must have.
pub struct Ownership {
    pub uid: u32,
    pub mode: u32,
}

impl Dir<'_> {
    /// The directory as seen inside the root.
    pub fn inside(&self) -> &str {
        &self.inside
    }

    fn inside_name(&self, name: &str) -> String {
        format!("{}/{name}", self.inside.trim_end_matches('/'))
    }

    /// `name` in this directory on this machine, for messages.
    pub fn shown(&self, name: &str) -> PathBuf {
        self.root.shown(&self.inside_name(name))
    }

    fn fail(&self, name: &str, what: &str, e: Errno) -> Error {
        Error::Write(format!(
            "{}: {what}: {}",
            self.shown(name).display(),
            errno_text(e)
        ))
    }

    /// Whether this directory is on procfs (values written are the kernel's).
    pub fn is_procfs(&self) -> bool {
        fstatfs(&self.fd).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC)
    }

    /// Status of `name` without following a symlink; `None` when absent.
    fn stat(&self, name: &str) -> Result<Option<FileStat>> {
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(self.fail(name, "stat", e)),
        }
    }

    /// Refuse when `name` exists and is not a regular file (a symlink is never followed).
    fn check_replaceable(&self, name: &str) -> Result<Option<FileStat>> {
        let st = self.stat(name)?;
        if let Some(st) = &st {
            if is_symlink(st) {
                return Err(Error::Write(format!(
                    "{}: is a symlink; refusing to follow it (remove it; sysctune writes only real files)",
                    self.shown(name).display()
                )));
            }
            if node_of(st) != Node::File {
                return Err(Error::Write(format!(
                    "{}: exists and is {}, not a regular file",
                    self.shown(name).display(),
                    describe(node_of(st))
                )));
            }
        }
        Ok(st)
    }

    /// Whether `name` exists (as anything).
    pub fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.stat(name)?.is_some())
    }

    /// Read `name`, a regular file (never through a symlink), at most `cap` bytes.
    pub fn read(&self, name: &str, cap: u64) -> Result<Option<String>> {
        let shown = self.shown(name);
        let Some(st) = self.check_replaceable(name)? else {
            return Ok(None);
        };
        let f = open_regular(self.fd.as_fd(), OsStr::new(name), &st, &shown, name, name)?;
        let bytes = read_capped(f, cap, &shown)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::host(&shown, "not UTF-8 text"))
    }

    /// The temporary name of `name` for this process: hidden, never `*.conf`.
    fn temporary(name: &str) -> String {
        format!(".{name}.sysctune-tmp.{}", std::process::id())
    }

    /// Write `content` to `name` atomically: a temporary file in this directory, fsync,
    /// rename over `name`, fsync of the directory. A reader sees the old bytes or the new,
    /// whenever the process dies; a hard link to the old file is left untouched.
    pub fn write_atomic(&self, name: &str, content: &[u8], mode: u32) -> Result<()> {
        self.check_replaceable(name)?;
        let tmp = Self::temporary(name);
        let _ = unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let result = (|| {
            let fd = openat(
                &self.fd,
                tmp.as_str(),
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            )
            .map_err(|e| self.fail(name, "creating a temporary file", e))?;
            fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(|e| self.fail(name, "chmod", e))?;
            let mut f = File::from(fd);
            f.write_all(content).map_err(|e| {
                Error::Write(format!(
                    "{}: writing: {}",
                    self.shown(name).display(),
                    crate::error::describe_io(&e)
                ))
            })?;
            f.sync_all().map_err(|e| {
                Error::Write(format!(
                    "{}: fsync: {}",
                    self.shown(name).display(),
                    crate::error::describe_io(&e)
                ))
            })?;
            renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(|e| self.fail(name, "rename", e))?;
            let _ = fsync(&self.fd);
            Ok(())
        })();
        if result.is_err() {
            let _ = unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        result
    }

    /// Remove `name` (a regular file, never a symlink's target) durably; absent is fine.
    pub fn remove(&self, name: &str) -> Result<()> {
        if self.check_replaceable(name)?.is_none() {
            return Ok(());
        }
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {
                let _ = fsync(&self.fd);
                Ok(())
            }
            Err(e) => Err(self.fail(name, "removing", e)),
        }
    }

    /// Remove the temporary files killed runs left here (the caller holds the lock, so
    /// none is in use). Returns how many.
    pub fn remove_stale_temporaries(&self) -> usize {
        let Ok(names) = list_fd(self.fd.as_fd()) else {
            return 0;
        };
        let mut n = 0;
        for name in names {
            let s = name.to_string_lossy();
            if s.starts_with('.')
                && s.contains(".sysctune-tmp.")
                && self
                    .stat(&s)
                    .ok()
                    .flatten()
                    .is_some_and(|st| node_of(&st) == Node::File)
                && unlinkat(&self.fd, name.as_os_str(), UnlinkatFlags::NoRemoveDir).is_ok()
            {
                n += 1;
            }
        }
        if n > 0 {
            let _ = fsync(&self.fd);
        }
        n
    }

    /// Open the existing regular file `name` for writing in place (a procfs value: one
    /// write at offset 0 is the kernel's interface). Never through a symlink, never blocks.
    pub fn open_write(&self, name: &str) -> std::result::Result<File, Errno> {
        let st = fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if node_of(&st) != Node::File {
            return Err(Errno::EINVAL);
        }
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let now = fstat(&fd)?;
        if node_of(&now) != Node::File || id(&now) != id(&st) {
            return Err(Errno::EINVAL);
        }
        Ok(File::from(fd))
    }

    /// Open `name` for reading in place (read-back after a procfs write).
    pub fn open_read(&self, name: &str) -> Result<File> {
        let shown = self.shown(name);
        let st = self
            .check_replaceable(name)?
            .ok_or_else(|| Error::host(&shown, "no such file"))?;
        open_regular(self.fd.as_fd(), OsStr::new(name), &st, &shown, name, name)
    }

    /// Check that this directory is owned by `want.uid` and has no permission bits beyond
    /// `want.mode`; tighten the mode when only read or search bits are extra (an earlier
    /// version made it 0755). Anything writable by others, or owned by another user, is
    /// refused: somebody else could plant or swap what sysctune reads back as its own.
    pub fn secure(&self, want: &Ownership) -> Result<()> {
        let st = fstat(&self.fd).map_err(|e| self.fail(".", "stat", e))?;
        let shown = self.root.shown(&self.inside);
        if st.st_uid != want.uid {
            return Err(Error::Write(format!(
                "{}: owned by uid {}, not by uid {} (who runs sysctune); refusing to keep state or a lock in a \
                 directory another user controls (remove it, or give another --state-dir)",
                shown.display(),
                st.st_uid,
                want.uid
            )));
        }
        let perms = st.st_mode & 0o7777;
        if perms & 0o022 != 0 {
            return Err(Error::Write(format!(
                "{}: mode {perms:04o} lets other users write in it; refusing to keep state or a lock there (chmod \
                 {:04o} it, or give another --state-dir)",
                shown.display(),
                want.mode
            )));
        }
        if perms != want.mode {
            fchmod(&self.fd, Mode::from_bits_truncate(want.mode)).map_err(|e| self.fail(".", "chmod", e))?;
        }
        Ok(())
    }

    /// Open (or create, mode 0600) the lock file `name`: a regular file with one link,
    /// owned by `uid`. A hard link (another file's content) or a file another user made is
    /// refused before anything is written to it.
    pub fn open_lock(&self, name: &str, uid: u32) -> Result<File> {
        self.check_replaceable(name)?;
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.fail(name, "opening the lock", e))?;
        let st = fstat(&fd).map_err(|e| self.fail(name, "stat", e))?;
        let shown = self.shown(name);
        if node_of(&st) != Node::File {
            return Err(Error::Write(format!(
                "{}: the lock is not a regular file",
                shown.display()
            )));
        }
        if st.st_nlink != 1 {
            return Err(Error::Write(format!(
                "{}: the lock file has {} hard links; refusing to use it (a hard link would let sysctune truncate \
                 another file). Remove it; sysctune makes a new one",
                shown.display(),
                st.st_nlink
            )));
        }
        if st.st_uid != uid {
            return Err(Error::Write(format!(
                "{}: the lock file is owned by uid {}, not uid {uid}; refusing a lock another user can hold",
                shown.display(),
                st.st_uid
            )));
        }
        Ok(File::from(fd))
    }
}

#[cfg(test)]
mod tests;
