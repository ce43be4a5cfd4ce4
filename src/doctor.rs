//! `sysctune doctor`: live diagnosis of the failures of the article, each finding with
//! its numbers and the fix.
//!
//! Reads `ROOT/proc/net/sockstat`, `ROOT/proc/net/tcp` and `tcp6` (streamed, see
//! [`crate::host::tcp_table`]), `ROOT/proc/meminfo` and the sysctls under `ROOT/proc/sys`.
//! Every check is a pure function of those figures, tested at the bottom of this file.
//!
//! | rule | figure | warning | error |
//! |---|---|---|---|
//! | `ports` | sockets holding an ephemeral local port, per destination address:port, against the usable ports of `ip_local_port_range` (`available(lo, hi)`: minus `ip_local_reserved_ports`) | ≥ 50 % | ≥ 90 % ("Cannot assign requested address" is imminent) |
//! | `orphans` | sockstat `orphan` against `net.ipv4.tcp_max_orphans` | ≥ 50 % | ≥ 90 % ("too many orphaned sockets") |
//! | `tcp-memory` | sockstat `mem` (pages) against `net.ipv4.tcp_mem` | ≥ pressure | ≥ high ("out of memory -- consider tuning tcp_mem") |
//! | `commit` | Committed_AS against CommitLimit, only when `vm.overcommit_memory = 2` | ≥ 90 % | above 100 % (allocations are refused) |
//! | `oom` | MemAvailable against MemTotal, only without swap | below 10 % | below 5 % |
//! | `file-descriptors` | `fs.file-nr` allocated against `fs.file-max` | ≥ 80 % | ≥ 95 % |
//!
//! Choices:
//! - Which sockets hold a port for a destination: see [`crate::host::tcp_table`]
//!   (connected states, local port connect() could have picked, listeners and the
//!   connections accepted on them left out).
//! - Orphans: the kernel may count an orphan two or four times (idle peer, soft error),
//!   so "too many orphaned sockets" can appear from 25 %; the thresholds are on the plain
//!   count, and the message says so.
//! - `tcp_mem` and `tcp_max_orphans` exist only in the host's network namespace; in a
//!   child namespace their checks are skipped with an info finding.
//! - With swap, a low MemAvailable pages out instead of killing at once: info only.
//! - Missing `tcp6` (IPv6 disabled) is not a finding; both tables missing is an info.
//! - Exit code 1 when any finding is a warning or an error, 0 otherwise.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::host::tcp_table::{self, Counts, Destination, PortScan, STATE_NAMES, TableRead};
use crate::host::{Facts, Sockstat};
use crate::rules::port_range::{Millis, TimeWait, available};
use crate::rules::{Finding, Severity};
use crate::units::{grouped, human_bytes, human_pages};

pub const SCHEMA: &str = "sysctune/doctor/v1";

pub const PORTS_WARNING_PERCENT: u64 = 50;
pub const PORTS_ERROR_PERCENT: u64 = 90;
pub const ORPHANS_WARNING_PERCENT: u64 = 50;
pub const ORPHANS_ERROR_PERCENT: u64 = 90;
pub const COMMIT_WARNING_PERCENT: u64 = 90;
pub const OOM_WARNING_BELOW_PERCENT: u64 = 10;
pub const OOM_ERROR_BELOW_PERCENT: u64 = 5;
pub const FILES_WARNING_PERCENT: u64 = 80;
pub const FILES_ERROR_PERCENT: u64 = 95;

/// Destinations above the warning threshold that get a finding of their own; the rest
/// are summed up in one.
pub const PORT_FINDINGS_MAX: usize = 5;

/// Each orphan may hold up to ~64 KiB of unswappable memory (ip-sysctl.rst).
const ORPHAN_BYTES: u128 = 64 << 10;

const RANGE: &str = "net.ipv4.ip_local_port_range";

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub host: HostInfo,
    /// `healthy`, `warning` or `error`: the worst finding.
    pub status: &'static str,
    /// Worst first; within a severity, in the order of the table above.
    pub findings: Vec<Finding>,
    pub facts: DoctorFacts,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostInfo {
    pub name: Option<String>,
    pub kernel: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DoctorFacts {
    pub page_size: u64,
    pub sockstat: Option<Sockstat>,
    /// `net.ipv4.tcp_mem`, pages: low, pressure, high. `null` in a child netns.
    pub tcp_mem: Option<[u64; 3]>,
    pub tcp_max_orphans: Option<u64>,
    /// `null` when the kernel has no `ip_local_port_range`.
    pub ports: Option<PortFacts>,
    pub memory: MemoryFacts,
    /// `fs.file-nr` allocated and `fs.file-max`; `null` when absent.
    pub files: Option<FileFacts>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PortFacts {
    /// `ip_local_port_range`: lo, hi.
    pub range: [u32; 2],
    /// Reserved ports inside the range.
    pub reserved: u64,
    /// `available(lo, hi)`: the ports connect() may pick.
    pub usable: u64,
    /// New connections per second one destination sustains: usable / tw_seconds.
    pub max_new_per_second_per_destination: u64,
    /// How long a closed port stays in TIME_WAIT at most: 60 s and the timer's slack.
    pub tw_seconds: Millis,
    pub tables: Vec<TableRead>,
    /// Socket lines read, all states.
    pub sockets: u64,
    /// Sockets by state name (states with none left out).
    pub states: BTreeMap<&'static str, u64>,
    /// Listening ports inside the range (connect() does not pick them).
    pub listening_in_range: u64,
    /// Sockets holding an ephemeral port, counted per destination.
    pub outbound: u64,
    /// Distinct usable ports some socket holds, for any destination: the pool a client
    /// that binds before connect() draws from.
    pub held: u64,
    /// Connections on a listening port.
    pub inbound: u64,
    /// Connected sockets on a port connect() would not pick (bound explicitly).
    pub not_ephemeral: u64,
    /// Distinct destinations (address:port).
    pub destinations: u64,
    /// The busiest destinations, busiest first.
    pub top: Vec<DestinationFact>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DestinationFact {
    /// `127.0.0.1:8080`, `[::1]:443`.
    pub destination: String,
    pub address: String,
    pub port: u16,
    /// Sockets holding a local port for it.
    pub total: u64,
    pub time_wait: u32,
    pub established: u32,
    pub syn_sent: u32,
    pub other: u32,
    /// total / usable, in percent, rounded down to one decimal.
    pub percent: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemoryFacts {
    pub mem_total: u64,
    pub mem_available: Option<u64>,
    pub swap_total: u64,
    pub commit_limit: u64,
    pub committed_as: u64,
    pub overcommit_memory: Option<u64>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct FileFacts {
    pub allocated: u64,
    pub max: u64,
}

/// Read everything under `root` and diagnose. `top`: destinations kept in the facts.
pub fn run(root: &crate::host::Root, top: usize) -> Result<Report> {
    let facts = crate::host::read(root, &[])?;
    let scanned = match facts.port_range() {
        Some((lo, hi)) => {
            let mut scan = PortScan::new(lo, hi, &facts.reserved_ports());
            let tables = tcp_table::scan_tables(root, &mut scan)?;
            Some((scan, tables))
        }
        None => None,
    };
    Ok(diagnose(
        &facts,
        scanned.as_ref().map(|(s, t)| (s, t.as_slice())),
        top,
    ))
}

/// The diagnosis of read facts and a scanned TCP table (`None` when the port range is
/// absent and the tables were not read).
pub fn diagnose(facts: &Facts, scanned: Option<(&PortScan, &[TableRead])>, top: usize) -> Report {
    let mut findings = Vec::new();
    let page = facts.page_size;

    // ports
    let ports = match (facts.port_range(), scanned) {
        (Some((lo, hi)), Some((scan, tables))) => {
            let reserved = facts.reserved_ports();
            let tw = TimeWait::new(facts.hz);
            let usable = available(lo, hi, &reserved);
            let range_len = if lo > hi { 0 } else { hi as u64 - lo as u64 + 1 };
            let keep = top.max(PORT_FINDINGS_MAX);
            let busiest = scan.top(keep);
            let over: Vec<Severity> = scan
                .iter()
                .filter_map(|d| port_severity(d.counts.total(), usable))
                .filter(|s| *s > Severity::Info)
                .collect();
            findings.extend(check_ports(
                (lo, hi),
                usable,
                tables,
                &busiest,
                &over,
                scan.destinations() as u64,
                tw,
            ));
            findings.extend(check_pool(
                (lo, hi),
                usable,
                scan.held_ports(),
                scan.destinations() as u64,
                busiest.first().map_or(0, |d| d.counts.total()),
            ));
            let mut states = BTreeMap::new();
            for (i, n) in scan.states.iter().enumerate() {
                if *n > 0 {
                    states.insert(STATE_NAMES[i], *n);
                }
            }
            Some(PortFacts {
                range: [lo, hi],
                reserved: range_len - usable,
                usable,
                max_new_per_second_per_destination: tw.per_second(usable),
                tw_seconds: tw.millis(),
                tables: tables.to_vec(),
                sockets: scan.sockets,
                states,
                listening_in_range: scan.listening_in_range,
                outbound: scan.outbound,
                held: scan.held_ports(),
                inbound: scan.inbound,
                not_ephemeral: scan.not_ephemeral,
                destinations: scan.destinations() as u64,
                top: busiest
                    .iter()
                    .take(top)
                    .map(|d| destination_fact(d, usable))
                    .collect(),
            })
        }
        _ => {
            findings.push(Finding::new(
                Severity::Info,
                "ports",
                match facts.value(RANGE) {
                    None => format!("{RANGE} is absent on this kernel: ephemeral ports not checked."),
                    Some(v) => format!("{RANGE} is {v:?}, not two ports: ephemeral ports not checked."),
                },
            ));
            None
        }
    };

    // orphans and TCP memory
    let tcp_mem = facts.triple("net.ipv4.tcp_mem");
    let max_orphans = facts.u64("net.ipv4.tcp_max_orphans");
    findings.push(check_orphans(facts.sockstat.map(|s| s.tcp_orphan), max_orphans));
    findings.push(check_tcp_memory(facts.sockstat.map(|s| s.tcp_mem), tcp_mem, page));

    // memory
    let m = &facts.mem;
    let mode = facts.u64("vm.overcommit_memory");
    findings.push(check_commit(mode, m.committed_as, m.commit_limit).measured(
        Some("vm.overcommit_memory"),
        m.committed_as,
        m.commit_limit,
        "bytes",
    ));
    let oom = check_oom(m.mem_available, m.mem_total, m.swap_total);
    findings.push(match m.mem_available {
        Some(a) => oom.measured(None, a, m.mem_total, "bytes"),
        None => oom,
    });

    // files
    let files = facts
        .triple("fs.file-nr")
        .map(|[allocated, _, max_nr]| FileFacts {
            allocated,
            max: facts.u64("fs.file-max").unwrap_or(max_nr),
        });
    findings.push(match files {
        Some(f) => check_files(files).measured(Some("fs.file-max"), f.allocated, f.max, "files"),
        None => check_files(files),
    });

    // worst first, stable within a severity
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let status = match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => "error",
        Some(Severity::Warning) => "warning",
        _ => "healthy",
    };

    Report {
        schema: SCHEMA,
        host: HostInfo {
            name: facts.hostname.clone(),
            kernel: facts.kernel.clone(),
        },
        status,
        findings,
        facts: DoctorFacts {
            page_size: page,
            sockstat: facts.sockstat,
            tcp_mem,
            tcp_max_orphans: max_orphans,
            ports,
            memory: MemoryFacts {
                mem_total: m.mem_total,
                mem_available: m.mem_available,
                swap_total: m.swap_total,
                commit_limit: m.commit_limit,
                committed_as: m.committed_as,
                overcommit_memory: mode,
            },
            files,
        },
    }
}

impl Report {
    /// 1 when any finding is a warning or an error (cli.md, "Exit codes").
    pub fn exit_code(&self) -> i32 {
        if self.findings.iter().any(|f| f.severity > Severity::Info) {
            1
        } else {
            0
        }
    }
}

/// `used ≥ warn % of total`, exactly.
fn at_least(used: u128, total: u128, percent: u64) -> bool {
    used * 100 >= total * percent as u128
}

/// Error at `error_percent` of `total` or more, warning at `warning_percent`, else info.
fn grade(used: u128, total: u128, warning_percent: u64, error_percent: u64) -> Severity {
    if at_least(used, total, error_percent) {
        Severity::Error
    } else if at_least(used, total, warning_percent) {
        Severity::Warning
    } else {
        Severity::Info
    }
}

/// `n / d` in percent, rounded down to one decimal: `90%`, `89.9%`. `d = 0` → `∞%`.
pub fn percent(n: u128, d: u128) -> String {
    if d == 0 {
        return if n == 0 { "0%".into() } else { "∞%".into() };
    }
    let tenths = n.saturating_mul(1000) / d;
    if tenths == 0 && n > 0 {
        "<0.1%".into()
    } else if tenths.is_multiple_of(10) {
        format!("{}%", tenths / 10)
    } else {
        format!("{}.{}%", tenths / 10, tenths % 10)
    }
}

fn percent_f64(n: u128, d: u128) -> f64 {
    if d == 0 {
        return 0.0;
    }
    // one decimal, from integers: the float only carries the rounded result
    (n.saturating_mul(1000) / d).min(u64::MAX as u128) as f64 / 10.0
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

fn destination_fact(d: &Destination, usable: u64) -> DestinationFact {
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
    tw: TimeWait,
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
    let per_second = tw.per_second(usable);
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
                 {consequence}. With TIME_WAIT lasting up to {} per closed port (60 s and the \
                 kernel timer's slack), the range sustains {} new connection(s) per second to one \
                 destination. {fix}",
                d.name(),
                grouped(used as u128),
                percent(used as u128, usable as u128),
                by_state(&d.counts),
                tw.millis(),
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

/// `ports`, the pool: the distinct ports held over every destination. A plain connect()
/// shares a port between destinations, but a socket bound before connect() (without
/// IP_BIND_ADDRESS_NO_PORT) needs a port no socket holds (inet_csk_get_port), so with
/// several destinations the range can be exhausted for such clients while no single
/// destination is. Said only when the pool is fuller than the busiest destination's own
/// check already says (`busiest`: the ports it holds).
pub fn check_pool(
    (lo, hi): (u32, u32),
    usable: u64,
    held: u64,
    destinations: u64,
    busiest: u64,
) -> Option<Finding> {
    let pool = port_severity(held, usable)?;
    if destinations < 2 || port_severity(busiest, usable) >= Some(pool) {
        return None;
    }
    let severity = match pool {
        Severity::Error => Severity::Warning,
        Severity::Warning => Severity::Info,
        Severity::Info => return None,
    };
    let when = if severity == Severity::Warning {
        "is about to fail"
    } else {
        "fails once all are held"
    };
    Some(
        Finding::new(
            severity,
            "ports",
            format!(
                "{} of the {} usable local ports of ip_local_port_range {lo} {hi} are held by some socket \
             ({}, over {} destinations). A plain connect() shares a port between destinations, but a \
             client that calls bind() before connect() needs a port no socket holds: its bind() {when} \
             with EADDRINUSE. Set IP_BIND_ADDRESS_NO_PORT before bind(), or connect() without bind().",
                grouped(held as u128),
                grouped(usable as u128),
                percent(held as u128, usable as u128),
                grouped(destinations as u128),
            ),
        )
        .measured(Some("net.ipv4.ip_local_port_range"), held, usable, "ports"),
    )
}

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

/// `tcp-memory`: sockstat `mem` (pages) against `tcp_mem` (pages).
pub fn check_tcp_memory(mem: Option<u64>, tcp_mem: Option<[u64; 3]>, page: u64) -> Finding {
    let id = "tcp-memory";
    let (Some(mem), Some([_, pressure, high])) = (mem, tcp_mem) else {
        return Finding::new(
            Severity::Info,
            id,
            if mem.is_none() {
                "/proc/net/sockstat could not be read: TCP memory not checked.".to_string()
            } else {
                "net.ipv4.tcp_mem is absent (it exists only in the host's network namespace, not in a \
                 container's): TCP memory not checked here; run sysctune doctor on the host."
                    .to_string()
            },
        );
    };
    let now = format!("TCP memory {}", human_pages(mem, page));
    let fix = "Fix: size tcp_mem and the default buffers for the connections (sysctune plan --profile \
               reverse-proxy), or spread them over more hosts.";
    // Judged against pressure once above it, else against high.
    let judged = if mem >= pressure && mem < high {
        pressure
    } else {
        high
    };
    let finding = if mem >= high {
        Finding::new(
            Severity::Error,
            id,
            format!(
                "{now} is at or above net.ipv4.tcp_mem high {}: sockets get no more buffer memory; the \
                 kernel drops data, resets connections and logs \"TCP: out of memory -- consider tuning \
                 tcp_mem\" (older kernels: \"Out of socket memory\"). {fix}",
                human_pages(high, page)
            ),
        )
    } else if mem >= pressure {
        Finding::new(
            Severity::Warning,
            id,
            format!(
                "{now} is at or above net.ipv4.tcp_mem pressure {}: the kernel is shrinking socket \
                 buffers; at high {} ({} of it used now) it runs out of TCP memory (\"out of memory -- \
                 consider tuning tcp_mem\"). {fix}",
                human_pages(pressure, page),
                human_pages(high, page),
                percent(mem as u128, high as u128)
            ),
        )
    } else {
        Finding::new(
            Severity::Info,
            id,
            format!(
                "{now} is {} of net.ipv4.tcp_mem high {}.",
                percent(mem as u128, high as u128),
                human_pages(high, page),
            ),
        )
    };
    finding.measured(Some("net.ipv4.tcp_mem"), mem, judged, "pages")
}

/// `commit`: Committed_AS against CommitLimit, enforced only in strict mode.
pub fn check_commit(mode: Option<u64>, committed: u64, limit: u64) -> Finding {
    let id = "commit";
    let (c, l) = (committed as u128, limit as u128);
    let figures = format!(
        "Committed_AS {} is {} of CommitLimit {}",
        human_bytes(c),
        percent(c, l),
        human_bytes(l)
    );
    if mode != Some(2) {
        let why = match mode {
            Some(0) => "in heuristic mode (vm.overcommit_memory = 0)".to_string(),
            Some(1) => "in always mode (vm.overcommit_memory = 1)".to_string(),
            Some(m) => format!("with vm.overcommit_memory = {m}"),
            None => "(vm.overcommit_memory is absent)".to_string(),
        };
        return Finding::new(Severity::Info, id, format!("{figures}, not enforced {why}."));
    }
    let fix = "Fix: add swap, raise vm.overcommit_ratio (sysctune plan with [memory] overcommit = \
               \"strict\" and commit_target), or use heuristic mode (vm.overcommit_memory = 0).";
    if c > l {
        Finding::new(
            Severity::Error,
            id,
            format!(
                "strict overcommit (vm.overcommit_memory = 2): {figures}: the kernel refuses allocations \
                 now (malloc, mmap and fork fail with ENOMEM). {fix}"
            ),
        )
    } else if at_least(c, l, COMMIT_WARNING_PERCENT) {
        Finding::new(
            Severity::Warning,
            id,
            format!(
                "strict overcommit (vm.overcommit_memory = 2): {figures}: {} left before allocations \
                 fail with ENOMEM. {fix}",
                human_bytes(l - c)
            ),
        )
    } else {
        Finding::new(
            Severity::Info,
            id,
            format!("strict overcommit (vm.overcommit_memory = 2): {figures}."),
        )
    }
}

/// `oom`: MemAvailable against MemTotal; a risk of the OOM killer only without swap.
pub fn check_oom(available: Option<u64>, total: u64, swap: u64) -> Finding {
    let id = "oom";
    let Some(available) = available else {
        return Finding::new(
            Severity::Info,
            id,
            "/proc/meminfo has no MemAvailable (kernels before 3.14): the OOM risk is not checked.",
        );
    };
    let (a, t) = (available as u128, total as u128);
    let figures = format!(
        "MemAvailable {} is {} of MemTotal {}",
        human_bytes(a),
        percent(a, t),
        human_bytes(t)
    );
    if swap > 0 {
        return Finding::new(
            Severity::Info,
            id,
            format!(
                "{figures}, with {} of swap to page out to before the OOM killer acts.",
                human_bytes(swap as u128)
            ),
        );
    }
    let below = |p: u64| a * 100 < t * p as u128;
    let fix = "Fix: find the process that grows (ps -eo rss,comm --sort=-rss | head) and reduce its \
               memory, add RAM, or add swap so bursts page out instead of killing.";
    if below(OOM_ERROR_BELOW_PERCENT) {
        Finding::new(
            Severity::Error,
            id,
            format!(
                "{figures} and there is no swap: below {OOM_ERROR_BELOW_PERCENT}% the OOM killer is about \
                 to kill a process. {fix}"
            ),
        )
    } else if below(OOM_WARNING_BELOW_PERCENT) {
        Finding::new(
            Severity::Warning,
            id,
            format!(
                "{figures} and there is no swap: under {OOM_WARNING_BELOW_PERCENT}%, a burst will wake the \
                 OOM killer. {fix}"
            ),
        )
    } else {
        Finding::new(Severity::Info, id, format!("{figures}; no swap."))
    }
}

/// `file-descriptors`: `fs.file-nr` allocated against `fs.file-max`.
pub fn check_files(files: Option<FileFacts>) -> Finding {
    let id = "file-descriptors";
    let Some(FileFacts { allocated, max }) = files else {
        return Finding::new(
            Severity::Info,
            id,
            "fs.file-nr is absent: open files not checked.",
        );
    };
    let (a, m) = (allocated as u128, max as u128);
    let figures = format!(
        "{} allocated file handles (fs.file-nr) are {} of fs.file-max {}",
        grouped(a),
        percent(a, m),
        grouped(m)
    );
    let severity = grade(a, m, FILES_WARNING_PERCENT, FILES_ERROR_PERCENT);
    let message = if severity == Severity::Info {
        format!("{figures}.")
    } else {
        format!(
            "{figures}: at the limit, open(), socket() and accept() fail with ENFILE \"Too many open \
             files in system\". Fix: raise fs.file-max (sysctune plan sizes it from the connections) and \
             find what holds so many files."
        )
    };
    Finding::new(severity, id, message)
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
        let f = check_ports(
            (40000, 40009),
            10,
            &tables(),
            &busiest,
            &[Severity::Error],
            1,
            TimeWait::new(None),
        );
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
            TimeWait::new(None),
        );
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("60%"), "{}", f[0].message);
    }

    #[test]
    fn the_pool_is_checked_over_every_destination() {
        let range = (40000, 40009);
        // one destination: its own check covers the pool
        assert_eq!(check_pool(range, 10, 10, 1, 4), None);
        assert_eq!(check_pool(range, 10, 4, 3, 2), None);
        let f = check_pool(range, 10, 5, 3, 2).unwrap();
        assert_eq!(f.severity, Severity::Info);
        let f = check_pool(range, 10, 9, 3, 3).unwrap();
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(
            (f.value, f.threshold, f.unit.as_deref()),
            (Some(9), Some(10), Some("ports"))
        );
        for part in [
            "9 of the 10 usable local ports of ip_local_port_range 40000 40009",
            "90%, over 3 destinations",
            "bind() before connect()",
            "is about to fail with EADDRINUSE",
            "IP_BIND_ADDRESS_NO_PORT",
        ] {
            assert!(f.message.contains(part), "{part:?} not in {}", f.message);
        }
        // the busiest destination's own finding says as much already
        assert_eq!(check_pool(range, 10, 9, 3, 9), None);
        assert_eq!(check_pool(range, 10, 5, 3, 5), None);
        assert!(check_pool(range, 10, 9, 3, 5).is_some());
        // no usable port at all is check_ports' error, not the pool's
        assert_eq!(check_pool(range, 0, 0, 2, 0), None);
    }

    #[test]
    fn ports_healthy_and_skipped() {
        let f = check_ports(
            (32768, 60999),
            28232,
            &tables(),
            &[dest(80, 3, 2)],
            &[],
            1,
            TimeWait::new(None),
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(
            f[0].message.contains("127.0.0.1:80, holds 5 of the 28 232"),
            "{}",
            f[0].message
        );
        let f = check_ports((32768, 60999), 28232, &tables(), &[], &[], 0, TimeWait::new(None));
        assert!(
            f[0].message.contains("no connection holds a port"),
            "{}",
            f[0].message
        );
        let missing = [TableRead {
            path: "/proc/net/tcp".into(),
            lines: None,
        }];
        let f = check_ports((32768, 60999), 28232, &missing, &[], &[], 0, TimeWait::new(None));
        assert_eq!(f[0].severity, Severity::Info);
        assert!(f[0].message.contains("not checked"));
        // a range with every port reserved
        let f = check_ports((40000, 40009), 0, &tables(), &[], &[], 0, TimeWait::new(None));
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("10 reserved"), "{}", f[0].message);
    }

    #[test]
    fn many_destinations_over_are_summed_up() {
        let busiest: Vec<Destination> = (0..7).map(|i| dest(8000 + i, 9, 0)).collect();
        let over = vec![Severity::Error; 7];
        let f = check_ports(
            (40000, 40009),
            10,
            &tables(),
            &busiest,
            &over,
            7,
            TimeWait::new(None),
        );
        assert_eq!(f.len(), PORT_FINDINGS_MAX + 1);
        let last = f.last().unwrap();
        assert_eq!(last.severity, Severity::Error);
        assert!(
            last.message.starts_with("2 more destination(s)"),
            "{}",
            last.message
        );
    }

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

    #[test]
    fn tcp_memory_thresholds() {
        let t = Some([100, 200, 300]);
        assert_eq!(check_tcp_memory(Some(199), t, 4096).severity, Severity::Info);
        let w = check_tcp_memory(Some(200), t, 4096);
        assert_eq!(w.severity, Severity::Warning);
        assert!(
            w.message.contains("pressure 200 pages = 800 KiB"),
            "{}",
            w.message
        );
        let e = check_tcp_memory(Some(300), t, 4096);
        assert_eq!(e.severity, Severity::Error);
        assert!(e.message.contains("300 pages = 1.2 MiB"), "{}", e.message);
        assert!(e.message.contains("out of memory -- consider tuning tcp_mem"));
        assert!(e.message.contains("Out of socket memory"));
        let skip = check_tcp_memory(Some(300), None, 4096);
        assert_eq!(skip.severity, Severity::Info);
        assert!(skip.message.contains("absent"));
    }

    #[test]
    fn commit_thresholds() {
        let gib = 1u64 << 30;
        // the article: CommitLimit 517584 kB, Committed_AS 3306488 kB
        let e = check_commit(Some(2), 3306488 * 1024, 517584 * 1024);
        assert_eq!(e.severity, Severity::Error);
        assert!(e.message.contains("638.8%"), "{}", e.message);
        assert_eq!(
            check_commit(Some(2), 10 * gib, 10 * gib).severity,
            Severity::Warning
        );
        assert_eq!(
            check_commit(Some(2), 9 * gib, 10 * gib).severity,
            Severity::Warning
        );
        assert_eq!(
            check_commit(Some(2), 9 * gib - 1, 10 * gib).severity,
            Severity::Info
        );
        // not enforced outside strict mode
        assert_eq!(check_commit(Some(0), 30 * gib, 10 * gib).severity, Severity::Info);
        assert_eq!(check_commit(None, 30 * gib, 10 * gib).severity, Severity::Info);
    }

    #[test]
    fn oom_thresholds() {
        let total = 1000 << 20;
        assert_eq!(check_oom(Some(100 << 20), total, 0).severity, Severity::Info);
        assert_eq!(
            check_oom(Some((100 << 20) - 1), total, 0).severity,
            Severity::Warning
        );
        assert_eq!(check_oom(Some(50 << 20), total, 0).severity, Severity::Warning);
        let e = check_oom(Some((50 << 20) - 1), total, 0);
        assert_eq!(e.severity, Severity::Error);
        assert!(e.message.contains("OOM killer"));
        // swap: info only
        assert_eq!(check_oom(Some(1), total, 1 << 30).severity, Severity::Info);
        assert_eq!(check_oom(None, total, 0).severity, Severity::Info);
        assert_eq!(check_oom(Some(0), 0, 0).severity, Severity::Info);
    }

    #[test]
    fn file_thresholds() {
        let f = |a, m| check_files(Some(FileFacts { allocated: a, max: m })).severity;
        assert_eq!(f(799, 1000), Severity::Info);
        assert_eq!(f(800, 1000), Severity::Warning);
        assert_eq!(f(949, 1000), Severity::Warning);
        assert_eq!(f(950, 1000), Severity::Error);
        assert_eq!(f(3456, 9223372036854775807), Severity::Info);
        assert_eq!(check_files(None).severity, Severity::Info);
    }

    #[test]
    fn percent_rounds_down() {
        assert_eq!(percent(9, 10), "90%");
        assert_eq!(percent(8999, 10000), "89.9%");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(0, 0), "0%");
        assert_eq!(percent(0, 7), "0%");
        assert_eq!(percent(365, 2466170), "<0.1%");
        assert_eq!(percent(1, 0), "∞%");
        assert_eq!(percent_f64(9, 10), 90.0);
    }
}
