//! What `apply` refuses: plans that would hurt the host it runs on. Pure: it reads the
//! plan, the facts and what the tcp tables hold, never the filesystem.
//!
//! - A plan with an `error` finding (a demand that cannot fit, a model the host
//!   contradicts): the values may be the best sysctune can do, but not what was asked.
//! - A profile whose `[host]` (or `--set host.*`) describes another machine: its values are
//!   that machine's (a 64 KiB page size cuts tcp_mem 16x on a 4 KiB host). Never forced:
//!   `[host]` is for `plan`, snapshots and review.
//! - Values that break the host now: a `tcp_mem` with a zero, or whose `high` is at or
//!   below the TCP memory in use (sockstat `mem`: every socket would be refused memory at
//!   once); strict overcommit with a CommitLimit below Committed_AS (every allocation then
//!   fails: the article's OOM incident); a port range that narrows below the ports one
//!   destination holds now.
//!
//! The last three are [`hazards`]: each rule judges its own ([`crate::rules::Rule::hazards`])
//! and they become error findings every plan carries, so `plan` shows what `apply`
//! refuses. Everything but `[host]` can be overridden with `--force`; the apply report
//! then says `"forced": true` and lists what it overrode.

use crate::error::Result;
use crate::host::Facts;
use crate::plan::Plan;
use crate::profile::Profile;
use crate::rules::{Code, Finding, PortsHeld, Proposal, RULES, Severity};
use crate::units::human_bytes;

/// Why apply will not carry out a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `--force` may override it.
    pub forceable: bool,
    pub message: String,
}

/// The profile's `[host]` figures that differ from the host's own.
pub fn host_overrides(facts: &Facts, profile: &Profile) -> Vec<String> {
    let h = &profile.host;
    let mut out = Vec::new();
    let mut differs = |field: &str, given: Option<u64>, real: u64, what: &str, bytes: bool| {
        if let Some(v) = given
            && v != real
        {
            let show = |n: u64| {
                if bytes {
                    human_bytes(u128::from(n))
                } else {
                    n.to_string()
                }
            };
            out.push(format!(
                "host.{field} = {}, but this host has {} ({what})",
                show(v),
                show(real)
            ));
        }
    };
    differs("ram", h.ram, facts.mem.mem_total, "MemTotal", true);
    differs("swap", h.swap, facts.mem.swap_total, "SwapTotal", true);
    differs("page_size", h.page_size, facts.page_size, "the page size", false);
    out
}

/// What in `plan` would break the host of `facts` (as read, before the profile's `[host]`)
/// now, as error findings (rule `guard`, with the key): what each rule judges of its own
/// keys. Added to every plan, so `plan` shows what `apply` refuses, decided once.
/// `ports_held` scans the tcp tables, only for a rule that asks.
pub fn hazards(plan: &Plan, facts: &Facts, ports_held: &PortsHeld) -> Result<Vec<Finding>> {
    let setting = |key: &str| {
        plan.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| (s.recommended.clone(), s.change))
    };
    let proposal = Proposal {
        facts,
        setting: &setting,
        capacity: &plan.capacity,
        ports_held,
    };
    let mut out = Vec::new();
    for rule in RULES {
        for h in rule.hazards(&proposal)? {
            out.push(Finding::new(Severity::Error, GUARD, h.message).measured_key(h.key));
        }
    }
    Ok(out)
}

/// The rule name of [`hazards`]' findings.
pub const GUARD: Code = Code::Guard;

/// Every reason to refuse `plan` on the host of `facts` (the facts as read, before the
/// profile's `[host]`): a `[host]` for another machine, and every error finding (those of
/// [`hazards`] included: the plan carries them).
pub fn refusals(plan: &Plan, facts: &Facts, profile: &Profile) -> Vec<Refusal> {
    let mut out = Vec::new();
    let overrides = host_overrides(facts, profile);
    if !overrides.is_empty() {
        out.push(Refusal {
            forceable: false,
            message: format!(
                "the profile plans another host: {}; a [host] section (or --set host.*) is for plan, snapshots and \
                 review, never for apply on this host: remove it",
                overrides.join("; ")
            ),
        });
    }
    for f in plan.findings.iter().filter(|f| f.severity == Severity::Error) {
        out.push(Refusal {
            forceable: true,
            message: format!("error finding {}: {}", f.rule, f.message),
        });
    }
    out
}
