//! What sysctune knows of a host, as plain data: [`Facts`] and the figures in it. The
//! readers in this module's parent build them from a root; a snapshot rebuilds them from
//! its document; tests build them by hand.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sysctl_d::SysctlD;

/// What planning needs of a host: read under a root by [`super::read`], or rebuilt from
/// a snapshot (`Snapshot::observed`), so both are planned by one path.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub facts: Facts,
    /// Its sysctl.d files and `/etc/sysctl.conf`.
    pub sysctl_d: SysctlD,
    /// The text of sysctune's drop-in; `None` when it is absent or none was named.
    pub dropin: Option<String>,
}

/// Everything the rules may know about a host. Pure data: built by [`super::read_facts`]
/// or by hand in tests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub hostname: Option<String>,
    /// Kernel release (`uname -r`), "unknown" when `proc/sys/kernel/osrelease` is missing.
    pub kernel: String,
    /// In bytes: this machine's on the live host; for an image, its kernel's (see
    /// [`super::read_facts`]).
    pub page_size: u64,
    pub mem: MemInfo,
    /// Live values, normalised to single spaces; `None` when the kernel lacks the key.
    pub sysctl: BTreeMap<String, Option<String>>,
    pub sockstat: Option<Sockstat>,
    /// The kernel's tick rate, `CONFIG_HZ` in `ROOT/boot/config-RELEASE`; `None` when that
    /// file or line is absent. It sets how late the timer wheel ends TIME_WAIT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hz: Option<u64>,
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
}

pub fn parse_ints(value: &str) -> Option<Vec<i128>> {
    value.split_whitespace().map(|f| f.parse().ok()).collect()
}

/// `/proc/meminfo`: the figures the rules need, in bytes ([`super::meminfo::parse`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemInfo {
    pub mem_total: u64,
    pub swap_total: u64,
    pub hugetlb: u64,
    pub commit_limit: u64,
    pub committed_as: u64,
    pub mem_available: Option<u64>,
}

/// `/proc/net/sockstat`: the socket counts (parsed by [`super::sockstat::parse`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sockstat {
    pub sockets_used: u64,
    pub tcp_inuse: u64,
    pub tcp_orphan: u64,
    pub tcp_tw: u64,
    pub tcp_alloc: u64,
    /// Pages.
    pub tcp_mem: u64,
}
