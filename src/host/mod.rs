//! Reading the machine under a root: sysctl values, meminfo, sockstat, kernel release →
//! [`Facts`]. This is the only module of the planning path that touches the filesystem;
//! everything downstream works on `Facts`.

pub mod fs;
pub mod meminfo;
pub mod netstat;
pub mod sockstat;
pub mod tcp_table;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys;

pub use fs::Root;
pub use meminfo::MemInfo;
pub use sockstat::Sockstat;

/// Everything the rules may know about a host. Pure data: built by [`read`] or by hand
/// in tests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub hostname: Option<String>,
    /// Kernel release (`uname -r`), "unknown" when `proc/sys/kernel/osrelease` is missing.
    pub kernel: String,
    pub page_size: u64,
    pub mem: MemInfo,
    /// Live values, normalised to single spaces; `None` when the kernel lacks the key.
    pub sysctl: BTreeMap<String, Option<String>>,
    pub sockstat: Option<Sockstat>,
    /// Things that could not be read but are not needed (they become findings).
    pub warnings: Vec<String>,
}

impl Facts {
    /// The live value of `key`, `None` when absent or not read.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.sysctl.get(key).and_then(|v| v.as_deref())
    }

    pub fn ints(&self, key: &str) -> Option<Vec<i128>> {
        parse_ints(self.value(key)?)
    }

    pub fn int(&self, key: &str) -> Option<i128> {
        self.ints(key).filter(|v| v.len() == 1).map(|v| v[0])
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.int(key).and_then(|v| u64::try_from(v).ok())
    }

    pub fn triple(&self, key: &str) -> Option<[u64; 3]> {
        let v = self.ints(key)?;
        match v[..] {
            [a, b, c] => Some([a.try_into().ok()?, b.try_into().ok()?, c.try_into().ok()?]),
            _ => None,
        }
    }

    pub fn port_range(&self) -> Option<(u32, u32)> {
        let v = self.ints("net.ipv4.ip_local_port_range")?;
        match v[..] {
            [a, b] => Some((a.try_into().ok()?, b.try_into().ok()?)),
            _ => None,
        }
    }

    pub fn reserved_ports(&self) -> Vec<(u32, u32)> {
        self.value("net.ipv4.ip_local_reserved_ports")
            .and_then(|v| keys::parse_port_list(v).ok())
            .unwrap_or_default()
    }
}

pub fn parse_ints(value: &str) -> Option<Vec<i128>> {
    value.split_whitespace().map(|f| f.parse().ok()).collect()
}

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

/// Read the facts of the host under `root`: every known key plus `extra_keys` (the pins
/// of a profile), meminfo (required), sockstat and the kernel release (optional).
pub fn read(root: &Root, extra_keys: &[String]) -> Result<Facts> {
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
                "{}: no such file; kernel release unknown, vm.swappiness is checked against 0..=200",
                root.shown(&proc_sys_inside("kernel.osrelease")).display()
            ));
            "unknown".to_string()
        }
    };
    let hostname = read_sysctl(root, "kernel.hostname")?;

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
        page_size: system_page_size(),
        mem,
        sysctl,
        sockstat,
        warnings,
    })
}
