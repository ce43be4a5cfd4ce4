//! Reading the sysctl.d files of a root: the directories systemd-sysctl and procps read,
//! every `*.conf` in them (symlinks resolved inside the root), `/etc/sysctl.conf`, and
//! sysctune's own drop-in. What they mean (order, precedence, views) is decided in
//! [`crate::sysctl_d`], on plain values.

use std::collections::BTreeMap;

use crate::dropin::{self, Parsed};
use crate::error::{Error, Result};
use crate::host::fs::{self, Lookup, Node, Root};
use crate::sysctl_d::{
    ConfFile, DIRS, Kind, Listed, SYSCTL_CONF, SysctlD, is_conf_name, is_valid_glob, join, order,
};

/// Read the sysctl.d directories and `/etc/sysctl.conf` under `root`. A directory or file
/// that exists but cannot be read is an error naming it; bad lines, dangling symlinks and
/// directories named `*.conf` become [`SysctlD::notes`].
pub fn read(root: &Root) -> Result<SysctlD> {
    let mut notes = Vec::new();
    let (listing, resolved) = list(root, &mut notes)?;
    let files = order(&listing);
    let (content, raw) = read_files(root, &files, &resolved, &mut notes)?;
    let (sysctl_conf, sysctl_conf_raw) = read_sysctl_conf(root, &files, &resolved, &mut notes)?;
    Ok(SysctlD {
        files,
        content,
        sysctl_conf,
        notes,
        raw,
        sysctl_conf_raw,
    })
}

/// The text of sysctune's drop-in at `shown` (symlinks followed inside the root, as a boot
/// would); `None` when absent.
pub fn read_dropin(root: &Root, shown: &str) -> Result<Option<String>> {
    root.read_text(shown, fs::MAX_CONFIG)
}

/// Each file read, by its path as listed → its resolved path inside the root.
type Resolved = BTreeMap<String, String>;

/// Every `*.conf` entry of the directories, and where each regular file resolves to.
fn list(root: &Root, notes: &mut Vec<String>) -> Result<(Vec<Listed>, Resolved)> {
    let mut listing: Vec<Listed> = Vec::new();
    let mut resolved = Resolved::new();
    let mut seen_dirs: Vec<String> = Vec::new();
    for dir in DIRS {
        let (real_dir, names) = match root.lookup(dir)? {
            Lookup::Missing { .. } => continue,
            Lookup::Found { node: Node::Dir, .. } => match root.list(dir)? {
                Some(found) => found,
                None => continue,
            },
            Lookup::Found { .. } => {
                notes.push(format!("{dir} is not a directory; nothing in it is read"));
                continue;
            }
        };
        // /lib -> usr/lib: the same directory twice adds only overridden copies.
        if seen_dirs.contains(&real_dir) {
            continue;
        }
        seen_dirs.push(real_dir);
        for name in names {
            let Some(name) = name.to_str().map(str::to_string) else {
                notes.push(format!("{dir}: skipped a file name that is not UTF-8: {name:?}"));
                continue;
            };
            if !is_conf_name(&name) {
                continue;
            }
            let kind = kind(root, &join(dir, &name), &mut resolved, notes)?;
            listing.push(Listed::new(dir, &name, kind));
        }
    }
    Ok((listing, resolved))
}

/// What the entry at `path` is, as systemd-sysctl treats it; a regular file is recorded in
/// `resolved`.
fn kind(root: &Root, path: &str, resolved: &mut Resolved, notes: &mut Vec<String>) -> Result<Kind> {
    Ok(match root.lookup(path)? {
        Lookup::Missing { inside } | Lookup::Found { inside, .. } if inside == "/dev/null" => Kind::Mask,
        Lookup::Missing { inside } => {
            notes.push(format!(
                "{path} is a symlink to {inside}, which does not exist; systemd-sysctl skips it"
            ));
            Kind::Dangling
        }
        Lookup::Found {
            inside,
            node: Node::File,
        } => {
            resolved.insert(path.to_string(), inside);
            Kind::File
        }
        Lookup::Found {
            node: Node::CharDevice,
            ..
        } => Kind::Mask,
        Lookup::Found { .. } => {
            notes.push(format!(
                "{path} is not a regular file; systemd-sysctl fails to read it (exit status 1)"
            ));
            Kind::Other
        }
    })
}

/// The text of every regular file (applied or overridden), and the parsed content of the
/// applied ones, with their bad lines noted.
fn read_files(
    root: &Root,
    files: &[ConfFile],
    resolved: &Resolved,
    notes: &mut Vec<String>,
) -> Result<(BTreeMap<String, Parsed>, BTreeMap<String, String>)> {
    let mut content = BTreeMap::new();
    let mut raw = BTreeMap::new();
    for f in files.iter().filter(|f| f.kind == Kind::File) {
        let Some(inside) = resolved.get(&f.path) else {
            continue;
        };
        let text = read_text(root, inside)?;
        if !f.applied() {
            raw.insert(f.path.clone(), text);
            continue;
        }
        let parsed = dropin::parse_sysctl_d(&text);
        raw.insert(f.path.clone(), text);
        note_bad_lines(
            notes,
            &f.path,
            &parsed,
            "systemd-sysctl ignores the line and fails (exit status 1)",
        );
        content.insert(f.path.clone(), parsed);
    }
    Ok((content, raw))
}

/// `/etc/sysctl.conf` when it is a regular file (not masked), parsed and as text; its bad
/// lines are noted unless systemd-sysctl reads it too (a link from sysctl.d), which noted
/// them already.
fn read_sysctl_conf(
    root: &Root,
    files: &[ConfFile],
    resolved: &Resolved,
    notes: &mut Vec<String>,
) -> Result<(Option<Parsed>, Option<String>)> {
    match root.lookup(SYSCTL_CONF)? {
        Lookup::Found {
            inside,
            node: Node::File,
        } if inside != "/dev/null" => {
            let text = read_text(root, &inside)?;
            let parsed = dropin::parse_sysctl_d(&text);
            let read_by_systemd = files
                .iter()
                .any(|f| f.applied() && resolved.get(&f.path) == Some(&inside));
            if !read_by_systemd {
                note_bad_lines(
                    notes,
                    SYSCTL_CONF,
                    &parsed,
                    "procps sysctl --system reports invalid syntax",
                );
            }
            Ok((Some(parsed), Some(text)))
        }
        _ => Ok((None, None)),
    }
}

/// Read text leniently: systemd-sysctl reads bytes, so a stray Latin-1 byte in a comment
/// must not stop sysctune.
fn read_text(root: &Root, inside: &str) -> Result<String> {
    let bytes = root
        .read(inside, fs::MAX_CONFIG)?
        .ok_or_else(|| Error::host(&root.shown(inside), "disappeared while it was being read"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn note_bad_lines(notes: &mut Vec<String>, path: &str, parsed: &Parsed, consequence: &str) {
    for b in &parsed.bad {
        notes.push(format!(
            "{path}:{}: {} ({:?}); {consequence}",
            b.line,
            b.message,
            b.text.trim()
        ));
    }
    for e in parsed.entries.iter().filter(|e| e.glob) {
        if !is_valid_glob(&e.key) {
            notes.push(format!(
                "{path}:{}: {:?} is not a valid glob; it matches no key",
                e.line, e.key
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Kind::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn read_follows_the_root_and_reports_paths_inside_it() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mk = |p: &str, text: &str| {
            let full = root.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        };
        mk("usr/lib/sysctl.d/50-a.conf", "vm.swappiness = 1\nnot valid\n");
        mk("usr/lib/sysctl.d/60-b.conf", "vm.swappiness = 2\n");
        mk("etc/sysctl.conf", "vm.swappiness = 3\n");
        std::fs::create_dir_all(root.join("etc/sysctl.d")).unwrap();
        symlink("/dev/null", root.join("etc/sysctl.d/60-b.conf")).unwrap();
        symlink("/nowhere.conf", root.join("etc/sysctl.d/70-dangling.conf")).unwrap();
        // An absolute link resolves inside the root, not on this machine.
        symlink("/etc/sysctl.conf", root.join("etc/sysctl.d/99-sysctl.conf")).unwrap();
        // /lib -> usr/lib (merged /usr) adds nothing.
        symlink("usr/lib", root.join("lib")).unwrap();
        let sd = read(&Root::open(root).unwrap()).unwrap();
        assert_eq!(
            sd.applied_paths(),
            ["/usr/lib/sysctl.d/50-a.conf", "/etc/sysctl.d/99-sysctl.conf"]
        );
        assert_eq!(sd.file("/etc/sysctl.d/60-b.conf").unwrap().kind, Mask);
        assert_eq!(sd.file("/etc/sysctl.d/70-dangling.conf").unwrap().kind, Dangling);
        assert!(sd.files.iter().all(|f| !f.path.starts_with("/lib/")));
        let k = keys(&["vm.swappiness"]);
        assert_eq!(
            sd.boot(&k)["vm.swappiness"].boot.as_ref().unwrap().at(),
            "/etc/sysctl.d/99-sysctl.conf:1"
        );
        assert_eq!(
            sd.procps(&k)["vm.swappiness"].boot.as_ref().unwrap().at(),
            "/etc/sysctl.conf:1"
        );
        assert_eq!(sd.notes.len(), 2, "{:?}", sd.notes);
        assert!(sd.notes[0].contains("70-dangling.conf"), "{:?}", sd.notes);
        assert!(
            sd.notes[1].starts_with("/usr/lib/sysctl.d/50-a.conf:2: not an assignment"),
            "{:?}",
            sd.notes
        );
        // An empty root has no files and no notes.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            read(&Root::open(empty.path()).unwrap()).unwrap(),
            SysctlD::default()
        );
    }

    #[test]
    fn a_sysctl_d_that_is_not_a_directory_is_a_note_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/sysctl.d"), "not a directory\n").unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib/sysctl.d")).unwrap();
        std::fs::write(
            dir.path().join("usr/lib/sysctl.d/10-a.conf"),
            "vm.swappiness = 1\n",
        )
        .unwrap();
        let d = read(&Root::open(dir.path()).unwrap()).unwrap();
        assert_eq!(
            d.notes,
            ["/etc/sysctl.d is not a directory; nothing in it is read"]
        );
        assert_eq!(d.files.len(), 1, "the other directories are still read");
    }
}
