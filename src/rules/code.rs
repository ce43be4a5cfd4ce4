//! What a finding is about, as a code scripts and alerts match on (the `rule` field of
//! every finding in the JSON, the `check` label of doctor's metrics). One list, here: a
//! renamed or new code shows in review as a change to its snapshot (`codes_are_stable`).
//!
//! A code names the subject, not the command: doctor's check of sockstat `mem` against
//! tcp_mem carries `tcp-memory`, the code of the rule that sizes tcp_mem, so a plan's
//! finding and an alert about the same limit share it.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Code {
    // The rules (also doctor's checks of their keys).
    #[serde(rename = "tcp-memory")]
    TcpMemory,
    #[serde(rename = "tcp-buffers")]
    TcpBuffers,
    #[serde(rename = "port-range")]
    PortRange,
    #[serde(rename = "overcommit")]
    Overcommit,
    #[serde(rename = "swappiness")]
    Swappiness,
    #[serde(rename = "oom")]
    Oom,
    #[serde(rename = "file-descriptors")]
    FileDescriptors,
    // Planning.
    /// The host's facts could not all be read.
    #[serde(rename = "host")]
    Host,
    /// What the profile left to the host, as decided ("fit", "observed").
    #[serde(rename = "profile")]
    Profile,
    /// A `[sysctl]` pin.
    #[serde(rename = "pin")]
    Pin,
    /// A key an earlier apply set live that the plan no longer manages.
    #[serde(rename = "released")]
    Released,
    /// A per-namespace key: what containers get.
    #[serde(rename = "scope")]
    Scope,
    /// Live, boot and the drop-in disagree.
    #[serde(rename = "drift")]
    Drift,
    /// The sysctl.d files: shadowing, masking, unreadable lines.
    #[serde(rename = "sysctl.d")]
    SysctlD,
    /// What would break the host at once if applied (apply refuses it).
    #[serde(rename = "guard")]
    Guard,
    // Doctor's own checks.
    #[serde(rename = "ports")]
    Ports,
    #[serde(rename = "time-wait")]
    TimeWait,
    #[serde(rename = "orphans")]
    Orphans,
    #[serde(rename = "commit")]
    Commit,
    #[serde(rename = "counters")]
    Counters,
    #[serde(rename = "processes")]
    Processes,
}

impl Code {
    /// Every code, in this order.
    pub const ALL: &'static [Code] = &[
        Code::TcpMemory,
        Code::TcpBuffers,
        Code::PortRange,
        Code::Overcommit,
        Code::Swappiness,
        Code::Oom,
        Code::FileDescriptors,
        Code::Host,
        Code::Profile,
        Code::Pin,
        Code::Released,
        Code::Scope,
        Code::Drift,
        Code::SysctlD,
        Code::Guard,
        Code::Ports,
        Code::TimeWait,
        Code::Orphans,
        Code::Commit,
        Code::Counters,
        Code::Processes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::TcpMemory => "tcp-memory",
            Code::TcpBuffers => "tcp-buffers",
            Code::PortRange => "port-range",
            Code::Overcommit => "overcommit",
            Code::Swappiness => "swappiness",
            Code::Oom => "oom",
            Code::FileDescriptors => "file-descriptors",
            Code::Host => "host",
            Code::Profile => "profile",
            Code::Pin => "pin",
            Code::Released => "released",
            Code::Scope => "scope",
            Code::Drift => "drift",
            Code::SysctlD => "sysctl.d",
            Code::Guard => "guard",
            Code::Ports => "ports",
            Code::TimeWait => "time-wait",
            Code::Orphans => "orphans",
            Code::Commit => "commit",
            Code::Counters => "counters",
            Code::Processes => "processes",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list scripts and alerts depend on: a change here is a change of interface.
    #[test]
    fn codes_are_stable() {
        let list: Vec<String> = Code::ALL
            .iter()
            .map(|c| format!("{c:?} = {}", c.as_str()))
            .collect();
        insta::assert_snapshot!(list.join("\n"));
    }

    #[test]
    fn every_code_once_and_serialised_as_its_name() {
        let mut seen = std::collections::BTreeSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c:?} twice");
            assert_eq!(serde_json::to_string(c).unwrap(), format!("\"{}\"", c.as_str()));
        }
        // ALL holds every variant: a match without a wildcard fails to compile on a new one.
        let check = |c: Code| match c {
            Code::TcpMemory
            | Code::TcpBuffers
            | Code::PortRange
            | Code::Overcommit
            | Code::Swappiness
            | Code::Oom
            | Code::FileDescriptors
            | Code::Host
            | Code::Profile
            | Code::Pin
            | Code::Released
            | Code::Scope
            | Code::Drift
            | Code::SysctlD
            | Code::Guard
            | Code::Ports
            | Code::TimeWait
            | Code::Orphans
            | Code::Commit
            | Code::Counters
            | Code::Processes => Code::ALL.contains(&c),
        };
        assert!(Code::ALL.iter().all(|c| check(*c)));
        assert_eq!(Code::ALL.len(), 21);
    }
}
