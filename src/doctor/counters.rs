//! `counters`: past incidents, from the kernel's own counters in /proc/net/netstat
//! (`TcpExt:`). They count since boot (TCP's, per network namespace), so any non-zero
//! value is a past incident: an info finding naming it. With `--since FILE` (a previous
//! `doctor --format json`), each counter that moved since then is a warning with its delta
//! and its rate: the incident is recent.
//!
//! | counter | what the kernel counted |
//! |---|---|
//! | `TCPAbortOnMemory` | connections reset for lack of TCP memory or too many orphans (the article's "Out of socket memory") |
//! | `TCPMemoryPressures` | entries into TCP memory pressure (`tcp_mem` pressure) |
//! | `TCPMemoryPressuresChrono` | milliseconds spent in memory pressure |
//! | `ListenOverflows` | connections dropped because a listener's accept queue was full |
//! | `ListenDrops` | SYNs and connections dropped at a listener (overflows included) |
//! | `TCPTimeWaitOverflow` | TIME_WAIT sockets destroyed at `tcp_max_tw_buckets` |
//! | `TCPAbortFailed` | resets the kernel could not send |
//!
//! A counter lower than in the `--since` document means the host rebooted (or the
//! document is another host's): it is judged since boot.

use crate::rules::Code;
use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::netstat::Counters;
use crate::rules::{Finding, Severity};
use crate::units::grouped;

/// One watched counter of `TcpExt:`.
pub struct Counter {
    pub name: &'static str,
    /// Unit of the value: `events` or `milliseconds`.
    pub unit: &'static str,
    pub meaning: &'static str,
    pub fix: &'static str,
}

pub const WATCHED: &[Counter] = &[
    Counter {
        name: "TCPAbortOnMemory",
        unit: "events",
        meaning: "connections reset because TCP memory was above tcp_mem high or orphans too many (the kernel \
                  logs \"out of memory -- consider tuning tcp_mem\" or \"too many orphaned sockets\"; older \
                  kernels \"Out of socket memory\")",
        fix: "size tcp_mem and the buffers (sysctune plan --profile reverse-proxy)",
    },
    Counter {
        name: "TCPMemoryPressures",
        unit: "events",
        meaning: "times TCP memory went above tcp_mem pressure (buffers are moderated there)",
        fix: "size tcp_mem so the load sits below pressure (sysctune plan)",
    },
    Counter {
        name: "TCPMemoryPressuresChrono",
        unit: "milliseconds",
        meaning: "milliseconds spent in TCP memory pressure",
        fix: "size tcp_mem so the load sits below pressure (sysctune plan)",
    },
    Counter {
        name: "ListenOverflows",
        unit: "events",
        meaning: "connections dropped because a listener's accept queue was full",
        fix: "raise the listen() backlog and net.core.somaxconn, or accept faster",
    },
    Counter {
        name: "ListenDrops",
        unit: "events",
        meaning: "connection requests dropped at a listener (the overflows included)",
        fix: "raise the listen() backlog and net.core.somaxconn, or accept faster",
    },
    Counter {
        name: "TCPTimeWaitOverflow",
        unit: "events",
        meaning: "TIME_WAIT sockets destroyed at once at net.ipv4.tcp_max_tw_buckets",
        fix: "raise net.ipv4.tcp_max_tw_buckets (sysctune plan), or reuse connections",
    },
    Counter {
        name: "TCPAbortFailed",
        unit: "events",
        meaning: "resets the kernel could not send (no memory for the segment)",
        fix: "find what exhausts memory (see tcp-memory and oom)",
    },
];

/// The watched counters present in `netstat`'s `TcpExt:` section (negative values, which
/// these counters never have, are left out).
pub fn pick(netstat: &Counters) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let Some(ext) = netstat.get("TcpExt") {
        for c in WATCHED {
            if let Some(v) = ext.get(c.name).and_then(|v| u64::try_from(*v).ok()) {
                out.insert(c.name.to_string(), v);
            }
        }
    }
    out
}

/// The previous document of `--since`: when it was made and its counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Since {
    /// `time` of the previous document, seconds since the epoch.
    pub time: u64,
    /// Seconds between it and now.
    pub seconds: u64,
    #[serde(skip)]
    pub counters: BTreeMap<String, u64>,
}

/// At most this much of a `--since` document.
const SINCE_MAX: u64 = 256 << 20;

/// Read and check a previous `doctor --format json` (untrusted: any file a user names).
pub fn read_since(path: &Path, now: u64) -> Result<Since> {
    use std::io::Read;
    let shown = path.display();
    let bad = |what: String| Error::input(format!("--since {shown}: {what}"));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, &e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, &e))?;
    if !meta.is_file() {
        return Err(bad(
            "not a regular file; expected the output of `sysctune doctor --format json`".into(),
        ));
    }
    let mut bytes = Vec::new();
    file.take(SINCE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, &e))?;
    if bytes.len() as u64 > SINCE_MAX {
        return Err(bad(format!(
            "larger than {} MiB; not a doctor document",
            SINCE_MAX >> 20
        )));
    }
    parse_since(&bytes, now).map_err(bad)
}

/// The checks of [`read_since`] on the document's bytes.
pub fn parse_since(bytes: &[u8], now: u64) -> std::result::Result<Since, String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "line {} column {}: not JSON ({e}); expected the output of `sysctune doctor --format json`",
            e.line(),
            e.column()
        )
    })?;
    let schema = doc.get("schema").and_then(|s| s.as_str());
    if schema != Some(super::SCHEMA) {
        return Err(format!(
            "\"schema\" is {}, expected {:?} (the output of `sysctune doctor --format json`)",
            schema.map_or("missing".to_string(), |s| format!("{:?}", crate::escape::safe(s))),
            super::SCHEMA
        ));
    }
    let time = doc.get("time").and_then(|t| t.as_u64()).ok_or(
        "\"time\" is missing or not whole seconds since the epoch (a document of an older sysctune?)",
    )?;
    if time > now {
        return Err(format!(
            "\"time\" {time} is after now ({now}): not a previous document of this host"
        ));
    }
    let counters = doc
        .pointer("/facts/counters")
        .and_then(|c| c.as_object())
        .ok_or("\"facts.counters\" is missing or not an object")?;
    let mut out = BTreeMap::new();
    for (name, value) in counters {
        let v = value.as_u64().ok_or_else(|| {
            format!(
                "\"facts.counters.{}\" is not a whole number ≥ 0",
                crate::escape::safe(name)
            )
        })?;
        out.insert(name.clone(), v);
    }
    Ok(Since {
        time,
        seconds: now - time,
        counters: out,
    })
}

/// `d` events in `s` seconds, two decimals: `0.25/s`.
fn rate(d: u64, s: u64) -> String {
    if s == 0 {
        return "at once".into();
    }
    let hundredths = d as u128 * 100 / s as u128;
    format!("{}.{:02}/s", hundredths / 100, hundredths % 100)
}

/// Findings of the counters: one per counter that counted something (since boot, or since
/// the `--since` document), or one info saying none did.
pub fn check_counters(now: &BTreeMap<String, u64>, since: Option<&Since>) -> Vec<Finding> {
    let id = Code::Counters;
    let mut out = Vec::new();
    if now.is_empty() {
        return vec![Finding::new(
            Severity::Info,
            id,
            "/proc/net/netstat has none of the watched TcpExt counters: past incidents not checked.",
        )];
    }
    for c in WATCHED {
        let Some(&value) = now.get(c.name) else { continue };
        let before = since.and_then(|s| s.counters.get(c.name).copied());
        let finding = match (since, before) {
            (Some(s), Some(b)) if value >= b => {
                let d = value - b;
                if d == 0 {
                    continue;
                }
                Finding::new(
                    Severity::Warning,
                    id,
                    format!(
                        "{} went up by {} in the last {} s ({}; {} since boot): {}. Fix: {}.",
                        c.name,
                        grouped(d as u128),
                        grouped(s.seconds as u128),
                        rate(d, s.seconds),
                        grouped(value as u128),
                        c.meaning,
                        c.fix
                    ),
                )
                .measured(None, d, 0, c.unit)
            }
            _ if value == 0 => continue,
            (Some(_), Some(b)) => Finding::new(
                Severity::Warning,
                id,
                format!(
                    "{} {} since boot, lower than the {} of the --since document (a reboot since then): {}. \
                     Fix: {}.",
                    c.name,
                    grouped(value as u128),
                    grouped(b as u128),
                    c.meaning,
                    c.fix
                ),
            )
            .measured(None, value, 0, c.unit),
            _ => Finding::new(
                Severity::Info,
                id,
                format!(
                    "{} {} since boot: {}. A past incident; `sysctune doctor --since FILE` shows whether it \
                     is still counting. Fix: {}.",
                    c.name,
                    grouped(value as u128),
                    c.meaning,
                    c.fix
                ),
            )
            .measured(None, value, 0, c.unit),
        };
        out.push(finding);
    }
    if out.is_empty() {
        let names: Vec<&str> = WATCHED.iter().map(|c| c.name).collect();
        out.push(Finding::new(
            Severity::Info,
            id,
            match since {
                Some(s) => format!(
                    "none of the kernel's incident counters moved in the last {} s ({}).",
                    grouped(s.seconds as u128),
                    names.join(", ")
                ),
                None => format!(
                    "the kernel counted no incident since boot ({}).",
                    names.join(", ")
                ),
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn picks_the_watched_counters() {
        let n = crate::host::netstat::parse(
            "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPAbortOnMemory\nTcpExt: 5 3 4 0\n",
        )
        .unwrap();
        assert_eq!(
            pick(&n),
            counters(&[
                ("ListenOverflows", 3),
                ("ListenDrops", 4),
                ("TCPAbortOnMemory", 0)
            ])
        );
    }

    #[test]
    fn since_boot_is_info_and_since_a_document_is_a_warning_with_its_rate() {
        let now = counters(&[
            ("ListenOverflows", 30),
            ("TCPAbortOnMemory", 0),
            ("ListenDrops", 30),
        ]);
        let f = check_counters(&now, None);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.severity == Severity::Info));
        assert!(
            f[0].message.starts_with("ListenOverflows 30 since boot"),
            "{}",
            f[0].message
        );
        let since = Since {
            time: 1000,
            seconds: 120,
            counters: counters(&[("ListenOverflows", 0), ("ListenDrops", 30)]),
        };
        let f = check_counters(&now, Some(&since));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message
                .starts_with("ListenOverflows went up by 30 in the last 120 s (0.25/s;"),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].value, Some(30));
        // a reboot: lower than before
        let since = Since {
            time: 1000,
            seconds: 120,
            counters: counters(&[("ListenOverflows", 100)]),
        };
        let f = check_counters(&now, Some(&since));
        assert!(f[0].message.contains("a reboot"), "{}", f[0].message);
        let quiet = check_counters(&counters(&[("ListenOverflows", 0)]), None);
        assert!(
            quiet[0].message.contains("no incident since boot"),
            "{}",
            quiet[0].message
        );
        assert!(
            check_counters(&BTreeMap::new(), None)[0]
                .message
                .contains("not checked")
        );
    }

    #[test]
    fn since_documents_are_checked() {
        let ok = br#"{"schema":"sysctune/doctor/v1","time":100,"facts":{"counters":{"ListenDrops":3}}}"#;
        let s = parse_since(ok, 160).unwrap();
        assert_eq!((s.time, s.seconds, s.counters["ListenDrops"]), (100, 60, 3));
        for (doc, why) in [
            (&b"{"[..], "line 1 column 1: not JSON"),
            (
                br#"{"schema":"sysctune/plan/v1"}"#,
                "\"schema\" is \"sysctune/plan/v1\", expected",
            ),
            (br#"{"schema":"\u001b[2J"}"#, "\"schema\" is \"\\\\x1b[2J\""),
            (br#"{"schema":"sysctune/doctor/v1"}"#, "\"time\" is missing"),
            (
                br#"{"schema":"sysctune/doctor/v1","time":-1}"#,
                "\"time\" is missing",
            ),
            (br#"{"schema":"sysctune/doctor/v1","time":999}"#, "after now"),
            (
                br#"{"schema":"sysctune/doctor/v1","time":1,"facts":{}}"#,
                "facts.counters",
            ),
            (
                br#"{"schema":"sysctune/doctor/v1","time":1,"facts":{"counters":{"A":-1}}}"#,
                "facts.counters.A\" is not a whole number",
            ),
        ] {
            let e = parse_since(doc, 160).unwrap_err();
            assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(doc));
            assert!(!e.contains('\u{1b}'), "{e}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate(30, 120), "0.25/s");
        assert_eq!(rate(1, 3), "0.33/s");
        assert_eq!(rate(5, 0), "at once");
    }
}
