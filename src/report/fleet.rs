//! `plan --snapshot` with several hosts: a summary line per host as text; with
//! `--format json`, a plan per line (JSON Lines), and for a host that failed, its error.

use std::fmt::Write;

use serde::Serialize;

use super::layout::{column, pad};
use super::{Style, safe};
use crate::plan::Plan;
use crate::rules::Severity;

/// One host of `plan --snapshot` with several hosts.
#[derive(Clone, Debug)]
pub struct Row {
    pub snapshot: std::path::PathBuf,
    pub host: String,
    pub changes: usize,
    pub managed: usize,
    pub errors: usize,
    pub warnings: usize,
    pub dropin_changed: bool,
    pub changed: bool,
}

impl Row {
    pub fn of(snapshot: &std::path::Path, p: &Plan) -> Self {
        let count = |sev: Severity| p.findings.iter().filter(|f| f.severity == sev).count();
        Row {
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

/// One line per host, then how many are pending and how many snapshots failed.
pub fn text(rows: &[Row], total: usize, failed: usize, style: &Style) -> String {
    let mut out = String::new();
    let host_w = column(rows.iter().map(|r| r.host.chars().count()), 4);
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

/// `plan --snapshot` with several hosts, `--format json`: the line of a host whose plan
/// failed, so that output lines match hosts.
#[derive(Serialize)]
pub struct FailedLine {
    pub schema: &'static str,
    pub host: FailedHost,
    pub error: String,
}

#[derive(Serialize)]
pub struct FailedHost {
    pub snapshot: String,
}

/// The JSON line of a host whose snapshot could not be read or planned.
pub fn failed_line(snapshot: &std::path::Path, error: &str) -> String {
    super::json_line(&FailedLine {
        schema: crate::plan::SCHEMA,
        host: FailedHost {
            snapshot: snapshot.display().to_string(),
        },
        error: error.to_string(),
    })
}
