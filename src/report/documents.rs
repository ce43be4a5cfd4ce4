//! The JSON documents that are not a library type of their own (`show`, `profiles`,
//! errors), as typed structs: field names and order are the contract with scripts, and
//! `schema` comes first in each, as in every sysctune document.

use serde::Serialize;

use crate::host::{Facts, Sockstat};
use crate::sysctl_d::{self, KeyView, SysctlD};

pub const SHOW_SCHEMA: &str = "sysctune/show/v1";
pub const PROFILES_SCHEMA: &str = "sysctune/profiles/v1";
pub const ERROR_SCHEMA: &str = "sysctune/error/v1";

#[derive(Serialize)]
pub struct ShowDoc<'a> {
    pub schema: &'static str,
    pub host: ShowHost<'a>,
    /// The files systemd-sysctl reads, in the order it applies them (inside the root).
    pub files: Vec<String>,
    pub masked: Vec<&'a str>,
    pub overridden: Vec<Overridden<'a>>,
    /// `/etc/sysctl.conf` when it exists: procps `sysctl --system` also reads it, last.
    pub procps_also_reads: Option<&'static str>,
    pub keys: Vec<ShowKey<'a>>,
    pub warnings: Vec<&'a String>,
}

#[derive(Serialize)]
pub struct ShowHost<'a> {
    pub name: &'a Option<String>,
    pub kernel: &'a str,
    pub mem_total: u64,
    pub swap_total: u64,
    pub hugetlb: u64,
    pub mem_available: Option<u64>,
    pub page_size: u64,
    pub commit_limit: u64,
    pub committed_as: u64,
    pub sockstat: Option<Sockstat>,
}

#[derive(Serialize)]
pub struct Overridden<'a> {
    pub file: &'a str,
    pub by: &'a str,
}

#[derive(Serialize)]
pub struct ShowKey<'a> {
    #[serde(flatten)]
    pub view: &'a KeyView,
    /// With `--profile`: what it recommends (null for a key it does not manage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended: Option<Option<&'a str>>,
}

impl<'a> ShowDoc<'a> {
    pub fn new(
        facts: &'a Facts,
        sd: &'a SysctlD,
        views: &'a [KeyView],
        recommended: Option<&'a std::collections::BTreeMap<String, (String, Vec<String>)>>,
    ) -> Self {
        ShowDoc {
            schema: SHOW_SCHEMA,
            host: ShowHost {
                name: &facts.hostname,
                kernel: &facts.kernel,
                mem_total: facts.mem.mem_total,
                swap_total: facts.mem.swap_total,
                hugetlb: facts.mem.hugetlb,
                mem_available: facts.mem.mem_available,
                page_size: facts.page_size,
                commit_limit: facts.mem.commit_limit,
                committed_as: facts.mem.committed_as,
                sockstat: facts.sockstat,
            },
            files: sd.applied_paths(),
            masked: sd
                .files
                .iter()
                .filter(|f| f.winner() && f.kind == sysctl_d::Kind::Mask)
                .map(|f| f.path.as_str())
                .collect(),
            overridden: sd
                .files
                .iter()
                .filter_map(|f| {
                    Some(Overridden {
                        file: &f.path,
                        by: f.overridden_by.as_deref()?,
                    })
                })
                .collect(),
            procps_also_reads: sd.sysctl_conf.as_ref().map(|_| sysctl_d::SYSCTL_CONF),
            keys: views
                .iter()
                .map(|v| ShowKey {
                    view: v,
                    recommended: recommended.map(|r| r.get(&v.key).map(|(value, _)| value.as_str())),
                })
                .collect(),
            warnings: facts.warnings.iter().chain(&sd.notes).collect(),
        }
    }
}

#[derive(Serialize)]
pub struct ProfilesDoc {
    pub schema: &'static str,
    pub profiles: Vec<ProfileEntry>,
}

#[derive(Serialize)]
pub struct ProfileEntry {
    pub name: String,
    pub description: String,
}

/// With `--format json`, an error is a document on stdout too (and the message on stderr).
#[derive(Serialize)]
pub struct ErrorDoc<'a> {
    pub schema: &'static str,
    pub error: &'a str,
    pub exit: i32,
}

/// `plan --snapshot` with several hosts, `--format json`: the line of a host whose plan
/// failed, so that output lines match hosts.
#[derive(Serialize)]
pub struct FleetError {
    pub schema: &'static str,
    pub host: FleetHost,
    pub error: String,
}

#[derive(Serialize)]
pub struct FleetHost {
    pub snapshot: String,
}
