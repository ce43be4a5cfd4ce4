//! `sysctune apply` as text: what was written, and how to undo it. Its JSON is the
//! [`ApplyReport`] itself.

use std::fmt::Write;

use super::layout::findings;
use super::{Style, safe};
use crate::apply::{ApplyReport, LiveChange};

pub fn text(r: &ApplyReport, style: &Style) -> String {
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
pub(super) fn live_line(out: &mut String, style: &Style, verb: &str, c: &LiveChange, note: &str) {
    let was = format!("(was {}{note})", safe(c.from.as_deref().unwrap_or("absent")));
    let _ = writeln!(
        out,
        "  {verb} {} = {}  {}",
        safe(&c.key),
        style.green(&safe(&c.to)),
        style.dim(&was)
    );
}
