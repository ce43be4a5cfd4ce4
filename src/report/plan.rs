//! `sysctune plan` as text: one screen that says what is wrong, what to change, why, and
//! what the host will hold afterwards. Its JSON is the [`Plan`] itself.

use std::fmt::Write;

use super::layout::{column, findings, pad};
use super::{Style, safe, wrap};
use crate::plan::{Demand, Figure, Plan};
use crate::rules::Severity;
use crate::rules::Unit;
use crate::rules::port_range::Millis;
use crate::units::{grouped, human_bytes};

/// The plan in the order it is read: host, keys, capacity, findings, (with `-v`) the
/// arithmetic, the drop-in and what to do next.
pub fn text(plan: &Plan, style: &Style, verbose: bool) -> String {
    let mut out = String::new();
    title(&mut out, plan, style);
    settings(&mut out, plan, style);
    capacity(&mut out, plan, style);
    findings(&mut out, style, &plan.findings);
    if verbose {
        arithmetic(&mut out, plan, style);
    }
    dropin(&mut out, plan, style);
    let _ = writeln!(out, "{}", style.bold(&summary(plan)));
    trim_line_ends(&out)
}

/// `sysctune plan: profile P on HOST (kernel K)` and the host's memory in one line.
fn title(out: &mut String, plan: &Plan, style: &Style) {
    let host = safe(plan.host.name.as_deref().unwrap_or("this host"));
    let profile = safe(&plan.profile);
    let _ = writeln!(
        out,
        "{} {} {} (kernel {})",
        style.bold("sysctune plan:"),
        style.bold(&format!("profile {profile}")),
        format_args!("on {host}"),
        safe(&plan.host.kernel)
    );
    let _ = writeln!(out, "{}\n", style.dim(&host_line(plan)));
}

fn host_line(plan: &Plan) -> String {
    let h = &plan.host;
    // A figure the profile's [host] gave is not this host's: say so where it is printed.
    let given = |field: &str| {
        if h.from_profile.contains(&field) {
            " (from the profile)"
        } else {
            ""
        }
    };
    let swap = if h.swap_total == 0 {
        format!("no swap{}", given("swap"))
    } else {
        format!("{} swap{}", human_bytes(h.swap_total as u128), given("swap"))
    };
    let huge = if h.hugetlb > 0 {
        format!(", {} hugetlb", human_bytes(h.hugetlb as u128))
    } else {
        String::new()
    };
    let mut line = format!(
        "{} RAM{}, {swap}{huge}, page {} B{}, CommitLimit {}, Committed_AS {}",
        human_bytes(h.mem_total as u128),
        given("ram"),
        h.page_size,
        given("page_size"),
        human_bytes(h.commit_limit as u128),
        human_bytes(h.committed_as as u128)
    );
    if !h.from_profile.is_empty() {
        line.push_str("\nThis plan is for the host the profile's [host] describes: apply refuses it here.");
    }
    line
}

/// One managed key as printed, its strings escaped (keys and values can come from pins and
/// the host) before they are measured.
struct Row {
    change: bool,
    key: String,
    cur: String,
    rec: String,
    why: String,
}

/// The table of keys: KEY, CURRENT, RECOMMENDED and WHY (below the row when the terminal
/// leaves it less than 30 columns), changes marked `*`.
fn settings(out: &mut String, plan: &Plan, style: &Style) {
    if plan.settings.is_empty() {
        let _ = writeln!(out, "The profile manages no keys on this host.\n");
        return;
    }
    let table: Vec<Row> = plan
        .settings
        .iter()
        .map(|s| Row {
            change: s.change,
            key: safe(&s.key).into_owned(),
            cur: safe(s.current.as_deref().unwrap_or("(absent)")).into_owned(),
            rec: safe(&s.recommended).into_owned(),
            why: safe(&s.reason).into_owned(),
        })
        .collect();
    let key_w = column(table.iter().map(|s| s.key.chars().count()), 3);
    let cur_w = column(table.iter().map(|s| s.cur.chars().count()), 7);
    let rec_w = column(table.iter().map(|s| s.rec.chars().count()), 11);
    let fixed = 2 + key_w + 2 + cur_w + 2 + rec_w + 2;
    let why_w = style.width.saturating_sub(fixed);
    let why_below = why_w < 30;
    let _ = writeln!(
        out,
        "  {}  {}  {}  {}",
        style.bold(&pad("KEY", key_w)),
        style.bold(&pad("CURRENT", cur_w)),
        style.bold(&pad("RECOMMENDED", rec_w)),
        if why_below {
            String::new()
        } else {
            style.bold("WHY")
        }
    );
    for s in &table {
        let mark = if s.change { style.yellow("*") } else { " ".into() };
        let rec = if s.change {
            style.green(&pad(&s.rec, rec_w))
        } else {
            pad(&s.rec, rec_w)
        };
        let why = &s.why;
        if why_below {
            let _ = writeln!(
                out,
                "{mark} {}  {}  {rec}",
                pad(&s.key, key_w),
                pad(&s.cur, cur_w)
            );
            for line in wrap(why, style.width.saturating_sub(6)) {
                let _ = writeln!(out, "      {}", style.dim(&line));
            }
        } else {
            let lines = wrap(why, why_w);
            let _ = writeln!(
                out,
                "{mark} {}  {}  {rec}  {}",
                pad(&s.key, key_w),
                pad(&s.cur, cur_w),
                lines[0]
            );
            for line in &lines[1..] {
                let _ = writeln!(out, "{}{line}", " ".repeat(fixed));
            }
        }
    }
    let changes = plan.settings.iter().filter(|s| s.change).count();
    let _ = writeln!(
        out,
        "{}\n",
        style.dim(&format!(
            "  * = changes ({changes} of {} managed keys)",
            plan.settings.len()
        ))
    );
}

/// Capacity: each rule's figures, in rule order, current and after; nothing when no rule
/// has a figure.
fn capacity(out: &mut String, plan: &Plan, style: &Style) {
    let rows = capacity_rows(plan);
    if rows.is_empty() {
        return;
    }
    let name_w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let now_w = rows.iter().map(|(_, (a, _))| a.len()).max().unwrap_or(0).max(7);
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "{}  {}    {}",
            pad("Capacity", name_w + 2),
            pad("current", now_w),
            "after"
        ))
    );
    if let Some(line) = demand_line(&plan.demand) {
        let _ = writeln!(out, "{}", style.dim(&line));
    }
    for (name, (now, after)) in rows {
        let arrow = if now == after {
            "  ".to_string()
        } else {
            "→ ".to_string()
        };
        let after = if now == after { after } else { style.green(&after) };
        let _ = writeln!(
            out,
            "  {}  {}  {arrow}{after}",
            pad(&name, name_w),
            pad(&now, now_w)
        );
    }
    out.push('\n');
}

/// The capacity rows that have a figure: the label (a sub-measure indented) and the
/// current and after values in the measure's unit.
fn capacity_rows(plan: &Plan) -> Vec<(String, (String, String))> {
    let shown = |unit: Unit, v: u64| match unit {
        Unit::Count => grouped(v as u128),
        Unit::Bytes => human_bytes(v as u128),
        Unit::Millis => Millis(v).to_string(),
    };
    plan.capacity
        .rows
        .iter()
        .filter_map(|r| {
            let label = format!("{}{}", if r.measure.sub { "  " } else { "" }, r.measure.label);
            figure(&r.figure, &|v| shown(r.measure.unit, v)).map(|f| (label, f))
        })
        .collect()
}

fn figure(f: &Figure, fmt: &dyn Fn(u64) -> String) -> Option<(String, String)> {
    let show = |v: Option<u64>| v.map_or("-".to_string(), fmt);
    if f.current.is_none() && f.recommended.is_none() {
        return None;
    }
    Some((show(f.current), show(f.recommended)))
}

/// What the profile asks for (connections, new connections per second), when it asks.
fn demand_line(d: &Demand) -> Option<String> {
    let mut asks = Vec::new();
    if d.connections > 0 {
        asks.push(format!("{} connections", grouped(d.connections as u128)));
    }
    if d.new_per_second > 0 {
        asks.push(if d.destinations > 1 {
            format!(
                "{} new connections/s to each of {} destinations",
                grouped(d.new_per_second as u128),
                grouped(d.destinations as u128)
            )
        } else {
            format!(
                "{} new connections/s per destination",
                grouped(d.new_per_second as u128)
            )
        });
    }
    if asks.is_empty() {
        return None;
    }
    Some(format!(
        "  the profile asks for {}, with headroom {}",
        asks.join(" and "),
        d.headroom
    ))
}

/// `-v`: each rule's arithmetic, step by step.
fn arithmetic(out: &mut String, plan: &Plan, style: &Style) {
    let _ = writeln!(out, "{}", style.bold("Arithmetic"));
    for r in &plan.arithmetic {
        let _ = writeln!(out, "  {}", style.bold(&r.rule));
        for step in &r.steps {
            for (i, line) in wrap(&safe(step), style.width.saturating_sub(8))
                .iter()
                .enumerate()
            {
                let _ = writeln!(out, "    {}{line}", if i == 0 { "" } else { "  " });
            }
        }
    }
    out.push('\n');
}

/// The drop-in: up to date, or the diff that would change it.
fn dropin(out: &mut String, plan: &Plan, style: &Style) {
    let d = &plan.dropin;
    let dropin_path = safe(&d.path);
    if d.changed {
        let _ = writeln!(
            out,
            "{} {} {}",
            style.bold("Drop-in"),
            dropin_path,
            style.yellow("(would change)")
        );
        // The diff quotes the drop-in on disk, whatever it holds.
        for line in d.diff.lines() {
            let _ = writeln!(out, "{}", diff_line(style, &safe(line)));
        }
    } else {
        let _ = writeln!(
            out,
            "{} {} {}",
            style.bold("Drop-in"),
            dropin_path,
            style.dim("(up to date)")
        );
    }
    out.push('\n');
}

/// A line of a unified diff, coloured by what it is.
fn diff_line(style: &Style, line: &str) -> String {
    if line.starts_with("+++") || line.starts_with("---") {
        style.bold(line)
    } else if line.starts_with('+') {
        style.green(line)
    } else if line.starts_with('-') {
        style.red(line)
    } else if line.starts_with("@@") {
        style.cyan(line)
    } else {
        line.to_string()
    }
}

/// What to do next: the apply command (and the error findings to read first), or nothing.
fn summary(plan: &Plan) -> String {
    if !plan.changed {
        return "Nothing to change: the live values and the drop-in match the plan.".to_string();
    }
    let errors = plan
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    format!(
        "Changes pending. Apply with: {}{}",
        safe(&plan.apply_command),
        if errors > 0 {
            format!(
                "\nRead the {errors} error finding{} first: apply refuses this plan without --force.",
                if errors == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        }
    )
}

/// Padding leaves spaces at the end of some lines; terminals and diffs do not need them.
fn trim_line_ends(text: &str) -> String {
    let mut out: String = text.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
    out.push('\n');
    out
}
