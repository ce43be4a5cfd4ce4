//! Layout shared by the commands' texts: padded columns, tables, severities and the list
//! of findings.

use std::fmt::Write;

use super::{Style, safe, wrap};
use crate::rules::{Finding, Severity};

/// The width of a column: its widest cell, at least `min` (the header).
pub fn column(widths: impl Iterator<Item = usize>, min: usize) -> usize {
    widths.max().unwrap_or(min).max(min)
}

/// `s` padded with spaces to `width` characters (left-aligned).
pub fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n >= width {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}

/// A severity as a fixed-width, coloured label.
pub fn severity(style: &Style, s: Severity) -> String {
    match s {
        Severity::Error => style.red("error  "),
        Severity::Warning => style.yellow("warning"),
        Severity::Info => style.cyan("info   "),
    }
}

/// The findings in the order given, each message wrapped under its own column.
pub fn findings(out: &mut String, style: &Style, list: &[Finding]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "{}", style.bold("Findings"));
    let rule_w = list.iter().map(|f| f.rule.as_str().len()).max().unwrap_or(0);
    let indent = 2 + 7 + 2 + rule_w + 2;
    for f in list {
        // Messages quote values and paths read from the host.
        let lines = wrap(&safe(&f.message), style.width.saturating_sub(indent));
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                let _ = writeln!(
                    out,
                    "  {}  {}  {line}",
                    severity(style, f.severity),
                    pad(f.rule.as_str(), rule_w)
                );
            } else {
                let _ = writeln!(out, "{}{line}", " ".repeat(indent));
            }
        }
    }
    out.push('\n');
}

/// A table of left-aligned columns, the head in bold.
pub fn table(out: &mut String, style: &Style, head: &[&str], cells: &[Vec<String>]) {
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |c: &[String]| {
        let mut s = String::from(" ");
        for (i, cell) in c.iter().enumerate() {
            s.push(' ');
            s.push_str(&pad(cell, widths[i]));
            s.push(' ');
        }
        s.trim_end().to_string()
    };
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    let _ = writeln!(out, "{}", style.bold(&line(&head)));
    for c in cells {
        let _ = writeln!(out, "{}", line(c));
    }
}
