//! `sysctune status` as text: the last apply, the drop-in, and for each key its live,
//! drop-in, boot and recommended values with why it drifts. Its JSON is the [`Status`]
//! itself.

use std::fmt::Write;

use super::{Style, safe};
use crate::status::{DropinStatus, KeyStatus, Status};

pub fn text(s: &Status, style: &Style) -> String {
    let mut out = String::new();
    let Some(a) = &s.applied else {
        for n in &s.notes {
            let _ = writeln!(out, "{} {}", style.bold("sysctune status:"), safe(n));
        }
        return out;
    };
    let _ = writeln!(
        out,
        "{} profile {}, applied {}{}",
        style.bold("sysctune status:"),
        safe(&a.profile),
        safe(&a.time),
        a.netns
            .as_ref()
            .map(|n| format!(" in {}", safe(n)))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "  by: {}", safe(&a.command));
    if let Some(d) = &s.dropin {
        let _ = writeln!(out, "  drop-in: {} ({})", safe(&d.path), dropin_state(d));
    }
    keys(&mut out, &s.keys, style);
    for n in &s.notes {
        let _ = writeln!(out, "\nNote: {}", safe(n));
    }
    let _ = writeln!(out, "\n{}", verdict(s));
    out
}

/// Who wrote the drop-in, and whether it is what the profile writes now.
fn dropin_state(d: &DropinStatus) -> String {
    match (d.state, d.current) {
        ("absent", _) => "absent".to_string(),
        ("foreign", _) => "not written by sysctune (edited or replaced)".to_string(),
        (_, Some(true)) => "written by sysctune, as the profile writes it now".to_string(),
        (_, Some(false)) => "written by sysctune, but the profile writes something else now".to_string(),
        _ => "written by sysctune".to_string(),
    }
}

/// KEY, LIVE, DROP-IN, BOOT and RECOMMENDED for each key, drifting keys marked `!` with
/// why below. Values and paths come from the host and its sysctl.d files: escaped before
/// they are measured.
fn keys(out: &mut String, keys: &[KeyStatus], style: &Style) {
    let shown = |v: &Option<String>| v.as_deref().map_or("-".to_string(), |v| safe(v).into_owned());
    let rows: Vec<[String; 5]> = keys
        .iter()
        .map(|k| {
            [
                format!("{}{}", if k.drift.is_empty() { "  " } else { "! " }, safe(&k.key)),
                shown(&k.live),
                shown(&k.dropin),
                k.boot.as_ref().map_or("-".to_string(), |b| {
                    safe(&format!("{} ({})", b.value, b.at())).into_owned()
                }),
                shown(&k.recommended),
            ]
        })
        .collect();
    let head = ["  KEY", "LIVE", "DROP-IN", "BOOT (winner)", "RECOMMENDED"];
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "\n{}", line(head));
    for (r, k) in rows.iter().zip(keys) {
        let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
        for d in &k.drift {
            let _ = writeln!(out, "      {}", style.yellow(&safe(d)));
        }
    }
}

/// In sync, or how many keys drift.
fn verdict(s: &Status) -> String {
    let drifting = s.keys.iter().filter(|k| !k.drift.is_empty()).count();
    if s.in_sync {
        "In sync: live values, boot and the drop-in agree.".to_string()
    } else if drifting > 0 {
        format!(
            "Drift: {drifting} key{} out of sync (marked !). Run the apply above again to converge.",
            if drifting == 1 { "" } else { "s" }
        )
    } else {
        "Drift: see the notes.".to_string()
    }
}
