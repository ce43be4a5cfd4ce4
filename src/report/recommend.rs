//! `sysctune recommend` as text: the profile and the command to plan it, why, and the
//! evidence read. Its JSON is the [`Recommendation`] itself.

use super::safe;
use crate::recommend::Recommendation;
use crate::units::grouped;

pub fn text(r: &Recommendation) -> String {
    let mut out = String::new();
    match &r.profile {
        Some(p) => {
            out.push_str(&format!(
                "sysctune recommend: {p}\n  {}\n",
                r.command.as_deref().unwrap_or("")
            ));
        }
        None => out.push_str("sysctune recommend: no profile\n"),
    }
    out.push_str("\nWhy\n");
    for reason in &r.reasons {
        out.push_str(&wrap(reason, "  - ", "    ", 96));
    }
    let e = &r.evidence;
    let opt = |v: Option<u64>| v.map_or("unknown".to_string(), |v| grouped(v as u128));
    let ports = if e.listening_ports.is_empty() {
        "none".to_string()
    } else {
        let mut shown: Vec<String> = e.listening_ports.iter().take(12).map(u16::to_string).collect();
        if e.listening_ports.len() > 12 {
            shown.push(format!("and {} more", e.listening_ports.len() - 12));
        }
        shown.join(", ")
    };
    let rows = [
        ("TCP sockets in use (sockstat)", opt(e.tcp_inuse)),
        ("TIME_WAIT (sockstat)", opt(e.tcp_time_wait)),
        ("TCP memory (sockstat, pages)", opt(e.tcp_mem_pages)),
        ("listening ports", ports),
        ("inbound connections", grouped(e.inbound as u128)),
        (
            "outbound connections",
            format!(
                "{} to {} destinations",
                grouped(e.outbound as u128),
                grouped(e.destinations as u128)
            ),
        ),
        (
            "busiest destination",
            e.busiest.as_ref().map_or("none".to_string(), |b| {
                format!(
                    "{}: {} TIME_WAIT, {} open",
                    safe(&b.destination),
                    grouped(b.time_wait as u128),
                    grouped(b.open as u128)
                )
            }),
        ),
    ];
    out.push_str("\nEvidence\n");
    for (k, v) in rows {
        out.push_str(&format!("  {k:<31} {v}\n"));
    }
    out
}

/// `text` in lines of at most `width` columns (words longer than that stand alone), the
/// first starting with `first`, the others with `rest`.
fn wrap(text: &str, first: &str, rest: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}
