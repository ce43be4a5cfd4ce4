//! `processes`: which process holds the sockets, and how close each is to its own
//! descriptor limit. For every process under `/proc` ([`crate::host::processes`]): its
//! open descriptors against its `RLIMIT_NOFILE` soft limit, its sockets, and the TCP
//! ports they hold ([`crate::host::socket_owners`], like `ss -p`).
//!
//! | figure | warning | error |
//! |---|---|---|
//! | open descriptors / soft `RLIMIT_NOFILE` | ≥ 80 % | ≥ 95 % (socket(), accept(), open() fail with EMFILE "Too many open files" at 100 %) |
//!
//! The kernel refuses a new descriptor when the process has `RLIMIT_NOFILE` (soft) open
//! (`alloc_fd()` in fs/file.c: `fd >= end` with `end = rlimit(RLIMIT_NOFILE)`), whatever
//! `fs.file-max` says: a proxy at 1 024 of 1 024 fails at accept() on an idle host. The
//! descriptors are counted as the entries of `/proc/PID/fd` (what `ls /proc/PID/fd | wc -l`
//! counts), not the lowest free number the kernel would hand out next, which can be lower
//! than the count's limit only with gaps; both meet at the limit.
//!
//! Every process is judged; the facts keep the `--top` busiest (flagged ones first, then by
//! sockets), and at most [`PROCESS_FINDINGS_MAX`] findings name processes, the rest counted.

use crate::rules::Code;
use serde::Serialize;

use super::{grade, percent, percent_f64};
use crate::host::processes::{ProcessRead, ProcessScan};
use crate::host::socket_owners::Held;
use crate::rules::{Finding, Severity};
use crate::units::grouped;

pub const FDS_WARNING_PERCENT: u64 = 80;
pub const FDS_ERROR_PERCENT: u64 = 95;
/// Processes named in findings, at most; the others are counted in the last one.
pub const PROCESS_FINDINGS_MAX: usize = 5;

const ID: Code = Code::Processes;

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessFacts {
    /// What was read: counts, why the scan stopped early (`capped`), skipped processes.
    #[serde(flatten)]
    pub scan: ProcessScan,
    /// Processes holding sockets, or near their limit: flagged first, then by sockets.
    pub top: Vec<ProcessFact>,
    /// Such processes not in `top`.
    pub others: u64,
    /// Every process at the warning threshold or above, worst first.
    #[serde(skip)]
    pub flagged: Vec<ProcessFact>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessFact {
    pub pid: u32,
    pub comm: String,
    pub cmdline: String,
    /// Open descriptors (a lower bound when `fds_capped`).
    pub fds: u64,
    pub fds_capped: bool,
    /// Socket descriptors, of any family.
    pub sockets: u64,
    /// Of them, TCP sockets found in /proc/net/tcp{,6}.
    pub tcp: u64,
    /// Listening TCP ports (the first 16) and listening sockets.
    pub listening: Vec<u16>,
    pub listeners: u64,
    /// Connected TCP sockets on a port of ip_local_port_range.
    pub ephemeral: u64,
    /// RLIMIT_NOFILE; `null` is unlimited.
    pub nofile_soft: Option<u64>,
    pub nofile_hard: Option<u64>,
    /// fds / soft limit in percent, rounded down to one decimal; `null` when unlimited.
    pub percent: Option<f64>,
    /// `info`, `warning` or `error`, by the table above.
    pub severity: Severity,
}

/// The severity of `fds` open against a soft limit (`None`: unlimited).
pub fn fd_severity(fds: u64, soft: Option<u64>) -> Severity {
    match soft {
        None => Severity::Info,
        // a soft limit of 0: nothing can be opened
        Some(0) => Severity::Error,
        Some(soft) => grade(fds as u128, soft as u128, FDS_WARNING_PERCENT, FDS_ERROR_PERCENT),
    }
}

fn fact(p: &ProcessRead, h: &Held) -> ProcessFact {
    ProcessFact {
        pid: p.pid,
        comm: p.comm.clone(),
        cmdline: p.cmdline.clone(),
        fds: p.fds,
        fds_capped: p.fds_capped,
        sockets: p.sockets.len() as u64,
        tcp: h.tcp,
        listening: h.listening.clone(),
        listeners: h.listeners,
        ephemeral: h.ephemeral,
        nofile_soft: p.nofile_soft,
        nofile_hard: p.nofile_hard,
        percent: p.nofile_soft.map(|s| percent_f64(p.fds as u128, s as u128)),
        severity: fd_severity(p.fds, p.nofile_soft),
    }
}

/// Every process worth showing (sockets, or flagged), ranked: flagged first (worst
/// first), then by sockets, descriptors, PID.
fn ranked(scan: &ProcessScan, held: &[Held]) -> Vec<ProcessFact> {
    let mut all: Vec<ProcessFact> = scan
        .processes
        .iter()
        .zip(held)
        .map(|(p, h)| fact(p, h))
        .filter(|f| f.sockets > 0 || f.severity > Severity::Info)
        .collect();
    all.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.sockets.cmp(&a.sockets))
            .then(b.fds.cmp(&a.fds))
            .then(a.pid.cmp(&b.pid))
    });
    all
}

/// `PID 812 fetcher`.
fn who(f: &ProcessFact) -> String {
    format!("PID {} {}", f.pid, f.comm)
}

/// `37 sockets (37 TCP: listening on 80, 443; 35 on ports of the ephemeral range)`.
fn sockets_text(f: &ProcessFact) -> String {
    let mut parts = Vec::new();
    if f.listeners > 0 {
        let mut ports: Vec<String> = f.listening.iter().map(|p| p.to_string()).collect();
        if f.listeners > f.listening.len() as u64 {
            ports.push("…".into());
        }
        parts.push(format!("listening on {}", ports.join(", ")));
    }
    if f.ephemeral > 0 {
        parts.push(format!(
            "{} on ports of the ephemeral range",
            grouped(f.ephemeral as u128)
        ));
    }
    let connected = f.tcp - f.listeners - f.ephemeral;
    if connected > 0 {
        parts.push(format!("{} other connections", grouped(connected as u128)));
    }
    let tcp = if f.tcp == 0 {
        "none of them TCP".to_string()
    } else if parts.is_empty() {
        format!("{} TCP", grouped(f.tcp as u128))
    } else {
        format!("{} TCP: {}", grouped(f.tcp as u128), parts.join("; "))
    };
    format!(
        "{} socket{} ({tcp})",
        grouped(f.sockets as u128),
        if f.sockets == 1 { "" } else { "s" }
    )
}

/// `41 open descriptors of soft NOFILE 48 (85.4%, hard 4 096)`.
fn fds_text(f: &ProcessFact) -> String {
    let fds = format!(
        "{}{} open descriptor{}",
        if f.fds_capped { "at least " } else { "" },
        grouped(f.fds as u128),
        if f.fds == 1 { "" } else { "s" }
    );
    let hard = match f.nofile_hard {
        Some(h) => format!("hard {}", grouped(h as u128)),
        None => "hard unlimited".into(),
    };
    match f.nofile_soft {
        Some(s) => format!(
            "{fds} of soft NOFILE {} ({}, {hard})",
            grouped(s as u128),
            percent(f.fds as u128, s as u128)
        ),
        None => format!("{fds}, soft NOFILE unlimited"),
    }
}

/// The facts of a scan and its TCP matches, `top` kept.
pub fn facts(mut scan: ProcessScan, held: &[Held], top: usize) -> ProcessFacts {
    let all = ranked(&scan, held);
    // the inodes are counted: no need to keep them
    scan.processes = Vec::new();
    let others = all.len().saturating_sub(top) as u64;
    let flagged = all
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .cloned()
        .collect();
    ProcessFacts {
        top: all.into_iter().take(top).collect(),
        others,
        flagged,
        scan,
    }
}

/// `processes`: findings for the processes near their limit (at most
/// [`PROCESS_FINDINGS_MAX`] named), else one info naming the one with the most sockets;
/// an info on what could not be read.
pub fn check_processes(facts: &ProcessFacts) -> Vec<Finding> {
    let s = &facts.scan;
    let mut out = Vec::new();
    let flagged = &facts.flagged;
    for f in flagged.iter().take(PROCESS_FINDINGS_MAX) {
        let soft = f.nofile_soft.unwrap_or(0);
        let fix = format!(
            "Fix: raise its soft limit (LimitNOFILE= in its systemd unit, ulimit -n, or setrlimit; up to the \
             hard limit, itself at most fs.nr_open), or find what it leaks (ls -l /proc/{}/fd).",
            f.pid
        );
        let message = if f.severity == Severity::Error {
            format!(
                "{} holds {}, {}: at the limit, its socket(), accept() and open() fail with EMFILE \"Too many \
                 open files\" (the process's own limit, whatever fs.file-max says). {fix}",
                who(f),
                fds_text(f),
                sockets_text(f)
            )
        } else {
            format!(
                "{} holds {}, {}: when all are open, its socket(), accept() and open() fail with EMFILE \"Too \
                 many open files\". {fix}",
                who(f),
                fds_text(f),
                sockets_text(f)
            )
        };
        out.push(Finding::new(f.severity, ID, message).measured(None, f.fds, soft, "files"));
    }
    if flagged.len() > PROCESS_FINDINGS_MAX {
        let rest = &flagged[PROCESS_FINDINGS_MAX..];
        let worst = rest.iter().map(|f| f.severity).max().unwrap_or(Severity::Warning);
        out.push(Finding::new(
            worst,
            ID,
            format!(
                "and {} more processes at {}% or more of their soft NOFILE limit (sysctune doctor --format json \
                 --top N lists them).",
                rest.len(),
                FDS_WARNING_PERCENT
            ),
        ));
    }
    if flagged.is_empty() {
        let message = match (facts.top.first(), s.read) {
            (_, 0) if s.found == 0 && !s.notes.is_empty() => {
                format!("processes not checked: {}.", s.notes.join("; "))
            }
            (_, 0) if s.found == 0 => {
                "no processes under /proc: which process holds the sockets not checked.".to_string()
            }
            (None, n) => format!(
                "{} process{} read, none holds a socket or is near its soft NOFILE limit.",
                grouped(n as u128),
                if n == 1 { "" } else { "es" }
            ),
            (Some(f), n) => format!(
                "{} holds the most sockets: {}, {}. {} process{} read, none at {}% of its soft NOFILE limit.",
                who(f),
                sockets_text(f),
                fds_text(f),
                grouped(n as u128),
                if n == 1 { "" } else { "es" },
                FDS_WARNING_PERCENT
            ),
        };
        out.push(Finding::new(Severity::Info, ID, message));
    }
    let mut unread = Vec::new();
    if s.denied > 0 {
        unread.push(format!(
            "{} not readable by this user (another user's descriptors need CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, as root has them)",
            s.denied
        ));
    }
    if s.malformed > 0 {
        unread.push(format!("{} skipped: {}", s.malformed, s.notes.join("; ")));
    }
    if let Some(c) = &s.capped {
        unread.push(format!("the scan stopped early: {c}"));
    }
    if !unread.is_empty() {
        out.push(Finding::new(
            Severity::Info,
            ID,
            format!("of {} processes, {}.", s.found, unread.join("; ")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, comm: &str, fds: u64, sockets: u64, soft: Option<u64>) -> ProcessRead {
        ProcessRead {
            pid,
            comm: comm.into(),
            fds,
            sockets: (0..sockets).map(|i| 1000 * pid as u64 + i).collect(),
            nofile_soft: soft,
            nofile_hard: Some(524288),
            ..ProcessRead::default()
        }
    }

    fn scan(processes: Vec<ProcessRead>) -> ProcessScan {
        ProcessScan {
            found: processes.len() as u64,
            read: processes.len() as u64,
            processes,
            ..ProcessScan::default()
        }
    }

    #[test]
    fn fd_thresholds() {
        assert_eq!(fd_severity(79, Some(100)), Severity::Info);
        assert_eq!(fd_severity(80, Some(100)), Severity::Warning);
        assert_eq!(fd_severity(94, Some(100)), Severity::Warning);
        assert_eq!(fd_severity(95, Some(100)), Severity::Error);
        assert_eq!(fd_severity(1024, Some(1024)), Severity::Error);
        assert_eq!(fd_severity(10_000_000, None), Severity::Info);
        assert_eq!(fd_severity(0, Some(0)), Severity::Error);
    }

    #[test]
    fn the_issues_example() {
        // "PID 812 nginx holds 790 000 sockets, soft NOFILE 1 048 576"
        let s = scan(vec![
            proc(1, "systemd", 120, 40, Some(1024)),
            proc(812, "nginx", 790_012, 790_000, Some(1_048_576)),
        ]);
        let held = vec![
            Held::default(),
            Held {
                tcp: 790_000,
                listening: vec![80, 443],
                listeners: 2,
                ephemeral: 12_000,
            },
        ];
        let f = facts(s.clone(), &held, 5);
        assert_eq!(f.top[0].pid, 812);
        let findings = check_processes(&f);
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "PID 812 nginx holds the most sockets: 790 000 sockets (790 000 TCP: listening on 80, 443; 12 000 on \
             ports of the ephemeral range; 777 998 other connections), 790 012 open descriptors of soft NOFILE \
             1 048 576 (75.3%, hard 524 288). 2 processes read, none at 80% of its soft NOFILE limit."
        );
    }

    #[test]
    fn near_the_limit_is_named_first_and_bounded() {
        let mut procs = vec![proc(900, "busy", 10, 9000, None)];
        for pid in 1..=7 {
            procs.push(proc(pid, "worker", 60 + pid as u64, 50, Some(64)));
        }
        let s = scan(procs);
        let held = vec![Held::default(); s.processes.len()];
        let f = facts(s.clone(), &held, 3);
        // flagged first (errors: 61/64 = 95.3% and up), then by sockets
        assert_eq!(f.top.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![7, 6, 5]);
        assert_eq!(f.others, 5);
        let findings = check_processes(&f);
        assert_eq!(findings.len(), PROCESS_FINDINGS_MAX + 1);
        assert!(
            findings[0]
                .message
                .starts_with("PID 7 worker holds 67 open descriptors of soft NOFILE 64 (104.6%"),
            "{}",
            findings[0].message
        );
        assert_eq!(findings[0].value, Some(67));
        assert_eq!(findings[0].threshold, Some(64));
        assert!(
            findings[5].message.starts_with("and 2 more processes"),
            "{}",
            findings[5].message
        );
    }

    #[test]
    fn nothing_to_read_and_what_was_skipped() {
        let empty = ProcessScan::default();
        let f = facts(empty.clone(), &[], 5);
        let m = check_processes(&f);
        assert_eq!(
            m[0].message,
            "no processes under /proc: which process holds the sockets not checked."
        );
        let unreadable = ProcessScan {
            notes: vec!["/srv/img/proc: is a FIFO (named pipe), not a directory".into()],
            ..ProcessScan::default()
        };
        let m = check_processes(&facts(unreadable, &[], 5));
        assert_eq!(
            m[0].message,
            "processes not checked: /srv/img/proc: is a FIFO (named pipe), not a directory."
        );
        let mut s = scan(vec![proc(5, "idle", 3, 0, Some(1024))]);
        s.found = 9;
        s.denied = 2;
        s.malformed = 1;
        s.notes = vec!["PID 7 skipped: limits: line 1: expected the header".into()];
        s.capped = Some("2097152 descriptors read".into());
        let held = vec![Held::default()];
        let m = check_processes(&facts(s.clone(), &held, 5));
        assert_eq!(
            m[0].message,
            "1 process read, none holds a socket or is near its soft NOFILE limit."
        );
        assert_eq!(
            m[1].message,
            "of 9 processes, 2 not readable by this user (another user's descriptors need CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, as root has them); \
             1 skipped: PID 7 skipped: limits: line 1: expected the header; the scan stopped early: 2097152 \
             descriptors read."
        );
    }
}
