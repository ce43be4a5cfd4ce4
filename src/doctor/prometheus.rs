//! `doctor --format prometheus`: the report in the Prometheus text exposition format
//! (version 0.0.4), for node_exporter's textfile collector.
//!
//! Every name starts with `sysctune_` and carries its unit (`_bytes`, `_seconds`,
//! `_ports`, `_sockets`); each family has its HELP and TYPE lines. Cardinality is bounded:
//! the ports held per (source, destination) pair are given for the `--top` busiest pairs
//! (20 by default) plus one series with `destination="other"`, the sum over the pairs
//! left out (alert on the named pairs; the sum of many small pairs is not one pair near
//! exhaustion). The kernel's incident counters are counters (`_total`), since boot.

use std::fmt::Write;

use super::{DoctorFacts, PortFacts, Report, counters::WATCHED, drift::DriftFacts};
use crate::rules::Severity;

/// One family being written.
struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP sysctune_{name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE sysctune_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.text, "sysctune_{name}");
        if !labels.is_empty() {
            let parts: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(self.text, "{{{}}}", parts.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }
}

/// `\` and newline escaped, as HELP lines need.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `\`, `"` and newline escaped, as label values need; other control characters (from a
/// hostile fixture's hostname, say) become `?` so the output stays one line per sample.
fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// `ListenOverflows` → `listen_overflows`, `TCPAbortOnMemory` → `tcp_abort_on_memory`.
pub fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn severity_value(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Error => 2,
    }
}

/// The report as metrics.
pub fn render(r: &Report) -> String {
    let mut o = Out { text: String::new() };
    let f = &r.facts;
    verdict(&mut o, r);
    if let Some(p) = &f.ports {
        ports(&mut o, p);
    }
    tcp(&mut o, f);
    memory(&mut o, f);
    processes(&mut o, &f.processes);
    drift(&mut o, &f.drift);
    counters(&mut o, f);
    o.text
}

/// The worst finding, when doctor read the figures, and the worst finding of each check.
fn verdict(o: &mut Out, r: &Report) {
    let worst = r
        .findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Info);
    o.gauge(
        "doctor_status",
        "The worst finding of sysctune doctor: 0 healthy, 1 warning, 2 error.",
        severity_value(worst),
    );
    o.gauge(
        "doctor_timestamp_seconds",
        "When sysctune doctor read the figures, seconds since the epoch.",
        r.time,
    );
    o.family(
        "doctor_check_severity",
        "gauge",
        "The worst finding of each check: 0 info, 1 warning, 2 error.",
    );
    let mut rules: Vec<(&str, Severity)> = Vec::new();
    for finding in &r.findings {
        let rule = finding.rule.as_str();
        match rules.iter_mut().find(|(r, _)| *r == rule) {
            Some((_, s)) => *s = (*s).max(finding.severity),
            None => rules.push((rule, finding.severity)),
        }
    }
    rules.sort();
    for (rule, s) in rules {
        o.sample("doctor_check_severity", &[("check", rule)], severity_value(s));
    }
}

/// The port range and the ports held per (source, destination) pair: the `--top` busiest,
/// then the rest summed as `destination="other"`.
fn ports(o: &mut Out, p: &PortFacts) {
    o.gauge(
        "local_ports_usable_ports",
        "Local ports connect() may pick: ip_local_port_range minus reserved and listening ports.",
        p.usable,
    );
    o.gauge(
        "local_ports_reserved_ports",
        "Ports of ip_local_port_range in ip_local_reserved_ports.",
        p.reserved,
    );
    o.gauge(
        "local_ports_listening_ports",
        "Ports of ip_local_port_range a listener holds (connect() skips them).",
        p.listening_in_range,
    );
    o.gauge(
        "local_ports_pool_held_ports",
        "Distinct local ports of the range held across all destinations: the pool bind() before connect() draws from.",
        p.pool_held,
    );
    o.gauge(
        "local_ports_pairs",
        "Distinct (source address, destination address:port) pairs holding local ports.",
        p.destinations,
    );
    o.gauge(
        "local_ports_max_new_per_second",
        "New connections per second one destination sustains without TIME_WAIT reuse.",
        p.max_new_per_second_per_destination,
    );
    o.family(
        "local_ports_held_ports",
        "gauge",
        "Local ports held per (source, destination) pair, TIME_WAIT left out where tcp_tw_reuse applies; the busiest pairs, then destination=\"other\": the sum of the rest.",
    );
    for d in &p.top {
        let port = d.port.to_string();
        o.sample(
            "local_ports_held_ports",
            &[
                ("source", &d.source),
                ("destination", &d.address),
                ("port", &port),
            ],
            d.held,
        );
    }
    o.sample(
        "local_ports_held_ports",
        &[("source", "other"), ("destination", "other"), ("port", "other")],
        p.held_other,
    );
}

/// TCP's sockets (sockstat), its limits (tw buckets, orphans) and tcp_mem in bytes.
fn tcp(o: &mut Out, f: &DoctorFacts) {
    if let Some(s) = &f.sockstat {
        o.gauge(
            "tcp_time_wait_sockets",
            "TCP sockets in TIME_WAIT (sockstat tw, this network namespace).",
            s.tcp_tw,
        );
        o.gauge(
            "tcp_orphan_sockets",
            "Orphaned TCP sockets (sockstat orphan).",
            s.tcp_orphan,
        );
        o.gauge(
            "tcp_inuse_sockets",
            "TCP sockets in use (sockstat inuse).",
            s.tcp_inuse,
        );
        o.gauge(
            "tcp_memory_bytes",
            "Memory charged to TCP (sockstat mem times the kernel's quantum).",
            s.tcp_mem as u128 * f.mem_quantum as u128,
        );
    }
    if let Some(max) = f.tcp_max_tw_buckets {
        o.gauge(
            "tcp_max_tw_buckets_sockets",
            "net.ipv4.tcp_max_tw_buckets: TIME_WAIT sockets beyond it are destroyed at once.",
            max,
        );
    }
    if let Some(max) = f.tcp_max_orphans {
        o.gauge(
            "tcp_max_orphans_sockets",
            "net.ipv4.tcp_max_orphans (the kernel resets orphans from a quarter of it, see sysctune doctor).",
            max,
        );
    }
    if let Some([low, pressure, high]) = f.tcp_mem {
        o.family(
            "tcp_mem_limit_bytes",
            "gauge",
            "net.ipv4.tcp_mem in bytes: low, pressure and high.",
        );
        let q = f.mem_quantum as u128;
        for (level, v) in [("low", low), ("pressure", pressure), ("high", high)] {
            o.sample("tcp_mem_limit_bytes", &[("level", level)], v as u128 * q);
        }
    }
}

/// Memory, commit and file handles.
fn memory(o: &mut Out, f: &DoctorFacts) {
    let m = &f.memory;
    o.gauge("memory_total_bytes", "MemTotal.", m.mem_total);
    if let Some(a) = m.mem_available {
        o.gauge("memory_available_bytes", "MemAvailable.", a);
    }
    o.gauge("swap_total_bytes", "SwapTotal.", m.swap_total);
    o.gauge("committed_as_bytes", "Committed_AS.", m.committed_as);
    o.gauge(
        "commit_limit_bytes",
        "CommitLimit (enforced only when vm.overcommit_memory is 2).",
        m.commit_limit,
    );
    if let Some(mode) = m.overcommit_memory {
        o.gauge(
            "overcommit_memory_mode",
            "vm.overcommit_memory: 0 heuristic, 1 always, 2 strict.",
            mode,
        );
    }
    if let Some(files) = &f.files {
        o.gauge(
            "file_handles_allocated",
            "Allocated file handles (fs.file-nr).",
            files.allocated,
        );
        o.gauge("file_handles_max", "fs.file-max.", files.max);
    }
}

/// The kernel's incident counters doctor watches, since boot.
fn counters(o: &mut Out, f: &DoctorFacts) {
    for c in WATCHED {
        let Some(&v) = f.counters.get(c.name) else {
            continue;
        };
        let help = format!("TcpExt {} since boot: {}.", c.name, c.meaning);
        if c.unit == "milliseconds" {
            let name = format!(
                "netstat_{}_seconds_total",
                snake(c.name).trim_end_matches("_chrono")
            );
            o.family(&name, "counter", &help);
            o.sample(&name, &[], format!("{}.{:03}", v / 1000, v % 1000));
        } else {
            let name = format!("netstat_{}_total", snake(c.name));
            o.family(&name, "counter", &help);
            o.sample(&name, &[], v);
        }
    }
}

/// The processes of the facts (the `--top` ones: flagged first, then by sockets), labelled
/// by pid and comm, and what the scan read.
fn processes(o: &mut Out, p: &super::processes::ProcessFacts) {
    o.gauge(
        "processes_read",
        "Processes whose descriptors and limits sysctune doctor read.",
        p.scan.read,
    );
    o.gauge(
        "processes_unread",
        "Processes doctor could not read (another user's without CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, or malformed); exited ones left out.",
        p.scan.denied + p.scan.malformed,
    );
    o.gauge(
        "processes_scan_capped",
        "1 when doctor stopped reading processes at its bound (see doctor --format json, facts.processes.capped).",
        u8::from(p.scan.capped.is_some()),
    );
    if p.top.is_empty() {
        return;
    }
    let label = |f: &super::processes::ProcessFact| (f.pid.to_string(), f.comm.clone());
    type Value = fn(&super::processes::ProcessFact) -> Option<u64>;
    let families: [(&str, &str, Value); 4] = [
        (
            "process_open_fds",
            "Open descriptors of the processes holding the most sockets (and of any near its limit).",
            |f| Some(f.fds),
        ),
        (
            "process_max_fds",
            "Their soft RLIMIT_NOFILE (absent when unlimited): at it, socket(), accept() and open() fail with EMFILE.",
            |f| f.nofile_soft,
        ),
        (
            "process_sockets",
            "Their socket descriptors, of any family.",
            |f| Some(f.sockets),
        ),
        (
            "process_tcp_sockets",
            "Their TCP sockets found in /proc/net/tcp and tcp6.",
            |f| Some(f.tcp),
        ),
    ];
    for (name, help, value) in families {
        o.family(name, "gauge", help);
        for f in &p.top {
            if let Some(v) = value(f) {
                let (pid, comm) = label(f);
                o.sample(name, &[("pid", &pid), ("comm", &comm)], v);
            }
        }
    }
}

/// Plan drift, as `sysctune status` judges it: one series each (the profile is a label of
/// one `_info` series), so the cardinality does not grow with the keys.
fn drift(o: &mut Out, d: &DriftFacts) {
    let readable = d.error.is_none();
    o.gauge(
        "status_readable",
        "1 when sysctune could read its apply record (the drift figures below are known), 0 when it could not (see doctor --format json, facts.drift.error).",
        u8::from(readable),
    );
    if !readable {
        return;
    }
    o.gauge(
        "in_sync",
        "1 when sysctune status would exit 0: live values, boot and the drop-in agree and the applied profile recommends what is applied (also 1 when nothing was applied); 0 when changes are pending.",
        u8::from(d.in_sync),
    );
    o.gauge(
        "drift_keys",
        "Keys sysctune manages that are out of sync (sysctune status marks them !).",
        d.drifting,
    );
    o.gauge(
        "managed_keys",
        "Keys sysctune status compares: the drop-in's, those set live, the applied profile's.",
        d.keys,
    );
    if let Some(current) = d.dropin_current {
        o.gauge(
            "dropin_current",
            "1 when the drop-in is what the applied profile writes on this host now, 0 when an apply would change it.",
            u8::from(current),
        );
    }
    if let Some(profile) = &d.profile {
        o.family(
            "applied_info",
            "gauge",
            "The profile of the last sysctune apply that changed something (1; absent when nothing was applied).",
        );
        o.sample("applied_info", &[("profile", profile)], 1);
    }
    if let Some(t) = d.timestamp {
        o.gauge(
            "applied_timestamp_seconds",
            "When the last sysctune apply that changed something ran, seconds since the epoch.",
            t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_escapes() {
        assert_eq!(snake("ListenOverflows"), "listen_overflows");
        assert_eq!(snake("TCPAbortOnMemory"), "tcp_abort_on_memory");
        assert_eq!(snake("TCPMemoryPressuresChrono"), "tcp_memory_pressures_chrono");
        assert_eq!(snake("TCPTimeWaitOverflow"), "tcp_time_wait_overflow");
        assert_eq!(escape_label("a\"b\\c\nd\u{1b}"), "a\\\"b\\\\c\\nd?");
        assert_eq!(escape_help("x\\y\nz"), "x\\\\y\\nz");
    }
}
