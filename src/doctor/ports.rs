//! `ports`: the local ports connect() may still pick, counted the way the kernel keeps
//! connections unique: per (source address, destination address, destination port).
//!
//! - **Usable ports**: `available(lo, hi)` of `ip_local_port_range` minus
//!   `ip_local_reserved_ports`, minus the ports listeners hold inside the range (the kernel
//!   skips them: 119 usable of 120 with one listener, checked).
//! - **Per (source, destination)**: the sockets holding a port of the range for it, against
//!   the usable ports. Warning at 50 %, error at 90 % ("Cannot assign requested address"
//!   is imminent). Two source addresses each have the whole range for one destination.
//! - **Reuse**: with `tcp_tw_reuse` 1 (any destination) or 2 (loopback source or
//!   destination, the default) and `tcp_timestamps` ≥ 1, connect() takes a port whose
//!   TIME_WAIT is older than `tcp_tw_reuse_delay` ms (1000 before 6.13): there TIME_WAIT
//!   does not hold a port, only the other states are judged, and the range sustains
//!   `usable × 1000 / delay` new connections per second instead of `usable / 60`.
//! - **The pool**: the distinct local ports held across all destinations. A bind() before
//!   connect() (without `IP_BIND_ADDRESS_NO_PORT`) takes a port for every destination at
//!   once, and ports bound that way are given to no other connect(): when the pool is
//!   full, more destinations do not help. Warning at 90 %: doctor cannot tell from the
//!   tables which sockets were bound that way.
//!
//! Which sockets hold a port: see [`crate::host::tcp_table`] (connected states, local
//! port connect() could have picked, listeners and the connections accepted on them left
//! out).

use crate::rules::Code;
use serde::Serialize;

use super::{DestinationFact, grade, percent, percent_f64};
use crate::host::tcp_table::{Counts, Destination, TableRead};
use crate::rules::port_range::TimeWait;
use crate::rules::{Finding, Severity};
use crate::units::grouped;

pub const PORTS_WARNING_PERCENT: u64 = 50;
pub const PORTS_ERROR_PERCENT: u64 = 90;
/// The pool of local ports held across destinations: a warning from here.
pub const POOL_WARNING_PERCENT: u64 = 90;

/// Destinations above the warning threshold that get a finding of their own; the rest
/// are summed up in one.
pub const PORT_FINDINGS_MAX: usize = 5;

/// `tcp_tw_reuse_delay` when the key is absent (before 6.13): 1 s.
pub const DEFAULT_REUSE_DELAY_MS: u64 = 1000;

const RANGE: &str = "net.ipv4.ip_local_port_range";

const ID: Code = Code::Ports;

/// Where connect() may reuse a port in TIME_WAIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Reuse {
    /// `net.ipv4.tcp_tw_reuse`: 0 never, 1 any destination, 2 loopback only.
    pub tcp_tw_reuse: Option<u64>,
    /// `net.ipv4.tcp_timestamps` (reuse needs them); absent counts as 1.
    pub tcp_timestamps: Option<u64>,
    /// `net.ipv4.tcp_tw_reuse_delay`, ms; 1000 when absent.
    pub delay_ms: u64,
}

impl Reuse {
    pub const NONE: Reuse = Reuse {
        tcp_tw_reuse: Some(0),
        tcp_timestamps: Some(1),
        delay_ms: DEFAULT_REUSE_DELAY_MS,
    };

    /// Does connect() to `d` reuse ports in TIME_WAIT (`tcp_twsk_unique`)?
    pub fn applies(&self, d: &Destination) -> bool {
        self.tcp_timestamps.unwrap_or(1) >= 1
            && match self.tcp_tw_reuse {
                Some(1) => true,
                Some(2) => d.is_loopback(),
                _ => false,
            }
    }

    /// New connections per second one destination sustains where reuse applies.
    pub fn max_new_per_second(&self, usable: u64) -> u64 {
        (usable as u128 * 1000 / self.delay_ms.max(1) as u128) as u64
    }
}

/// The port figures of one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortModel {
    pub range: (u32, u32),
    /// Reserved ports inside the range.
    pub reserved: u64,
    /// Listening ports inside the range and not reserved.
    pub listening: u64,
    /// What connect() may pick: the range minus reserved and listening ports.
    pub usable: u64,
    pub reuse: Reuse,
    /// How long TIME_WAIT holds a port: 60 s and the timer's slack at the host's HZ.
    pub tw: TimeWait,
    /// Distinct local ports of the range held across all destinations.
    pub pool_held: u64,
}

impl PortModel {
    /// The ports `d` holds for the judgement: where reuse applies, TIME_WAIT does not hold.
    pub fn held(&self, d: &Destination) -> u64 {
        if self.reuse.applies(d) {
            d.counts.total() - d.counts.time_wait as u64
        } else {
            d.counts.total()
        }
    }

    pub fn severity(&self, d: &Destination) -> Option<Severity> {
        port_severity(self.held(d), self.usable)
    }
}

/// Severity of one destination holding `used` of `usable` ports; `None` when nothing is
/// held.
pub fn port_severity(used: u64, usable: u64) -> Option<Severity> {
    if used == 0 {
        return None;
    }
    let (u, t) = (used as u128, usable as u128);
    Some(grade(u, t, PORTS_WARNING_PERCENT, PORTS_ERROR_PERCENT))
}

pub(super) fn destination_fact(d: &Destination, model: &PortModel) -> DestinationFact {
    let c = d.counts;
    let held = model.held(d);
    DestinationFact {
        destination: d.name(),
        address: d.address(),
        port: d.port,
        source: d.source_address(),
        total: c.total(),
        held,
        reuse: model.reuse.applies(d),
        time_wait: c.time_wait,
        established: c.established,
        syn_sent: c.syn_sent,
        other: c.other,
        percent: percent_f64(held as u128, model.usable as u128),
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

/// `10.0.0.5:8080 from 10.0.0.2`.
fn pair(d: &Destination) -> String {
    format!("{} from {}", d.name(), d.source_address())
}

/// What the findings of one `ports` check say in common: the range, its usable ports,
/// the ports taken out of it, and the fix.
struct Words {
    range: String,
    usable: String,
    /// `, 3 reserved, 1 listening` after a count; empty when none are taken.
    taken: String,
    /// ` (3 reserved, 1 listening)` after the range; empty when none are taken.
    taken_note: String,
    fix: String,
}

impl Words {
    fn new(model: &PortModel, pool_full: bool) -> Self {
        let (lo, hi) = model.range;
        let mut taken = Vec::new();
        if model.reserved > 0 {
            taken.push(format!("{} reserved", grouped(model.reserved as u128)));
        }
        if model.listening > 0 {
            taken.push(format!("{} listening", grouped(model.listening as u128)));
        }
        let (taken_s, taken_note) = if taken.is_empty() {
            (String::new(), String::new())
        } else {
            (
                format!(", {}", taken.join(", ")),
                format!(" ({})", taken.join(", ")),
            )
        };
        Words {
            range: format!("ip_local_port_range {lo} {hi}"),
            usable: grouped(model.usable as u128),
            taken: taken_s,
            taken_note,
            fix: fix(model, pool_full),
        }
    }
}

/// Reuse, widen, and (depending on whether the pool is full) more addresses.
fn fix(model: &PortModel, pool_full: bool) -> String {
    let more_destinations = if pool_full {
        format!(
            "more source or destination addresses help only with a plain connect(): after a bind() \
             (without IP_BIND_ADDRESS_NO_PORT) the range is one pool for all destinations, {} held now",
            percent(model.pool_held as u128, model.usable as u128)
        )
    } else {
        "or add source addresses, destination addresses or ports (with a plain connect() each \
         (source, destination) pair has the whole range; not after a bind(), where the range is one pool)"
            .to_string()
    };
    format!(
        "Fix: reuse connections (HTTP keep-alive, a connection pool); widen the range (sysctune plan \
         --profile batch-client; at most 1024 65535, 64 512 ports); {more_destinations}."
    )
}

/// Findings of the `ports` rule. `busiest`: the busiest (source, destination) pairs,
/// busiest first; `over`: the severity of every pair at or above the warning threshold.
pub fn check_ports(
    model: &PortModel,
    tables: &[TableRead],
    busiest: &[Destination],
    over: &[Severity],
    destinations: u64,
) -> Vec<Finding> {
    let usable = model.usable;
    let pool = model.pool_held;
    let pool_full = grade(pool as u128, usable as u128, POOL_WARNING_PERCENT, 101) > Severity::Info;
    let words = Words::new(model, pool_full);
    if tables.iter().all(|t| t.lines.is_none()) {
        let paths: Vec<&str> = tables.iter().map(|t| t.path.as_str()).collect();
        return vec![Finding::new(
            Severity::Info,
            ID,
            format!("{}: no such file; ephemeral ports not checked.", paths.join(", ")),
        )];
    }
    if usable == 0 {
        return vec![no_usable_port(model, &words)];
    }
    let mut out: Vec<Finding> = busiest
        .iter()
        .take(PORT_FINDINGS_MAX)
        .filter(|d| model.severity(d).is_some_and(|s| s > Severity::Info))
        .map(|d| pair_finding(model, d, &words))
        .collect();
    out.extend(more_pairs(over, &out, &words));
    // Only when several pairs fill it: one pair alone is the finding above.
    let busiest_held = busiest.iter().map(|d| d.counts.total()).max().unwrap_or(0);
    if pool_full && pool > busiest_held {
        out.push(pool_finding(model, &words));
    }
    if out.is_empty() {
        out.push(quiet(model, busiest, destinations, &words));
    }
    out
}

/// The range has no usable port at all: every connect() fails.
fn no_usable_port(model: &PortModel, w: &Words) -> Finding {
    let (lo, hi) = model.range;
    let range_len = if lo > hi { 0 } else { hi as u64 - lo as u64 + 1 };
    Finding::new(
        Severity::Error,
        ID,
        format!(
            "{} has no usable port ({} ports{}): every connect() without an explicit \
             bind fails with EADDRNOTAVAIL \"Cannot assign requested address\". Set a range the kernel \
             accepts, e.g. sysctune plan --profile batch-client.",
            w.range,
            grouped(range_len as u128),
            w.taken
        ),
    )
}

/// One pair at or above the warning threshold: the ports it holds (outside TIME_WAIT
/// where tcp_tw_reuse applies), what fails, and the rate the range sustains.
fn pair_finding(model: &PortModel, d: &Destination, w: &Words) -> Finding {
    let usable = model.usable;
    let used = model.held(d);
    let severity = model.severity(d).unwrap_or(Severity::Info);
    let consequence = if severity == Severity::Error {
        "connect() to it is about to fail with EADDRNOTAVAIL \"Cannot assign requested address\""
    } else {
        "when all are, connect() to it fails with EADDRNOTAVAIL \"Cannot assign requested address\""
    };
    let pct = percent(used as u128, usable as u128);
    let (what, rate) = if model.reuse.applies(d) {
        (
            format!(
                "are held outside TIME_WAIT ({pct}: {}; tcp_tw_reuse = {} reuses a port {} ms into its \
                 TIME_WAIT)",
                by_state(&d.counts),
                model.reuse.tcp_tw_reuse.unwrap_or(0),
                model.reuse.delay_ms
            ),
            format!(
                "With reuse, the range sustains {} new connection(s) per second to one destination.",
                grouped(model.reuse.max_new_per_second(usable) as u128)
            ),
        )
    } else {
        (
            format!("are taken ({pct}: {})", by_state(&d.counts)),
            format!(
                "With TIME_WAIT lasting up to {} per closed port (60 s and the kernel timer's slack), \
                 the range sustains {} new connection(s) per second to one destination.",
                model.tw.millis(),
                grouped(model.tw.per_second(usable) as u128)
            ),
        )
    };
    Finding::new(
        severity,
        ID,
        format!(
            "{}: {} of the {} usable local ports of {}{} {what}; {consequence}. {rate} {}",
            pair(d),
            grouped(used as u128),
            w.usable,
            w.range,
            w.taken_note,
            w.fix
        ),
    )
    .measured(Some(RANGE), used, usable, "ports")
}

/// The pairs over the threshold that `shown` leaves out, counted in one finding.
fn more_pairs(over: &[Severity], shown: &[Finding], w: &Words) -> Option<Finding> {
    let rest = over.len().saturating_sub(shown.len());
    if rest == 0 {
        return None;
    }
    let errors = over.iter().filter(|s| **s == Severity::Error).count();
    let shown_errors = shown.iter().filter(|f| f.severity == Severity::Error).count();
    let severity = if errors > shown_errors {
        Severity::Error
    } else {
        Severity::Warning
    };
    Some(Finding::new(
        severity,
        ID,
        format!(
            "{rest} more destination(s) hold at least {PORTS_WARNING_PERCENT}% of the {} usable \
             ports of {} ({} of them at least {PORTS_ERROR_PERCENT}%); \
             sysctune doctor --top N --format json lists them.",
            w.usable,
            w.range,
            errors.saturating_sub(shown_errors)
        ),
    ))
}

/// The pool that bind() before connect() draws from is full across destinations.
fn pool_finding(model: &PortModel, w: &Words) -> Finding {
    let (pool, usable) = (model.pool_held, model.usable);
    Finding::new(
        Severity::Warning,
        ID,
        format!(
            "{} of the {} usable local ports of {}{} are held across all \
             destinations ({}): the pool is full. A bind() before connect() (without \
             IP_BIND_ADDRESS_NO_PORT) needs a port no socket holds and fails with EADDRINUSE \
             \"Address already in use\"; where the ports were taken that way, connect() to any new \
             destination fails at once with EADDRNOTAVAIL. Fix: set IP_BIND_ADDRESS_NO_PORT before \
             bind(), or connect() without bind(); reuse connections; widen the range.",
            grouped(pool as u128),
            w.usable,
            w.range,
            w.taken_note,
            percent(pool as u128, usable as u128),
        ),
    )
    .measured(Some(RANGE), pool, usable, "ports")
}

/// Nothing over a threshold: what the busiest pair holds, or that no connection holds a
/// port.
fn quiet(model: &PortModel, busiest: &[Destination], destinations: u64, w: &Words) -> Finding {
    let message = match busiest.first() {
        Some(d) => format!(
            "{}, {}, holds {} of the {} usable ports of {}{} ({}); {} held across \
             all destinations.",
            if destinations == 1 {
                "the only destination".to_string()
            } else {
                format!("the busiest of {} destinations", grouped(destinations as u128))
            },
            pair(d),
            grouped(model.held(d) as u128),
            w.usable,
            w.range,
            w.taken_note,
            percent(model.held(d) as u128, model.usable as u128),
            grouped(model.pool_held as u128),
        ),
        None => format!(
            "no connection holds a port of {} ({} usable{}).",
            w.range, w.usable, w.taken
        ),
    };
    let used = busiest.first().map_or(0, |d| model.held(d));
    Finding::new(Severity::Info, ID, message).measured(Some(RANGE), used, model.usable, "ports")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::tcp_table::Addr;
    use std::net::Ipv4Addr;

    fn from(source: [u8; 4], addr: [u8; 4], port: u16, time_wait: u32, established: u32) -> Destination {
        Destination {
            source: Addr::V4(Ipv4Addr::from(source)),
            addr: Addr::V4(Ipv4Addr::from(addr)),
            port,
            counts: Counts {
                time_wait,
                established,
                ..Counts::default()
            },
        }
    }

    fn dest(port: u16, time_wait: u32, established: u32) -> Destination {
        from([127, 0, 0, 1], [127, 0, 0, 1], port, time_wait, established)
    }

    fn model(lo: u32, hi: u32, usable: u64) -> PortModel {
        PortModel {
            range: (lo, hi),
            reserved: (hi - lo + 1) as u64 - usable,
            listening: 0,
            usable,
            reuse: Reuse::NONE,
            tw: TimeWait::new(None),
            pool_held: 0,
        }
    }

    fn tables() -> Vec<TableRead> {
        vec![TableRead {
            path: "/proc/net/tcp".into(),
            lines: Some(10),
        }]
    }

    fn check(m: &PortModel, busiest: &[Destination]) -> Vec<Finding> {
        let over: Vec<Severity> = busiest
            .iter()
            .filter_map(|d| m.severity(d))
            .filter(|s| *s > Severity::Info)
            .collect();
        check_ports(m, &tables(), busiest, &over, busiest.len() as u64)
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
    fn port_finding_names_the_pair_range_and_fix() {
        let mut m = model(40000, 40009, 10);
        m.pool_held = 9;
        let f = check(&m, &[dest(8080, 9, 0)]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Error);
        let msg = &f[0].message;
        for part in [
            "127.0.0.1:8080 from 127.0.0.1: 9 of the 10 usable",
            "90%",
            "9 TIME_WAIT",
            "ip_local_port_range 40000 40009",
            "Cannot assign requested address",
            "sustains 0 new connection(s) per second",
            "keep-alive",
            "sysctune plan --profile batch-client",
            "only with a plain connect()",
        ] {
            assert!(msg.contains(part), "{part:?} not in {msg}");
        }
        assert_eq!((f[0].value, f[0].threshold), (Some(9), Some(10)));
        let f = check(&model(40000, 40009, 10), &[dest(8080, 5, 1)]);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("60%"), "{}", f[0].message);
        assert!(
            f[0].message
                .contains("each (source, destination) pair has the whole range")
        );
    }

    #[test]
    fn two_sources_to_one_destination_each_have_the_range() {
        // 240 sockets to one destination from two addresses with 120 ports: 100 % each,
        // not 200 %
        let m = PortModel {
            pool_held: 120,
            ..model(40000, 40119, 120)
        };
        let a = from([127, 0, 0, 1], [127, 0, 0, 9], 8080, 120, 0);
        let b = from([127, 0, 0, 2], [127, 0, 0, 9], 8080, 120, 0);
        let f = check(&m, &[a, b]);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].message
                .starts_with("127.0.0.9:8080 from 127.0.0.1: 120 of the 120 usable")
        );
        assert!(
            f[1].message
                .starts_with("127.0.0.9:8080 from 127.0.0.2: 120 of the 120 usable")
        );
        assert!(
            f.iter()
                .all(|f| f.message.contains("(100%: ") && !f.message.contains("200%"))
        );
    }

    #[test]
    fn the_pool_is_named_when_several_pairs_fill_it() {
        let m = PortModel {
            pool_held: 110,
            ..model(40000, 40119, 120)
        };
        let f = check(&m, &[dest(1, 55, 0), dest(2, 55, 0)]);
        let pool = f.iter().find(|f| f.message.contains("the pool is full")).unwrap();
        assert_eq!(pool.severity, Severity::Warning);
        assert!(
            pool.message.starts_with("110 of the 120 usable"),
            "{}",
            pool.message
        );
        assert!(pool.message.contains("IP_BIND_ADDRESS_NO_PORT"));
        assert_eq!(pool.value, Some(110));
        // one pair alone: its own finding says it
        let m = PortModel {
            pool_held: 110,
            ..model(40000, 40119, 120)
        };
        let f = check(&m, &[dest(1, 110, 0)]);
        assert!(!f.iter().any(|f| f.message.contains("the pool is full")));
    }

    #[test]
    fn listeners_and_reserved_ports_are_named() {
        let m = PortModel {
            listening: 1,
            usable: 119,
            reserved: 0,
            ..model(40000, 40119, 119)
        };
        let f = check(&m, &[dest(8080, 119, 0)]);
        assert!(
            f[0].message.contains(
                "119 of the 119 usable local ports of ip_local_port_range 40000 40119 (1 listening)"
            ),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn reuse_on_loopback_does_not_count_time_wait() {
        let reuse2 = Reuse {
            tcp_tw_reuse: Some(2),
            tcp_timestamps: Some(1),
            delay_ms: 1000,
        };
        let m = PortModel {
            reuse: reuse2,
            ..model(40000, 40119, 120)
        };
        let lo = dest(8080, 120, 0);
        assert!(reuse2.applies(&lo));
        assert_eq!(m.held(&lo), 0);
        let f = check(&m, &[lo]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Info, "{}", f[0].message);
        // not for another host's address with 2; for any with 1
        let remote = from([10, 0, 0, 2], [10, 0, 0, 9], 80, 120, 0);
        assert!(!reuse2.applies(&remote));
        assert_eq!(check(&m, &[remote])[0].severity, Severity::Error);
        let reuse1 = Reuse {
            tcp_tw_reuse: Some(1),
            ..reuse2
        };
        assert!(reuse1.applies(&remote));
        // without timestamps, never
        let no_ts = Reuse {
            tcp_timestamps: Some(0),
            ..reuse1
        };
        assert!(!no_ts.applies(&remote));
        // the non-TIME_WAIT ones still count, and the rate with reuse is given
        let m = PortModel {
            reuse: reuse1,
            ..model(40000, 40119, 120)
        };
        let f = check(&m, &[from([10, 0, 0, 2], [10, 0, 0, 9], 80, 10, 110)]);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("110 of the 120 usable"), "{}", f[0].message);
        assert!(
            f[0].message.contains("held outside TIME_WAIT"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.contains("sustains 120 new connection(s) per second"),
            "{}",
            f[0].message
        );
        assert_eq!(reuse1.max_new_per_second(120), 120);
        assert_eq!(
            Reuse {
                delay_ms: 250,
                ..reuse1
            }
            .max_new_per_second(120),
            480
        );
    }

    #[test]
    fn ports_healthy_and_skipped() {
        let f = check(&model(32768, 60999, 28232), &[dest(80, 3, 2)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(
            f[0].message
                .contains("127.0.0.1:80 from 127.0.0.1, holds 5 of the 28 232"),
            "{}",
            f[0].message
        );
        let f = check(&model(32768, 60999, 28232), &[]);
        assert!(
            f[0].message.contains("no connection holds a port"),
            "{}",
            f[0].message
        );
        let missing = [TableRead {
            path: "/proc/net/tcp".into(),
            lines: None,
        }];
        let f = check_ports(&model(32768, 60999, 28232), &missing, &[], &[], 0);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(f[0].message.contains("not checked"));
        // a range with every port reserved
        let f = check(&model(40000, 40009, 0), &[]);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("10 reserved"), "{}", f[0].message);
    }

    #[test]
    fn many_destinations_over_are_summed_up() {
        let busiest: Vec<Destination> = (0..7).map(|i| dest(8000 + i, 9, 0)).collect();
        let f = check(&model(40000, 40009, 10), &busiest);
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
