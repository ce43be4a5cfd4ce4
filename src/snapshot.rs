//! Host snapshots: everything `plan` and `show` need from a host in one self-describing
//! JSON document (`sysctune/snapshot/v1`), so a fleet can be planned offline, in review,
//! with no access to the hosts. Field order is fixed and maps are sorted: the same host
//! gives the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::host::{self, Facts, MemInfo, Observed, Sockstat};
use crate::keys;
use crate::sysctl_d::{self, Kind, Listed, SysctlD};

pub const SCHEMA: &str = "sysctune/snapshot/v1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub schema: String,
    pub host: SnapHost,
    pub meminfo: MemInfo,
    pub sockstat: Option<Sockstat>,
    /// Live values of the known keys (and any asked for with `--key`); null when absent.
    pub sysctl: BTreeMap<String, Option<String>>,
    pub sysctl_d: SnapSysctlD,
    /// What could not be read but is not needed.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapHost {
    pub name: Option<String>,
    pub kernel: String,
    pub page_size: u64,
    /// `CONFIG_HZ` from the host's `/boot/config-RELEASE`, when it had one. Optional, so
    /// snapshots taken before it was recorded still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hz: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapSysctlD {
    /// Every `*.conf` in the sysctl.d directories, in the order systemd-sysctl considers
    /// them, with the text of the regular files.
    pub files: Vec<SnapFile>,
    /// `/etc/sysctl.conf` (read by procps `sysctl --system` only).
    pub sysctl_conf: Option<String>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapFile {
    pub path: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// Take a snapshot of the host under `root`.
pub fn take(root: &host::Root, extra_keys: &[String]) -> Result<Snapshot> {
    Ok(Snapshot::of(host::read(root, extra_keys, None)?))
}

impl Snapshot {
    /// The document of what was read of a host (a drop-in is among its sysctl.d files).
    pub fn of(observed: Observed) -> Snapshot {
        let Observed {
            facts, sysctl_d: sd, ..
        } = observed;
        Snapshot {
            schema: SCHEMA.to_string(),
            host: SnapHost {
                name: facts.hostname,
                kernel: facts.kernel,
                page_size: facts.page_size,
                hz: facts.hz,
            },
            meminfo: facts.mem,
            sockstat: facts.sockstat,
            sysctl: facts.sysctl,
            sysctl_d: SnapSysctlD {
                files: sd
                    .files
                    .iter()
                    .map(|f| SnapFile {
                        path: f.path.clone(),
                        kind: f.kind,
                        content: sd.raw.get(&f.path).cloned(),
                    })
                    .collect(),
                sysctl_conf: sd.sysctl_conf_raw,
                notes: sd.notes,
            },
            warnings: facts.warnings,
        }
    }

    /// What planning needs, as [`host::read`] gives it on the host: `pins` are the keys
    /// a profile pins (each the snapshot lacks is a warning: its value is unknown),
    /// `dropin` the drop-in's path.
    pub fn observed(&self, pins: &[String], dropin: &str) -> Observed {
        let mut facts = self.facts();
        for key in pins {
            if !facts.sysctl.contains_key(key) {
                facts.warnings.push(format!(
                    "{key} is not in the snapshot, so its current value is unknown (take it with `sysctune snapshot --key {key}`)"
                ));
            }
        }
        Observed {
            facts,
            sysctl_d: self.sysctl_d(),
            dropin: self.file(dropin).map(str::to_string),
        }
    }

    /// The facts as `host::read_facts` would have given them on the host.
    fn facts(&self) -> Facts {
        Facts {
            hostname: self.host.name.clone(),
            kernel: self.host.kernel.clone(),
            page_size: self.host.page_size,
            mem: self.meminfo,
            sysctl: self.sysctl.clone(),
            sockstat: self.sockstat,
            hz: self.host.hz,
            warnings: self.warnings.clone(),
        }
    }

    /// The sysctl.d files as `host::sysctl_d::read` would have given them on the host.
    fn sysctl_d(&self) -> SysctlD {
        let listing: Vec<Listed> = self
            .sysctl_d
            .files
            .iter()
            .filter_map(|f| sysctl_d::split_conf_path(&f.path).map(|(d, n)| Listed::new(&d, &n, f.kind)))
            .collect();
        let texts: Vec<(&str, &str)> = self
            .sysctl_d
            .files
            .iter()
            .filter_map(|f| f.content.as_deref().map(|c| (f.path.as_str(), c)))
            .collect();
        let mut sd = SysctlD::from_listing(&listing, &texts, self.sysctl_d.sysctl_conf.as_deref());
        sd.notes = self.sysctl_d.notes.clone();
        sd
    }

    /// The text of a file listed in the snapshot (the drop-in), `None` when absent.
    fn file(&self, path: &str) -> Option<&str> {
        self.sysctl_d
            .files
            .iter()
            .find(|f| f.path == path)
            .and_then(|f| f.content.as_deref())
    }

    /// Check what serde cannot: the schema, keys that stay inside proc/sys, values in the
    /// kernel's shape, files in the sysctl.d directories.
    fn validate(&self) -> std::result::Result<(), String> {
        if self.schema != SCHEMA {
            return Err(format!("schema {:?} is not {SCHEMA:?}", self.schema));
        }
        let page = self.host.page_size;
        if !page.is_power_of_two() || page < 1024 {
            return Err(format!("host.page_size {page} is not a power of two ≥ 1024"));
        }
        if let Some(hz) = self.host.hz
            && !(1..=host::HZ_MAX).contains(&hz)
        {
            return Err(format!("host.hz {hz} is not a tick rate (1..={})", host::HZ_MAX));
        }
        if self.meminfo.mem_total == 0 {
            return Err(
                "meminfo.mem_total is 0; it is the host's MemTotal in bytes, more than 0 (take the snapshot again)"
                    .into(),
            );
        }
        for (key, value) in &self.sysctl {
            let canonical = keys::normalize_key(key).map_err(|e| format!("sysctl: {e}"))?;
            if canonical != *key {
                return Err(format!("sysctl: key {key:?} is not in dotted form ({canonical})"));
            }
            if let Some(v) = value {
                keys::normalize_value(v).map_err(|e| format!("sysctl.{key}: {e}"))?;
                keys::check_shape(key, v).map_err(|e| format!("sysctl.{key}: {e}"))?;
            }
        }
        for f in &self.sysctl_d.files {
            if sysctl_d::split_conf_path(&f.path).is_none() {
                return Err(format!(
                    "sysctl_d.files: {:?} is not a *.conf file in {}",
                    f.path,
                    sysctl_d::DIRS.join(", ")
                ));
            }
            if f.kind == Kind::File && f.content.is_none() {
                return Err(format!("sysctl_d.files: {} is a file without content", f.path));
            }
        }
        Ok(())
    }
}

/// Read and check a snapshot file; errors name the file (and the line and column of
/// broken JSON).
pub fn load(path: &Path) -> Result<Snapshot> {
    let bytes = host::fs::read_named(path, host::fs::MAX_SNAPSHOT).map_err(|e| Error::host(path, e))?;
    let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Data => "not a sysctune snapshot",
            serde_json::error::Category::Io => "unreadable",
        };
        Error::host(
            path,
            format!("{what}: {e} (take one with `sysctune snapshot > FILE`)"),
        )
    })?;
    snap.validate()
        .map_err(|e| Error::host(path, format!("not a valid sysctune snapshot: {e}")))?;
    Ok(snap)
}

/// The snapshot files named on the command line: files as given, directories expanded to
/// their `*.json` files in name order, `-` the paths read from stdin and `@LIST` those in
/// the file LIST, one per line (a fleet's 45 000 paths exceed ARG_MAX).
pub fn expand(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        let listed = |text: &str, out: &mut Vec<PathBuf>| {
            out.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from),
            );
        };
        if a.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text).map_err(|e| {
                Error::input(format!("--snapshot -: reading the list of paths from stdin: {e}"))
            })?;
            listed(&text, &mut out);
        } else if let Some(list) = a.to_str().and_then(|s| s.strip_prefix('@')) {
            let bytes = host::fs::read_named(Path::new(list), host::fs::MAX_SNAPSHOT).map_err(|e| {
                Error::input(format!(
                    "--snapshot @{list}: {e}; give a file of snapshot paths, one per line"
                ))
            })?;
            listed(&String::from_utf8_lossy(&bytes), &mut out);
        } else if a.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(a)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            if found.is_empty() {
                // Reported as a failure for this argument.
                out.push(a.clone());
            }
            out.extend(found);
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_gives_planning_what_the_host_gave() {
        let root = host::Root::open(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/roots/precedence"
        )))
        .unwrap();
        let dropin = "/etc/sysctl.d/90-sysctune.conf";
        let on_host = host::read(&root, &[], Some(dropin)).unwrap();
        assert!(on_host.dropin.is_some(), "the fixture has a drop-in");
        assert!(on_host.sysctl_d.sysctl_conf.is_some() && on_host.sysctl_d.files.len() > 5);
        let snap = Snapshot::of(on_host.clone());
        snap.validate().unwrap();
        assert_eq!(snap.observed(&[], dropin), on_host);

        // A pinned key the snapshot lacks is unknown, and says how to take it.
        let pinned = snap.observed(&["vm.stat_interval".to_string()], dropin);
        assert_eq!(pinned.facts.warnings.len(), on_host.facts.warnings.len() + 1);
        assert!(
            pinned
                .facts
                .warnings
                .last()
                .unwrap()
                .contains("sysctune snapshot --key vm.stat_interval"),
            "{:?}",
            pinned.facts.warnings
        );
    }
}
