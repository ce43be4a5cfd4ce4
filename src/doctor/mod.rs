//! `sysctune doctor`: live diagnosis of the failures of the article, each finding with
//! its numbers and the fix.
//!
//! Reads `ROOT/proc/net/sockstat`, the TCP sockets, `ROOT/proc/net/netstat` and `snmp`
//! (the kernel's counters), `ROOT/proc/meminfo` and the sysctls under `ROOT/proc/sys`.
//! The sockets come, on a live host (`--root /`), from a NETLINK_SOCK_DIAG dump that the
//! kernel filters to the local ports of `ip_local_port_range` (see
//! [`crate::host::sock_diag`]), as `ss` reads them; under any other root, and where
//! netlink is refused, from `ROOT/proc/net/tcp` and `tcp6` (streamed, see
//! [`crate::host::tcp_table`]). `--sockets netlink|proc` forces one. Every check is a
//! pure function of those figures, one file per check under `src/doctor/`, with its
//! thresholds, its explanation and its tests.
//!
//! | rule | figure | warning | error |
//! |---|---|---|---|
//! | `ports` ([`ports`]) | sockets holding a local port of `ip_local_port_range` per (source address, destination address:port), against the usable ports (minus reserved and listening ports); TIME_WAIT left out where `tcp_tw_reuse` applies; the pool held across destinations | ≥ 50 %; pool ≥ 90 % | ≥ 90 % ("Cannot assign requested address" is imminent) |
//! | `time-wait` ([`time_wait`]) | sockstat `tw` against `net.ipv4.tcp_max_tw_buckets`, with `TCPTimeWaitOverflow` | at the cap | |
//! | `orphans` ([`orphans`]) | sockstat `orphan` against `net.ipv4.tcp_max_orphans`, as `tcp_too_many_orphans` judges them | over 1/4 | over the cap ("too many orphaned sockets") |
//! | `tcp-memory` ([`tcp_memory`]) | sockstat `mem` against `net.ipv4.tcp_mem`, in the kernel's quantum | ≥ pressure | ≥ high ("out of memory -- consider tuning tcp_mem") |
//! | `commit` ([`commit`]) | Committed_AS against CommitLimit, only when `vm.overcommit_memory = 2` | ≥ 90 % | above 100 % (allocations are refused) |
//! | `oom` ([`oom`]) | MemAvailable against MemTotal, only without swap | below 10 % | below 5 % |
//! | `file-descriptors` ([`files`]) | `fs.file-nr` allocated against `fs.file-max` | ≥ 80 % | ≥ 95 % |
//! | `processes` ([`processes`]) | each process's open descriptors against its soft `RLIMIT_NOFILE`; the processes holding the most sockets and the ports they hold | ≥ 80 % | ≥ 95 % (EMFILE "Too many open files") |
//! | `counters` ([`counters`]) | the kernel's incident counters (`TCPAbortOnMemory`, `ListenOverflows`, ...) | moved since `--since` | |
//!
//! Choices:
//! - `tcp_mem` and `tcp_max_orphans` exist only in the host's network namespace; in a
//!   child namespace their checks are skipped with an info finding.
//! - Missing `tcp6` (IPv6 disabled) is not a finding; both tables missing is an info.
//!   Missing `netstat` is an info of `counters`.
//! - Exit code 1 when any finding is a warning or an error, 0 otherwise.
//! - The netlink dump leaves out the sockets on ports outside the range. No finding
//!   needs them: `ports` counts only sockets holding a port of the range and the
//!   listeners inside it, and `time-wait` takes the whole TIME_WAIT count from sockstat
//!   `tw`. The findings are the same from either source (tests/doctor_sockets_real.rs);
//!   the facts `sockets`, `states`, `inbound` and `not_ephemeral` count only what was
//!   read, and `source` says which (sockstat `inuse` and `tw` have the totals).

pub mod commit;
pub mod counters;
pub mod drift;
pub mod files;
pub mod oom;
pub mod orphans;
pub mod ports;
pub mod processes;
pub mod prometheus;
pub mod tcp_memory;
pub mod time_wait;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::netstat::{self, Counters};
use crate::host::tcp_table::{PortScan, STATE_NAMES, TableRead};
use crate::host::{Facts, Root, Sockstat, fs};
use crate::rules::port_range::{self, Millis, TimeWait, available};
use crate::rules::{Code, Finding, Severity};

pub use commit::{COMMIT_WARNING_PERCENT, check_commit};
pub use counters::{Since, check_counters};
pub use files::{FILES_ERROR_PERCENT, FILES_WARNING_PERCENT, check_files};
pub use oom::{OOM_ERROR_BELOW_PERCENT, OOM_WARNING_BELOW_PERCENT, check_oom};
pub use orphans::check_orphans;
pub use ports::{
    PORT_FINDINGS_MAX, PORTS_ERROR_PERCENT, PORTS_WARNING_PERCENT, PortModel, Reuse, check_ports,
    port_severity,
};
pub use tcp_memory::check_tcp_memory;
pub use time_wait::check_time_wait;

pub const SCHEMA: &str = "sysctune/doctor/v1";

const RANGE: &str = "net.ipv4.ip_local_port_range";

/// Keys doctor reads besides the rules' own.
pub const EXTRA_KEYS: [&str; 3] = [
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_tw_reuse_delay",
    "net.ipv4.tcp_max_tw_buckets",
];

pub use crate::cli::Sockets;

pub use crate::host::sockets::Source;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// When the figures were read: seconds since the epoch (what `--since` compares).
    pub time: u64,
    pub host: HostInfo,
    /// `healthy`, `warning` or `error`: the worst finding.
    pub status: &'static str,
    /// Worst first; within a severity, in the order of the table above.
    pub findings: Vec<Finding>,
    /// The previous document of `--since`, `null` without it.
    pub since: Option<Since>,
    pub facts: DoctorFacts,
    /// How the figures were read where it is worth saying (netlink refused, so the
    /// sockets came from /proc/net/tcp).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostInfo {
    pub name: Option<String>,
    pub kernel: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DoctorFacts {
    pub page_size: u64,
    /// The unit of tcp_mem and sockstat `mem`, bytes (4096 on 64 KiB-page kernels
    /// 4.10-5.19, else the page).
    pub mem_quantum: u64,
    pub sockstat: Option<Sockstat>,
    /// `net.ipv4.tcp_mem`, in quanta: low, pressure, high. `null` in a child netns.
    pub tcp_mem: Option<[u64; 3]>,
    pub tcp_max_orphans: Option<u64>,
    pub tcp_max_tw_buckets: Option<u64>,
    /// `null` when the kernel has no `ip_local_port_range`.
    pub ports: Option<PortFacts>,
    pub memory: MemoryFacts,
    /// `fs.file-nr` allocated and `fs.file-max`; `null` when absent.
    pub files: Option<FileFacts>,
    /// The watched counters of /proc/net/netstat (since boot), by name.
    pub counters: BTreeMap<String, u64>,
    /// Which processes hold the sockets, and their descriptor limits ([`processes`]).
    pub processes: processes::ProcessFacts,
    /// Plan drift, as `sysctune status` judges it ([`drift`]).
    pub drift: drift::DriftFacts,
}

#[derive(Clone, Debug, Serialize)]
pub struct PortFacts {
    /// `ip_local_port_range`: lo, hi.
    pub range: [u32; 2],
    /// Reserved ports inside the range.
    pub reserved: u64,
    /// The ports connect() may pick: `available(lo, hi)` minus the listening ports.
    pub usable: u64,
    /// New connections per second one destination sustains without reuse: usable /
    /// tw_seconds.
    pub max_new_per_second_per_destination: u64,
    /// How long a closed port stays in TIME_WAIT at most: 60 s and the timer's slack.
    pub tw_seconds: Millis,
    /// The same where `tcp_tw_reuse` applies (usable / `tcp_tw_reuse_delay`); `null` when
    /// it applies to no destination (0, or no timestamps).
    pub max_new_per_second_with_reuse: Option<u64>,
    pub reuse: Reuse,
    /// Distinct local ports of the range held across all destinations: the pool a bind()
    /// before connect() draws from.
    pub pool_held: u64,
    /// Where the sockets came from: `netlink` (a NETLINK_SOCK_DIAG dump of the sockets
    /// with a local port in the range, filtered in the kernel) or `proc`
    /// (`/proc/net/tcp` and `tcp6`, every socket).
    pub source: Source,
    /// What was read: the tables (`/proc/net/tcp`, lines, the header included) or the
    /// dumps (`netlink:tcp`, `netlink:tcp6`, sockets).
    pub tables: Vec<TableRead>,
    /// Sockets read, all states (with `netlink`: those with a local port in the range).
    pub sockets: u64,
    /// Sockets by state name (states with none left out).
    pub states: BTreeMap<&'static str, u64>,
    /// Listening ports inside the range (connect() does not pick them).
    pub listening_in_range: u64,
    /// Sockets holding an ephemeral port, counted per destination.
    pub outbound: u64,
    /// Connections on a listening port.
    pub inbound: u64,
    /// Connected sockets on a port connect() would not pick (bound explicitly).
    pub not_ephemeral: u64,
    /// Distinct (source address, destination address:port) pairs.
    pub destinations: u64,
    /// The busiest pairs, busiest first.
    pub top: Vec<DestinationFact>,
    /// The ports held (as `held` counts them) by the pairs not in `top`, summed.
    pub held_other: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DestinationFact {
    /// `127.0.0.1:8080`, `[::1]:443`.
    pub destination: String,
    pub address: String,
    pub port: u16,
    /// The local address the connections leave from.
    pub source: String,
    /// Sockets holding a local port for it.
    pub total: u64,
    /// The ports judged held: `total`, less TIME_WAIT where reuse applies.
    pub held: u64,
    /// `tcp_tw_reuse` applies to this pair.
    pub reuse: bool,
    pub time_wait: u32,
    pub established: u32,
    pub syn_sent: u32,
    pub other: u32,
    /// held / usable, in percent, rounded down to one decimal.
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

/// What doctor reads besides [`Facts`] and the tables.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    /// Seconds since the epoch.
    pub time: u64,
    /// /proc/net/netstat and /proc/net/snmp, merged by prefix.
    pub counters: Counters,
    pub since: Option<Since>,
    /// Where the sockets came from.
    pub source: Source,
    /// Said in the report's notes (why netlink was not used).
    pub notes: Vec<String>,
    /// What `status` says of the last apply.
    pub drift: drift::DriftFacts,
    /// The processes read, their sockets matched in the TCP tables.
    pub processes: processes::ProcessFacts,
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Read the counter files under `root`: both missing is an empty set; garbled is an
/// error naming the file and line.
pub fn read_counters(root: &crate::host::Root) -> Result<Counters> {
    let mut out = Counters::new();
    for inside in ["/proc/net/netstat", "/proc/net/snmp"] {
        let Some(text) = root.read_text(inside, fs::MAX_SMALL)? else {
            continue;
        };
        let parsed = netstat::parse(&text).map_err(|e| Error::host(&root.shown(inside), e))?;
        for (prefix, values) in parsed {
            out.entry(prefix).or_default().extend(values);
        }
    }
    Ok(out)
}

/// The TCP sockets of the range `lo..=hi` as `--sockets` says ([`crate::host::sockets::read`]).
pub fn read_sockets(
    root: &Root,
    lo: u32,
    hi: u32,
    reserved: &[(u32, u32)],
    want: Sockets,
) -> Result<(PortScan, Vec<TableRead>, Source, Option<String>)> {
    crate::host::sockets::read(root, lo, hi, reserved, want.into())
}

/// The processes under `root` and the TCP sockets each holds, `top` kept in the facts.
pub fn read_processes(
    root: &crate::host::Root,
    range: Option<(u32, u32)>,
    top: usize,
) -> Result<processes::ProcessFacts> {
    let scan = crate::host::processes::scan(root);
    let held = crate::host::socket_owners::match_tcp(root, &scan.processes, range)?;
    Ok(processes::facts(scan, &held, top))
}

/// Read everything under `root` and diagnose. `top`: destinations kept in the facts;
/// `sockets`: where the TCP sockets come from; `state_dir`: where `apply` keeps its
/// record, inside the root (for plan drift).
pub fn run(
    root: &Root,
    top: usize,
    since: Option<Since>,
    sockets: Sockets,
    state_dir: &str,
) -> Result<Report> {
    let extra_keys: Vec<String> = EXTRA_KEYS.iter().map(|k| k.to_string()).collect();
    let facts = crate::host::read_facts(root, &extra_keys)?;
    let mut notes = Vec::new();
    let mut source = Source::Proc;
    let scanned = match port_range::current_range(&facts) {
        Some((lo, hi)) => {
            let (scan, tables, from, note) =
                read_sockets(root, lo, hi, &port_range::reserved(&facts), sockets)?;
            source = from;
            notes.extend(note);
            Some((scan, tables))
        }
        None => None,
    };
    let extra = Extra {
        time: now(),
        counters: read_counters(root)?,
        since,
        source,
        notes,
        drift: drift::read(root, state_dir),
        processes: read_processes(root, port_range::current_range(&facts), top)?,
    };
    Ok(diagnose(
        &facts,
        scanned.as_ref().map(|(s, t)| (s, t.as_slice())),
        &extra,
        top,
    ))
}

/// The reuse settings of `facts`.
pub fn reuse(facts: &Facts) -> Reuse {
    Reuse {
        tcp_tw_reuse: facts.u64("net.ipv4.tcp_tw_reuse"),
        tcp_timestamps: facts.u64("net.ipv4.tcp_timestamps"),
        delay_ms: facts
            .u64("net.ipv4.tcp_tw_reuse_delay")
            .unwrap_or(ports::DEFAULT_REUSE_DELAY_MS),
    }
}

/// The diagnosis of read facts and a scanned TCP table (`None` when the port range is
/// absent and the tables were not read).
pub fn diagnose(
    facts: &Facts,
    scanned: Option<(&PortScan, &[TableRead])>,
    extra: &Extra,
    top: usize,
) -> Report {
    let page = facts.page_size;
    let quantum = tcp_memory::quantum(&facts.kernel, page);
    let (mut findings, ports) = diagnose_ports(facts, scanned, extra.source, top);

    // TIME_WAIT, orphans and TCP memory
    let counters = counters::pick(&extra.counters);
    let max_tw = facts.u64("net.ipv4.tcp_max_tw_buckets");
    findings.push(check_time_wait(
        facts.sockstat.map(|s| s.tcp_tw),
        max_tw,
        counters.get("TCPTimeWaitOverflow").copied(),
    ));
    let tcp_mem = facts.triple("net.ipv4.tcp_mem");
    let max_orphans = facts.u64("net.ipv4.tcp_max_orphans");
    let over_high = matches!((facts.sockstat, tcp_mem), (Some(s), Some([_, _, high])) if s.tcp_mem > high);
    findings.push(check_orphans(
        facts.sockstat.map(|s| s.tcp_orphan),
        max_orphans,
        over_high,
    ));
    findings.push(check_tcp_memory(
        facts.sockstat.map(|s| s.tcp_mem),
        tcp_mem,
        quantum,
    ));

    let (memory, memory_findings) = diagnose_memory(facts);
    findings.extend(memory_findings);
    let (files, files_finding) = diagnose_files(facts);
    findings.push(files_finding);
    findings.extend(processes::check_processes(&extra.processes));
    // past incidents
    findings.extend(check_counters(&counters, extra.since.as_ref()));

    // worst first, stable within a severity
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let status = match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => "error",
        Some(Severity::Warning) => "warning",
        _ => "healthy",
    };

    Report {
        schema: SCHEMA,
        time: extra.time,
        host: HostInfo {
            name: facts.hostname.clone(),
            kernel: facts.kernel.clone(),
        },
        status,
        findings,
        since: extra.since.clone(),
        facts: DoctorFacts {
            page_size: page,
            mem_quantum: quantum,
            sockstat: facts.sockstat,
            tcp_mem,
            tcp_max_orphans: max_orphans,
            tcp_max_tw_buckets: max_tw,
            ports,
            memory,
            files,
            counters,
            processes: extra.processes.clone(),
            drift: extra.drift.clone(),
        },
        notes: extra.notes.clone(),
    }
}

/// The port findings and facts; a single info finding when the range is absent or
/// garbled (then the tables were not read).
fn diagnose_ports(
    facts: &Facts,
    scanned: Option<(&PortScan, &[TableRead])>,
    source: Source,
    top: usize,
) -> (Vec<Finding>, Option<PortFacts>) {
    let (Some((lo, hi)), Some((scan, tables))) = (port_range::current_range(facts), scanned) else {
        let finding = Finding::new(
            Severity::Info,
            Code::Ports,
            match facts.value(RANGE) {
                None => format!("{RANGE} is absent on this kernel: ephemeral ports not checked."),
                Some(v) => format!("{RANGE} is {v:?}, not two ports: ephemeral ports not checked."),
            },
        );
        return (vec![finding], None);
    };
    let model = port_model(facts, (lo, hi), scan);
    let keep = top.max(PORT_FINDINGS_MAX);
    let busiest = scan.top(keep);
    let over: Vec<Severity> = scan
        .iter()
        .filter_map(|d| model.severity(&d))
        .filter(|s| *s > Severity::Info)
        .collect();
    let findings = check_ports(&model, tables, &busiest, &over, scan.destinations() as u64);
    let top_facts: Vec<DestinationFact> = busiest
        .iter()
        .take(top)
        .map(|d| ports::destination_fact(d, &model))
        .collect();
    (
        findings,
        Some(port_facts(&model, scan, tables, top_facts, source)),
    )
}

/// The range less reserved and listening ports, reuse and TIME_WAIT, as `facts` and the
/// scan give them.
fn port_model(facts: &Facts, (lo, hi): (u32, u32), scan: &PortScan) -> PortModel {
    let reserved_ports = port_range::reserved(facts);
    let available = available(lo, hi, &reserved_ports);
    let range_len = if lo > hi { 0 } else { hi as u64 - lo as u64 + 1 };
    PortModel {
        range: (lo, hi),
        reserved: range_len - available,
        listening: scan.listening_in_range,
        usable: available.saturating_sub(scan.listening_in_range),
        reuse: reuse(facts),
        tw: TimeWait::new(facts.hz),
        pool_held: scan.pool_held(),
    }
}

/// What the report says of the ports: the model's figures, the scan's counts by state,
/// and the `top` pairs with the rest summed.
fn port_facts(
    model: &PortModel,
    scan: &PortScan,
    tables: &[TableRead],
    top: Vec<DestinationFact>,
    source: Source,
) -> PortFacts {
    let usable = model.usable;
    let mut states = BTreeMap::new();
    for (i, n) in scan.states.iter().enumerate() {
        if *n > 0 {
            states.insert(STATE_NAMES[i], *n);
        }
    }
    let held_all: u64 = scan.iter().map(|d| model.held(&d)).sum();
    let held_other = held_all.saturating_sub(top.iter().map(|d| d.held).sum());
    let r = model.reuse;
    let reuse_any = r.tcp_timestamps.unwrap_or(1) >= 1 && matches!(r.tcp_tw_reuse, Some(1 | 2));
    PortFacts {
        range: [model.range.0, model.range.1],
        reserved: model.reserved,
        usable,
        max_new_per_second_per_destination: model.tw.per_second(usable),
        tw_seconds: model.tw.millis(),
        max_new_per_second_with_reuse: reuse_any.then(|| r.max_new_per_second(usable)),
        reuse: r,
        pool_held: model.pool_held,
        source,
        tables: tables.to_vec(),
        sockets: scan.sockets,
        states,
        listening_in_range: scan.listening_in_range,
        outbound: scan.outbound,
        inbound: scan.inbound,
        not_ephemeral: scan.not_ephemeral,
        destinations: scan.destinations() as u64,
        top,
        held_other,
    }
}

/// Commit (enforced only in strict mode) and the OOM risk, with the memory facts.
fn diagnose_memory(facts: &Facts) -> (MemoryFacts, [Finding; 2]) {
    let m = &facts.mem;
    let mode = facts.u64(commit::MODE_KEY);
    let commit = check_commit(mode, m.committed_as, m.commit_limit).measured(
        Some(commit::MODE_KEY),
        m.committed_as,
        m.commit_limit,
        "bytes",
    );
    let oom = check_oom(m.mem_available, m.mem_total, m.swap_total);
    let oom = match m.mem_available {
        Some(a) => oom.measured(None, a, m.mem_total, "bytes"),
        None => oom,
    };
    let memory = MemoryFacts {
        mem_total: m.mem_total,
        mem_available: m.mem_available,
        swap_total: m.swap_total,
        commit_limit: m.commit_limit,
        committed_as: m.committed_as,
        overcommit_memory: mode,
    };
    (memory, [commit, oom])
}

/// File handles allocated against fs.file-max (fs.file-nr's third figure where it is
/// absent).
fn diagnose_files(facts: &Facts) -> (Option<FileFacts>, Finding) {
    let files = facts
        .triple(files::NR_KEY)
        .map(|[allocated, _, max_nr]| FileFacts {
            allocated,
            max: facts.u64(files::MAX_KEY).unwrap_or(max_nr),
        });
    let finding = match files {
        Some(f) => check_files(files).measured(Some(files::MAX_KEY), f.allocated, f.max, "files"),
        None => check_files(files),
    };
    (files, finding)
}

impl Report {
    /// A warning or an error finding needs attention.
    pub fn exit(&self) -> crate::exit::Exit {
        crate::exit::Exit::attention_if(self.findings.iter().any(|f| f.severity > Severity::Info))
    }
}

/// `used ≥ warn % of total`, exactly.
pub(crate) fn at_least(used: u128, total: u128, percent: u64) -> bool {
    used * 100 >= total * percent as u128
}

/// Error at `error_percent` of `total` or more, warning at `warning_percent`, else info.
pub(crate) fn grade(used: u128, total: u128, warning_percent: u64, error_percent: u64) -> Severity {
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

pub(crate) fn percent_f64(n: u128, d: u128) -> f64 {
    if d == 0 {
        return 0.0;
    }
    // one decimal, from integers: the float only carries the rounded result
    (n.saturating_mul(1000) / d).min(u64::MAX as u128) as f64 / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

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
