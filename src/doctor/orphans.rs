//! `orphans`: sockstat `orphan` against `net.ipv4.tcp_max_orphans`, as the kernel judges
//! them.
//!
//! `tcp_too_many_orphans(shift)` (include/net/tcp.h) is `orphans << shift >
//! tcp_max_orphans`, and `tcp_out_of_resources` (net/ipv4/tcp_timer.c) raises `shift` by
//! one for an orphan whose peer has been silent for over 2 × TCP_RTO_MAX (240 s) and by one
//! more for an orphan with a soft error (an ICMP error, say). So the kernel starts
//! resetting orphans, logging "too many orphaned sockets", at:
//!
//! | orphans | who is reset | severity |
//! |---|---|---|
//! | over a quarter of the cap | orphans of silent peers that also had a soft error | warning |
//! | over half of the cap | orphans of silent peers | warning |
//! | over the cap | any orphan that runs out of resources | error |
//!
//! `tcp_check_oom` resets an orphan too when TCP memory is above `tcp_mem` high ("out of
//! memory -- consider tuning tcp_mem"): the message says so when sockstat `mem` is there.
//! Each orphan may hold up to ~64 KiB of unswappable memory (ip-sysctl.rst).
//! `tcp_max_orphans` exists only in the host's network namespace: in a child namespace
//! the check is skipped with an info finding.

use super::percent;
use crate::rules::Code;
use crate::rules::{Finding, Severity};
use crate::units::{grouped, human_bytes};

/// Each orphan may hold up to ~64 KiB of unswappable memory (ip-sysctl.rst).
const ORPHAN_BYTES: u128 = 64 << 10;

/// The largest `shift` of `tcp_too_many_orphans` for which the kernel judges `orphans`
/// too many, or `None` when it never does.
pub fn too_many_shift(orphans: u64, max: u64) -> Option<u32> {
    (0..=2).find(|&shift| (orphans as u128) << shift > max as u128)
}

/// `orphans`: sockstat `orphan` against `tcp_max_orphans`; `over_high`: TCP memory is
/// above tcp_mem high (orphans are reset for that too).
pub fn check_orphans(orphans: Option<u64>, max: Option<u64>, over_high: bool) -> Finding {
    let id = Code::Orphans;
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
    let memory = if over_high {
        " TCP memory is above tcp_mem high too: every orphan that needs memory is reset for that alone."
    } else {
        ""
    };
    let fix = format!(
        "Up to ~64 KiB of unswappable memory each: up to {} now. Fix: find why peers do not finish \
         closing; lower net.ipv4.tcp_fin_timeout and tcp_orphan_retries; raise tcp_max_orphans if memory \
         allows.",
        human_bytes(o * ORPHAN_BYTES)
    );
    let (severity, message) = match too_many_shift(orphans, max) {
        Some(0) => (
            Severity::Error,
            format!(
                "{figures}: over the cap, the kernel resets every orphan that runs out of resources, logging \
                 \"too many orphaned sockets\".{memory} {fix}"
            ),
        ),
        Some(1) => (
            Severity::Warning,
            format!(
                "{figures}: over half of it, the kernel resets the orphans of peers silent for 240 s \
                 (2 × TCP_RTO_MAX), logging \"too many orphaned sockets\"; over the cap, any orphan.{memory} \
                 {fix}"
            ),
        ),
        Some(_) => (
            Severity::Warning,
            format!(
                "{figures}: over a quarter of it, the kernel resets the orphans of silent peers that also had \
                 a soft error (an ICMP error), logging \"too many orphaned sockets\"; over half, those of any \
                 silent peer.{memory} {fix}"
            ),
        ),
        None if over_high => (Severity::Warning, format!("{figures}.{memory} {fix}")),
        None => (Severity::Info, format!("{figures}.")),
    };
    Finding::new(severity, id, message).measured(Some("net.ipv4.tcp_max_orphans"), orphans, max, "sockets")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphan_thresholds_are_the_kernels_shifts() {
        let sev = |o| check_orphans(Some(o), Some(1000), false).severity;
        assert_eq!(sev(0), Severity::Info);
        assert_eq!(sev(250), Severity::Info); // 250 << 2 = 1000, not above
        assert_eq!(sev(251), Severity::Warning);
        assert_eq!(sev(500), Severity::Warning);
        assert_eq!(sev(501), Severity::Warning);
        assert_eq!(sev(1000), Severity::Warning);
        assert_eq!(too_many_shift(251, 1000), Some(2));
        assert_eq!(too_many_shift(501, 1000), Some(1));
        assert_eq!(too_many_shift(1001, 1000), Some(0));
        assert!(
            check_orphans(Some(501), Some(1000), false)
                .message
                .contains("peers silent for 240 s")
        );
        let e = check_orphans(Some(1001), Some(1000), false);
        assert_eq!(e.severity, Severity::Error);
        assert!(e.message.contains("too many orphaned sockets"));
        assert!(e.message.contains("62.6 MiB"), "{}", e.message); // 1001 × 64 KiB
        let mem = check_orphans(Some(10), Some(1000), true);
        assert_eq!(mem.severity, Severity::Warning);
        assert!(mem.message.contains("above tcp_mem high"), "{}", mem.message);
        let skip = check_orphans(Some(900), None, false);
        assert_eq!(skip.severity, Severity::Info);
        assert!(skip.message.contains("absent"));
        assert!(check_orphans(None, Some(5), false).message.contains("sockstat"));
        assert_eq!(check_orphans(Some(1), Some(0), false).severity, Severity::Error);
    }
}
