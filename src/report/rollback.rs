//! `sysctune rollback` as text: the live values and the drop-in restored (or, with
//! `--dry-run`, what would be). Its JSON is the [`RollbackReport`] itself.

use std::fmt::Write;

use super::apply::live_line;
use super::{Style, safe};
use crate::apply::RollbackReport;

pub fn text(r: &RollbackReport, style: &Style) -> String {
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
