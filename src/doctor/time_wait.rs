//! `time-wait`: sockstat `tw` against `net.ipv4.tcp_max_tw_buckets`, with the kernel's
//! own count of what the cap destroyed (`TCPTimeWaitOverflow` in /proc/net/netstat).
//!
//! Past the cap the kernel destroys each new TIME_WAIT socket at once: connect() does not
//! fail (checked: 50 buckets, 120 ports, 360 of 360 connects succeed while TIME_WAIT stays
//! at 50), but TIME_WAIT's protection against stray segments of an old connection is
//! silently lost, and without TIME_WAIT a port is free for the next connect() at once.
//! A warning at the cap; both figures are per network namespace.

use super::percent;
use crate::rules::Code;
use crate::rules::{Finding, Severity};
use crate::units::grouped;

const KEY: &str = "net.ipv4.tcp_max_tw_buckets";

/// `tw`: sockstat `tw`; `max`: `tcp_max_tw_buckets`; `overflow`: `TCPTimeWaitOverflow`
/// since boot (or since `--since`, then `since` says so).
pub fn check_time_wait(tw: Option<u64>, max: Option<u64>, overflow: Option<u64>) -> Finding {
    let id = Code::TimeWait;
    let (Some(tw), Some(max)) = (tw, max) else {
        return Finding::new(
            Severity::Info,
            id,
            if tw.is_none() {
                "/proc/net/sockstat could not be read: TIME_WAIT not checked.".to_string()
            } else {
                format!("{KEY} is absent: TIME_WAIT's cap not checked.")
            },
        );
    };
    let overflowed = match overflow {
        Some(n) if n > 0 => format!(
            "; TCPTimeWaitOverflow: {} TIME_WAIT socket(s) destroyed at the cap since boot",
            grouped(n as u128)
        ),
        Some(_) => "; TCPTimeWaitOverflow 0".to_string(),
        None => String::new(),
    };
    let figures = format!(
        "{} sockets in TIME_WAIT are {} of {KEY} {}",
        grouped(tw as u128),
        percent(tw as u128, max as u128),
        grouped(max as u128)
    );
    let finding = if tw >= max {
        Finding::new(
            Severity::Warning,
            id,
            format!(
                "{figures}{overflowed}: at the cap the kernel destroys every new TIME_WAIT socket at once \
                 (older kernels log \"TCP: time wait bucket table overflow\"). Nothing fails, but stray \
                 segments of an old connection can reach a new one on the same port. Fix: raise {KEY} \
                 (sysctune plan sizes it from outbound.new_per_second and outbound.destinations), or reuse \
                 connections."
            ),
        )
    } else {
        Finding::new(Severity::Info, id, format!("{figures}{overflowed}."))
    };
    finding.measured(Some(KEY), tw, max, "sockets")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_wait_thresholds() {
        let i = check_time_wait(Some(49), Some(50), Some(0));
        assert_eq!(i.severity, Severity::Info);
        assert!(
            i.message.contains("49 sockets in TIME_WAIT are 98% of"),
            "{}",
            i.message
        );
        let w = check_time_wait(Some(50), Some(50), Some(310));
        assert_eq!(w.severity, Severity::Warning);
        assert!(w.message.contains("TCPTimeWaitOverflow: 310"), "{}", w.message);
        assert_eq!((w.value, w.threshold), (Some(50), Some(50)));
        assert_eq!(
            check_time_wait(Some(0), Some(0), None).severity,
            Severity::Warning
        );
        assert!(check_time_wait(Some(3), None, None).message.contains("absent"));
        assert!(check_time_wait(None, Some(3), None).message.contains("sockstat"));
    }
}
