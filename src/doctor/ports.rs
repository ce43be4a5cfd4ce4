//! `ports`: sockets holding an ephemeral local port, per destination address:port,
//! against the usable ports of `ip_local_port_range` (`available(lo, hi)`: minus
//! `ip_local_reserved_ports`). Warning at 50 %, error at 90 % ("Cannot assign requested
//! address" is imminent).
//!
//! Which sockets hold a port for a destination: see [`crate::host::tcp_table`]
//! (connected states, local port connect() could have picked, listeners and the
//! connections accepted on them left out).

use super::{DestinationFact, grade, percent, percent_f64};
use crate::host::tcp_table::{Counts, Destination, TableRead};
use crate::rules::port_range::{TIME_WAIT_SECONDS, max_new_per_second};
use crate::rules::{Finding, Severity};
use crate::units::grouped;

pub const PORTS_WARNING_PERCENT: u64 = 50;
pub const PORTS_ERROR_PERCENT: u64 = 90;

/// Destinations above the warning threshold that get a finding of their own; the rest
/// are summed up in one.
pub const PORT_FINDINGS_MAX: usize = 5;

/// Severity of one destination holding `used` of `usable` ports; `None` when nothing is
/// held.
pub fn port_severity(used: u64, usable: u64) -> Option<Severity> {
    if used == 0 {
        return None;
    }
    let (u, t) = (used as u128, usable as u128);
    Some(grade(u, t, PORTS_WARNING_PERCENT, PORTS_ERROR_PERCENT))
}

pub(super) fn destination_fact(d: &Destination, usable: u64) -> DestinationFact {
    let c = d.counts;
    DestinationFact {
        destination: d.name(),
        address: d.address(),
        port: d.port,
        total: c.total(),
        time_wait: c.time_wait,
        established: c.established,
        syn_sent: c.syn_sent,
        other: c.other,
        percent: percent_f64(c.total() as u128, usable as u128),
    }
}

fn by_state(c: &Counts) -> String {
    format!(
        "{} TIME_WAIT, {} ESTABLISHED, {} SYN_SENT, {} closing",
        grouped(c.time_wait as u128),
        grouped(c.established as u128),
        grouped(c.syn_sent as u128),
        grouped(c.other as u128)
    )
}

/// Findings of the `ports` rule. `busiest`: the busiest destinations, busiest first;
/// `over`: the severity of every destination at or above the warning threshold.
pub fn check_ports(
    (lo, hi): (u32, u32),
    usable: u64,
    tables: &[TableRead],
    busiest: &[Destination],
    over: &[Severity],
    destinations: u64,
) -> Vec<Finding> {
    let id = "ports";
    let range = format!("ip_local_port_range {lo} {hi}");
    let usable_s = grouped(usable as u128);
    let range_len = if lo > hi { 0 } else { hi as u64 - lo as u64 + 1 };
    let reserved = range_len - usable;
    let reserved_s = if reserved > 0 {
        format!(", {} reserved", grouped(reserved as u128))
    } else {
        String::new()
    };
    if tables.iter().all(|t| t.lines.is_none()) {
        let paths: Vec<&str> = tables.iter().map(|t| t.path.as_str()).collect();
        return vec![Finding::new(
            Severity::Info,
            id,
            format!("{}: no such file; ephemeral ports not checked.", paths.join(", ")),
        )];
    }
    let per_second = max_new_per_second(usable);
    let reserved_note = if reserved > 0 {
        format!(" ({} reserved)", grouped(reserved as u128))
    } else {
        String::new()
    };
    let fix = "Fix: reuse connections (HTTP keep-alive, a connection pool); widen the range (sysctune plan \
               --profile batch-client; at most 1024 65535, 64 512 ports); or add destination addresses or \
               ports (each has its own).";
    if usable == 0 {
        return vec![Finding::new(
            Severity::Error,
            id,
            format!(
                "{range} has no usable port ({} ports{reserved_s}): every connect() without an explicit \
                 bind fails with EADDRNOTAVAIL \"Cannot assign requested address\". Set a range the kernel \
                 accepts, e.g. sysctune plan --profile batch-client.",
                grouped(range_len as u128)
            ),
        )];
    }
    let mut out = Vec::new();
    let shown = busiest
        .iter()
        .take(PORT_FINDINGS_MAX)
        .filter(|d| port_severity(d.counts.total(), usable).is_some_and(|s| s > Severity::Info));
    let mut shown_n = 0;
    for d in shown {
        shown_n += 1;
        let used = d.counts.total();
        let severity = port_severity(used, usable).unwrap_or(Severity::Info);
        let consequence = if severity == Severity::Error {
            "connect() to it is about to fail with EADDRNOTAVAIL \"Cannot assign requested address\""
        } else {
            "when all are, connect() to it fails with EADDRNOTAVAIL \"Cannot assign requested address\""
        };
        out.push(Finding::new(
            severity,
            id,
            format!(
                "{}: {} of the {usable_s} usable local ports of {range}{reserved_note} are taken ({}: {}); \
                 {consequence}. With {TIME_WAIT_SECONDS} s of TIME_WAIT per closed port, the range sustains \
                 {} new connection(s) per second to one destination. {fix}",
                d.name(),
                grouped(used as u128),
                percent(used as u128, usable as u128),
                by_state(&d.counts),
                grouped(per_second as u128),
            ),
        )
        .measured(Some("net.ipv4.ip_local_port_range"), used, usable, "ports"));
    }
    let rest = over.len().saturating_sub(shown_n);
    if rest > 0 {
        let errors = over.iter().filter(|s| **s == Severity::Error).count();
        let shown_errors = out.iter().filter(|f| f.severity == Severity::Error).count();
        let severity = if errors > shown_errors {
            Severity::Error
        } else {
            Severity::Warning
        };
        out.push(Finding::new(
            severity,
            id,
            format!(
                "{rest} more destination(s) hold at least {PORTS_WARNING_PERCENT}% of the {usable_s} usable \
                 ports of {range} ({} of them at least {PORTS_ERROR_PERCENT}%); \
                 sysctune doctor --top N --format json lists them.",
                errors.saturating_sub(shown_errors)
            ),
        ));
    }
    if out.is_empty() {
        let message = match busiest.first() {
            Some(d) => format!(
                "{}, {}, holds {} of the {usable_s} usable ports of {range} ({}).",
                if destinations == 1 {
                    "the only destination".to_string()
                } else {
                    format!("the busiest of {} destinations", grouped(destinations as u128))
                },
                d.name(),
                grouped(d.counts.total() as u128),
                percent(d.counts.total() as u128, usable as u128),
            ),
            None => format!("no connection holds a port of {range} ({usable_s} usable{reserved_s})."),
        };
        let used = busiest.first().map_or(0, |d| d.counts.total());
        out.push(Finding::new(Severity::Info, id, message).measured(
            Some("net.ipv4.ip_local_port_range"),
            used,
            usable,
            "ports",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::tcp_table::Addr;
    use std::net::Ipv4Addr;

    fn dest(port: u16, time_wait: u32, established: u32) -> Destination {
        Destination {
            addr: Addr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            port,
            counts: Counts {
                time_wait,
                established,
                ..Counts::default()
            },
        }
    }

    fn tables() -> Vec<TableRead> {
        vec![TableRead {
            path: "/proc/net/tcp".into(),
            lines: Some(10),
        }]
    }

    #[test]
    fn port_thresholds() {
        assert_eq!(port_severity(0, 10), None);
        assert_eq!(port_severity(4, 10), Some(Severity::Info));
        assert_eq!(port_severity(5, 10), Some(Severity::Warning));
        assert_eq!(port_severity(8, 10), Some(Severity::Warning));
        assert_eq!(port_severity(9, 10), Some(Severity::Error));
        assert_eq!(port_severity(11, 10), Some(Severity::Error));
        // 28232 usable: 50% = 14116, 90% = 25408.8
        assert_eq!(port_severity(14115, 28232), Some(Severity::Info));
        assert_eq!(port_severity(14116, 28232), Some(Severity::Warning));
        assert_eq!(port_severity(25408, 28232), Some(Severity::Warning));
        assert_eq!(port_severity(25409, 28232), Some(Severity::Error));
        assert_eq!(port_severity(1, 0), Some(Severity::Error));
    }

    #[test]
    fn port_finding_names_destination_range_and_fix() {
        let busiest = [dest(8080, 9, 0)];
        let f = check_ports((40000, 40009), 10, &tables(), &busiest, &[Severity::Error], 1);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        let m = &f[0].message;
        for part in [
            "127.0.0.1:8080",
            "9 of the 10 usable",
            "90%",
            "9 TIME_WAIT",
            "ip_local_port_range 40000 40009",
            "Cannot assign requested address",
            "sustains 0 new connection(s) per second",
            "keep-alive",
            "sysctune plan --profile batch-client",
            "add destination addresses",
        ] {
            assert!(m.contains(part), "{part:?} not in {m}");
        }
        let f = check_ports(
            (40000, 40009),
            10,
            &tables(),
            &[dest(8080, 5, 1)],
            &[Severity::Warning],
            1,
        );
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("60%"), "{}", f[0].message);
    }

    #[test]
    fn ports_healthy_and_skipped() {
        let f = check_ports((32768, 60999), 28232, &tables(), &[dest(80, 3, 2)], &[], 1);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(
            f[0].message.contains("127.0.0.1:80, holds 5 of the 28 232"),
            "{}",
            f[0].message
        );
        let f = check_ports((32768, 60999), 28232, &tables(), &[], &[], 0);
        assert!(
            f[0].message.contains("no connection holds a port"),
            "{}",
            f[0].message
        );
        let missing = [TableRead {
            path: "/proc/net/tcp".into(),
            lines: None,
        }];
        let f = check_ports((32768, 60999), 28232, &missing, &[], &[], 0);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(f[0].message.contains("not checked"));
        // a range with every port reserved
        let f = check_ports((40000, 40009), 0, &tables(), &[], &[], 0);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("10 reserved"), "{}", f[0].message);
    }

    #[test]
    fn many_destinations_over_are_summed_up() {
        let busiest: Vec<Destination> = (0..7).map(|i| dest(8000 + i, 9, 0)).collect();
        let over = vec![Severity::Error; 7];
        let f = check_ports((40000, 40009), 10, &tables(), &busiest, &over, 7);
        assert_eq!(f.len(), PORT_FINDINGS_MAX + 1);
        let last = f.last().unwrap();
        assert_eq!(last.severity, Severity::Error);
        assert!(
            last.message.starts_with("2 more destination(s)"),
            "{}",
            last.message
        );
    }
}
