//! `sysctune doctor` as text: the verdict, the findings (worst first), then a short table
//! of the facts and the busiest destinations and processes. One screen. Its JSON is the
//! [`Report`] itself; its metrics are [`crate::doctor::prometheus`].

use std::fmt::Write;

use super::layout::{findings, pad, table};
use super::{Style, safe, wrap};
use crate::doctor::processes::ProcessFacts;
use crate::doctor::{DoctorFacts, MemoryFacts, PortFacts, Report, Source, commit, files, percent};
use crate::host::processes::ProcessScan;
use crate::rules::Severity;
use crate::units::{grouped, human_bytes, human_pages};

pub fn text(r: &Report, style: &Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} (kernel {})",
        style.bold("sysctune doctor:"),
        safe(r.host.name.as_deref().unwrap_or("this host")),
        safe(&r.host.kernel)
    );
    let _ = writeln!(out, "{}\n", verdict(r, style));
    findings(&mut out, style, &r.findings);
    facts(&mut out, &r.facts, style);
    if let Some(p) = r.facts.ports.as_ref().filter(|p| !p.top.is_empty()) {
        destinations(&mut out, p, style);
    }
    if !r.facts.processes.top.is_empty() {
        processes(&mut out, &r.facts.processes, style);
    }
    for note in &r.notes {
        let lines = wrap(&safe(&format!("note: {note}")), style.width.saturating_sub(2));
        for line in lines {
            let _ = writeln!(out, "{}", style.dim(&line));
        }
    }
    out
}

/// `Healthy`, or how many errors and warnings, in the colour of the worst.
fn verdict(r: &Report, style: &Style) -> String {
    let count = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (count(Severity::Error), count(Severity::Warning)) {
        (0, 0) => style.green("Healthy: no warning or error."),
        (0, w) => style.yellow(&format!("{}.", plural(w, "warning"))),
        (e, 0) => style.red(&format!("{}.", plural(e, "error"))),
        (e, w) => style.red(&format!("{}, {}.", plural(e, "error"), plural(w, "warning"))),
    }
}

/// The Facts table: one labelled line per figure doctor read, wrapped under its label.
fn facts(out: &mut String, f: &DoctorFacts, style: &Style) {
    let rows = fact_rows(f);
    let _ = writeln!(out, "{}", style.bold("Facts"));
    let name_w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, value) in &rows {
        // The table paths are under --root, whatever it is called.
        let lines = wrap(&safe(value), style.width.saturating_sub(name_w + 4));
        for (i, line) in lines.iter().enumerate() {
            let label = if i == 0 { *name } else { "" };
            let _ = writeln!(out, "  {}  {line}", pad(label, name_w));
        }
    }
}

fn fact_rows(f: &DoctorFacts) -> Vec<(&'static str, String)> {
    // tcp_mem and sockstat mem are in the kernel's quantum (4 KiB on 64 KiB-page 4.10-5.19)
    let page = f.mem_quantum;
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(p) = &f.ports {
        rows.push(("ephemeral ports", ports_line(p)));
        rows.push(("TCP sockets", sockets_line(p)));
    }
    if let Some(s) = &f.sockstat {
        rows.push((
            "TCP (sockstat)",
            format!(
                "inuse {} orphan {} tw {} alloc {} mem {}",
                s.tcp_inuse,
                s.tcp_orphan,
                s.tcp_tw,
                s.tcp_alloc,
                human_pages(s.tcp_mem, page)
            ),
        ));
    }
    if let Some([low, pressure, high]) = f.tcp_mem {
        rows.push((
            "tcp_mem",
            format!(
                "{low} {pressure} {high} pages = {} / {} / {}",
                human_bytes(low as u128 * page as u128),
                human_bytes(pressure as u128 * page as u128),
                human_bytes(high as u128 * page as u128)
            ),
        ));
    }
    if let (Some(max), Some(s)) = (f.tcp_max_orphans, &f.sockstat) {
        rows.push((
            "orphans",
            format!(
                "{} of tcp_max_orphans {}",
                grouped(s.tcp_orphan as u128),
                grouped(max as u128)
            ),
        ));
    }
    rows.push(("memory", memory_line(&f.memory)));
    rows.push(("commit", commit_line(&f.memory)));
    if let Some(files) = f.files {
        rows.push((
            "open files",
            format!(
                "{} of {} {} ({})",
                grouped(files.allocated as u128),
                files::MAX_KEY,
                grouped(files.max as u128),
                percent(files.allocated as u128, files.max as u128)
            ),
        ));
    }
    if let Some(line) = scan_line(&f.processes.scan) {
        rows.push(("processes", line));
    }
    if let Some(line) = crate::doctor::drift::line(&f.drift) {
        rows.push(("applied", line));
    }
    rows
}

/// The port range: usable, held, the rate it allows per destination, TIME_WAIT.
fn ports_line(p: &PortFacts) -> String {
    let reserved = if p.reserved > 0 {
        format!(", {} reserved", grouped(p.reserved as u128))
    } else {
        String::new()
    };
    let listening = if p.listening_in_range > 0 {
        format!(", {} listening", grouped(p.listening_in_range as u128))
    } else {
        String::new()
    };
    let with_reuse = match (p.max_new_per_second_with_reuse, p.reuse.tcp_tw_reuse) {
        (Some(n), Some(2)) => format!(" ({} with tcp_tw_reuse, loopback only)", grouped(n as u128)),
        (Some(n), _) => format!(" ({} with tcp_tw_reuse)", grouped(n as u128)),
        (None, _) => String::new(),
    };
    format!(
        "{} {}: {} usable{reserved}{listening}, {} held across destinations; at most {} new \
         connection(s)/s per destination{with_reuse}; TIME_WAIT up to {}",
        p.range[0],
        p.range[1],
        grouped(p.usable as u128),
        grouped(p.pool_held as u128),
        grouped(p.max_new_per_second_per_destination as u128),
        p.tw_seconds
    )
}

/// The TCP sockets read, from where (netlink or the tables), and how many hold a port.
fn sockets_line(p: &PortFacts) -> String {
    let read: Vec<String> = p
        .tables
        .iter()
        .map(|t| match t.lines {
            Some(_) => t.path.clone(),
            None => format!("{} (missing)", t.path),
        })
        .collect();
    let from = if p.source == Source::Netlink {
        format!(
            "with a local port in {}-{} (netlink sock_diag, filtered in the kernel)",
            p.range[0], p.range[1]
        )
    } else {
        format!("in {}", read.join(", "))
    };
    format!(
        "{} {from}: {} hold an ephemeral port ({} destination(s)), {} inbound",
        grouped(p.sockets as u128),
        grouped(p.outbound as u128),
        grouped(p.destinations as u128),
        grouped(p.inbound as u128),
    )
}

fn memory_line(m: &MemoryFacts) -> String {
    let swap = if m.swap_total == 0 {
        "no swap".to_string()
    } else {
        format!("swap {}", human_bytes(m.swap_total as u128))
    };
    match m.mem_available {
        Some(a) => format!(
            "MemAvailable {} of MemTotal {} ({}), {swap}",
            human_bytes(a as u128),
            human_bytes(m.mem_total as u128),
            percent(a as u128, m.mem_total as u128)
        ),
        None => format!("MemTotal {}, {swap}", human_bytes(m.mem_total as u128)),
    }
}

fn commit_line(m: &MemoryFacts) -> String {
    format!(
        "Committed_AS {} of CommitLimit {} ({}), {} = {}",
        human_bytes(m.committed_as as u128),
        human_bytes(m.commit_limit as u128),
        percent(m.committed_as as u128, m.commit_limit as u128),
        commit::MODE_KEY,
        m.overcommit_memory
            .map_or("absent".to_string(), |v| v.to_string())
    )
}

/// What the process scan read and skipped; nothing when it found no process.
fn scan_line(ps: &ProcessScan) -> Option<String> {
    if ps.found == 0 {
        return None;
    }
    let mut parts = vec![format!("{} read", grouped(ps.read as u128))];
    for (n, what) in [
        (ps.exited, "exited while read"),
        (ps.denied, "not readable"),
        (ps.malformed, "skipped"),
    ] {
        if n > 0 {
            parts.push(format!("{} {what}", grouped(n as u128)));
        }
    }
    let mut line = format!(
        "{}; {} descriptors",
        parts.join(", "),
        grouped(ps.fds_read as u128)
    );
    if ps.capped.is_some() {
        line.push_str(" (capped)");
    }
    Some(line)
}

/// The busiest source/destination pairs and the ports each holds.
fn destinations(out: &mut String, p: &PortFacts, style: &Style) {
    out.push('\n');
    let head = [
        "SOURCE",
        "DESTINATION",
        "PORTS",
        "USE",
        "TIME_WAIT",
        "ESTABLISHED",
        "SYN_SENT",
        "CLOSING",
    ];
    let cells: Vec<Vec<String>> = p
        .top
        .iter()
        .map(|d| {
            [
                safe(&d.source).into_owned(),
                safe(&d.destination).into_owned(),
                grouped(d.held as u128),
                percent(d.held as u128, p.usable as u128),
                grouped(d.time_wait as u128),
                grouped(d.established as u128),
                grouped(d.syn_sent as u128),
                grouped(d.other as u128),
            ]
            .into()
        })
        .collect();
    table(out, style, &head, &cells);
    if p.destinations > p.top.len() as u64 {
        let _ = writeln!(
            out,
            "  {}",
            style.dim(&format!(
                "… and {} more destinations (--top N)",
                grouped((p.destinations - p.top.len() as u64) as u128)
            ))
        );
    }
}

/// The processes holding the most sockets, and their descriptors against their limit.
fn processes(out: &mut String, procs: &ProcessFacts, style: &Style) {
    out.push('\n');
    let head = [
        "PID",
        "COMMAND",
        "SOCKETS",
        "TCP",
        "LISTENING",
        "EPHEMERAL",
        "FDS",
        "SOFT NOFILE",
        "USE",
    ];
    let dash = || "-".to_string();
    let cells: Vec<Vec<String>> = procs
        .top
        .iter()
        .map(|p| {
            let mut listening: Vec<String> = p.listening.iter().map(|l| l.to_string()).collect();
            if p.listeners > p.listening.len() as u64 {
                listening.push("…".into());
            }
            vec![
                p.pid.to_string(),
                safe(&p.comm).into_owned(),
                grouped(p.sockets as u128),
                grouped(p.tcp as u128),
                if listening.is_empty() {
                    dash()
                } else {
                    listening.join(",")
                },
                grouped(p.ephemeral as u128),
                format!(
                    "{}{}",
                    grouped(p.fds as u128),
                    if p.fds_capped { "+" } else { "" }
                ),
                p.nofile_soft.map_or("unlimited".into(), |s| grouped(s as u128)),
                p.nofile_soft
                    .map_or_else(dash, |s| percent(p.fds as u128, s as u128)),
            ]
        })
        .collect();
    table(out, style, &head, &cells);
    if procs.others > 0 {
        let _ = writeln!(
            out,
            "  {}",
            style.dim(&format!(
                "… and {} more processes holding sockets (--top N)",
                grouped(procs.others as u128)
            ))
        );
    }
}
