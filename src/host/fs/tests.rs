use std::os::unix::fs::symlink;

use proptest::prelude::*;

use super::*;

/// A temporary directory with `root/` and, beside it, `outside/` holding a decoy that
/// nothing under the root may ever read or change.
struct Tree {
    dir: tempfile::TempDir,
}

const DECOY: &str = "DECOY: outside the root\n";

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside/proc/sys/vm")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), DECOY).unwrap();
        std::fs::write(dir.path().join("outside/proc/sys/vm/swappiness"), DECOY).unwrap();
        Tree { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }
    fn file(&self, rel: &str, text: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn link(&self, rel: &str, target: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }
    fn open(&self) -> Root {
        Root::open(&self.root()).unwrap()
    }
    /// Every file outside the root, with its content: must never change.
    fn outside_state(&self) -> Vec<(PathBuf, String)> {
        fn walk(p: &Path, out: &mut Vec<(PathBuf, String)>) {
            let mut entries: Vec<_> = std::fs::read_dir(p).unwrap().flatten().collect();
            entries.sort_by_key(|e| e.path());
            for e in entries {
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    out.push((e.path(), "/".into()));
                    walk(&e.path(), out);
                } else {
                    out.push((e.path(), std::fs::read_to_string(e.path()).unwrap_or_default()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.outside(), &mut out);
        out
    }
}

fn text(root: &Root, inside: &str) -> Option<String> {
    root.read_text(inside, MAX_SMALL).unwrap()
}

#[test]
fn symlinks_resolve_inside_the_root() {
    let t = Tree::new();
    t.file("usr/lib/sysctl.d/50-a.conf", "a = 1\n");
    t.link("lib", "usr/lib");
    t.link("etc/abs", "/usr/lib/sysctl.d/50-a.conf");
    t.link("etc/up", "../../../../../usr/lib/sysctl.d/50-a.conf");
    let escape = t.outside().join("secret");
    t.link("etc/escape", escape.to_str().unwrap());
    t.link("etc/dotdot", "../../outside/secret");
    let r = t.open();
    assert_eq!(text(&r, "/lib/sysctl.d/50-a.conf").as_deref(), Some("a = 1\n"));
    assert_eq!(text(&r, "/etc/abs").as_deref(), Some("a = 1\n"));
    // `..` stops at the root, an absolute target restarts there.
    assert_eq!(text(&r, "/etc/up").as_deref(), Some("a = 1\n"));
    assert_eq!(text(&r, "/etc/escape"), None);
    assert_eq!(text(&r, "/etc/dotdot"), None);
    assert_eq!(text(&r, "/../outside/secret"), None);
    assert_eq!(
        r.lookup("/lib/sysctl.d").unwrap(),
        Lookup::Found {
            inside: "/usr/lib/sysctl.d".into(),
            node: Node::Dir
        }
    );
}

#[test]
fn a_symlink_loop_is_an_error_not_a_hang() {
    let t = Tree::new();
    t.link("a", "b");
    t.link("b", "a");
    let e = t.open().read("/a", MAX_SMALL).unwrap_err().to_string();
    assert!(e.contains("too many levels of symbolic links"), "{e}");
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let t = Tree::new();
    std::fs::create_dir_all(t.root().join("proc")).unwrap();
    nix::unistd::mkfifo(&t.root().join("proc/meminfo"), Mode::from_bits_truncate(0o644)).unwrap();
    let e = t.open().read("/proc/meminfo", MAX_SMALL).unwrap_err().to_string();
    assert!(e.ends_with("proc/meminfo: is a FIFO (named pipe), not a regular file; sysctune reads only regular files (a FIFO would hang the read, a device never end it)"), "{e}");
}

#[test]
fn reads_are_capped() {
    let t = Tree::new();
    t.file("big", &"x".repeat(2000));
    let r = t.open();
    let e = r.read("/big", 1024).unwrap_err().to_string();
    assert!(
        e.ends_with("big: larger than 1 KiB, the most sysctune reads of such a file; is it the right file?"),
        "{e}"
    );
    assert_eq!(r.read("/big", 2000).unwrap().unwrap().len(), 2000);
}

#[test]
fn procfs_under_an_image_is_refused() {
    // An image whose proc/sys is the live kernel's: a symlink cannot reach it (it
    // resolves inside the root), a bind mount can; `/proc` itself stands in for one.
    let r = Root::open(Path::new("/proc/self/..")).unwrap();
    assert!(!r.is_host());
    let e = r.read("/sys/vm/swappiness", MAX_SMALL).unwrap_err().to_string();
    assert!(
        e.contains("is on the live kernel's procfs under --root /proc/self/.."),
        "{e}"
    );
    let e = r.dir("/sys/vm", None).err().unwrap().to_string();
    assert!(e.contains("procfs"), "{e}");
}

#[test]
fn the_hosts_own_root_is_host() {
    assert!(Root::open(Path::new("/")).unwrap().is_host());
    assert!(Root::open(Path::new("//")).unwrap().is_host());
}

#[test]
fn writes_follow_no_symlink() {
    let t = Tree::new();
    t.link("proc/sys/vm", t.outside().join("proc/sys/vm").to_str().unwrap());
    t.link("etc/sysctl.d", "/tmp");
    std::fs::create_dir_all(t.root().join("var")).unwrap();
    let r = t.open();
    let e = r.dir("/proc/sys/vm", None).err().unwrap().to_string();
    assert!(e.ends_with("proc/sys/vm: is a symlink; refusing to write through it (sysctune writes only real directories and files under the root)"), "{e}");
    assert!(r.dir("/etc/sysctl.d", Some(0o755)).is_err());
    // A file that is a symlink is not replaced.
    t.link("var/x.conf", t.outside().join("secret").to_str().unwrap());
    let d = r.dir("/var", None).unwrap().unwrap();
    assert!(d.write_atomic("x.conf", b"y\n", 0o644).is_err());
    assert!(d.remove("x.conf").is_err());
    assert!(d.read("x.conf", MAX_SMALL).is_err());
    assert_eq!(t.outside_state(), Tree::new_state(&t));
}

impl Tree {
    fn new_state(t: &Tree) -> Vec<(PathBuf, String)> {
        let o = t.outside();
        vec![
            (o.join("proc"), "/".into()),
            (o.join("proc/sys"), "/".into()),
            (o.join("proc/sys/vm"), "/".into()),
            (o.join("proc/sys/vm/swappiness"), DECOY.into()),
            (o.join("secret"), DECOY.into()),
        ]
    }
}

#[test]
fn atomic_writes_leave_a_hard_link_alone() {
    let t = Tree::new();
    std::fs::create_dir_all(t.root().join("etc")).unwrap();
    std::fs::hard_link(t.outside().join("secret"), t.root().join("etc/a.conf")).unwrap();
    let r = t.open();
    let d = r.dir("/etc", None).unwrap().unwrap();
    d.write_atomic("a.conf", b"new\n", 0o644).unwrap();
    assert_eq!(
        std::fs::read_to_string(t.root().join("etc/a.conf")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(t.outside().join("secret")).unwrap(),
        DECOY
    );
}

#[test]
fn created_directories_have_the_mode_asked() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tree::new();
    let r = t.open();
    let d = r.dir("/var/lib/sysctune", Some(0o700)).unwrap().unwrap();
    d.secure(&Ownership {
        uid: nix::unistd::geteuid().as_raw(),
        mode: 0o700,
    })
    .unwrap();
    let mode = std::fs::metadata(t.root().join("var/lib/sysctune"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(d.inside(), "/var/lib/sysctune");
}

#[test]
fn stale_temporaries_are_removed() {
    let t = Tree::new();
    t.file("etc/sysctl.d/.90-sysctune.conf.sysctune-tmp.123", "half");
    t.file("etc/sysctl.d/10-keep.conf", "a = 1\n");
    let r = t.open();
    let d = r.dir("/etc/sysctl.d", None).unwrap().unwrap();
    assert_eq!(d.remove_stale_temporaries(), 1);
    let names: Vec<_> = std::fs::read_dir(t.root().join("etc/sysctl.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["10-keep.conf"]);
}

/// A swap of a directory and a symlink in a loop, bounded, while writes go on: no write
/// ever lands outside the root (a path-based check-then-write loses this race).
#[test]
fn swapping_a_directory_for_a_symlink_never_redirects_a_write() {
    let t = Tree::new();
    std::fs::create_dir_all(t.root().join("etc/real")).unwrap();
    t.link("etc/link", t.outside().to_str().unwrap());
    let etc = t.root().join("etc");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let etc = etc.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 200_000 {
                let _ = nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &etc.join("real"),
                    nix::fcntl::AT_FDCWD,
                    &etc.join("link"),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
                n += 1;
            }
        })
    };
    let r = t.open();
    for _ in 0..400 {
        if let Ok(Some(d)) = r.dir("/etc/real", None) {
            let _ = d.write_atomic("x.conf", b"written\n", 0o644);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(t.outside_state(), Tree::new_state(&t));
}

// A random tree of directories, files and symlinks (to places inside, above and outside
// the root): no read returns the decoy, no write changes anything outside.
#[derive(Clone, Debug)]
enum Entry {
    Dir,
    File,
    Link(String),
}

fn names() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "proc", "sys", "etc"]).prop_map(str::to_string)
}

fn rel_path() -> impl Strategy<Value = String> {
    prop::collection::vec(names(), 1..4).prop_map(|v| v.join("/"))
}

fn entry(outside: String) -> impl Strategy<Value = Entry> {
    prop_oneof![
        Just(Entry::Dir),
        Just(Entry::File),
        rel_path().prop_map(Entry::Link),
        rel_path().prop_map(|p| Entry::Link(format!("/{p}"))),
        rel_path().prop_map(|p| Entry::Link(format!("../../../{p}"))),
        Just(Entry::Link(outside.clone())),
        Just(Entry::Link(format!("{outside}/proc/sys"))),
        Just(Entry::Link("../outside/secret".into())),
        Just(Entry::Link("/proc/sys".into())),
        Just(Entry::Link(".".into())),
        Just(Entry::Link("..".into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn no_path_resolves_outside_the_root(
        layout in prop::collection::vec((rel_path(), entry("@OUTSIDE@".into())), 1..12),
        queries in prop::collection::vec(rel_path(), 1..8),
    ) {
        let t = Tree::new();
        let outside = t.outside().display().to_string();
        for (path, e) in &layout {
            let p = t.root().join(path);
            // Build the tree without following its own symlinks.
            let through_link = p
                .ancestors()
                .skip(1)
                .take_while(|a| *a != t.root())
                .any(|a| std::fs::symlink_metadata(a).is_ok_and(|m| !m.is_dir()));
            if through_link || std::fs::symlink_metadata(&p).is_ok() {
                continue;
            }
            if std::fs::create_dir_all(p.parent().unwrap()).is_err() {
                continue;
            }
            let _ = match e {
                Entry::Dir => std::fs::create_dir(&p),
                Entry::File => std::fs::write(&p, "inside\n"),
                Entry::Link(target) => symlink(target.replace("@OUTSIDE@", &outside), &p),
            };
        }
        let r = t.open();
        for q in &queries {
            let inside = format!("/{q}");
            if let Ok(Some(bytes)) = r.read(&inside, MAX_SMALL) {
                prop_assert_ne!(String::from_utf8_lossy(&bytes), DECOY);
            }
            if let Ok(Lookup::Found { inside: resolved, .. }) = r.lookup(&inside) {
                prop_assert!(resolved.starts_with('/'));
                prop_assert!(!resolved.contains(".."));
            }
            let _ = r.list(&inside);
            if let Ok(Some(d)) = r.dir(&inside, Some(0o755)) {
                let _ = d.write_atomic("w", b"w\n", 0o644);
                let _ = d.remove("secret");
                let _ = d.remove("swappiness");
            }
            let (parent, name) = match inside.rsplit_once('/') {
                Some((p, n)) => (if p.is_empty() { "/" } else { p }, n),
                None => ("/", inside.as_str()),
            };
            if let Ok(Some(d)) = r.dir(parent, None) {
                let _ = d.write_atomic(name, b"w\n", 0o644);
                let _ = d.remove(name);
                if let Ok(mut f) = d.open_write(name) {
                    let _ = f.write_all(b"w\n");
                }
            }
        }
        prop_assert_eq!(t.outside_state(), Tree::new_state(&t));
    }
}
