//! Reading the machine under a root: sysctl values, meminfo, sockstat, kernel release →
//! [`Facts`] ([`read_facts`]); with its sysctl.d files and the drop-in → [`Observed`]
//! ([`read`]), what planning needs and a snapshot holds. This is the only module of the
//! planning path that touches the filesystem; everything downstream works on what it read.
//! The types read into are plain data in [`facts`] and [`crate::sysctl_d`].

pub mod facts;
pub mod fs;
pub mod meminfo;
pub mod netstat;
pub mod processes;
pub mod sock_diag;
pub mod socket_owners;
pub mod sockets;
pub mod sockstat;
pub mod sysctl_d;
pub mod tcp_table;

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::keys;

pub use facts::{Facts, MemInfo, Observed, Sockstat, parse_ints};
pub use fs::Root;

/// The network namespace sysctune runs in (`net:[4026531840]`) when `root` is this
/// machine's `/` (its live values are that namespace's), else empty.
pub fn netns(root: &Root) -> String {
    if !root.is_host() {
        return String::new();
    }
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The page size of the running system.
pub fn system_page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(4096)
}

/// Where a key's value is, as seen inside the root: `/proc/sys/net/ipv4/tcp_mem`.
pub fn proc_sys_inside(key: &str) -> String {
    format!("/proc/sys/{}", keys::relative_path(key).display())
}

/// Read one sysctl under `root`: `Ok(None)` when the kernel lacks it.
pub fn read_sysctl(root: &Root, key: &str) -> Result<Option<String>> {
    let inside = proc_sys_inside(key);
    let path = root.shown(&inside);
    let text = match root.read(&inside, fs::MAX_SMALL) {
        Ok(Some(bytes)) => String::from_utf8(bytes).map_err(|_| Error::host(&path, "not UTF-8 text"))?,
        Ok(None) => return Ok(None),
        Err(Error::Host { message, .. }) if message.starts_with("is a directory") => {
            return Err(Error::host(
                &path,
                format!("{key} is a directory of keys, not a key"),
            ));
        }
        Err(e) => return Err(e),
    };
    let value = keys::check_shape(key, &text).map_err(|e| Error::host(&path, format!("{key}: {e}")))?;
    Ok(Some(value))
}

/// Read a small text file under `root`: `None` when it does not exist.
fn read_text(root: &Root, inside: &str) -> Result<Option<String>> {
    root.read_text(inside, fs::MAX_SMALL)
}

/// The kernel's build configuration for `release`, as seen inside the root
/// (`/boot/config-6.18.44`), or `None` when the release cannot name one file there.
pub fn kernel_config_inside(release: &str) -> Option<String> {
    let plain = !release.is_empty()
        && release != "unknown"
        && release != "."
        && release != ".."
        && !release.contains('/')
        && !release.chars().any(|c| c.is_control() || c.is_whitespace());
    plain.then(|| format!("/boot/config-{release}"))
}

/// Highest tick rate taken from a kernel configuration (Linux offers 100 to 1200).
pub const HZ_MAX: u64 = 100_000;

/// `CONFIG_HZ=` of a kernel configuration: `Ok(None)` without that line, an error when
/// its value is not a tick rate.
pub fn parse_config_hz(text: &str) -> std::result::Result<Option<u64>, String> {
    let Some(value) = text.lines().find_map(|l| l.trim().strip_prefix("CONFIG_HZ=")) else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(hz) if (1..=HZ_MAX).contains(&hz) => Ok(Some(hz)),
        _ => Err(format!(
            "CONFIG_HZ={} is not a tick rate (1..={HZ_MAX})",
            keys::escape(value.trim())
        )),
    }
}

/// The page size a kernel configuration builds for: `CONFIG_PAGE_SHIFT` (6.7 and later,
/// every architecture), else the architecture's page-size choice (arm64
/// `CONFIG_ARM64_{4K,16K,64K}_PAGES`, powerpc `CONFIG_PPC_{4K,64K}_PAGES`, the generic
/// `CONFIG_PAGE_SIZE_{4,16,64}KB`); `None` when it says nothing.
pub fn parse_config_page_size(text: &str) -> Option<u64> {
    let set = |name: &str| text.lines().any(|l| l.trim() == format!("{name}=y"));
    if let Some(shift) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("CONFIG_PAGE_SHIFT="))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|s| (12..=18).contains(s))
    {
        return Some(1 << shift);
    }
    [
        ("CONFIG_ARM64_64K_PAGES", 65536),
        ("CONFIG_ARM64_16K_PAGES", 16384),
        ("CONFIG_ARM64_4K_PAGES", 4096),
        ("CONFIG_PPC_64K_PAGES", 65536),
        ("CONFIG_PPC_4K_PAGES", 4096),
        ("CONFIG_PAGE_SIZE_64KB", 65536),
        ("CONFIG_PAGE_SIZE_16KB", 16384),
        ("CONFIG_PAGE_SIZE_4KB", 4096),
    ]
    .into_iter()
    .find(|(name, _)| set(name))
    .map(|(_, size)| size)
}

/// The page size a kernel release names in its flavour suffix: `+64k` (RHEL's and
/// Fedora's kernel-64k), `-64k` (Ubuntu's generic-64k), likewise 16k.
pub fn release_page_size(release: &str) -> Option<u64> {
    let r = release.to_ascii_lowercase();
    [("64k", 65536), ("16k", 16384)]
        .into_iter()
        .find(|(suffix, _)| r.ends_with(&format!("+{suffix}")) || r.ends_with(&format!("-{suffix}")))
        .map(|(_, size)| size)
}

/// The kernel configuration of `release` under `root`: `None` when it is not there (the
/// usual case in containers), and a warning when it is there but unreadable.
fn read_config(root: &Root, release: &str, warnings: &mut Vec<String>) -> Option<(String, String)> {
    let inside = kernel_config_inside(release)?;
    match root.read_text(&inside, fs::MAX_CONFIG) {
        Ok(text) => text.map(|t| (inside, t)),
        Err(e) => {
            warnings.push(format!("{e}; TIME_WAIT is assumed to end as late as at HZ=100"));
            None
        }
    }
}

/// `CONFIG_HZ` of the kernel's configuration, with a warning when its line is malformed.
fn read_hz(root: &Root, config: Option<&(String, String)>, warnings: &mut Vec<String>) -> Option<u64> {
    let (inside, text) = config?;
    match parse_config_hz(text) {
        Ok(hz) => hz,
        Err(e) => {
            warnings.push(format!(
                "{}: {e}; TIME_WAIT is assumed to end as late as at HZ=100",
                root.shown(inside).display()
            ));
            None
        }
    }
}

/// The page size of the kernel under `root`: this machine's on the live host; for an
/// image, what its kernel's configuration or its release's flavour says, else this
/// machine's (a profile's `host.page_size` overrides it).
fn page_size(root: &Root, release: &str, config: Option<&(String, String)>) -> u64 {
    if root.is_host() {
        return system_page_size();
    }
    config
        .and_then(|(_, text)| parse_config_page_size(text))
        .or_else(|| release_page_size(release))
        .unwrap_or_else(system_page_size)
}

/// Read what planning needs of the host under `root`: its facts ([`read_facts`]), the
/// text of the drop-in at `dropin` when one is named, and its sysctl.d files. A snapshot
/// holds the same ([`Observed`]), so a host and a snapshot are planned the same way.
pub fn read(root: &Root, extra_keys: &[String], dropin: Option<&str>) -> Result<Observed> {
    let facts = read_facts(root, extra_keys)?;
    let dropin = match dropin {
        Some(shown) => sysctl_d::read_dropin(root, shown)?,
        None => None,
    };
    let sysctl_d = sysctl_d::read(root)?;
    Ok(Observed {
        facts,
        sysctl_d,
        dropin,
    })
}

/// Read the facts of the host under `root`: every known key plus `extra_keys` (the pins
/// of a profile), meminfo (required), sockstat, the kernel release and its `CONFIG_HZ`
/// (optional).
pub fn read_facts(root: &Root, extra_keys: &[String]) -> Result<Facts> {
    let mut warnings = Vec::new();

    let meminfo_path = root.shown("/proc/meminfo");
    let text = read_text(root, "/proc/meminfo")?.ok_or_else(|| Error::host(&meminfo_path, "no such file"))?;
    let mem = meminfo::parse(&text).map_err(|e| Error::host(&meminfo_path, e))?;

    let sockstat_path = root.shown("/proc/net/sockstat");
    let sockstat = match read_text(root, "/proc/net/sockstat")? {
        Some(text) => Some(sockstat::parse(&text).map_err(|e| Error::host(&sockstat_path, e))?),
        None => {
            warnings.push(format!(
                "{}: no such file; TCP socket figures are not shown",
                sockstat_path.display(),
            ));
            None
        }
    };

    let kernel = match read_sysctl(root, "kernel.osrelease")? {
        Some(release) => release,
        None => {
            warnings.push(format!(
                "{}: no such file; kernel release unknown: values are checked against the newest kernel's ranges",
                root.shown(&proc_sys_inside("kernel.osrelease")).display()
            ));
            "unknown".to_string()
        }
    };
    let hostname = read_sysctl(root, "kernel.hostname")?;
    let config = read_config(root, &kernel, &mut warnings);
    let hz = read_hz(root, config.as_ref(), &mut warnings);
    let page_size = page_size(root, &kernel, config.as_ref());

    let mut sysctl = BTreeMap::new();
    for key in keys::KNOWN
        .iter()
        .map(|k| k.name.to_string())
        .chain(extra_keys.iter().cloned())
    {
        let value = read_sysctl(root, &key)?;
        sysctl.insert(key, value);
    }

    Ok(Facts {
        hostname,
        kernel,
        page_size,
        mem,
        sysctl,
        sockstat,
        hz,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hz_of(root: &Root, release: &str, warnings: &mut Vec<String>) -> Option<u64> {
        let config = read_config(root, release, warnings);
        read_hz(root, config.as_ref(), warnings)
    }

    #[test]
    fn an_images_page_size_comes_from_its_kernel() {
        assert_eq!(
            parse_config_page_size("CONFIG_PAGE_SHIFT=16\nCONFIG_ARM64_4K_PAGES=y\n"),
            Some(65536)
        );
        assert_eq!(
            parse_config_page_size("# CONFIG_ARM64_4K_PAGES is not set\nCONFIG_ARM64_64K_PAGES=y\n"),
            Some(65536)
        );
        assert_eq!(parse_config_page_size("CONFIG_PPC_4K_PAGES=y\n"), Some(4096));
        assert_eq!(parse_config_page_size("CONFIG_PAGE_SIZE_16KB=y\n"), Some(16384));
        assert_eq!(
            parse_config_page_size("CONFIG_PAGE_SHIFT=40\nCONFIG_HZ=250\n"),
            None,
            "not a page shift"
        );
        assert_eq!(parse_config_page_size("CONFIG_X86_64=y\n"), None);
        assert_eq!(release_page_size("6.12.0-55.9.1.el10_0.aarch64+64k"), Some(65536));
        assert_eq!(release_page_size("6.8.0-45-generic-64k"), Some(65536));
        assert_eq!(release_page_size("6.1.0-18-arm64-16k"), Some(16384));
        assert_eq!(release_page_size("6.18.0-64kfoo"), None);
        assert_eq!(release_page_size("6.18.0"), None);
    }

    #[test]
    fn config_hz_is_read_from_its_line() {
        let text = "#\n# Automatically generated file; DO NOT EDIT.\nCONFIG_HZ_250=y\n# CONFIG_HZ_1000 is not set\nCONFIG_HZ=250\n";
        assert_eq!(parse_config_hz(text), Ok(Some(250)));
        assert_eq!(parse_config_hz("CONFIG_HZ_PERIODIC=y\n"), Ok(None));
        assert_eq!(parse_config_hz(""), Ok(None));
        for bad in [
            "CONFIG_HZ=0",
            "CONFIG_HZ=-1",
            "CONFIG_HZ=fast",
            "CONFIG_HZ=100001",
            "CONFIG_HZ=",
        ] {
            assert!(parse_config_hz(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_release_names_one_file_in_boot() {
        assert_eq!(
            kernel_config_inside("6.18.44-fc-v1045").as_deref(),
            Some("/boot/config-6.18.44-fc-v1045")
        );
        for bad in [
            "",
            "unknown",
            ".",
            "..",
            "../../etc/passwd",
            "a/b",
            "6.1 x",
            "6.1\n",
        ] {
            assert_eq!(kernel_config_inside(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hz_comes_from_the_roots_own_boot_config() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let mut warnings = Vec::new();
        assert_eq!(hz_of(&root, "6.1.0", &mut warnings), None);
        assert!(
            warnings.is_empty(),
            "a missing config is not a warning: {warnings:?}"
        );
        std::fs::create_dir(dir.path().join("boot")).unwrap();
        std::fs::write(dir.path().join("boot/config-6.1.0"), "CONFIG_HZ=1000\n").unwrap();
        assert_eq!(hz_of(&root, "6.1.0", &mut warnings), Some(1000));
        std::fs::write(dir.path().join("boot/config-6.1.0"), "CONFIG_HZ=often\n").unwrap();
        assert_eq!(hz_of(&root, "6.1.0", &mut warnings), None);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("boot/config-6.1.0: CONFIG_HZ=\"often\""),
            "{warnings:?}"
        );
        // a link out of the root resolves inside it, like every read under a root
        std::fs::remove_file(dir.path().join("boot/config-6.1.0")).unwrap();
        std::os::unix::fs::symlink("/boot/../../boot/config-x", dir.path().join("boot/config-6.1.0"))
            .unwrap();
        assert_eq!(hz_of(&root, "6.1.0", &mut warnings), None);
        // a directory where the file should be is a warning, not an error
        std::fs::remove_file(dir.path().join("boot/config-6.1.0")).unwrap();
        std::fs::create_dir(dir.path().join("boot/config-6.1.0")).unwrap();
        assert_eq!(hz_of(&root, "6.1.0", &mut warnings), None);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
