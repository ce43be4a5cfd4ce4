//! `sysctune show`: the host facts, and for every key the live value against the boot
//! value and the file that sets it; then the sysctl.d files in apply order. As text, and
//! as the `sysctune/show/v1` document.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::layout::{column, pad, severity};
use super::{Style, safe, wrap};
use crate::host::{Facts, Sockstat};
use crate::rules::Severity;
use crate::sysctl_d::{self, Assignment, KeyView, Kind, Location, SysctlD};
use crate::units::human_bytes;

pub const SCHEMA: &str = "sysctune/show/v1";

/// With `--profile`: for each key it manages, the value it recommends and the rules that
/// say so.
pub type Recommended = BTreeMap<String, (String, Vec<String>)>;

pub fn text(
    facts: &Facts,
    rows: &[KeyView],
    sd: &SysctlD,
    recommended: &Recommended,
    style: &Style,
) -> String {
    let mut out = String::new();
    host_facts(&mut out, facts, style);
    keys(&mut out, facts, rows, recommended, style);
    files(&mut out, sd, style);
    for w in facts.warnings.iter().chain(&sd.notes) {
        for (i, line) in wrap(&safe(w), style.width.saturating_sub(10)).iter().enumerate() {
            if i == 0 {
                let _ = writeln!(out, "{} {line}", severity(style, Severity::Warning));
            } else {
                let _ = writeln!(out, "{}{line}", " ".repeat(8));
            }
        }
    }
    out
}

/// The title and the host's memory and socket figures.
fn host_facts(out: &mut String, facts: &Facts, style: &Style) {
    let m = &facts.mem;
    let _ = writeln!(
        out,
        "{} {} (kernel {})",
        style.bold("sysctune show:"),
        safe(facts.hostname.as_deref().unwrap_or("this host")),
        safe(&facts.kernel)
    );
    let facts_rows: Vec<(&str, String)> = vec![
        ("MemTotal", human_bytes(m.mem_total as u128)),
        ("SwapTotal", human_bytes(m.swap_total as u128)),
        ("Hugetlb", human_bytes(m.hugetlb as u128)),
        (
            "MemAvailable",
            m.mem_available.map_or("-".into(), |v| human_bytes(v as u128)),
        ),
        ("page size", format!("{} B", facts.page_size)),
        ("CommitLimit", human_bytes(m.commit_limit as u128)),
        ("Committed_AS", human_bytes(m.committed_as as u128)),
    ];
    for (n, v) in facts_rows {
        let _ = writeln!(out, "  {}  {v}", pad(n, 14));
    }
    if let Some(s) = &facts.sockstat {
        let _ = writeln!(
            out,
            "  {}  inuse {} orphan {} tw {} alloc {} mem {} pages ({})",
            pad("TCP sockets", 14),
            s.tcp_inuse,
            s.tcp_orphan,
            s.tcp_tw,
            s.tcp_alloc,
            s.tcp_mem,
            human_bytes(s.tcp_mem as u128 * facts.page_size as u128)
        );
    }
    out.push('\n');
}

/// Where the columns of the key table start and how wide they are.
struct Columns {
    key: usize,
    live: usize,
    /// Where the BOOT column starts.
    boot: usize,
    /// Details go below the row, from the LIVE column on, this wide.
    below_col: usize,
    below: usize,
}

/// The key table: KEY, LIVE, and BOOT (the value systemd-sysctl sets at boot and the
/// file:line that sets it, `=` when it is the live value), with the assignments it
/// shadows and procps' different opinion below.
fn keys(out: &mut String, facts: &Facts, rows: &[KeyView], recommended: &Recommended, style: &Style) {
    // Every string of a view comes from a sysctl.d file or the host: escaped before
    // measuring; the originals only for lookups.
    let shown: Vec<KeyView> = rows.iter().map(safe_view).collect();
    let key = column(shown.iter().map(|r| r.key.chars().count()), 3);
    let live = column(shown.iter().map(|r| live(r).chars().count()), 4);
    let below_col = 2 + key + 2;
    let cols = Columns {
        key,
        live,
        boot: 2 + key + 2 + live + 2,
        below_col,
        below: style.width.saturating_sub(below_col).max(30),
    };
    let _ = writeln!(
        out,
        "  {}  {}  {}",
        style.bold(&pad("KEY", cols.key)),
        style.bold(&pad("LIVE", cols.live)),
        style.bold("BOOT (systemd-sysctl, file:line)")
    );
    for (orig, r) in rows.iter().zip(&shown) {
        key_row(out, &cols, facts, orig, r, recommended, style);
    }
    let drifted = rows.iter().filter(|r| r.drift).count();
    let legend = format!(
        "! = live differs from boot ({drifted} of {} keys); = : boot sets the live value; - : no file sets it; \
         tcp_rmem and tcp_wmem are in bytes",
        rows.len()
    );
    for line in wrap(&legend, style.width.saturating_sub(2)) {
        let _ = writeln!(out, "  {}", style.dim(&line));
    }
    out.push('\n');
}

/// The LIVE cell of a view.
fn live(r: &KeyView) -> String {
    r.live.clone().unwrap_or_else(|| "(absent on this kernel)".into())
}

/// One key: its row, then its unit, the profile's recommendation, and the details below
/// (where the boot value comes from when it does not fit, what it overrides, procps).
/// `orig` is the view as read (for lookups), `r` the same escaped (for printing).
fn key_row(
    out: &mut String,
    cols: &Columns,
    facts: &Facts,
    orig: &KeyView,
    r: &KeyView,
    recommended: &Recommended,
    style: &Style,
) {
    let mark = if r.drift { style.yellow("!") } else { " ".into() };
    let live_cell = match &r.live {
        Some(v) => pad(v, cols.live),
        None => style.dim(&pad(&live(r), cols.live)),
    };
    let (value, from) = boot_cell(r, style);
    let value_len = match &r.boot {
        Some(b) if r.drift => b.value.chars().count(),
        _ => 1,
    };
    let mut below: Vec<String> = Vec::new();
    if from.is_empty() {
        let _ = writeln!(out, "{mark} {}  {live_cell}  {value}", pad(&r.key, cols.key));
    } else if cols.boot + value_len + 2 + from.chars().count() <= style.width {
        let _ = writeln!(
            out,
            "{mark} {}  {live_cell}  {value}  {}",
            pad(&r.key, cols.key),
            style.dim(&from)
        );
    } else {
        let _ = writeln!(out, "{mark} {}  {live_cell}  {value}", pad(&r.key, cols.key));
        below.push(if r.boot.is_some() {
            format!("boot value from {from}")
        } else {
            from
        });
    }
    if let Some(unit) = units(&orig.key, &orig.live, facts) {
        let _ = writeln!(out, "  {}  {}", " ".repeat(cols.key), style.dim(&unit));
    }
    for a in &r.shadowed {
        below.push(format!("overrides {} from {}", a.value, a.at()));
    }
    if let Some(p) = &r.procps_instead {
        below.push(format!(
            "procps sysctl --system would leave {} from {}",
            p.value,
            p.at()
        ));
    }
    let indent = " ".repeat(cols.below_col);
    if let Some(line) = recommendation(orig, recommended, style) {
        let _ = writeln!(out, "{indent}{line}");
    }
    for text in below {
        for line in wrap(&text, cols.below) {
            let _ = writeln!(out, "{indent}{}", style.dim(&line));
        }
    }
}

/// The BOOT cell: the boot value (`=` when it is the live one) and where it comes from
/// (empty when no file sets the key).
fn boot_cell(r: &KeyView, style: &Style) -> (String, String) {
    match (&r.boot, &r.excluded) {
        (Some(b), _) => {
            let v = if r.drift {
                style.yellow(&b.value)
            } else {
                "=".to_string()
            };
            let glob = b.glob.as_ref().map_or(String::new(), |g| format!(" via {g}"));
            (v, format!("{}{glob}", b.at()))
        }
        (None, Some(x)) => (
            style.dim("-"),
            format!("excluded by -{} at {}:{}", r.key, x.file, x.line),
        ),
        (None, None) => (style.dim("-"), String::new()),
    }
}

/// With `--profile`: what it recommends for the key and which rules, green when it
/// differs from the live value.
fn recommendation(orig: &KeyView, recommended: &Recommended, style: &Style) -> Option<String> {
    recommended.get(&orig.key).map(|(value, rules)| {
        let same = orig.live.as_deref() == Some(value.as_str());
        let text = format!(
            "recommended {} ({}){}",
            safe(value),
            rules.join(", "),
            if same { ", as live" } else { "" }
        );
        if same {
            style.dim(&text)
        } else {
            style.green(&text)
        }
    })
}

fn safe_assignment(a: &Assignment) -> Assignment {
    Assignment {
        value: safe(&a.value).into_owned(),
        file: safe(&a.file).into_owned(),
        line: a.line,
        glob: a.glob.as_deref().map(|g| safe(g).into_owned()),
    }
}

fn safe_view(r: &KeyView) -> KeyView {
    KeyView {
        key: safe(&r.key).into_owned(),
        live: r.live.as_deref().map(|v| safe(v).into_owned()),
        boot: r.boot.as_ref().map(safe_assignment),
        shadowed: r.shadowed.iter().map(safe_assignment).collect(),
        drift: r.drift,
        excluded: r.excluded.as_ref().map(|x| Location {
            file: safe(&x.file).into_owned(),
            line: x.line,
        }),
        procps_instead: r.procps_instead.as_ref().map(safe_assignment),
    }
}

/// The files systemd-sysctl applies, in order, and those it skips.
fn files(out: &mut String, sd: &SysctlD, style: &Style) {
    let applied = sd.applied_paths();
    let _ = writeln!(
        out,
        "{}",
        style.bold("sysctl.d files, in the order systemd-sysctl applies them (a later line wins)")
    );
    if applied.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (i, p) in applied.iter().enumerate() {
        let _ = writeln!(out, "  {:>2}. {}", i + 1, safe(p));
    }
    for f in &sd.files {
        let note = match (&f.overridden_by, f.kind) {
            (Some(by), _) => format!("{}  overridden by {by}", f.path),
            (None, Kind::Mask) => format!("{}  masks the name (symlink to /dev/null)", f.path),
            (None, Kind::Dangling) => format!("{}  dangling symlink, skipped", f.path),
            (None, Kind::Other) => format!("{}  not a regular file, skipped", f.path),
            (None, Kind::File) => continue,
        };
        let _ = writeln!(out, "      {}", style.dim(&safe(&note)));
    }
    if sd.sysctl_conf.is_some() {
        let _ = writeln!(
            out,
            "      {}",
            style.dim(&format!(
                "{} is read by procps sysctl --system (last), not by systemd-sysctl",
                sysctl_d::SYSCTL_CONF
            ))
        );
    }
    out.push('\n');
}

/// The unit of a value when it is not obvious: a key counted in pages (tcp_mem), with
/// the bytes each figure is. On kernels 4.10-5.19 with pages above 4 KiB the unit is the
/// 4 KiB quantum, not the page ([`crate::rules::tcp_memory::quantum`]).
fn units(key: &str, value: &Option<String>, facts: &Facts) -> Option<String> {
    let value = value.as_deref()?;
    if crate::keys::info(key)?.unit != "pages" {
        return None;
    }
    let unit = crate::rules::tcp_memory::quantum(&facts.kernel, facts.page_size);
    let parts: Vec<String> = value
        .split(' ')
        .filter_map(|p| p.parse::<u128>().ok())
        .map(|p| human_bytes(p * unit as u128))
        .collect();
    let name = if unit == facts.page_size {
        format!("pages of {unit} B")
    } else {
        format!(
            "units of {unit} B, not {} B pages, on kernel {}",
            facts.page_size, facts.kernel
        )
    };
    Some(format!("{name}: {}", parts.join(" / ")))
}

/// `show --format json`, with `schema` first as in every sysctune document.
#[derive(Serialize)]
pub struct Document<'a> {
    pub schema: &'static str,
    pub host: Host<'a>,
    /// The files systemd-sysctl reads, in the order it applies them (inside the root).
    pub files: Vec<String>,
    pub masked: Vec<&'a str>,
    pub overridden: Vec<Overridden<'a>>,
    /// `/etc/sysctl.conf` when it exists: procps `sysctl --system` also reads it, last.
    pub procps_also_reads: Option<&'static str>,
    pub keys: Vec<Key<'a>>,
    pub warnings: Vec<&'a String>,
}

#[derive(Serialize)]
pub struct Host<'a> {
    pub name: &'a Option<String>,
    pub kernel: &'a str,
    pub mem_total: u64,
    pub swap_total: u64,
    pub hugetlb: u64,
    pub mem_available: Option<u64>,
    pub page_size: u64,
    pub commit_limit: u64,
    pub committed_as: u64,
    pub sockstat: Option<Sockstat>,
}

#[derive(Serialize)]
pub struct Overridden<'a> {
    pub file: &'a str,
    pub by: &'a str,
}

#[derive(Serialize)]
pub struct Key<'a> {
    #[serde(flatten)]
    pub view: &'a KeyView,
    /// With `--profile`: what it recommends (null for a key it does not manage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended: Option<Option<&'a str>>,
}

impl<'a> Document<'a> {
    pub fn new(
        facts: &'a Facts,
        sd: &'a SysctlD,
        views: &'a [KeyView],
        recommended: Option<&'a Recommended>,
    ) -> Self {
        Document {
            schema: SCHEMA,
            host: Host {
                name: &facts.hostname,
                kernel: &facts.kernel,
                mem_total: facts.mem.mem_total,
                swap_total: facts.mem.swap_total,
                hugetlb: facts.mem.hugetlb,
                mem_available: facts.mem.mem_available,
                page_size: facts.page_size,
                commit_limit: facts.mem.commit_limit,
                committed_as: facts.mem.committed_as,
                sockstat: facts.sockstat,
            },
            files: sd.applied_paths(),
            masked: sd
                .files
                .iter()
                .filter(|f| f.winner() && f.kind == sysctl_d::Kind::Mask)
                .map(|f| f.path.as_str())
                .collect(),
            overridden: sd
                .files
                .iter()
                .filter_map(|f| {
                    Some(Overridden {
                        file: &f.path,
                        by: f.overridden_by.as_deref()?,
                    })
                })
                .collect(),
            procps_also_reads: sd.sysctl_conf.as_ref().map(|_| sysctl_d::SYSCTL_CONF),
            keys: views
                .iter()
                .map(|v| Key {
                    view: v,
                    recommended: recommended.map(|r| r.get(&v.key).map(|(value, _)| value.as_str())),
                })
                .collect(),
            warnings: facts.warnings.iter().chain(&sd.notes).collect(),
        }
    }
}
