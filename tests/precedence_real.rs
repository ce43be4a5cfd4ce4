//! sysctune's precedence model against the real tools, on trees built here:
//! - the file order matches `systemd-analyze cat-config sysctl.d --root=DIR --no-pager`;
//! - the boot value of each key matches what systemd-sysctl and procps `sysctl -p` leave
//!   in a private network namespace when given the same files (per-namespace keys only:
//!   nothing here can change the host).
//!
//! A missing tool fails the test when `CI` is set and is skipped with a reason otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sysctune::sysctl_d::{self, SysctlD};

enum N {
    /// A file with this content.
    F(&'static str),
    /// A symlink to /dev/null.
    Null,
    /// A symlink to this target.
    Link(&'static str),
}
use N::*;

type Tree = &'static [(&'static str, N)];

fn build(tree: Tree) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, node) in tree {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        match node {
            F(text) => std::fs::write(&full, text).unwrap(),
            Null => std::os::unix::fs::symlink("/dev/null", &full).unwrap(),
            Link(target) => std::os::unix::fs::symlink(target, &full).unwrap(),
        }
    }
    dir
}

const MASKING: Tree = &[
    ("usr/lib/sysctl.d/10-a.conf", F("net.core.somaxconn = 1000\n")),
    ("etc/sysctl.d/10-a.conf", Null),
    ("usr/lib/sysctl.d/20-b.conf", F("net.ipv4.tcp_tw_reuse = 0\n")),
    ("run/sysctl.d/20-b.conf", Null),
    // An empty file overrides like any other file.
    ("etc/sysctl.d/30-c.conf", F("")),
    ("usr/lib/sysctl.d/30-c.conf", F("net.core.somaxconn = 3000\n")),
    // A mask with nothing beneath it.
    ("usr/local/lib/sysctl.d/40-d.conf", Null),
    ("usr/lib/sysctl.d/50-e.conf", F("net.ipv4.tcp_tw_reuse = 1\n")),
];

const OVERRIDE: Tree = &[
    ("etc/sysctl.d/50-x.conf", F("net.core.somaxconn = 1001\n")),
    ("run/sysctl.d/50-x.conf", F("net.core.somaxconn = 1002\n")),
    (
        "usr/local/lib/sysctl.d/50-x.conf",
        F("net.core.somaxconn = 1003\n"),
    ),
    ("usr/lib/sysctl.d/50-x.conf", F("net.core.somaxconn = 1004\n")),
    ("lib/sysctl.d/50-x.conf", F("net.core.somaxconn = 1005\n")),
    ("lib/sysctl.d/40-y.conf", F("net.ipv4.tcp_tw_reuse = 0\n")),
    (
        "usr/local/lib/sysctl.d/40-y.conf",
        F("net.ipv4.tcp_tw_reuse = 1\n"),
    ),
    (
        "usr/lib/sysctl.d/60-z.conf",
        F("net.ipv4.ip_local_port_range = 20000 30000\n"),
    ),
    (
        "run/sysctl.d/60-z.conf",
        F("net.ipv4.ip_local_port_range = 40000 50000\n"),
    ),
    // Not read: not *.conf, hidden, or /etc/sysctl.conf (systemd-sysctl never reads it).
    ("etc/sysctl.d/README", F("net.core.somaxconn = 9\n")),
    ("etc/sysctl.d/70-x.conf.bak", F("net.core.somaxconn = 9\n")),
    ("etc/sysctl.d/.hidden.conf", F("net.core.somaxconn = 9\n")),
    ("etc/sysctl.conf", F("net.core.somaxconn = 2048\n")),
];

const DUPLICATES: Tree = &[
    (
        "usr/lib/sysctl.d/10-a.conf",
        F("net.core.somaxconn = 100\nnet.core.somaxconn = 200\nnet.ipv4.tcp_rmem = 4096 87380 6291456\n"),
    ),
    (
        "etc/sysctl.d/20-b.conf",
        F("net/core/somaxconn=300\nnet.ipv4.tcp_rmem = 4096\t131072\t6291456\n-net.ipv4.tcp_tw_reuse = 0\n"),
    ),
    (
        "run/sysctl.d/30-c.conf",
        F("net.ipv4.tcp_rmem = 4096 87380 6291456\nnet.ipv4.tcp_tw_reuse = 1\nnet.ipv4.tcp_tw_reuse = 0\n"),
    ),
    // Debian's link to /etc/sysctl.conf: both tools read it here; procps again at the end.
    ("etc/sysctl.d/99-sysctl.conf", Link("../sysctl.conf")),
    (
        "etc/sysctl.conf",
        F("net.ipv4.ip_local_port_range = 20000 30000\n"),
    ),
];

const GLOBS: Tree = &[
    (
        "usr/lib/sysctl.d/10-a.conf",
        F("net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.conf.a*.rp_filter = 1\nnet.ipv4.conf.*.rp_filter = 2\n"),
    ),
    (
        "etc/sysctl.d/20-b.conf",
        // Not 0: systemd-sysctl skips a write of the value already there, and the kernel then
        // copies a later write of conf.default into lo (a device value never written).
        F("net.ipv4.conf.lo.rp_filter = 2\nnet/ipv4/conf/*/rp_filter = 1\n"),
    ),
    (
        "etc/sysctl.d/30-c.conf",
        F("-net.ipv4.tcp_tw_reuse\nnet.ipv4.tcp_tw_reuse = 0\n"),
    ),
    // procps reads it last: its glob loses to the plain line above for lo, not for all.
    ("etc/sysctl.conf", F("net.ipv4.conf.*.rp_filter = 0\n")),
];

const NEGATIVE: Tree = &[
    (
        "usr/lib/sysctl.d/10-a.conf",
        F("net.ipv4.conf.*.rp_filter = 2\nnet.core.somaxconn = 700\n"),
    ),
    // systemd-sysctl: cancels somaxconn and keeps `all` out of the glob; procps: only the latter.
    (
        "etc/sysctl.d/20-b.conf",
        F("-net.ipv4.conf.all.rp_filter\n-net.core.somaxconn\n"),
    ),
];

const SORTING: Tree = &[
    ("etc/sysctl.d/9.conf", F("")),
    ("run/sysctl.d/10.conf", F("")),
    ("usr/lib/sysctl.d/1.conf", F("")),
    ("usr/local/lib/sysctl.d/A.conf", F("")),
    ("lib/sysctl.d/a.conf", F("")),
    ("usr/lib/sysctl.d/_x.conf", F("")),
    ("etc/sysctl.d/-x.conf", F("")),
    ("usr/lib/sysctl.d/z.conf", F("net.core.somaxconn = 555\n")),
    ("etc/sysctl.d/z.conf.d", F("")),
];

/// Merged /usr: /lib is a link to usr/lib.
const MERGED_USR: Tree = &[
    ("usr/lib/sysctl.d/50-a.conf", F("net.core.somaxconn = 800\n")),
    ("usr/lib/sysctl.d/60-b.conf", F("")),
    ("etc/sysctl.d/60-b.conf", F("net.core.somaxconn = 900\n")),
    ("lib", Link("usr/lib")),
];

const TREES: &[(&str, Tree)] = &[
    ("masking", MASKING),
    ("override", OVERRIDE),
    ("duplicates", DUPLICATES),
    ("globs", GLOBS),
    ("negative", NEGATIVE),
    ("sorting", SORTING),
    ("merged-usr", MERGED_USR),
];

/// Keys the value checks read back: all per network namespace.
const KEYS: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_rmem",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.lo.rp_filter",
];

fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// The first of `paths` that exists; `None` (and a printed reason) when none does,
/// outside CI.
fn tool(paths: &[&str]) -> Option<PathBuf> {
    if let Some(p) = paths.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(p);
    }
    let list = paths.join(" or ");
    assert!(
        !ci(),
        "{list} is missing and CI is set: the real-client test cannot run"
    );
    eprintln!("skipped: {list} is not installed");
    None
}

fn canonical(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap()
}

/// The files `systemd-analyze cat-config` prints, as paths inside the root.
fn systemd_analyze_order(analyze: &Path, root: &Path) -> Vec<String> {
    let root = canonical(root);
    let out = Command::new(analyze)
        .args(["cat-config", "sysctl.d", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .output()
        .expect("run systemd-analyze");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze failed on {}: {}\n{stdout}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // It prints the paths with the root prefix: "# /tmp/.tmpXXXX/etc/sysctl.d/10-a.conf".
    let prefix = format!("# {}/", root.display());
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| format!("/{rest}"))
        .collect()
}

#[test]
fn file_order_matches_systemd_analyze() {
    let Some(analyze) = tool(&["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]) else {
        return;
    };
    for (name, tree) in TREES {
        let dir = build(tree);
        let expected = systemd_analyze_order(&analyze, dir.path());
        assert!(!expected.is_empty(), "{name}: systemd-analyze printed no file");
        let sd = sysctune::host::sysctl_d::read(&sysctune::host::Root::open(dir.path()).unwrap()).unwrap();
        let ours: Vec<&str> = sd
            .files
            .iter()
            .filter(|f| f.winner())
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(
            ours, expected,
            "tree {name}: order of the files that decide each name"
        );

        // The CLI's `files`: the same order, masks left out.
        common::copy_dir(&common::root("modern").join("proc"), &dir.path().join("proc"));
        let rs = dir.path().display().to_string();
        let run = common::sysctune(&["--root", &rs, "--format", "json", "show", "net.core.somaxconn"]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let doc: Value = serde_json::from_str(&run.stdout).unwrap();
        let masked: Vec<String> = serde_json::from_value(doc["masked"].clone()).unwrap();
        let applied: Vec<&String> = expected.iter().filter(|p| !masked.contains(p)).collect();
        let files: Vec<String> = serde_json::from_value(doc["files"].clone()).unwrap();
        assert_eq!(
            files.iter().collect::<Vec<_>>(),
            applied,
            "tree {name}: show's files"
        );
    }
}

/// Run `script` in a new network namespace; `None` when namespaces are refused here.
fn in_netns(script: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script, "sh"])
        .args(args)
        .output()
        .expect("run unshare");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !ci(),
            "unshare -n failed with CI set: {err} (the real-client test needs root)"
        );
        eprintln!("skipped: unshare -n is refused here ({})", err.trim());
        return None;
    }
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Shell that prints `key=value` for each of [`KEYS`] after running "$@".
fn read_back(apply: &str) -> String {
    let mut s = format!("{apply} >/dev/null 2>&1; ");
    for k in KEYS {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        s.push_str(&format!("printf '%s=%s\\n' {k} \"$(cat {path})\"; "));
    }
    s
}

fn parse_values(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

fn expect(
    baseline: &[(String, String)],
    origins: &std::collections::BTreeMap<String, sysctl_d::Origin>,
) -> Vec<(String, String)> {
    baseline
        .iter()
        .map(|(k, base)| {
            let v = origins[k].boot.as_ref().map_or(base.clone(), |a| a.value.clone());
            (k.clone(), v)
        })
        .collect()
}

fn assert_only_namespaced_keys(name: &str, sd: &SysctlD) {
    let parsed = sd.content.values().chain(sd.sysctl_conf.as_ref());
    for p in parsed {
        for e in &p.entries {
            assert!(
                (e.key.starts_with("net.") || e.key.starts_with("net/")) && !e.key.contains("tcp_mem"),
                "tree {name} would write the host-wide key {}",
                e.key
            );
        }
    }
}

#[test]
fn boot_values_match_systemd_sysctl_and_procps() {
    let (Some(systemd_sysctl), Some(procps)) = (
        tool(&["/lib/systemd/systemd-sysctl", "/usr/lib/systemd/systemd-sysctl"]),
        tool(&["/usr/sbin/sysctl", "/sbin/sysctl"]),
    ) else {
        return;
    };
    let Some(base) = in_netns(&read_back("true"), &[]) else {
        return;
    };
    let baseline = parse_values(&base);
    assert_eq!(baseline.len(), KEYS.len(), "{base}");
    let keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
    for (name, tree) in TREES {
        let dir = build(tree);
        let sd = sysctune::host::sysctl_d::read(&sysctune::host::Root::open(dir.path()).unwrap()).unwrap();
        assert_only_namespaced_keys(name, &sd);
        let root = canonical(dir.path());
        let host = |p: &str| root.join(p.trim_start_matches('/')).display().to_string();

        // systemd-sysctl with the applied files in order: the same as reading the
        // directories, without touching the host's own sysctl.d.
        let files: Vec<String> = sd.applied_paths().iter().map(|p| host(p)).collect();
        let mut args = vec![systemd_sysctl.to_str().unwrap()];
        args.extend(files.iter().map(String::as_str));
        let got = parse_values(&in_netns(&read_back("\"$@\""), &args).unwrap());
        assert_eq!(
            got,
            expect(&baseline, &sd.boot(&keys)),
            "tree {name}: systemd-sysctl"
        );

        // procps: every line of the same files, then /etc/sysctl.conf, as one file.
        let mut all = String::new();
        for f in &files {
            all.push_str(&std::fs::read_to_string(f).unwrap());
            all.push('\n');
        }
        if sd.sysctl_conf.is_some() {
            all.push_str(&std::fs::read_to_string(host(sysctl_d::SYSCTL_CONF)).unwrap());
        }
        let combined = dir.path().join("procps-system.conf");
        std::fs::write(&combined, all).unwrap();
        let args = [procps.to_str().unwrap(), "-q", "-p", combined.to_str().unwrap()];
        let got = parse_values(&in_netns(&read_back("\"$@\""), &args).unwrap());
        assert_eq!(
            got,
            expect(&baseline, &sd.procps(&keys)),
            "tree {name}: procps sysctl"
        );
    }
}
