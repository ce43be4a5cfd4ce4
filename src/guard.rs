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
//! The last three are [`hazards`]: error findings every plan carries, so `plan` shows
//! what `apply` refuses. Everything but `[host]` can be overridden with `--force`; the apply report then says
//! `"forced": true` and lists what it overrode.

use crate::host::Facts;
use crate::plan::Plan;
use crate::profile::Profile;
use crate::rules::{Finding, Severity};
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

/// Why `net.ipv4.tcp_mem = value` would break this host at once: a zero, or a high at or
/// below the TCP memory in use now (sockstat `mem`: every socket would be refused memory).
/// The one statement of the check: rule tcp-memory keeps a high it would lower that far,
/// [`hazards`] makes it an error finding of the plan, and apply refuses on that finding.
pub fn tcp_mem_breaks(value: &str, facts: &Facts) -> Option<String> {
    let v: Vec<u64> = value.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    if v.contains(&0) {
        return Some(format!(
            "net.ipv4.tcp_mem = {value} has a zero: the kernel would refuse TCP memory to every socket"
        ));
    }
    let used = facts.sockstat.map(|s| s.tcp_mem)?;
    let high = *v.get(2)?;
    (high <= used).then(|| {
        format!(
            "net.ipv4.tcp_mem high {high} is at or below the {used} pages TCP uses now (sockstat mem): every \
             socket would be refused memory at once"
        )
    })
}

/// What in `plan` would break the host of `facts` now, as error findings (rule
/// `guard`): a tcp_mem of [`tcp_mem_breaks`], strict overcommit with a CommitLimit below
/// Committed_AS, a port range narrowed below the ports one destination holds now
/// (`ports_held`: the most local ports one destination holds in the current range, from
/// the tcp tables, when they were read). Added to every plan, so `plan` shows what
/// `apply` refuses (an error finding) and both decide it here, once.
pub fn hazards(plan: &Plan, facts: &Facts, ports_held: Option<u64>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut error = |message: String, key: &str| {
        let mut f = Finding::new(Severity::Error, GUARD, message);
        f.key = Some(key.to_string());
        out.push(f);
    };
    let recommended = |key: &str| plan.settings.iter().find(|s| s.key == key && s.change);
    if let Some(s) = recommended("net.ipv4.tcp_mem")
        && let Some(why) = tcp_mem_breaks(&s.recommended, facts)
    {
        error(why, "net.ipv4.tcp_mem");
    }
    let strict = plan
        .settings
        .iter()
        .find(|s| s.key == "vm.overcommit_memory")
        .map_or(facts.value("vm.overcommit_memory") == Some("2"), |s| {
            s.recommended == "2"
        });
    if strict
        && plan
            .settings
            .iter()
            .any(|s| s.change && s.key.starts_with("vm.overcommit_"))
    {
        let limit = plan.capacity.commit_limit.recommended;
        if let Some(limit) = limit
            && limit < facts.mem.committed_as
        {
            error(
                format!(
                    "strict overcommit with a CommitLimit of {} is below the {} committed now (Committed_AS): every \
                     new allocation would fail at once",
                    human_bytes(u128::from(limit)),
                    human_bytes(u128::from(facts.mem.committed_as))
                ),
                "vm.overcommit_memory",
            );
        }
    }
    if let (Some(s), Some(held)) = (recommended("net.ipv4.ip_local_port_range"), ports_held) {
        let (now, next) = (
            plan.capacity.ports_available.current,
            plan.capacity.ports_available.recommended,
        );
        if let (Some(now), Some(next)) = (now, next)
            && next < now
            && next < held
        {
            error(
                format!(
                    "net.ipv4.ip_local_port_range = {} leaves {next} usable ports, fewer than the {held} one destination \
                     holds now: its next connections would fail (EADDRNOTAVAIL)",
                    s.recommended
                ),
                "net.ipv4.ip_local_port_range",
            );
        }
    }
    out
}

/// The rule name of [`hazards`]' findings.
pub const GUARD: &str = "guard";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::proxy_host;

    #[test]
    fn tcp_mem_breaks_at_a_zero_or_a_high_at_or_below_the_use() {
        let mut facts = proxy_host();
        // without sockstat only a zero is known to break
        assert!(tcp_mem_breaks("1 2 3", &facts).is_none());
        assert!(tcp_mem_breaks("0 2 3", &facts).unwrap().contains("has a zero"));
        facts.sockstat = Some(crate::host::Sockstat {
            sockets_used: 0,
            tcp_inuse: 0,
            tcp_orphan: 0,
            tcp_tw: 0,
            tcp_alloc: 0,
            tcp_mem: 900,
        });
        assert!(tcp_mem_breaks("100 200 901", &facts).is_none());
        assert_eq!(
            tcp_mem_breaks("100 200 900", &facts).unwrap(),
            "net.ipv4.tcp_mem high 900 is at or below the 900 pages TCP uses now (sockstat mem): every socket \
             would be refused memory at once"
        );
        assert!(tcp_mem_breaks("100 200 300", &facts).is_some());
    }
}
