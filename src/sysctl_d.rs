//! sysctl.d precedence: which file sets each key at boot, as systemd-sysctl decides it,
//! and where procps `sysctl --system` decides differently.
//!
//! systemd-sysctl reads every `*.conf` in [`DIRS`], sorted by file name across the
//! directories; for one name the first directory in that list wins and the others are
//! overridden; a symlink to /dev/null takes the name and applies nothing (a mask). Within
//! the files, in that order, a later assignment of a key wins; a glob key applies only to
//! keys that no plain assignment names (wherever it is); `-key` alone drops the key from
//! the globs and cancels an earlier assignment. procps `sysctl --system` reads the same
//! files, then `/etc/sysctl.conf`, writes every line in order, and lets `-key` only keep
//! the key out of globs.
//!
//! Everything here is pure, tested with plain values; `host::sysctl_d::read` reads the
//! files of a root into a [`SysctlD`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::dropin::{self, Parsed};

/// The directories systemd-sysctl and procps read, in precedence order.
pub const DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// Read last by procps `sysctl --system`; never by systemd-sysctl.
pub const SYSCTL_CONF: &str = "/etc/sysctl.conf";

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A regular file, or a symlink to one.
    File,
    /// A symlink to /dev/null: masks the name.
    Mask,
    /// A symlink to nothing: takes the name, applies nothing.
    Dangling,
    /// A directory or another non-file: takes the name; systemd-sysctl fails to read it.
    Other,
}

/// One entry of a sysctl.d directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The directory as seen inside the root (`/etc/sysctl.d`).
    pub dir: String,
    pub name: String,
    pub kind: Kind,
}

impl Listed {
    pub fn new(dir: &str, name: &str, kind: Kind) -> Self {
        Listed {
            dir: dir.to_string(),
            name: name.to_string(),
            kind,
        }
    }
}

/// A `*.conf` file in the order systemd-sysctl considers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfFile {
    /// As seen inside the root: `/etc/sysctl.d/10-a.conf`.
    pub path: String,
    pub dir: String,
    pub name: String,
    pub kind: Kind,
    /// The file of the same name in an earlier directory that is read instead.
    pub overridden_by: Option<String>,
}

impl ConfFile {
    /// Read at boot: a file that no earlier directory overrides.
    pub fn applied(&self) -> bool {
        self.kind == Kind::File && self.overridden_by.is_none()
    }

    /// Decides its name (applied, mask, or unusable), as systemd-analyze cat-config lists.
    pub fn winner(&self) -> bool {
        self.overridden_by.is_none()
    }
}

/// `dir/name`.
pub fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// The names systemd-sysctl considers: `*.conf`, not hidden.
pub fn is_conf_name(name: &str) -> bool {
    name.ends_with(".conf") && !name.starts_with('.')
}

fn dir_rank(dir: &str) -> usize {
    DIRS.iter().position(|d| *d == dir).unwrap_or(DIRS.len())
}

/// Every `*.conf` of the listing sorted by name (byte order, as strcmp) and, for one name,
/// by directory precedence; all but the first of a name are overridden by it.
pub fn order(listing: &[Listed]) -> Vec<ConfFile> {
    let mut items: Vec<&Listed> = listing.iter().filter(|l| is_conf_name(&l.name)).collect();
    items.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(dir_rank(&a.dir).cmp(&dir_rank(&b.dir)))
            .then(a.dir.cmp(&b.dir))
    });
    let mut out: Vec<ConfFile> = Vec::with_capacity(items.len());
    let mut winner: Option<(String, String)> = None;
    for l in items {
        let path = join(&l.dir, &l.name);
        let overridden_by = match &winner {
            Some((name, by)) if *name == l.name => Some(by.clone()),
            _ => {
                winner = Some((l.name.clone(), path.clone()));
                None
            }
        };
        out.push(ConfFile {
            path,
            dir: l.dir.clone(),
            name: l.name.clone(),
            kind: l.kind,
            overridden_by,
        });
    }
    out
}

/// Which tool's rules decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// systemd-sysctl: options in an ordered map; an assignment that repeats a key's value
    /// keeps its place; `-key` cancels an earlier assignment.
    Systemd,
    /// procps `sysctl --system`: every line in order; `-key` only affects globs.
    Procps,
}

/// One assignment of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub value: String,
    pub file: String,
    pub line: usize,
    /// The glob of the line when it is one (`net.ipv4.conf.*.rp_filter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
}

impl Assignment {
    /// `file:line`.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
}

/// Where a key's boot value comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The assignment that is in effect after the files are applied; `None` when no file
    /// sets the key (or a negative match drops it).
    pub boot: Option<Assignment>,
    /// The other assignments of the key, in apply order: all lose to `boot`.
    pub shadowed: Vec<Assignment>,
    /// The `-key` line that leaves the key unset (systemd-sysctl) or out of globs.
    pub excluded: Option<Location>,
}

enum Op<'a> {
    Set {
        key: &'a str,
        glob: bool,
        value: &'a str,
        file: &'a str,
        line: usize,
    },
    Exclude {
        key: &'a str,
        file: &'a str,
        line: usize,
    },
}

impl Op<'_> {
    fn assignment(&self) -> Option<Assignment> {
        match self {
            Op::Set {
                key,
                glob,
                value,
                file,
                line,
            } => Some(Assignment {
                value: value.to_string(),
                file: file.to_string(),
                line: *line,
                glob: glob.then(|| key.to_string()),
            }),
            Op::Exclude { .. } => None,
        }
    }
}

fn ops<'a>(files: &[(&'a str, &'a Parsed)]) -> Vec<Op<'a>> {
    let mut out = Vec::new();
    for (file, parsed) in files {
        let mut file_ops: Vec<(usize, Op<'a>)> = parsed
            .entries
            .iter()
            .map(|e| {
                (
                    e.line,
                    Op::Set {
                        key: &e.key,
                        glob: e.glob,
                        value: &e.value,
                        file,
                        line: e.line,
                    },
                )
            })
            .chain(parsed.excluded.iter().map(|x| {
                (
                    x.line,
                    Op::Exclude {
                        key: &x.key,
                        file,
                        line: x.line,
                    },
                )
            }))
            .collect();
        file_ops.sort_by_key(|(line, _)| *line);
        out.extend(file_ops.into_iter().map(|(_, op)| op));
    }
    out
}

/// A key or glob in the slashed form the tools glob on (`net/ipv4/conf/*/rp_filter`): when
/// the first separator is a dot, dots and slashes swap.
fn path_form(key: &str) -> String {
    match key.find(['.', '/']).map(|i| key.as_bytes()[i]) {
        Some(b'.') => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// How a glob line matches keys: like glob(3) on /proc/sys, a `*` does not cross a
/// separator.
const GLOB_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Whether a glob line's key is a pattern the tools accept (one that is not matches no
/// key).
pub fn is_valid_glob(pattern: &str) -> bool {
    glob::Pattern::new(&path_form(pattern)).is_ok()
}

/// Whether a glob line applies to `key` (canonical dotted).
pub fn glob_matches(pattern: &str, key: &str) -> bool {
    glob::Pattern::new(&path_form(pattern)).is_ok_and(|p| p.matches_with(&path_form(key), GLOB_OPTIONS))
}

/// The origin of each of `keys` after applying `files` (path, parsed content) in order.
///
/// Linear in the lines and the keys (plus keys × glob lines): a profile pins thousands of
/// keys and a host can have thousands of files, so no key scans every line.
pub fn resolve(files: &[(&str, &Parsed)], keys: &[String], mode: Mode) -> BTreeMap<String, Origin> {
    let ops = ops(files);
    // The plain lines of each wanted key, in apply order; the globs compiled once.
    let mut explicit: HashMap<&str, Vec<usize>> = keys.iter().map(|k| (k.as_str(), Vec::new())).collect();
    let mut globs: Vec<(usize, glob::Pattern)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Set { key, glob: true, .. } => {
                // An invalid glob matches nothing (and is a note of the file).
                if let Ok(p) = glob::Pattern::new(&path_form(key)) {
                    globs.push((i, p));
                }
            }
            Op::Set { key, .. } | Op::Exclude { key, .. } => {
                if let Some(list) = explicit.get_mut(key) {
                    list.push(i);
                }
            }
        }
    }
    keys.iter()
        .map(|k| {
            let path = path_form(k);
            let matching: Vec<usize> = globs
                .iter()
                .filter(|(_, p)| p.matches_with(&path, GLOB_OPTIONS))
                .map(|(i, _)| *i)
                .collect();
            let lines = explicit.get(k.as_str()).cloned().unwrap_or_default();
            (k.clone(), resolve_key(&ops, lines, matching, mode))
        })
        .collect()
}

/// `explicit`: the indices of the plain lines of the key; `globs`: of the glob lines that
/// match it; both in apply order.
fn resolve_key(ops: &[Op], explicit: Vec<usize>, globs: Vec<usize>, mode: Mode) -> Origin {
    let exclusion = |i: usize| match &ops[i] {
        Op::Exclude { file, line, .. } => Some(Location {
            file: file.to_string(),
            line: *line,
        }),
        Op::Set { .. } => None,
    };
    let last_set = explicit
        .iter()
        .rev()
        .find(|&&i| matches!(ops[i], Op::Set { .. }))
        .copied();
    let last_exclude = explicit.iter().rev().find(|&&i| exclusion(i).is_some()).copied();

    let (winner, excluded): (Option<usize>, Option<Location>) = match mode {
        Mode::Systemd => match explicit.last() {
            Some(&i) if exclusion(i).is_some() => (None, exclusion(i)),
            Some(&i) => (Some(i), None),
            None => (systemd_glob_winner(ops, &globs), None),
        },
        Mode::Procps => match (last_set, last_exclude) {
            (Some(i), _) => (Some(i), None),
            (None, Some(x)) => (None, exclusion(x)),
            (None, None) => (globs.last().copied(), None),
        },
    };
    let mut all: Vec<usize> = explicit.into_iter().chain(globs).collect();
    all.sort_unstable();
    Origin {
        boot: winner.and_then(|i| ops[i].assignment()),
        shadowed: all
            .into_iter()
            .filter(|&i| Some(i) != winner)
            .filter_map(|i| ops[i].assignment())
            .collect(),
        excluded,
    }
}

/// systemd-sysctl keeps its options in an ordered map keyed by the line's normalised key
/// (`net.ipv4.conf.*.rp_filter` and `net/ipv4/conf/*/rp_filter` are one): a new value
/// moves the key to the end, a repeated value keeps its place. Globs are applied in that
/// order, so the last glob in the map wins; its latest line is the one shown.
fn systemd_glob_winner(ops: &[Op], globs: &[usize]) -> Option<usize> {
    // normalised pattern → (value, latest op index, place in the map: higher is later)
    let mut map: HashMap<String, (&str, usize, usize)> = HashMap::new();
    for (place, &i) in globs.iter().enumerate() {
        let Op::Set { key, value, .. } = &ops[i] else {
            continue;
        };
        match map.get_mut(&path_form(key)) {
            Some(entry) if entry.0 == *value => entry.1 = i,
            // A new value moves the pattern to the end.
            Some(entry) => *entry = (value, i, place),
            None => {
                map.insert(path_form(key), (value, i, place));
            }
        }
    }
    map.values()
        .max_by_key(|(_, _, place)| *place)
        .map(|(_, i, _)| *i)
}

/// Whether two values are the same to the kernel: the same fields, numbers compared as
/// numbers (`01` = `1`).
pub fn same_value(a: &str, b: &str) -> bool {
    let fa: Vec<&str> = a.split_whitespace().collect();
    let fb: Vec<&str> = b.split_whitespace().collect();
    fa.len() == fb.len()
        && fa.iter().zip(&fb).all(|(x, y)| {
            x == y || matches!((x.parse::<i128>(), y.parse::<i128>()), (Ok(p), Ok(q)) if p == q)
        })
}

/// The sysctl.d files of a root, as `host::sysctl_d::read` reads them (or built from a
/// listing, or by hand in tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysctlD {
    /// Every `*.conf` found, from [`order`].
    pub files: Vec<ConfFile>,
    /// The content of each applied file, by path.
    pub content: BTreeMap<String, Parsed>,
    /// `/etc/sysctl.conf` when it is a file: procps reads it last, systemd-sysctl never.
    pub sysctl_conf: Option<Parsed>,
    /// What does not stop the reading but deserves a word: bad lines, dangling symlinks.
    pub notes: Vec<String>,
    /// The text of every regular file listed (applied or overridden), by path, and of
    /// `/etc/sysctl.conf`: what a snapshot carries to plan the host offline.
    pub raw: BTreeMap<String, String>,
    pub sysctl_conf_raw: Option<String>,
}

impl SysctlD {
    /// Build from a listing and the content of the files (`path → text`); files without
    /// content count as empty.
    pub fn from_listing(listing: &[Listed], texts: &[(&str, &str)], sysctl_conf: Option<&str>) -> Self {
        let files = order(listing);
        // By path, the first text given for each (a snapshot lists 100 000 files).
        let mut by_path: HashMap<&str, &str> = HashMap::with_capacity(texts.len());
        for (p, t) in texts {
            by_path.entry(p).or_insert(t);
        }
        let content = files
            .iter()
            .filter(|f| f.applied())
            .map(|f| {
                let text = by_path.get(f.path.as_str()).copied().unwrap_or("");
                (f.path.clone(), dropin::parse_sysctl_d(text))
            })
            .collect();
        let raw = files
            .iter()
            .filter(|f| f.kind == Kind::File)
            .filter_map(|f| {
                by_path
                    .get(f.path.as_str())
                    .map(|t| (f.path.clone(), t.to_string()))
            })
            .collect();
        SysctlD {
            files,
            content,
            sysctl_conf: sysctl_conf.map(dropin::parse_sysctl_d),
            notes: Vec::new(),
            raw,
            sysctl_conf_raw: sysctl_conf.map(str::to_string),
        }
    }

    /// The applied files, in apply order.
    pub fn applied(&self) -> impl Iterator<Item = &ConfFile> {
        self.files.iter().filter(|f| f.applied())
    }

    /// The paths of the applied files, in apply order.
    pub fn applied_paths(&self) -> Vec<String> {
        self.applied().map(|f| f.path.clone()).collect()
    }

    /// The file a path refers to, if listed.
    pub fn file(&self, path: &str) -> Option<&ConfFile> {
        self.files.iter().find(|f| f.path == path)
    }

    fn sources(&self) -> Vec<(&str, &Parsed)> {
        self.applied()
            .filter_map(|f| self.content.get(&f.path).map(|p| (f.path.as_str(), p)))
            .collect()
    }

    /// Where each key's boot value comes from (systemd-sysctl).
    pub fn boot(&self, keys: &[String]) -> BTreeMap<String, Origin> {
        resolve(&self.sources(), keys, Mode::Systemd)
    }

    /// The same for procps `sysctl --system` (which also reads `/etc/sysctl.conf` last).
    pub fn procps(&self, keys: &[String]) -> BTreeMap<String, Origin> {
        let mut sources = self.sources();
        if let Some(p) = &self.sysctl_conf {
            sources.push((SYSCTL_CONF, p));
        }
        resolve(&sources, keys, Mode::Procps)
    }

    /// The same tree with `path` holding `text` (what writing a drop-in would leave);
    /// `None` when `path` is not a `*.conf` directly in one of [`DIRS`].
    pub fn with_file(&self, path: &str, text: &str) -> Option<SysctlD> {
        let (dir, name) = split_conf_path(path)?;
        let mut listing: Vec<Listed> = self
            .files
            .iter()
            .filter(|f| !(f.dir == dir && f.name == name))
            .map(|f| Listed::new(&f.dir, &f.name, f.kind))
            .collect();
        listing.push(Listed::new(&dir, &name, Kind::File));
        let files = order(&listing);
        let mut content: BTreeMap<String, Parsed> = BTreeMap::new();
        for f in files.iter().filter(|f| f.applied()) {
            let parsed = if f.path == path {
                dropin::parse_sysctl_d(text)
            } else {
                self.content.get(&f.path).cloned().unwrap_or_default()
            };
            content.insert(f.path.clone(), parsed);
        }
        let mut raw = self.raw.clone();
        raw.insert(path.to_string(), text.to_string());
        Some(SysctlD {
            files,
            content,
            sysctl_conf: self.sysctl_conf.clone(),
            notes: self.notes.clone(),
            raw,
            sysctl_conf_raw: self.sysctl_conf_raw.clone(),
        })
    }
}

/// One key as `show` presents it: the live value against the boot value and its origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyView {
    pub key: String,
    /// `None` when the kernel lacks the key.
    pub live: Option<String>,
    /// What systemd-sysctl leaves at boot, and where it comes from.
    pub boot: Option<Assignment>,
    /// The assignments `boot` overrides.
    pub shadowed: Vec<Assignment>,
    /// The live value differs from the boot value (changed at runtime, or a file changed
    /// and was not applied).
    pub drift: bool,
    /// A `-key` line that leaves the key unset at boot.
    pub excluded: Option<Location>,
    /// What procps `sysctl --system` would leave instead, when it differs from `boot`
    /// (it also reads /etc/sysctl.conf, last).
    pub procps_instead: Option<Assignment>,
}

/// The [`KeyView`] of each key, in the order given.
pub fn views(sd: &SysctlD, keys: &[String], live: &dyn Fn(&str) -> Option<String>) -> Vec<KeyView> {
    let mut boot = sd.boot(keys);
    let mut procps = sd.procps(keys);
    keys.iter()
        .map(|k| {
            let origin = boot.remove(k).unwrap_or_default();
            let p = procps.remove(k).and_then(|o| o.boot);
            let live = live(k);
            let drift = match (&live, &origin.boot) {
                (Some(l), Some(b)) => !same_value(l, &b.value),
                _ => false,
            };
            let procps_instead = match (&p, &origin.boot) {
                (Some(p), Some(b)) if same_value(&p.value, &b.value) => None,
                (p, _) => p.clone(),
            };
            KeyView {
                key: k.clone(),
                live,
                boot: origin.boot,
                shadowed: origin.shadowed,
                drift,
                excluded: origin.excluded,
                procps_instead,
            }
        })
        .collect()
}

/// `(dir, name)` of a path that systemd-sysctl would read: a `*.conf` directly in one of
/// [`DIRS`] (`//` and `.` components tolerated).
pub fn split_conf_path(path: &str) -> Option<(String, String)> {
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    let clean: PathBuf = p.components().collect();
    let name = clean.file_name()?.to_str()?.to_string();
    let dir = clean.parent()?.to_str()?.to_string();
    (DIRS.contains(&dir.as_str()) && is_conf_name(&name)).then_some((dir, name))
}

/// A rough name that sorts after every one of `names` (byte order), for a drop-in that
/// must be applied after them: `99-zz-sysctune.conf` unless that is not enough.
pub fn name_after<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let last = names.into_iter().max().unwrap_or("");
    for candidate in ["99-sysctune.conf", "99-zz-sysctune.conf", "zz-sysctune.conf"] {
        if candidate > last {
            return candidate.to_string();
        }
    }
    // `<stem>.zz-sysctune.conf` > `<stem>.conf`: 'z' > 'c' after the shared stem.
    format!("{}.zz-sysctune.conf", last.trim_end_matches(".conf"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Kind::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn winners(files: &[ConfFile]) -> Vec<&str> {
        files
            .iter()
            .filter(|f| f.winner())
            .map(|f| f.path.as_str())
            .collect()
    }

    #[test]
    fn order_sorts_by_name_across_directories_and_first_directory_wins() {
        let listing = [
            Listed::new("/usr/lib/sysctl.d", "50-default.conf", File),
            Listed::new("/etc/sysctl.d", "50-default.conf", File),
            Listed::new("/lib/sysctl.d", "50-default.conf", File),
            Listed::new("/run/sysctl.d", "10-run.conf", File),
            Listed::new("/usr/local/lib/sysctl.d", "99-local.conf", File),
            Listed::new("/etc/sysctl.d", "README", File),
            Listed::new("/etc/sysctl.d", ".hidden.conf", File),
            Listed::new("/usr/lib/sysctl.d", "A-upper.conf", File),
        ];
        let files = order(&listing);
        assert_eq!(
            winners(&files),
            [
                "/run/sysctl.d/10-run.conf",
                "/etc/sysctl.d/50-default.conf",
                "/usr/local/lib/sysctl.d/99-local.conf",
                "/usr/lib/sysctl.d/A-upper.conf",
            ]
        );
        let over: Vec<_> = files
            .iter()
            .filter_map(|f| f.overridden_by.as_deref().map(|b| (f.path.as_str(), b)))
            .collect();
        assert_eq!(
            over,
            [
                (
                    "/usr/lib/sysctl.d/50-default.conf",
                    "/etc/sysctl.d/50-default.conf"
                ),
                ("/lib/sysctl.d/50-default.conf", "/etc/sysctl.d/50-default.conf"),
            ]
        );
    }

    #[test]
    fn a_dev_null_symlink_masks_the_name() {
        let sd = SysctlD::from_listing(
            &[
                Listed::new("/usr/lib/sysctl.d", "50-x.conf", File),
                Listed::new("/etc/sysctl.d", "50-x.conf", Mask),
                Listed::new("/usr/lib/sysctl.d", "60-y.conf", File),
            ],
            &[
                ("/usr/lib/sysctl.d/50-x.conf", "vm.swappiness = 1\n"),
                ("/usr/lib/sysctl.d/60-y.conf", "kernel.panic = 5\n"),
            ],
            None,
        );
        assert_eq!(sd.applied_paths(), ["/usr/lib/sysctl.d/60-y.conf"]);
        let masked = sd.file("/usr/lib/sysctl.d/50-x.conf").unwrap();
        assert_eq!(masked.overridden_by.as_deref(), Some("/etc/sysctl.d/50-x.conf"));
        let b = sd.boot(&keys(&["vm.swappiness", "kernel.panic"]));
        assert_eq!(b["vm.swappiness"], Origin::default());
        assert_eq!(b["kernel.panic"].boot.as_ref().unwrap().value, "5");
    }

    #[test]
    fn same_name_in_an_earlier_directory_overrides() {
        let sd = SysctlD::from_listing(
            &[
                Listed::new("/usr/lib/sysctl.d", "50-x.conf", File),
                Listed::new("/run/sysctl.d", "50-x.conf", File),
            ],
            &[
                (
                    "/usr/lib/sysctl.d/50-x.conf",
                    "vm.swappiness = 1\nkernel.panic = 5\n",
                ),
                ("/run/sysctl.d/50-x.conf", "vm.swappiness = 20\n"),
            ],
            None,
        );
        let b = sd.boot(&keys(&["vm.swappiness", "kernel.panic"]));
        let s = b["vm.swappiness"].boot.clone().unwrap();
        assert_eq!(
            (s.value.as_str(), s.at().as_str()),
            ("20", "/run/sysctl.d/50-x.conf:1")
        );
        assert!(
            b["vm.swappiness"].shadowed.is_empty(),
            "the overridden file is never read"
        );
        assert_eq!(b["kernel.panic"].boot, None);
    }

    #[test]
    fn later_assignment_wins_across_files_and_within_one() {
        let sd = SysctlD::from_listing(
            &[
                Listed::new("/usr/lib/sysctl.d", "10-a.conf", File),
                Listed::new("/etc/sysctl.d", "20-b.conf", File),
            ],
            &[
                ("/usr/lib/sysctl.d/10-a.conf", "vm.swappiness = 1\n"),
                (
                    "/etc/sysctl.d/20-b.conf",
                    "vm.swappiness = 2\n# again\nvm/swappiness=3\n",
                ),
            ],
            None,
        );
        let o = &sd.boot(&keys(&["vm.swappiness"]))["vm.swappiness"];
        assert_eq!(o.boot.as_ref().unwrap().at(), "/etc/sysctl.d/20-b.conf:3");
        assert_eq!(o.boot.as_ref().unwrap().value, "3");
        let shadowed: Vec<_> = o.shadowed.iter().map(|a| (a.at(), a.value.as_str())).collect();
        assert_eq!(
            shadowed,
            [
                ("/usr/lib/sysctl.d/10-a.conf:1".to_string(), "1"),
                ("/etc/sysctl.d/20-b.conf:1".to_string(), "2"),
            ]
        );
    }

    fn one_file(text: &str) -> SysctlD {
        SysctlD::from_listing(
            &[Listed::new("/etc/sysctl.d", "x.conf", File)],
            &[("/etc/sysctl.d/x.conf", text)],
            None,
        )
    }

    #[test]
    fn globs_apply_to_keys_that_no_plain_line_names() {
        let sd = one_file(
            "net.ipv4.conf.default.rp_filter = 1\nnet.ipv4.conf.*.rp_filter = 2\nnet/ipv4/conf/a*/rp_filter = 3\n",
        );
        let k = keys(&[
            "net.ipv4.conf.default.rp_filter",
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.lo.rp_filter",
            "net.ipv4.conf.eth0/100.rp_filter",
            "net.ipv4.tcp_rmem",
        ]);
        let b = sd.boot(&k);
        let v = |key: &str| b[key].boot.as_ref().map(|a| a.value.clone());
        // The plain line wins over a later glob.
        assert_eq!(v("net.ipv4.conf.default.rp_filter").as_deref(), Some("1"));
        assert_eq!(b["net.ipv4.conf.default.rp_filter"].shadowed.len(), 1);
        assert_eq!(v("net.ipv4.conf.all.rp_filter").as_deref(), Some("3"));
        assert_eq!(
            b["net.ipv4.conf.all.rp_filter"]
                .boot
                .as_ref()
                .unwrap()
                .glob
                .as_deref(),
            Some("net/ipv4/conf/a*/rp_filter")
        );
        assert_eq!(v("net.ipv4.conf.lo.rp_filter").as_deref(), Some("2"));
        // An interface name with a dot is one path component.
        assert_eq!(v("net.ipv4.conf.eth0/100.rp_filter").as_deref(), Some("2"));
        // `*` does not cross a separator.
        assert!(!glob_matches("net.*", "net.ipv4.tcp_rmem"));
        assert_eq!(v("net.ipv4.tcp_rmem"), None);
    }

    #[test]
    fn a_repeated_glob_value_keeps_its_place_in_systemd_but_not_in_procps() {
        // Checked against systemd-sysctl 252 and procps-ng 4.0.2 in a network namespace.
        let sd = one_file(
            "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.conf.a*.rp_filter = 1\nnet/ipv4/conf/*/rp_filter = 2\n",
        );
        let k = keys(&["net.ipv4.conf.all.rp_filter"]);
        assert_eq!(
            sd.boot(&k)["net.ipv4.conf.all.rp_filter"]
                .boot
                .as_ref()
                .unwrap()
                .value,
            "1"
        );
        assert_eq!(
            sd.procps(&k)["net.ipv4.conf.all.rp_filter"]
                .boot
                .as_ref()
                .unwrap()
                .value,
            "2"
        );
    }

    #[test]
    fn dash_prefix_ignores_failure_and_negative_match_excludes() {
        let sd = one_file(
            "-net.ipv4.tcp_tw_reuse = 1\nnet.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.lo.rp_filter\nvm.swappiness = 5\n-vm.swappiness\n",
        );
        let k = keys(&[
            "net.ipv4.tcp_tw_reuse",
            "net.ipv4.conf.lo.rp_filter",
            "net.ipv4.conf.all.rp_filter",
            "vm.swappiness",
        ]);
        let b = sd.boot(&k);
        assert_eq!(b["net.ipv4.tcp_tw_reuse"].boot.as_ref().unwrap().value, "1");
        let lo = &b["net.ipv4.conf.lo.rp_filter"];
        assert_eq!(lo.boot, None);
        assert_eq!(lo.excluded.as_ref().unwrap().line, 3);
        assert_eq!(lo.shadowed.len(), 1, "the glob that would have set it");
        assert_eq!(b["net.ipv4.conf.all.rp_filter"].boot.as_ref().unwrap().value, "2");
        // systemd-sysctl: `-key` after an assignment cancels it; procps still writes it.
        assert_eq!(b["vm.swappiness"].boot, None);
        assert_eq!(b["vm.swappiness"].excluded.as_ref().unwrap().line, 5);
        let p = sd.procps(&k);
        assert_eq!(p["vm.swappiness"].boot.as_ref().unwrap().value, "5");
        assert_eq!(p["net.ipv4.conf.lo.rp_filter"].boot, None);
    }

    #[test]
    fn procps_also_reads_etc_sysctl_conf_last() {
        let sd = SysctlD::from_listing(
            &[
                Listed::new("/etc/sysctl.d", "90-sysctune.conf", File),
                Listed::new("/usr/lib/sysctl.d", "10-a.conf", File),
            ],
            &[
                ("/etc/sysctl.d/90-sysctune.conf", "vm.swappiness = 10\n"),
                (
                    "/usr/lib/sysctl.d/10-a.conf",
                    "vm.swappiness = 60\nkernel.panic = 1\n",
                ),
            ],
            Some("# old\nvm.swappiness = 30\n"),
        );
        let k = keys(&["vm.swappiness", "kernel.panic"]);
        let s = sd.boot(&k)["vm.swappiness"].boot.clone().unwrap();
        assert_eq!(s.at(), "/etc/sysctl.d/90-sysctune.conf:1");
        let p = sd.procps(&k);
        let ps = p["vm.swappiness"].boot.clone().unwrap();
        assert_eq!(
            (ps.at().as_str(), ps.value.as_str()),
            ("/etc/sysctl.conf:2", "30")
        );
        assert_eq!(p["vm.swappiness"].shadowed.len(), 2);
        assert_eq!(p["kernel.panic"].boot.as_ref().unwrap().value, "1");
    }

    #[test]
    fn with_file_replaces_or_adds_the_drop_in() {
        let sd = SysctlD::from_listing(
            &[
                Listed::new("/etc/sysctl.d", "99-local.conf", File),
                Listed::new("/etc/sysctl.d", "90-sysctune.conf", File),
            ],
            &[
                ("/etc/sysctl.d/99-local.conf", "vm.swappiness = 30\n"),
                ("/etc/sysctl.d/90-sysctune.conf", "vm.swappiness = 1\n"),
            ],
            None,
        );
        let k = keys(&["vm.swappiness", "kernel.panic"]);
        let after = sd
            .with_file(
                "/etc/sysctl.d/90-sysctune.conf",
                "vm.swappiness = 10\nkernel.panic = 3\n",
            )
            .unwrap();
        let b = after.boot(&k);
        assert_eq!(
            b["vm.swappiness"].boot.as_ref().unwrap().at(),
            "/etc/sysctl.d/99-local.conf:1"
        );
        assert_eq!(b["vm.swappiness"].shadowed[0].value, "10");
        assert_eq!(b["kernel.panic"].boot.as_ref().unwrap().value, "3");
        let moved = sd
            .with_file("/usr/lib/sysctl.d/99-zz-sysctune.conf", "vm.swappiness = 10\n")
            .unwrap();
        assert_eq!(
            moved.boot(&k)["vm.swappiness"].boot.as_ref().unwrap().file,
            "/usr/lib/sysctl.d/99-zz-sysctune.conf"
        );
        assert!(sd.with_file("/etc/sysctl.conf", "").is_none());
        assert!(sd.with_file("/etc/sysctl.d/x.txt", "").is_none());
        assert!(sd.with_file("/etc/sysctl.d/../x.conf", "").is_none());
        assert_eq!(
            split_conf_path("/etc//sysctl.d/./a.conf"),
            Some(("/etc/sysctl.d".into(), "a.conf".into()))
        );
    }

    #[test]
    fn name_after_sorts_after_the_shadowing_file() {
        assert_eq!(name_after(["95-local.conf"]), "99-sysctune.conf");
        assert_eq!(name_after(["99-sysctl.conf", "10-a.conf"]), "99-sysctune.conf");
        assert_eq!(name_after(["99-tuning.conf"]), "99-zz-sysctune.conf");
        assert_eq!(name_after(["99-zzz.conf"]), "zz-sysctune.conf");
        let odd = name_after(["zzzz.conf"]);
        assert!(odd.as_str() > "zzzz.conf", "{odd}");
    }

    #[test]
    fn same_value_compares_numbers() {
        assert!(same_value("4096 87380  6291456", "4096 87380 6291456"));
        assert!(same_value("01", "1"));
        assert!(!same_value("1", "1 2"));
        assert!(!same_value("a", "b"));
    }
}
