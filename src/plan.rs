//! Run the rules, resolve pins and conflicts, compute capacity, render the drop-in →
//! [`Plan`]. Pure: it works on [`Facts`] and the current drop-in's text, never `/proc`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dropin;
use crate::error::{Error, Result};
use crate::host::Facts;
use crate::keys::{self, Kubernetes, Scope};
use crate::profile::Profile;
use crate::rules::{self, Code, Context, Finding, Row, Severity, Values, overcommit, tcp_memory};
use crate::sysctl_d::{self, Assignment, Kind, Origin, SysctlD};

pub const SCHEMA: &str = "sysctune/plan/v1";
/// The rule id of `[sysctl]` pins in `settings[].rules` and findings.
pub const PIN: &str = "pin";
/// The rule id of keys that leave management: an earlier apply set them live.
pub const RELEASED: &str = "released";
pub const DEFAULT_DROPIN: &str = "/etc/sysctl.d/90-sysctune.conf";

/// What to plan.
pub struct Request<'a> {
    pub facts: &'a Facts,
    pub profile: &'a Profile,
    /// `--only` globs on dotted keys; empty = every key.
    pub only: &'a [String],
    /// The drop-in's path as seen inside the root (`/etc/sysctl.d/90-sysctune.conf`).
    pub dropin_path: &'a str,
    /// Its current content; `None` when absent.
    pub dropin_current: Option<&'a str>,
    /// The sysctl.d files of the host (the drop-in among them, as it is now).
    pub sysctl_d: &'a SysctlD,
    /// Keys an earlier apply wrote live → the value each had before sysctune first wrote
    /// it (the state directory's `applied.conf`; empty for snapshots).
    pub set_before: &'a BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub schema: &'static str,
    pub profile: String,
    pub host: HostSummary,
    pub settings: Vec<Setting>,
    pub capacity: Capacity,
    pub findings: Vec<Finding>,
    pub dropin: Dropin,
    pub changed: bool,
    /// Each rule's arithmetic, step by step (what `plan -v` prints).
    pub arithmetic: Vec<RuleSteps>,
    /// What the profile asks of the host, to read the capacity against.
    pub demand: Demand,
    /// The command that applies this plan, as the plan was asked for (shell-quoted).
    pub apply_command: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Demand {
    /// connections.concurrent + outbound.concurrent.
    pub connections: u64,
    /// outbound.new_per_second, to each destination address:port.
    pub new_per_second: u64,
    /// outbound.destinations.
    pub destinations: u64,
    /// The safety factor on every demand, as a decimal string (`"1.2"`).
    pub headroom: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostSummary {
    pub name: Option<String>,
    pub mem_total: u64,
    pub swap_total: u64,
    pub hugetlb: u64,
    pub page_size: u64,
    pub commit_limit: u64,
    pub committed_as: u64,
    pub kernel: String,
    /// The figures the profile's `[host]` gave instead of the host's own, where they
    /// differ (`ram`, `swap`, `page_size`): the plan is for another host.
    pub from_profile: Vec<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Setting {
    pub key: String,
    pub current: Option<String>,
    pub recommended: String,
    pub change: bool,
    pub rules: Vec<String>,
    pub reason: String,
    pub scope: Scope,
    pub kubernetes: Kubernetes,
    /// Whether the drop-in holds it: false for a key the kernel sizes from RAM at boot
    /// that the plan keeps unchanged ("kept: the kernel sizes it at boot").
    pub pinned: bool,
    /// What the sysctl.d files set at boot now, and where (before this plan's drop-in).
    pub boot: Option<Assignment>,
    /// For a vector key (`tcp_mem`, `tcp_rmem`, the port range): its values as numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_words: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended_words: Option<Vec<u64>>,
}

/// A vector value as numbers (`"4096 87380 6291456"` → [4096, 87380, 6291456]); `None`
/// for a single number or anything else.
fn words(value: &str) -> Option<Vec<u64>> {
    let w: Option<Vec<u64>> = value.split(' ').map(|f| f.parse().ok()).collect();
    w.filter(|w| w.len() > 1)
}

pub use crate::rules::{Capacity, Figure};

#[derive(Clone, Debug, Serialize)]
pub struct Dropin {
    pub path: String,
    pub changed: bool,
    pub content: String,
    pub diff: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleSteps {
    pub rule: String,
    pub steps: Vec<String>,
}

/// The facts as the rules see them: the profile's `[host]` overrides applied, and
/// CommitLimit recomputed with the kernel's formula when RAM, swap or page size changed.
pub fn effective_facts(facts: &Facts, profile: &Profile) -> Facts {
    let mut f = facts.clone();
    let h = &profile.host;
    if let Some(ram) = h.ram {
        f.mem.mem_total = ram;
    }
    if let Some(swap) = h.swap {
        f.mem.swap_total = swap;
    }
    if let Some(page) = h.page_size {
        f.page_size = page;
    }
    if h.ram.is_some() || h.swap.is_some() || h.page_size.is_some() {
        f.mem.commit_limit = overcommit::commit_limit_with(&f, &|k| f.value(k).map(str::to_string));
    }
    f
}

/// Checks that need both the profile and the host.
fn validate_against_host(facts: &Facts, profile: &Profile) -> Result<()> {
    if let Some(e) = tcp_memory::budget_error(facts, profile) {
        return Err(Error::input(e));
    }
    if let Some(s) = profile.memory.swappiness {
        let max = keys::swappiness_max(&facts.kernel);
        if s > max {
            return Err(Error::input(format!(
                "memory.swappiness = {s} is out of range for kernel {}; valid: 0..={max} (200 needs kernel 5.8 or later)",
                facts.kernel
            )));
        }
    }
    Ok(())
}

fn compile_globs(only: &[String]) -> Result<Vec<glob::Pattern>> {
    only.iter()
        .map(|g| {
            glob::Pattern::new(g).map_err(|e| {
                Error::input(format!(
                    "--only {g:?}: not a valid glob ({}); e.g. 'net.ipv4.*'",
                    e.msg
                ))
            })
        })
        .collect()
}

fn matches(globs: &[glob::Pattern], key: &str) -> bool {
    globs.is_empty() || globs.iter().any(|g| g.matches(key))
}

struct Managed {
    value: String,
    rules: Vec<String>,
    reason: String,
}

/// What the rules and pins decided, before `--only` narrows it: each finding with the rule
/// that made it (`None`: pins, the host, the profile), kept with `--only` when the rule
/// manages a key inside the globs.
struct Draft {
    managed: BTreeMap<String, Managed>,
    findings: Vec<(Finding, Option<&'static dyn rules::Rule>)>,
    arithmetic: Vec<RuleSteps>,
}

impl Draft {
    fn note(&mut self, severity: Severity, rule: Code, message: String) {
        self.findings.push((Finding::new(severity, rule, message), None));
    }
}

pub fn plan(req: &Request) -> Result<Plan> {
    let facts = effective_facts(req.facts, req.profile);
    // "observed", "fit" and ceilings are decided here, from the host, once.
    let (resolved, notes) = crate::rules::demand::resolve(req.profile, &facts)?;
    let profile = &resolved;
    validate_against_host(&facts, profile)?;
    let globs = compile_globs(req.only)?;

    let mut draft = Draft {
        managed: BTreeMap::new(),
        findings: Vec::new(),
        arithmetic: Vec::new(),
    };
    for w in &facts.warnings {
        draft.note(Severity::Warning, Code::Host, w.clone());
    }
    for n in notes {
        draft.note(Severity::Info, Code::Profile, n);
    }
    let mut ctx = Context {
        facts: &facts,
        profile,
        shrink: None,
    };
    evaluate(&mut ctx, &mut draft)?;
    pin(&facts, profile, &mut draft)?;
    one_of_each_reset(profile, &mut draft)?;
    let (chosen, mut findings) = only(draft.managed, draft.findings, &globs);
    let final_value = |key: &str| -> Option<String> {
        chosen
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, m)| m.value.clone())
            .or_else(|| facts.value(key).map(str::to_string))
    };
    check_floors(&final_value)?;

    let mut settings = settings(req, &chosen);
    let namespaced: Vec<&str> = settings
        .iter()
        .filter(|s| s.change && s.scope == Scope::Netns)
        .map(|s| s.key.as_str())
        .collect();
    if !namespaced.is_empty() {
        findings.push(Finding::new(
            Severity::Info,
            Code::Scope,
            scope_message(&namespaced),
        ));
    }

    // Capacity, from the current values and from the recommended ones. A key that another
    // managed key resets when written (keys::RESETS) reads 0 afterwards.
    let managed_key = |k: &str| chosen.iter().any(|(c, _)| c == k);
    let recommended = |k: &str| -> Option<String> {
        let reset = keys::RESETS.iter().any(|(a, b)| *b == k && managed_key(a));
        if reset { Some("0".into()) } else { final_value(k) }
    };
    let capacity = capacity(&ctx, &|k| facts.value(k).map(str::to_string), &recommended);
    for rule in rules::RULES {
        findings.extend(rule.review(&ctx, &capacity));
    }

    let content = dropin_content(req, profile, &globs, &chosen, &mut settings);
    let old = req.dropin_current.unwrap_or("");
    let dropin_changed = req.dropin_current != Some(content.as_str());
    let diff = dropin::diff(req.dropin_path, old, &content);

    // Boot: what the sysctl.d files make of the managed keys, now and once the drop-in
    // holds `content`.
    let managed_keys: Vec<String> = settings.iter().map(|s| s.key.clone()).collect();
    let boot_now = req.sysctl_d.boot(&managed_keys);
    for s in &mut settings {
        s.boot = boot_now.get(&s.key).and_then(|o| o.boot.clone());
    }
    findings.extend(boot_findings(req, &settings, &boot_now, &content));
    settings.extend(released(req, &globs, &settings, &content));
    for s in &mut settings {
        s.current_words = s.current.as_deref().and_then(words);
        s.recommended_words = words(&s.recommended);
    }

    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let changed = dropin_changed || settings.iter().any(|s| s.change);
    Ok(Plan {
        schema: SCHEMA,
        profile: profile.name.clone(),
        host: HostSummary::of(&facts, req.facts, profile),
        settings,
        capacity,
        findings,
        dropin: Dropin {
            path: req.dropin_path.to_string(),
            changed: dropin_changed,
            content,
            diff,
        },
        changed,
        arithmetic: draft.arithmetic,
        demand: Demand {
            connections: u64::try_from(profile.conns()).unwrap_or(u64::MAX),
            new_per_second: profile.outbound.new_per_second,
            destinations: profile.outbound.destinations,
            headroom: profile.headroom.to_string(),
        },
        apply_command: format!(
            "sysctune apply --profile {}",
            crate::shell::shell_quote(&profile.name)
        ),
    })
}

impl HostSummary {
    /// The host as planned (`facts`, the profile's `[host]` applied), and which of its
    /// figures came from the profile rather than from the host as read (`real`).
    fn of(facts: &Facts, real: &Facts, profile: &Profile) -> Self {
        HostSummary {
            name: facts.hostname.clone(),
            mem_total: facts.mem.mem_total,
            swap_total: facts.mem.swap_total,
            hugetlb: facts.mem.hugetlb,
            page_size: facts.page_size,
            commit_limit: facts.mem.commit_limit,
            committed_as: facts.mem.committed_as,
            kernel: facts.kernel.clone(),
            from_profile: [
                ("ram", profile.host.ram, real.mem.mem_total),
                ("swap", profile.host.swap, real.mem.swap_total),
                ("page_size", profile.host.page_size, real.page_size),
            ]
            .into_iter()
            .filter_map(|(f, given, real)| given.filter(|g| *g != real).map(|_| f))
            .collect(),
        }
    }
}

/// The rules, in order: each value checked against what the kernel accepts.
fn evaluate(ctx: &mut Context, draft: &mut Draft) -> Result<()> {
    for rule in rules::RULES {
        let outcome = rule.evaluate(ctx);
        if outcome.shrink.is_some() {
            ctx.shrink = outcome.shrink;
        }
        for rec in outcome.settings {
            let value = keys::validate(&rec.key, &rec.value, &ctx.facts.kernel).map_err(|e| {
                Error::input(format!(
                    "internal error: rule {} recommended a value the kernel would refuse: {e}",
                    rule.id()
                ))
            })?;
            draft.managed.insert(
                rec.key,
                Managed {
                    value,
                    rules: vec![rule.id().to_string()],
                    reason: rec.reason,
                },
            );
        }
        draft
            .findings
            .extend(outcome.findings.into_iter().map(|f| (f, Some(*rule))));
        if !outcome.steps.is_empty() {
            draft.arithmetic.push(RuleSteps {
                rule: rule.id().to_string(),
                steps: outcome.steps,
            });
        }
    }
    Ok(())
}

/// Pins beat rules: each `[sysctl]` value replaces the rule's, with a warning when they
/// differ or when the key does not exist on this kernel.
fn pin(facts: &Facts, profile: &Profile, draft: &mut Draft) -> Result<()> {
    for (key, raw) in &profile.sysctl {
        let value =
            keys::validate(key, raw, &facts.kernel).map_err(|e| Error::input(format!("[sysctl] {e}")))?;
        if facts.sysctl.get(key).is_some_and(|v| v.is_none()) {
            draft.note(
                Severity::Warning,
                Code::Pin,
                format!(
                    "{key} does not exist on this kernel ({}); writing it will fail",
                    facts.kernel
                ),
            );
        }
        let mut rules_for_key = vec![PIN.to_string()];
        if let Some(prev) = draft.managed.get(key) {
            let differs = (prev.value != value).then(|| {
                format!(
                    "{key} is pinned to {value:?}; rule {} recommended {:?} ({})",
                    prev.rules.join(", "),
                    prev.value,
                    prev.reason
                )
            });
            rules_for_key = prev.rules.clone();
            rules_for_key.push(PIN.to_string());
            if let Some(message) = differs {
                draft.note(Severity::Warning, Code::Pin, message);
            }
        }
        draft.managed.insert(
            key.clone(),
            Managed {
                value,
                rules: rules_for_key,
                reason: "pinned in the profile's [sysctl] table".into(),
            },
        );
    }
    Ok(())
}

/// Keys that reset each other when written (keys::RESETS): at most one is managed, the
/// pinned one; pinning both is an error.
fn one_of_each_reset(profile: &Profile, draft: &mut Draft) -> Result<()> {
    let pinned = |k: &str| profile.sysctl.iter().any(|(p, _)| p == k);
    let pairs = keys::RESETS
        .iter()
        .enumerate()
        .filter(|(i, (a, b))| !keys::RESETS[..*i].contains(&(*b, *a)))
        .map(|(_, p)| *p);
    for (a, b) in pairs {
        if !(draft.managed.contains_key(a) && draft.managed.contains_key(b)) {
            continue;
        }
        let (keep, drop) = match (pinned(a), pinned(b)) {
            (true, true) => {
                return Err(Error::input(format!(
                    "[sysctl] pins both {a} and {b}: writing either resets the other to 0, so only one may be set"
                )));
            }
            (true, false) => (a, b),
            (false, true) => (b, a),
            (false, false) => continue,
        };
        draft.managed.remove(drop);
        draft.note(
            Severity::Warning,
            Code::Pin,
            format!("{keep} is pinned, so {drop} is not managed: writing one resets the other to 0"),
        );
    }
    Ok(())
}

/// `--only`: the managed keys inside the globs, in the key table's order, and the findings
/// of the rules that manage a key inside them (and every finding not a rule's).
fn only(
    managed: BTreeMap<String, Managed>,
    findings: Vec<(Finding, Option<&'static dyn rules::Rule>)>,
    globs: &[glob::Pattern],
) -> (Vec<(String, Managed)>, Vec<Finding>) {
    let mut chosen: Vec<(String, Managed)> = managed.into_iter().filter(|(k, _)| matches(globs, k)).collect();
    chosen.sort_by(|(a, _), (b, _)| keys::order(a).cmp(&keys::order(b)).then(a.cmp(b)));
    let findings = findings
        .into_iter()
        .filter(|(_, rule)| rule.is_none_or(|r| r.keys().iter().any(|k| matches(globs, k))))
        .map(|(f, _)| f)
        .collect();
    (chosen, findings)
}

/// The final values against the floors the kernel enforces (keys::FLOOR_OF): only pins can
/// break them.
fn check_floors(final_value: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    for &(floor_key, range_key) in keys::FLOOR_OF {
        let first = |k: &str| final_value(k).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
        if let (Some(lo), Some(floor)) = (first(range_key), first(floor_key))
            && lo < floor
        {
            return Err(Error::input(format!(
                "{range_key} would start at {lo}, below {floor_key} = {floor}; the kernel refuses that (EINVAL). \
                 Valid: a range starting at {floor} or above"
            )));
        }
    }
    Ok(())
}

/// A setting per chosen key, against the host as read.
fn settings(req: &Request, chosen: &[(String, Managed)]) -> Vec<Setting> {
    chosen
        .iter()
        .map(|(key, m)| {
            let current = req.facts.value(key).map(str::to_string);
            let scope = keys::scope(key);
            let fallback = if scope == Scope::Netns {
                Kubernetes::Unsafe
            } else {
                Kubernetes::NodeOnly
            };
            Setting {
                key: key.clone(),
                change: current.as_deref() != Some(m.value.as_str()),
                current,
                recommended: m.value.clone(),
                rules: m.rules.clone(),
                reason: m.reason.clone(),
                scope,
                kubernetes: keys::info(key).map_or(fallback, |i| i.kubernetes),
                pinned: true,
                boot: None,
                current_words: None,
                recommended_words: None,
            }
        })
        .collect()
}

/// The drop-in: the chosen keys, plus (with --only) the lines of the current drop-in for
/// keys outside the globs, so a restricted apply does not drop them. A key whose value the
/// drop-in already holds keeps its comment: the reason it was set, and the same bytes on
/// the next run (a reason like "high exceeds the budget" would read "already fits" once
/// applied, and the file would never converge). Marks the settings it leaves out.
fn dropin_content(
    req: &Request,
    profile: &Profile,
    globs: &[glob::Pattern],
    chosen: &[(String, Managed)],
    settings: &mut [Setting],
) -> String {
    let existing: Vec<dropin::Entry> = req
        .dropin_current
        .map(|c| dropin::parse(c).entries)
        .unwrap_or_default();
    // A key the kernel sizes at boot, kept as it is, is not pinned (unless the drop-in
    // already pins it: dropping it would change the next boot).
    for s in settings.iter_mut() {
        s.pinned = !(keys::SIZED_AT_BOOT.contains(&s.key.as_str())
            && !s.change
            && !s.rules.iter().any(|r| r == PIN)
            && !existing.iter().any(|e| e.key == s.key));
        if !s.pinned {
            s.reason = format!("kept: the kernel sizes it at boot ({})", s.reason);
        }
    }
    let unpinned: Vec<String> = settings
        .iter()
        .filter(|s| !s.pinned)
        .map(|s| s.key.clone())
        .collect();
    let comment_of = |e: &dropin::Entry| -> String {
        e.comments
            .iter()
            .filter(|c| !c.starts_with(dropin::HEADER_START))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Comments come from this profile only: another profile's reasons would be wrong here.
    let same_profile = req
        .dropin_current
        .and_then(|c| c.lines().next())
        .is_some_and(|l| l == dropin::header_line(&profile.name));
    // The first line of each (key, value) in the drop-in: looked up once per key, not
    // searched (thousands of pins, a drop-in of thousands of lines).
    let mut existing_at: std::collections::HashMap<(&str, &str), &dropin::Entry> =
        std::collections::HashMap::with_capacity(existing.len());
    for e in existing.iter().filter(|_| same_profile) {
        existing_at.entry((e.key.as_str(), e.value.as_str())).or_insert(e);
    }
    let mut lines: Vec<dropin::Line> = chosen
        .iter()
        .filter(|(key, _)| !unpinned.contains(key))
        .map(|(key, m)| {
            let kept = existing_at
                .get(&(key.as_str(), m.value.as_str()))
                .map(|e| comment_of(e));
            dropin::Line {
                key: key.clone(),
                value: m.value.clone(),
                comment: kept
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| format!("{}: {}", m.rules.join(", "), m.reason)),
            }
        })
        .collect();
    if !globs.is_empty() {
        let mut in_lines: std::collections::HashSet<String> = lines.iter().map(|l| l.key.clone()).collect();
        for e in &existing {
            if !matches(globs, &e.key) && in_lines.insert(e.key.clone()) {
                lines.push(dropin::Line {
                    key: e.key.clone(),
                    value: e.value.clone(),
                    comment: comment_of(e),
                });
            }
        }
        lines.sort_by(|a, b| {
            keys::order(&a.key)
                .cmp(&keys::order(&b.key))
                .then(a.key.cmp(&b.key))
        });
    }
    dropin::render(&profile.name, &lines)
}

/// Keys an earlier apply set live that this plan no longer manages (another profile, a
/// narrower `--only` leaves those outside its globs alone): each goes back to the value it
/// will have at boot, so live and boot agree after the apply. That is the value the
/// sysctl.d files give it once the drop-in holds `content`, or, when no file sets it, the
/// value it had before sysctune first wrote it (the kernel's own at boot).
fn released(req: &Request, globs: &[glob::Pattern], settings: &[Setting], content: &str) -> Vec<Setting> {
    let keys: Vec<String> = req
        .set_before
        .keys()
        .filter(|k| matches(globs, k) && !settings.iter().any(|s| s.key == **k))
        .cloned()
        .collect();
    if keys.is_empty() {
        return Vec::new();
    }
    let after = req.sysctl_d.with_file(req.dropin_path, content);
    let boot = after.as_ref().unwrap_or(req.sysctl_d).boot(&keys);
    keys.into_iter()
        .filter_map(|key| {
            let current = req.facts.value(&key).map(str::to_string);
            current.as_ref()?;
            let (target, why) = match boot.get(&key).and_then(|o| o.boot.clone()) {
                Some(a) => (a.value.clone(), format!("its boot value from {}", a.at())),
                None => (
                    req.set_before.get(&key).cloned().unwrap_or_default(),
                    "the value it had before sysctune set it (no sysctl.d file sets it)".to_string(),
                ),
            };
            let info = keys::info(&key);
            Some(Setting {
                change: current.as_deref() != Some(target.as_str()),
                reason: format!("no longer managed by profile {}: back to {why}", req.profile.name),
                current,
                recommended: target,
                rules: vec![RELEASED.to_string()],
                scope: keys::scope(&key),
                kubernetes: info.map_or(Kubernetes::NodeOnly, |i| i.kubernetes),
                pinned: false,
                boot: None,
                current_words: None,
                recommended_words: None,
                key,
            })
        })
        .collect()
}

/// What a container gets for the per-namespace keys a plan changes: never the host's new
/// value (a namespace takes its values when it is created), and for most keys not even
/// the host's old one (see [`keys::new_netns`]).
fn scope_message(namespaced: &[&str]) -> String {
    let mut copied = Vec::new();
    let mut defaults = Vec::new();
    for k in namespaced {
        match keys::new_netns(k) {
            keys::NewNetns::CopiesInitial { since: (a, b) } => copied.push(format!("{k} (since {a}.{b})")),
            keys::NewNetns::KernelDefault(v) => defaults.push(format!("{k} at {v}")),
            keys::NewNetns::Unknown => defaults.push(format!("{k} at its default")),
        }
    }
    let mut parts = Vec::new();
    if !copied.is_empty() {
        parts.push(format!(
            "a new network namespace copies {} from the host's initial namespace when it is created",
            copied.join(", ")
        ));
    }
    if !defaults.is_empty() {
        parts.push(format!(
            "a new {} starts {}, the kernel's default, whatever the host has",
            if copied.is_empty() {
                "network namespace"
            } else {
                "one"
            },
            defaults.join(", ")
        ));
    }
    format!(
        "{} {} per network namespace: {}. Changing it here reaches no running container; set it in the pod or \
         container spec",
        namespaced.join(", "),
        if namespaced.len() == 1 { "is" } else { "are" },
        parts.join("; ")
    )
}

/// The rule id of findings about the sysctl.d files.
pub const SYSCTL_D: Code = Code::SysctlD;
/// The rule id of drift findings (live value ≠ boot value).
pub const DRIFT: Code = Code::Drift;

/// Findings about boot: notes on the files, drift (live ≠ boot value now), and whether the
/// drop-in with `content` would be read at boot and win for each managed key, for
/// systemd-sysctl and for procps `sysctl --system`.
fn boot_findings(
    req: &Request,
    settings: &[Setting],
    now: &BTreeMap<String, Origin>,
    content: &str,
) -> Vec<Finding> {
    let sd = req.sysctl_d;
    let path = req.dropin_path;
    let mut out: Vec<Finding> = sd
        .notes
        .iter()
        .map(|n| Finding::new(Severity::Warning, SYSCTL_D, n.clone()))
        .collect();
    out.extend(drift(req, settings, now));
    let after = match read_at_boot(sd, path, content) {
        Ok(after) => after,
        Err(never) => {
            out.push(never);
            return out;
        }
    };
    let keys: Vec<String> = settings.iter().map(|s| s.key.clone()).collect();
    let boot = after.boot(&keys);
    out.extend(shadowed(settings, &boot, path));
    out.extend(procps_differs(settings, &after.procps(&keys), &boot));
    out
}

/// Keys whose live value is not the one the sysctl.d files set at boot.
fn drift(req: &Request, settings: &[Setting], now: &BTreeMap<String, Origin>) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in settings {
        let (Some(live), Some(b)) = (
            req.facts.value(&s.key),
            now.get(&s.key).and_then(|o| o.boot.as_ref()),
        ) else {
            continue;
        };
        if !sysctl_d::same_value(live, &b.value) {
            out.push(Finding::new(
                Severity::Info,
                DRIFT,
                format!(
                    "{} is {live} now, but {} sets {} at boot: it was changed at runtime, or the file changed and \
                     was not applied; a reboot would bring {} back",
                    s.key,
                    b.at(),
                    b.value,
                    b.value
                ),
            ));
        }
    }
    out
}

/// The sysctl.d files once the drop-in holds `content`, or the finding that says
/// systemd-sysctl would never read the drop-in (a misplaced path, a mask, a file of the
/// same name in an earlier directory).
fn read_at_boot(sd: &SysctlD, path: &str, content: &str) -> std::result::Result<SysctlD, Finding> {
    let Some(after) = sd.with_file(path, content) else {
        return Err(Finding::new(
            Severity::Warning,
            SYSCTL_D,
            format!(
                "the drop-in {path} is not a *.conf file directly in one of {}: systemd-sysctl does not read it \
                 at boot, so none of these values would survive a reboot",
                sysctl_d::DIRS.join(", ")
            ),
        ));
    };
    if let Some(by) = after.file(path).and_then(|f| f.overridden_by.clone()) {
        let (how, fix) = match after.file(&by).map(|f| f.kind) {
            Some(Kind::Mask) => (
                "is a symlink to /dev/null that masks the name",
                "Remove that mask, or give the drop-in another name",
            ),
            _ => (
                "has the same name in an earlier directory and is read instead",
                "Give the drop-in a name that no other file uses",
            ),
        };
        return Err(Finding::new(
            Severity::Warning,
            SYSCTL_D,
            format!(
                "{by} {how}: systemd-sysctl never reads the drop-in {path}, so none of these values would \
                 survive a reboot. {fix}"
            ),
        ));
    }
    Ok(after)
}

/// Managed keys another file sets after the drop-in (or drops with `-KEY`) at boot, with
/// a drop-in name that would sort after them.
fn shadowed(settings: &[Setting], boot: &BTreeMap<String, Origin>, path: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut shadows: Vec<(&Setting, String, &str)> = Vec::new();
    for s in settings {
        let Some(o) = boot.get(&s.key) else { continue };
        match (&o.boot, &o.excluded) {
            (Some(b), _) if b.file != path && !sysctl_d::same_value(&b.value, &s.recommended) => {
                shadows.push((s, format!("{} sets {} = {}", b.at(), s.key, b.value), &b.file))
            }
            (None, Some(x)) => shadows.push((
                s,
                format!(
                    "{}:{} has -{}, which drops the drop-in's line",
                    x.file, x.line, s.key
                ),
                &x.file,
            )),
            _ => {}
        }
    }
    let suggestion = sysctl_d::name_after(shadows.iter().map(|(_, _, f)| f.rsplit('/').next().unwrap_or(f)));
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    for (s, what, file) in &shadows {
        let winner = file.rsplit('/').next().unwrap_or(file);
        out.push(Finding::new(
            Severity::Warning,
            SYSCTL_D,
            format!(
                "{} = {} would not survive a reboot: {what}, and {winner} is applied after {name}. Give the \
                 drop-in a name that sorts after it (--dropin {dir}/{suggestion}) or remove that line",
                s.key, s.recommended
            ),
        ));
    }
    out
}

/// Keys procps `sysctl --system` would set to a value neither the plan nor systemd-sysctl
/// gives (it also reads /etc/sysctl.conf, last).
fn procps_differs(
    settings: &[Setting],
    procps: &BTreeMap<String, Origin>,
    boot: &BTreeMap<String, Origin>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in settings {
        let (Some(p), b) = (
            procps.get(&s.key).and_then(|o| o.boot.as_ref()),
            boot.get(&s.key).and_then(|o| o.boot.as_ref()),
        ) else {
            continue;
        };
        // Only a different value than both the plan's and systemd-sysctl's is news.
        if sysctl_d::same_value(&p.value, &s.recommended)
            || b.is_some_and(|b| sysctl_d::same_value(&b.value, &p.value))
        {
            continue;
        }
        let why = if p.file == sysctl_d::SYSCTL_CONF {
            format!(
                "; it reads {} after the sysctl.d files, systemd-sysctl never does. Remove that line or set it to {}",
                sysctl_d::SYSCTL_CONF,
                s.recommended
            )
        } else {
            String::new()
        };
        out.push(Finding::new(
            Severity::Warning,
            SYSCTL_D,
            format!(
                "procps sysctl --system would set {} = {} from {} instead{why}",
                s.key,
                p.value,
                p.at()
            ),
        ));
    }
    out
}

/// Every rule's capacity figures, from the current values and from the recommended ones.
fn capacity(ctx: &Context, current: &Values, recommended: &Values) -> Capacity {
    let mut rows = Vec::new();
    for rule in rules::RULES {
        let now = rule.capacity(ctx, current);
        let next = rule.capacity(ctx, recommended);
        for ((measure, current), (_, recommended)) in now.into_iter().zip(next) {
            rows.push(Row {
                measure,
                figure: Figure { current, recommended },
            });
        }
    }
    Capacity { rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{profile, proxy_host};
    use crate::sysctl_d::{Kind, Listed};

    /// Plan swappiness = 10 (live 60) on the proxy host with these sysctl.d files.
    fn run(sd: &SysctlD, dropin: &str, current: Option<&str>) -> Plan {
        let facts = proxy_host();
        let p = profile("[sysctl]\n\"vm.swappiness\" = \"10\"\n");
        plan(&Request {
            facts: &facts,
            profile: &p,
            only: &[],
            dropin_path: dropin,
            dropin_current: current,
            sysctl_d: sd,
            set_before: &Default::default(),
        })
        .unwrap()
    }

    fn boot_messages(p: &Plan) -> Vec<(Severity, String)> {
        p.findings
            .iter()
            .filter(|f| f.rule == SYSCTL_D || f.rule == DRIFT)
            .map(|f| (f.severity, f.message.clone()))
            .collect()
    }

    fn tree(files: &[(&str, &str)], sysctl_conf: Option<&str>) -> SysctlD {
        let listing: Vec<Listed> = files
            .iter()
            .map(|(path, _)| {
                let (dir, name) = path.rsplit_once('/').unwrap();
                Listed::new(dir, name, Kind::File)
            })
            .collect();
        SysctlD::from_listing(&listing, files, sysctl_conf)
    }

    #[test]
    fn a_later_file_shadows_the_drop_in() {
        let sd = tree(&[("/etc/sysctl.d/99-local.conf", "vm.swappiness = 30\n")], None);
        let p = run(&sd, DEFAULT_DROPIN, None);
        let m = boot_messages(&p);
        assert_eq!(m.len(), 2, "{m:#?}");
        assert_eq!(m[0].0, Severity::Warning);
        assert_eq!(
            m[0].1,
            "vm.swappiness = 10 would not survive a reboot: /etc/sysctl.d/99-local.conf:1 sets vm.swappiness = 30, \
             and 99-local.conf is applied after 90-sysctune.conf. Give the drop-in a name that sorts after it \
             (--dropin /etc/sysctl.d/99-sysctune.conf) or remove that line"
        );
        assert_eq!(m[1].0, Severity::Info);
        assert!(
            m[1].1
                .starts_with("vm.swappiness is 60 now, but /etc/sysctl.d/99-local.conf:1 sets 30")
        );
        let s = p.settings.iter().find(|s| s.key == "vm.swappiness").unwrap();
        assert_eq!(s.boot.as_ref().unwrap().at(), "/etc/sysctl.d/99-local.conf:1");

        // The suggested name wins.
        let p = run(&sd, "/etc/sysctl.d/99-sysctune.conf", None);
        assert_eq!(boot_messages(&p).len(), 1, "only the drift is left");
    }

    #[test]
    fn shadowing_is_computed_with_the_planned_content() {
        // The drop-in on disk says 1 and loses to 20-a.conf (10); the plan writes 10, so the
        // later file agrees with it: nothing would be lost at boot.
        let sd = tree(
            &[
                ("/etc/sysctl.d/90-sysctune.conf", "vm.swappiness = 1\n"),
                ("/etc/sysctl.d/95-a.conf", "vm.swappiness = 10\n"),
            ],
            None,
        );
        let p = run(&sd, DEFAULT_DROPIN, Some("vm.swappiness = 1\n"));
        let m = boot_messages(&p);
        assert_eq!(m.len(), 1, "{m:#?}");
        assert!(
            m[0].1
                .starts_with("vm.swappiness is 60 now, but /etc/sysctl.d/95-a.conf:1 sets 10")
        );

        // A drop-in that only adds a key is shadowed once written, even though absent now.
        let sd = tree(&[("/usr/lib/sysctl.d/95-a.conf", "-vm.swappiness\n")], None);
        let m = boot_messages(&run(&sd, DEFAULT_DROPIN, None));
        assert_eq!(m.len(), 1, "{m:#?}");
        assert!(
            m[0].1
                .contains("/usr/lib/sysctl.d/95-a.conf:1 has -vm.swappiness"),
            "{m:#?}"
        );
    }

    #[test]
    fn procps_and_etc_sysctl_conf() {
        let sd = tree(&[], Some("vm.swappiness = 60\n"));
        let m = boot_messages(&run(&sd, DEFAULT_DROPIN, None));
        assert_eq!(m.len(), 1, "{m:#?}");
        assert_eq!(
            m[0].1,
            "procps sysctl --system would set vm.swappiness = 60 from /etc/sysctl.conf:1 instead; it reads \
             /etc/sysctl.conf after the sysctl.d files, systemd-sysctl never does. Remove that line or set it to 10"
        );
    }

    #[test]
    fn a_masked_or_misplaced_drop_in_is_never_read() {
        let sd = SysctlD::from_listing(
            &[Listed::new("/etc/sysctl.d", "90-sysctune.conf", Kind::Mask)],
            &[],
            None,
        );
        // The drop-in itself replaces the mask when written: no finding.
        assert!(boot_messages(&run(&sd, DEFAULT_DROPIN, None)).is_empty());
        let m = boot_messages(&run(&sd, "/usr/lib/sysctl.d/90-sysctune.conf", None));
        assert!(
            m[0].1
                .starts_with("/etc/sysctl.d/90-sysctune.conf is a symlink to /dev/null"),
            "{m:#?}"
        );
        let m = boot_messages(&run(&sd, "/etc/sysctl.d/90-sysctune", None));
        assert!(
            m[0].1.contains("systemd-sysctl does not read it at boot"),
            "{m:#?}"
        );
    }
}
