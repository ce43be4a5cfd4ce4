//! `orphans`: sockstat `orphan` against `net.ipv4.tcp_max_orphans`.
//!
//! Warning at 50 %, error at 90 % of the plain count. The kernel may count an orphan two
//! or four times (idle peer, soft error), so "too many orphaned sockets" can appear from
//! 25 %; the message says so. `tcp_max_orphans` exists only in the host's network
//! namespace: in a child namespace the check is skipped with an info finding.

use super::{grade, percent};
use crate::rules::{Finding, Severity};
use crate::units::{grouped, human_bytes};

pub const ORPHANS_WARNING_PERCENT: u64 = 50;
pub const ORPHANS_ERROR_PERCENT: u64 = 90;

/// Each orphan may hold up to ~64 KiB of unswappable memory (ip-sysctl.rst).
const ORPHAN_BYTES: u128 = 64 << 10;

/// `orphans`: sockstat `orphan` against `tcp_max_orphans`.
pub fn check_orphans(orphans: Option<u64>, max: Option<u64>) -> Finding {
    let id = "orphans";
    let (Some(orphans), Some(max)) = (orphans, max) else {
        return Finding::new(
            Severity::Info,
            id,
            if orphans.is_none() {
                "/proc/net/sockstat could not be read: orphaned sockets not checked.".to_string()
            } else {
                "net.ipv4.tcp_max_orphans is absent (it exists only in the host's network namespace, not \
                 in a container's): orphaned sockets not checked here."
                    .to_string()
            },
        );
    };
    let (o, m) = (orphans as u128, max as u128);
    let figures = format!(
        "{} orphaned sockets are {} of net.ipv4.tcp_max_orphans {}",
        grouped(o),
        percent(o, m),
        grouped(m)
    );
    let severity = grade(o, m, ORPHANS_WARNING_PERCENT, ORPHANS_ERROR_PERCENT);
    let message = if severity == Severity::Info {
        format!("{figures}.")
    } else {
        format!(
            "{figures}: beyond it the kernel resets connections, logging \"too many orphaned sockets\" \
             (an orphan of an idle or erroring peer counts 2 or 4 times: it can start at 25%). Up to ~64 KiB \
             of unswappable memory each: up to {} now. Fix: find why peers do not finish closing; lower \
             net.ipv4.tcp_fin_timeout and tcp_orphan_retries; raise tcp_max_orphans if memory allows.",
            human_bytes(o * ORPHAN_BYTES)
        )
    };
    Finding::new(severity, id, message).measured(Some("net.ipv4.tcp_max_orphans"), orphans, max, "sockets")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphan_thresholds() {
        assert_eq!(check_orphans(Some(0), Some(1000)).severity, Severity::Info);
        assert_eq!(check_orphans(Some(499), Some(1000)).severity, Severity::Info);
        assert_eq!(check_orphans(Some(500), Some(1000)).severity, Severity::Warning);
        assert_eq!(check_orphans(Some(899), Some(1000)).severity, Severity::Warning);
        let e = check_orphans(Some(900), Some(1000));
        assert_eq!(e.severity, Severity::Error);
        assert!(e.message.contains("too many orphaned sockets"));
        assert!(e.message.contains("56.3 MiB"), "{}", e.message); // 900 × 64 KiB = 56.25 MiB
        let skip = check_orphans(Some(900), None);
        assert_eq!(skip.severity, Severity::Info);
        assert!(skip.message.contains("absent"));
        assert!(check_orphans(None, Some(5)).message.contains("sockstat"));
        assert_eq!(check_orphans(Some(1), Some(0)).severity, Severity::Error);
    }
}
