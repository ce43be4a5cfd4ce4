//! Text output: one screen that says what is wrong, what to change, why, and what the host
//! will hold afterwards.

use std::fmt::Write;

use super::layout::{findings, pad, table};
use super::{Style, safe, wrap};
use crate::plan::Plan;
use crate::rules::Severity;
use crate::units::{grouped, human_bytes};

/// `sysctune apply`: what was written, and how to undo it.
pub fn apply(r: &crate::apply::ApplyReport, style: &Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} profile {}",
        style.bold("sysctune apply:"),
        safe(&r.profile)
    );
    if !r.changed {
        let _ = writeln!(
            out,
            "Nothing to change: the live values and {} already match the plan.",
            safe(&r.dropin.path)
        );
    }
    for c in &r.live {
        live_line(&mut out, style, "set   ", c, "; read back and verified");
    }
    if r.dropin.changed {
        let _ = writeln!(out, "  wrote  {}", safe(&r.dropin.path));
    }
    if r.changed
        && let Some(rec) = &r.rollback
    {
        let _ = writeln!(
            out,
            "  saved  the previous state in {}; undo with: {}",
            safe(rec),
            safe(&r.undo_command)
        );
    }
    out.push('\n');
    findings(&mut out, style, &r.findings);
    out
}

/// `  set    key = value  (was old...)`: one live write of apply or rollback.
fn live_line(out: &mut String, style: &Style, verb: &str, c: &crate::apply::LiveChange, note: &str) {
    let was = format!("(was {}{note})", safe(c.from.as_deref().unwrap_or("absent")));
    let _ = writeln!(
        out,
        "  {verb} {} = {}  {}",
        safe(&c.key),
        style.green(&safe(&c.to)),
        style.dim(&was)
    );
}

/// `sysctune rollback`.
pub fn rollback(r: &crate::apply::RollbackReport, style: &Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", style.bold("sysctune rollback:"), safe(&r.message));
    let (set, restore) = if r.dry_run {
        ("would set", "would restore")
    } else {
        ("set     ", "restored")
    };
    for c in &r.live {
        live_line(&mut out, style, set, c, "");
    }
    if let Some(d) = &r.dropin {
        let verb = if d.changed { restore } else { "kept" };
        let _ = writeln!(out, "  {verb} {}", safe(&d.path));
    }
    out
}

/// One host of `plan --snapshot` with several hosts.
#[derive(Clone, Debug)]
pub struct FleetRow {
    pub snapshot: std::path::PathBuf,
    pub host: String,
    pub changes: usize,
    pub managed: usize,
    pub errors: usize,
    pub warnings: usize,
    pub dropin_changed: bool,
    pub changed: bool,
}

impl FleetRow {
    pub fn of(snapshot: &std::path::Path, p: &Plan) -> Self {
        let count = |sev: Severity| p.findings.iter().filter(|f| f.severity == sev).count();
        FleetRow {
            snapshot: snapshot.to_path_buf(),
            host: safe(p.host.name.as_deref().unwrap_or("?")).into_owned(),
            changes: p.settings.iter().filter(|s| s.change).count(),
            managed: p.settings.len(),
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            dropin_changed: p.dropin.changed,
            changed: p.changed,
        }
    }
}

/// `plan --snapshot` with several hosts: one line per host.
pub fn fleet(rows: &[FleetRow], total: usize, failed: usize, style: &Style) -> String {
    let mut out = String::new();
    let host_w = rows
        .iter()
        .map(|r| r.host.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "{}  {:>7}  {:>6}  {:>8}  {:<13}  SNAPSHOT",
            pad("HOST", host_w),
            "CHANGES",
            "ERRORS",
            "WARNINGS",
            "DROP-IN"
        ))
    );
    for r in rows {
        let errors = if r.errors > 0 {
            style.red(&format!("{:>6}", r.errors))
        } else {
            format!("{:>6}", r.errors)
        };
        let _ = writeln!(
            out,
            "{}  {:>7}  {errors}  {:>8}  {:<13}  {}",
            pad(&r.host, host_w),
            format!("{}/{}", r.changes, r.managed),
            r.warnings,
            if r.dropin_changed {
                "would change"
            } else {
                "up to date"
            },
            safe(&r.snapshot.display().to_string())
        );
    }
    let pending = rows.iter().filter(|r| r.changed).count();
    let _ = writeln!(
        out,
        "\n{} hosts planned, {pending} with changes pending{}. Details: sysctune plan --snapshot FILE",
        rows.len(),
        if failed > 0 {
            format!(", {failed} of {total} snapshots failed (see the errors above)")
        } else {
            String::new()
        }
    );
    out
}

/// `sysctune doctor`: the verdict, the findings (worst first), then a short table of the
/// facts and the busiest destinations. One screen.
pub fn doctor(r: &crate::doctor::Report, style: &Style) -> String {
    use crate::doctor::percent;
    use crate::units::human_pages;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} (kernel {})",
        style.bold("sysctune doctor:"),
        safe(r.host.name.as_deref().unwrap_or("this host")),
        safe(&r.host.kernel)
    );
    let count = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let verdict = match (errors, warnings) {
        (0, 0) => style.green("Healthy: no warning or error."),
        (0, w) => style.yellow(&format!("{}.", plural(w, "warning"))),
        (e, 0) => style.red(&format!("{}.", plural(e, "error"))),
        (e, w) => style.red(&format!("{}, {}.", plural(e, "error"), plural(w, "warning"))),
    };
    let _ = writeln!(out, "{verdict}\n");

    findings(&mut out, style, &r.findings);

    let f = &r.facts;
    // tcp_mem and sockstat mem are in the kernel's quantum (4 KiB on 64 KiB-page 4.10-5.19)
    let page = f.mem_quantum;
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(p) = &f.ports {
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
        rows.push((
            "ephemeral ports",
            format!(
                "{} {}: {} usable{reserved}{listening}, {} held across destinations; at most {} new \
                 connection(s)/s per destination{with_reuse}; TIME_WAIT up to {}",
                p.range[0],
                p.range[1],
                grouped(p.usable as u128),
                grouped(p.pool_held as u128),
                grouped(p.max_new_per_second_per_destination as u128),
                p.tw_seconds
            ),
        ));
        let read: Vec<String> = p
            .tables
            .iter()
            .map(|t| match t.lines {
                Some(_) => t.path.clone(),
                None => format!("{} (missing)", t.path),
            })
            .collect();
        let from = if p.source == crate::doctor::Source::Netlink {
            format!(
                "with a local port in {}-{} (netlink sock_diag, filtered in the kernel)",
                p.range[0], p.range[1]
            )
        } else {
            format!("in {}", read.join(", "))
        };
        rows.push((
            "TCP sockets",
            format!(
                "{} {from}: {} hold an ephemeral port ({} destination(s)), {} inbound",
                grouped(p.sockets as u128),
                grouped(p.outbound as u128),
                grouped(p.destinations as u128),
                grouped(p.inbound as u128),
            ),
        ));
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
    let m = &f.memory;
    let swap = if m.swap_total == 0 {
        "no swap".to_string()
    } else {
        format!("swap {}", human_bytes(m.swap_total as u128))
    };
    rows.push((
        "memory",
        match m.mem_available {
            Some(a) => format!(
                "MemAvailable {} of MemTotal {} ({}), {swap}",
                human_bytes(a as u128),
                human_bytes(m.mem_total as u128),
                percent(a as u128, m.mem_total as u128)
            ),
            None => format!("MemTotal {}, {swap}", human_bytes(m.mem_total as u128)),
        },
    ));
    rows.push((
        "commit",
        format!(
            "Committed_AS {} of CommitLimit {} ({}), vm.overcommit_memory = {}",
            human_bytes(m.committed_as as u128),
            human_bytes(m.commit_limit as u128),
            percent(m.committed_as as u128, m.commit_limit as u128),
            m.overcommit_memory
                .map_or("absent".to_string(), |v| v.to_string())
        ),
    ));
    if let Some(files) = f.files {
        rows.push((
            "open files",
            format!(
                "{} of fs.file-max {} ({})",
                grouped(files.allocated as u128),
                grouped(files.max as u128),
                percent(files.allocated as u128, files.max as u128)
            ),
        ));
    }
    let ps = &f.processes.scan;
    if ps.found > 0 {
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
        rows.push(("processes", line));
    }
    if let Some(line) = crate::doctor::drift::line(&f.drift) {
        rows.push(("applied", line));
    }
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

    if let Some(p) = f.ports.as_ref().filter(|p| !p.top.is_empty()) {
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
        table(&mut out, style, &head, &cells);
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

    let procs = &f.processes;
    if !procs.top.is_empty() {
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
        table(&mut out, style, &head, &cells);
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
    for note in &r.notes {
        let lines = wrap(&safe(&format!("note: {note}")), style.width.saturating_sub(2));
        for line in lines {
            let _ = writeln!(out, "{}", style.dim(&line));
        }
    }
    out
}
