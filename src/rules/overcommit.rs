//! Rule `overcommit`: the overcommit mode and, in strict mode, the CommitLimit. See [`DOC`].

use crate::host::{Facts, MemInfo};
use crate::keys;
use crate::profile::Overcommit as Mode;
use crate::units::human_bytes;

use super::{Context, Outcome, Rule, Severity};

pub const DOC: &str = "\
Rule overcommit: keys vm.overcommit_memory, vm.overcommit_ratio, vm.overcommit_kbytes

What it does
  Sets the kernel's overcommit mode from the profile's memory.overcommit, and in strict
  mode sizes the CommitLimit (through vm.overcommit_ratio, or keeps vm.overcommit_kbytes)
  so that it holds a target amount of committed address space. Whatever the profile, it
  reports a host in strict mode whose Committed_AS is already above its CommitLimit.

  heuristic -> vm.overcommit_memory = 0: refuses only a single request larger than
               RAM + swap.
  always    -> vm.overcommit_memory = 1: refuses nothing (a warning says so).
  strict    -> vm.overcommit_memory = 2: an allocation fails with ENOMEM when Committed_AS
               would pass CommitLimit, plus vm.overcommit_ratio (or vm.overcommit_kbytes).

Why
  In the article the batch host was killed by the OOM killer: with overcommit the kernel
  says yes to nearly every allocation and, when memory really runs out, kills processes.
  Strict mode turns that into a clean ENOMEM at allocation time, but only if CommitLimit
  is large enough: the article's host showed CommitLimit 517584 kB against Committed_AS
  3306488 kB, where every new allocation is refused. A limit has to be sized, not guessed.

Arithmetic (exact integers; facts in bytes, the kernel's formula in pages)
  ram_pages     = MemTotal / page        hugetlb_pages = Hugetlb / page
  swap_pages    = SwapTotal / page
  commit_limit  = (kbytes ? kbytes / (page/1024)
                          : (ram_pages - hugetlb_pages) x ratio / 100) + swap_pages  pages
  (the kernel's vm_commit_limit, integer division; checked: MemTotal 24731708 kB,
  ratio 50, page 4096 -> 3091463 pages = 12365852 kB, exactly /proc/meminfo's CommitLimit)

  strict:
  target  = memory.commit_target as given (no headroom),
            else ceil(Committed_AS x headroom)
  keep the current limit (from the ratio, or from overcommit_kbytes when non-zero) if it
  is >= target; else
  ratio'  = ceil(max(0, target - swap) x 100 / (ram - hugetlb)), then stepped up by 1
            while commit_limit(ratio') < target (the kernel truncates to pages).
  Warnings: ratio' > 100 (the limit exceeds RAM: add swap of at least
  target - (ram - hugetlb) and keep ratio 100, or use heuristic mode); a target below
  Committed_AS (the new limit refuses allocations at once).

  Writing overcommit_ratio sets overcommit_kbytes to 0 in the kernel, and writing
  overcommit_kbytes (even 0) sets the ratio to 0, so the plan never writes both. When a
  non-zero overcommit_kbytes limit is kept, the plan manages overcommit_kbytes with its
  current value: a drop-in pinning the ratio would wipe the kbytes limit at the next boot
  and leave strict mode with a limit of swap alone.

Choices
  - The current limit is computed with the kernel's formula from the effective facts
    (the profile's [host] ram and swap applied), so a plan for another host is
    consistent; the current-state error uses /proc/meminfo's CommitLimit, which is what
    the kernel enforces now.
  - The step-up loop is computed in closed form: the least ratio with
    floor((ram_pages - hugetlb_pages) x ratio / 100) >= ceil(target / page) - swap_pages,
    and ratio' is the larger of that and the ceil above (the loop's result, exactly).
  - A negative ratio (the kernel accepts it) is computed in i128 and the limit clamped
    at 0; the kernel's unsigned arithmetic would wrap instead.
  - The warning for a target below Committed_AS is given when the resulting limit is
    also below Committed_AS (a kept, larger limit refuses nothing).
  - When strict mode cannot be sized (no RAM outside hugetlb, a ratio beyond the
    kernel's int, an invalid page size) an error says so, no ratio is written, and the
    mode keeps its current value: strict mode with an unsized limit would refuse
    allocations at once.
  - memory.commit_target without strict mode is ignored, with a warning.
  - Moving from overcommit_kbytes to a ratio is said in the reason and an info finding;
    overcommit_kbytes itself is not written (the kernel zeroes it when the ratio is).

References
  Documentation/admin-guide/sysctl/vm.rst (overcommit_memory, overcommit_ratio,
  overcommit_kbytes); Documentation/mm/overcommit-accounting.rst; mm/util.c
  (vm_commit_limit, __vm_enough_memory); the article (CommitLimit 517584 kB,
  Committed_AS 3306488 kB; the OOM killer under high concurrency).
";

const MODE: &str = "vm.overcommit_memory";
const RATIO: &str = "vm.overcommit_ratio";
const KBYTES: &str = "vm.overcommit_kbytes";

pub struct Overcommit;

impl Rule for Overcommit {
    fn id(&self) -> &'static str {
        "overcommit"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[MODE, RATIO, KBYTES]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, ctx: &Context) -> Outcome {
        let mut out = Outcome::default();
        let id = self.id();
        let facts = ctx.facts;
        let memory = &ctx.profile.memory;

        current_state(facts, id, &mut out);

        if let Some(t) = memory.commit_target
            && memory.overcommit != Some(Mode::Strict)
        {
            out.finding(
                Severity::Warning,
                id,
                format!(
                    "memory.commit_target = {} is ignored: it sizes the CommitLimit only with memory.overcommit = \"strict\".",
                    t.describe(facts.mem.mem_total)
                ),
            );
        }

        match memory.overcommit {
            None => {}
            Some(Mode::Heuristic) => {
                emit(
                    &mut out,
                    facts,
                    id,
                    MODE,
                    "0".into(),
                    "heuristic: refuse only requests larger than RAM + swap".into(),
                );
            }
            Some(Mode::Always) => {
                emit(
                    &mut out,
                    facts,
                    id,
                    MODE,
                    "1".into(),
                    "always: never refuse; the OOM killer acts when memory runs out".into(),
                );
                out.finding(
                    Severity::Warning,
                    id,
                    "vm.overcommit_memory = 1 (always) refuses no allocation: when memory runs out the OOM killer picks processes to kill, the article's failure; prefer \"heuristic\" (0) or \"strict\" (2) with a sized CommitLimit.",
                );
            }
            Some(Mode::Strict) => strict(ctx, id, &mut out),
        }
        out
    }
}

/// The kernel's CommitLimit in bytes (`vm_commit_limit` × page): what the plan reports as
/// the `commit_limit` capacity figure, for the current and the recommended values.
/// `ratio` may be negative or above 100 (the kernel accepts both); the result is clamped
/// to `0..=u64::MAX`. A page size below 1024 gives 0.
pub fn commit_limit_bytes(
    mem_total: u64,
    hugetlb: u64,
    swap_total: u64,
    page: u64,
    ratio: i128,
    kbytes: u64,
) -> u64 {
    match Geometry::new(mem_total, hugetlb, swap_total, page) {
        Some(g) => u64::try_from(g.bytes_of(g.limit_pages(ratio, kbytes))).unwrap_or(u64::MAX),
        None => 0,
    }
}

/// The smallest ratio whose CommitLimit holds `target` bytes, as arithmetic.md computes it:
/// `ceil(max(0, target − swap) × 100 / (ram − hugetlb))`, stepped up while the limit is
/// below the target. Returns (the first ratio, the stepped-up ratio), or `None` when no
/// RAM is left outside hugetlb (or the page size is unusable).
pub fn ratio_for_target(
    mem_total: u64,
    hugetlb: u64,
    swap_total: u64,
    page: u64,
    target: u128,
) -> Option<(u128, u128)> {
    let g = Geometry::new(mem_total, hugetlb, swap_total, page)?;
    let usable = g.usable_pages();
    let usable_bytes = mem_total.saturating_sub(hugetlb) as u128;
    if usable <= 0 || usable_bytes == 0 {
        return None;
    }
    let first = target
        .saturating_sub(swap_total as u128)
        .saturating_mul(100)
        .div_ceil(usable_bytes);
    // The step-up loop in closed form: the least r with
    // floor(usable × r / 100) + swap_pages ≥ ceil(target / page).
    let target_pages = target.div_ceil(page as u128);
    let swap_pages = g.swap_pages as u128;
    let least = target_pages
        .saturating_sub(swap_pages)
        .saturating_mul(100)
        .div_ceil(usable as u128);
    Some((first, first.max(least)))
}

/// The host's memory in the kernel's units: pages.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    page: u64,
    ram_pages: i128,
    hugetlb_pages: i128,
    swap_pages: i128,
}

impl Geometry {
    /// `None` for a page size the kbytes formula cannot use (below 1 KiB).
    fn new(mem_total: u64, hugetlb: u64, swap_total: u64, page: u64) -> Option<Geometry> {
        if page < 1024 {
            return None;
        }
        Some(Geometry {
            page,
            ram_pages: (mem_total / page) as i128,
            hugetlb_pages: (hugetlb / page) as i128,
            swap_pages: (swap_total / page) as i128,
        })
    }

    fn of(mem: &MemInfo, page: u64) -> Option<Geometry> {
        Geometry::new(mem.mem_total, mem.hugetlb, mem.swap_total, page)
    }

    fn usable_pages(&self) -> i128 {
        self.ram_pages - self.hugetlb_pages
    }

    /// The kernel's `vm_commit_limit` in pages, clamped at 0.
    fn limit_pages(&self, ratio: i128, kbytes: u64) -> i128 {
        let part = if kbytes > 0 {
            // page ≥ 1024 (checked in `new`)
            kbytes as i128 / (self.page / 1024) as i128
        } else {
            let usable = self.usable_pages();
            match usable.checked_mul(ratio) {
                Some(p) => p / 100,
                None if (usable < 0) == (ratio < 0) => i128::MAX,
                None => i128::MIN,
            }
        };
        part.saturating_add(self.swap_pages).max(0)
    }

    fn bytes_of(&self, pages: i128) -> u128 {
        u128::try_from(pages)
            .unwrap_or(0)
            .saturating_mul(self.page as u128)
    }

    /// `12358848 pages = 47.1 GiB`.
    fn show(&self, pages: i128) -> String {
        format!("{pages} pages = {}", human_bytes(self.bytes_of(pages)))
    }
}

/// What strict mode does with the limit.
enum Limit {
    /// Keep the current non-zero overcommit_kbytes.
    KeepKbytes(u64),
    /// Keep the current ratio.
    KeepRatio(i128),
    /// Write a new ratio (from a kbytes limit when `from_kbytes`).
    Raise { ratio: i128, from_kbytes: bool },
}

fn strict(ctx: &Context, id: &str, out: &mut Outcome) {
    let facts = ctx.facts;
    let mem = facts.mem;
    let current_mode = facts.value(MODE).map(str::to_string);

    let Some(g) = Geometry::of(&mem, facts.page_size) else {
        out.finding(
            Severity::Error,
            id,
            format!(
                "page size {} is not a Linux page size (4096 on x86-64): the CommitLimit cannot be computed, so strict overcommit is not applied; set host.page_size.",
                facts.page_size
            ),
        );
        keep_mode(out, facts, id, current_mode);
        return;
    };
    out.step(format!(
        "ram_pages = MemTotal / page = {} / {} = {}",
        mem.mem_total,
        g.page,
        g.show(g.ram_pages)
    ));
    out.step(format!(
        "hugetlb_pages = Hugetlb / page = {} / {} = {}",
        mem.hugetlb,
        g.page,
        g.show(g.hugetlb_pages)
    ));
    out.step(format!(
        "swap_pages = SwapTotal / page = {} / {} = {}",
        mem.swap_total,
        g.page,
        g.show(g.swap_pages)
    ));

    let target: u128 = match ctx.profile.memory.commit_target {
        Some(t) => {
            let b = t.bytes(mem.mem_total) as u128;
            out.step(format!(
                "target = memory.commit_target = {} = {} (no headroom)",
                t.describe(mem.mem_total),
                bytes(b)
            ));
            b
        }
        None => {
            let h = ctx.profile.headroom;
            let t = h.mul_ceil(mem.committed_as as u128);
            out.step(format!(
                "target = ceil(Committed_AS × headroom) = ceil({} × {h}) = {}",
                mem.committed_as,
                bytes(t)
            ));
            t
        }
    };

    let kbytes = facts.u64(KBYTES).unwrap_or(0);
    let ratio = facts.int(RATIO);
    let current: Option<i128> = if kbytes > 0 {
        let p = g.limit_pages(0, kbytes);
        out.step(format!(
            "current CommitLimit = overcommit_kbytes / (page/1024) + swap_pages = {kbytes} / {} + {} = {}",
            g.page / 1024,
            g.swap_pages,
            g.show(p)
        ));
        Some(p)
    } else if let Some(r) = ratio {
        let p = g.limit_pages(r, 0);
        out.step(format!(
            "current CommitLimit = (ram_pages − hugetlb_pages) × ratio / 100 + swap_pages = ({} − {}) × {r} / 100 + {} = {}",
            g.ram_pages,
            g.hugetlb_pages,
            g.swap_pages,
            g.show(p)
        ));
        Some(p)
    } else {
        out.step("current CommitLimit unknown: vm.overcommit_ratio is absent");
        None
    };
    let current_bytes = current.map(|p| g.bytes_of(p));

    let limit = match current_bytes {
        Some(c) if c >= target => {
            out.step(format!(
                "current CommitLimit {} ≥ target {}: keep it",
                bytes(c),
                bytes(target)
            ));
            if kbytes > 0 {
                Limit::KeepKbytes(kbytes)
            } else {
                // `current` is Some only with a ratio here.
                Limit::KeepRatio(ratio.unwrap_or(0))
            }
        }
        _ => match raise(&g, &mem, target, id, out) {
            Some(r) => Limit::Raise {
                ratio: r,
                from_kbytes: kbytes > 0,
            },
            None => {
                keep_mode(out, facts, id, current_mode);
                return;
            }
        },
    };

    emit(
        out,
        facts,
        id,
        MODE,
        "2".into(),
        "strict: refuse allocations beyond CommitLimit, no OOM kill".into(),
    );

    let new_pages = match limit {
        Limit::KeepKbytes(k) => {
            let p = g.limit_pages(0, k);
            emit(
                out,
                facts,
                id,
                KBYTES,
                k.to_string(),
                format!(
                    "CommitLimit {} from overcommit_kbytes holds the target {}",
                    human_bytes(g.bytes_of(p)),
                    human_bytes(target)
                ),
            );
            p
        }
        Limit::KeepRatio(r) => {
            let p = g.limit_pages(r, 0);
            emit(
                out,
                facts,
                id,
                RATIO,
                r.to_string(),
                format!(
                    "CommitLimit {} already holds the target {}",
                    human_bytes(g.bytes_of(p)),
                    human_bytes(target)
                ),
            );
            p
        }
        Limit::Raise {
            ratio: r,
            from_kbytes,
        } => {
            let p = g.limit_pages(r, 0);
            let new = human_bytes(g.bytes_of(p));
            let reason = if from_kbytes {
                format!(
                    "replaces overcommit_kbytes: CommitLimit {new} for target {}",
                    human_bytes(target)
                )
            } else {
                format!(
                    "raise CommitLimit {} to {new} for the target {}",
                    current_bytes.map_or("(unknown)".to_string(), human_bytes),
                    human_bytes(target)
                )
            };
            if emit(out, facts, id, RATIO, r.to_string(), reason) && from_kbytes {
                out.finding(
                    Severity::Info,
                    id,
                    format!(
                        "vm.overcommit_kbytes = {kbytes} gives a CommitLimit of {}, below the target {}; the plan sets vm.overcommit_ratio = {r} instead, and writing the ratio resets vm.overcommit_kbytes to 0 in the kernel.",
                        bytes(current_bytes.unwrap_or(0)),
                        bytes(target)
                    ),
                );
            }
            p
        }
    };

    let new_bytes = g.bytes_of(new_pages);
    let committed = mem.committed_as as u128;
    if target < committed && new_bytes < committed {
        out.finding(
            Severity::Warning,
            id,
            format!(
                "The target {} is below Committed_AS {}: in strict mode the CommitLimit {} would refuse new allocations at once; raise memory.commit_target to at least Committed_AS.",
                bytes(target),
                bytes(committed),
                bytes(new_bytes)
            ),
        );
    }
}

/// Compute ratio' for `target`, with its steps and findings; `None` (with an error
/// finding) when no valid ratio can size the limit.
fn raise(g: &Geometry, mem: &MemInfo, target: u128, id: &str, out: &mut Outcome) -> Option<i128> {
    let usable_bytes = mem.mem_total.saturating_sub(mem.hugetlb) as u128;
    let Some((first, ratio)) = ratio_for_target(mem.mem_total, mem.hugetlb, mem.swap_total, g.page, target)
    else {
        out.finding(
            Severity::Error,
            id,
            format!(
                "No RAM is left outside hugetlb (MemTotal {}, Hugetlb {}): no vm.overcommit_ratio can size a CommitLimit of {}, so strict overcommit is not applied; reserve fewer huge pages, add swap, or use \"heuristic\".",
                bytes(mem.mem_total as u128),
                bytes(mem.hugetlb as u128),
                bytes(target)
            ),
        );
        return None;
    };
    out.step(format!(
        "ratio' = ceil(max(0, target − swap) × 100 / (ram − hugetlb)) = ceil({} × 100 / {usable_bytes}) = {first}",
        target.saturating_sub(mem.swap_total as u128)
    ));
    let show = |r: u128| {
        let p = g.limit_pages(i128::try_from(r).unwrap_or(i128::MAX), 0);
        (g.show(p), g.bytes_of(p))
    };
    if ratio > first {
        let (shown, b) = show(first);
        out.step(format!(
            "commit_limit({first}) = {shown} ({b} B) < target {target} B: step ratio' up to {ratio}"
        ));
    }
    let Ok(r) = i32::try_from(ratio) else {
        out.finding(
            Severity::Error,
            id,
            format!(
                "A CommitLimit of {} needs vm.overcommit_ratio = {ratio}, beyond the kernel's maximum {}: strict overcommit is not applied; add swap or use \"heuristic\".",
                bytes(target),
                i32::MAX
            ),
        );
        return None;
    };
    let (shown, b) = show(ratio);
    out.step(format!(
        "commit_limit({ratio}) = ({} − {}) × {ratio} / 100 + {} = {shown} ({b} B) ≥ target {target} B",
        g.ram_pages, g.hugetlb_pages, g.swap_pages
    ));
    if ratio > 100 {
        let swap_needed = target.saturating_sub(usable_bytes);
        out.finding(
            Severity::Warning,
            id,
            format!(
                "vm.overcommit_ratio = {ratio} is above 100: the CommitLimit {} exceeds the RAM outside hugetlb, {}; add swap of at least {} and keep the ratio at 100 (the article added swap), or use \"heuristic\".",
                bytes(b),
                bytes(usable_bytes),
                bytes(swap_needed)
            ),
        );
    }
    Some(r as i128)
}

/// Strict mode could not be sized: keep the mode as it is (managed, since the profile
/// asks about it), rather than switch to strict with a limit that refuses allocations.
fn keep_mode(out: &mut Outcome, facts: &Facts, id: &str, current: Option<String>) {
    match current {
        Some(mode) => {
            emit(
                out,
                facts,
                id,
                MODE,
                mode,
                "unchanged: the strict CommitLimit cannot be sized".into(),
            );
        }
        None => absent(out, id, MODE),
    }
}

/// The finding about the host as it is, whatever the profile: strict mode with
/// Committed_AS already above CommitLimit refuses allocations now.
fn current_state(facts: &Facts, id: &str, out: &mut Outcome) {
    let mem = facts.mem;
    if facts.int(MODE) == Some(2) && mem.committed_as > mem.commit_limit {
        out.finding(
            Severity::Error,
            id,
            format!(
                "vm.overcommit_memory = 2 (strict) and Committed_AS {} kB ({}) exceeds CommitLimit {} kB ({}): allocations are being refused now (ENOMEM); raise vm.overcommit_ratio (memory.overcommit = \"strict\" sizes it), add swap, or set vm.overcommit_memory = 0 (heuristic).",
                mem.committed_as / 1024,
                human_bytes(mem.committed_as as u128),
                mem.commit_limit / 1024,
                human_bytes(mem.commit_limit as u128)
            ),
        );
    }
}

/// Recommend `key` if the host has it and the value is one the kernel accepts; returns
/// whether it was recommended.
fn emit(out: &mut Outcome, facts: &Facts, id: &str, key: &str, value: String, reason: String) -> bool {
    if facts.value(key).is_none() {
        absent(out, id, key);
        return false;
    }
    match keys::validate(key, &value, &facts.kernel) {
        Ok(v) => {
            out.set(key, v, reason);
            true
        }
        Err(e) => {
            out.finding(Severity::Error, id, format!("{e}; {key} is not managed."));
            false
        }
    }
}

fn absent(out: &mut Outcome, id: &str, key: &str) {
    out.finding(
        Severity::Info,
        id,
        format!("{key} is absent on this kernel; it is not managed."),
    );
}

/// `33285996544 B (31 GiB)`.
fn bytes(b: u128) -> String {
    format!("{b} B ({})", human_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Finding, Outcome, Severity};
    use super::*;
    use crate::host::Facts;

    fn run(facts: &Facts, toml: &str) -> Outcome {
        evaluate_short(&Overcommit, facts, toml)
    }

    fn value<'a>(out: &'a Outcome, key: &str) -> Option<&'a str> {
        out.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    fn reason<'a>(out: &'a Outcome, key: &str) -> &'a str {
        &out.settings.iter().find(|s| s.key == key).unwrap().reason
    }

    fn findings(out: &Outcome, severity: Severity) -> Vec<&Finding> {
        out.findings.iter().filter(|f| f.severity == severity).collect()
    }

    const GIB: u64 = 1 << 30;
    const RAM: u64 = 62 * GIB;

    #[test]
    fn kernel_formula_matches_meminfo() {
        // kernel.md [checked]: MemTotal 24731708 kB, ratio 50 → 3091463 pages = 12365852 kB
        let limit = commit_limit_bytes(24731708 * 1024, 0, 0, 4096, 50, 0);
        assert_eq!(limit / 4096, 3091463);
        assert_eq!(limit / 1024, 12365852);
        assert_eq!(limit % 4096, 0);
    }

    #[test]
    fn plan_json_commit_limit() {
        // cli.md: 62 GiB, ratio 50, no swap → 33285996544
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 50, 0), 33285996544);
        let h = proxy_host();
        assert_eq!(h.mem.commit_limit, 33285996544);
    }

    #[test]
    fn formula_edges() {
        // hugetlb is subtracted: (16252928 − 7864320) × 50 / 100 = 4194304 pages = 16 GiB
        assert_eq!(commit_limit_bytes(RAM, 30 * GIB, 0, 4096, 50, 0), 16 * GIB);
        // swap is added whole
        assert_eq!(commit_limit_bytes(RAM, 0, 8 * GIB, 4096, 0, 0), 8 * GIB);
        // kbytes replaces the ratio and ignores hugetlb
        assert_eq!(
            commit_limit_bytes(RAM, 30 * GIB, 2 * GIB, 4096, 50, 40 << 20),
            42 * GIB
        );
        // kbytes below a page truncate to 0 pages
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 50, 3), 0);
        // negative ratio: clamped at 0; with swap, swap minus the negative part
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, -50, 0), 0);
        assert_eq!(commit_limit_bytes(RAM, 0, 62 * GIB, 4096, -50, 0), 31 * GIB);
        // > 100 accepted
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 200, 0), 124 * GIB);
        // no panic at the extremes
        assert_eq!(commit_limit_bytes(0, 0, 0, 4096, 50, 0), 0);
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 0, 50, 7), 0);
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 512, 50, 7), 0);
        assert_eq!(commit_limit_bytes(0, RAM, 0, 4096, 50, 0), 0);
        assert_eq!(
            commit_limit_bytes(u64::MAX, 0, u64::MAX, 4096, i128::MAX, 0),
            u64::MAX
        );
        assert_eq!(commit_limit_bytes(u64::MAX, 0, 0, 4096, i128::MIN, 0), 0);
        assert_eq!(
            commit_limit_bytes(u64::MAX, 0, u64::MAX, 4096, 0, u64::MAX),
            u64::MAX
        );
    }

    #[test]
    fn article_current_state_is_an_error() {
        let mut facts = with(proxy_host(), "vm.overcommit_memory", Some("2"));
        facts.mem.commit_limit = 517584 * 1024;
        facts.mem.committed_as = 3306488 * 1024;
        let out = run(&facts, "");
        assert!(out.settings.is_empty());
        let errors = findings(&out, Severity::Error);
        assert_eq!(errors.len(), 1);
        let m = &errors[0].message;
        assert!(m.contains("3306488 kB") && m.contains("517584 kB"), "{m}");
        assert!(m.contains("3.2 GiB") && m.contains("505.5 MiB"), "{m}");
        assert!(m.contains("refused now"), "{m}");

        // the same figures in heuristic mode are not enforced: no finding
        let facts = Facts {
            mem: facts.mem,
            ..proxy_host()
        };
        assert!(run(&facts, "").findings.is_empty());
    }

    #[test]
    fn no_input_no_settings() {
        let out = run(&proxy_host(), "");
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn heuristic_is_zero() {
        let facts = with(proxy_host(), "vm.overcommit_memory", Some("1"));
        let out = run(&facts, "[memory]\novercommit = \"heuristic\"");
        assert_eq!(out.settings.len(), 1);
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("0"));
        assert!(out.findings.is_empty());
        // managed even when unchanged
        let out = run(&proxy_host(), "[memory]\novercommit = \"heuristic\"");
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("0"));
    }

    #[test]
    fn always_warns() {
        let out = run(&proxy_host(), "[memory]\novercommit = \"always\"");
        assert_eq!(out.settings.len(), 1);
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("1"));
        let w = findings(&out, Severity::Warning);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("OOM killer"));
    }

    #[test]
    fn commit_target_without_strict_is_ignored() {
        let out = run(
            &proxy_host(),
            "[memory]\novercommit = \"heuristic\"\ncommit_target = \"40GiB\"",
        );
        assert_eq!(out.settings.len(), 1);
        let w = findings(&out, Severity::Warning);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("ignored"));
        let out = run(&proxy_host(), "[memory]\ncommit_target = \"40GiB\"");
        assert!(out.settings.is_empty());
        assert_eq!(findings(&out, Severity::Warning).len(), 1);
    }

    #[test]
    fn strict_keeps_a_sufficient_ratio() {
        // target = ceil(20 GiB × 1.2) = 25769803776 B (24 GiB) ≤ 31 GiB
        let out = run(&proxy_host(), "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("2"));
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("50"));
        assert_eq!(value(&out, "vm.overcommit_kbytes"), None);
        assert_eq!(out.settings.len(), 2);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(reason(&out, "vm.overcommit_ratio").contains("already holds"));
        assert!(out.steps.iter().any(|s| s.contains("25769803776")));
    }

    #[test]
    fn strict_raises_the_ratio() {
        // ratio 30: 4875878 pages = 18.6 GiB < 24 GiB; ceil(25769803776 × 100 / 62 GiB) = 39
        let facts = with(proxy_host(), "vm.overcommit_ratio", Some("30"));
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("39"));
        assert!(commit_limit_bytes(RAM, 0, 0, 4096, 39, 0) >= 25769803776);
        assert!(commit_limit_bytes(RAM, 0, 0, 4096, 38, 0) < 25769803776);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(reason(&out, "vm.overcommit_ratio").starts_with("raise CommitLimit 18.6 GiB"));
    }

    #[test]
    fn strict_steps_the_ratio_up() {
        // 62 GiB × 0.6 = 9751756.8 pages, truncated to 9751756 = 39943192576 B < target
        let target = 39943195000u64;
        assert_eq!(ratio_for_target(RAM, 0, 0, 4096, target as u128), Some((60, 61)));
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 60, 0), 39943192576);
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 61, 0), 40608915456);
        let out = run(
            &proxy_host(),
            &format!("[memory]\novercommit = \"strict\"\ncommit_target = {target}"),
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("61"));
        assert!(out.steps.iter().any(|s| s.contains("step ratio' up to 61")));
        assert!(out.findings.is_empty(), "{:?}", out.findings);

        // a tiny host where one step of the ratio is less than a page
        assert_eq!(ratio_for_target(150 * 4096, 0, 0, 4096, 5000), Some((1, 2)));
        assert_eq!(commit_limit_bytes(150 * 4096, 0, 0, 4096, 1, 0), 4096);
        assert_eq!(commit_limit_bytes(150 * 4096, 0, 0, 4096, 2, 0), 12288);
    }

    #[test]
    fn strict_ratio_matches_the_loop() {
        // the closed form equals the spec's loop on assorted hosts
        for (ram, huge, swap, target) in [
            (RAM, 0, 0, 40 * GIB as u128),
            (RAM, 2 * GIB, 3 * GIB + 5, 50 * GIB as u128 + 7),
            (150 * 4096 + 100, 4096, 4096 * 3 + 1, 99_999),
            (123_456_789, 0, 7, 1),
            (RAM, 0, 8 * GIB, 4 * GIB as u128),
        ] {
            let (first, got) = ratio_for_target(ram, huge, swap, 4096, target).unwrap();
            let mut r = first;
            while (commit_limit_bytes(ram, huge, swap, 4096, r as i128, 0) as u128) < target {
                r += 1;
            }
            assert_eq!(got, r, "{ram} {huge} {swap} {target}");
        }
    }

    #[test]
    fn strict_with_swap() {
        // 40 GiB target, 8 GiB swap: ceil(32 GiB × 100 / 62 GiB) = 52
        let mut facts = proxy_host();
        facts.mem.swap_total = 8 * GIB;
        let out = run(
            &facts,
            "[memory]\novercommit = \"strict\"\ncommit_target = \"40GiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("52"));
    }

    #[test]
    fn strict_subtracts_hugetlb() {
        // 30 GiB of huge pages: ratio 50 gives 16 GiB < 24 GiB;
        // ceil(24 GiB × 100 / 32 GiB) = 75 → 24 GiB exactly
        let mut facts = proxy_host();
        facts.mem.hugetlb = 30 * GIB;
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("75"));
        assert_eq!(commit_limit_bytes(RAM, 30 * GIB, 0, 4096, 75, 0), 24 * GIB);
    }

    #[test]
    fn ratio_above_100_warns() {
        // 80 GiB on 62 GiB: ceil(129.03) = 130, swap needed 18 GiB
        let out = run(
            &proxy_host(),
            "[memory]\novercommit = \"strict\"\ncommit_target = \"80GiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("130"));
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 130, 0), 86543589376);
        let w = findings(&out, Severity::Warning);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].message.contains("above 100"));
        assert!(
            w[0].message.contains("19327352832 B (18 GiB)"),
            "{}",
            w[0].message
        );
    }

    #[test]
    fn target_below_committed_warns() {
        // Committed_AS 20 GiB, target 10 GiB, current ratio 10 (6.2 GiB): raised to 17
        let facts = with(proxy_host(), "vm.overcommit_ratio", Some("10"));
        let out = run(
            &facts,
            "[memory]\novercommit = \"strict\"\ncommit_target = \"10GiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("17"));
        let w = findings(&out, Severity::Warning);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].message.contains("below Committed_AS"));
        assert!(w[0].message.contains("at once"));

        // a kept limit above Committed_AS refuses nothing: no warning
        let out = run(
            &proxy_host(),
            "[memory]\novercommit = \"strict\"\ncommit_target = \"10GiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("50"));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }

    #[test]
    fn kept_kbytes_are_managed_not_the_ratio() {
        // 40 GiB in kbytes ≥ 24 GiB target: keep, and pin kbytes (not the ratio)
        let facts = with(
            with(proxy_host(), "vm.overcommit_kbytes", Some("41943040")),
            "vm.overcommit_ratio",
            Some("0"),
        );
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("2"));
        assert_eq!(value(&out, "vm.overcommit_kbytes"), Some("41943040"));
        assert_eq!(value(&out, "vm.overcommit_ratio"), None);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(reason(&out, "vm.overcommit_kbytes").contains("overcommit_kbytes"));
    }

    #[test]
    fn kbytes_below_target_move_to_a_ratio() {
        // 10 GiB in kbytes < 24 GiB target: ratio 39, and say that kbytes go to 0
        let facts = with(
            with(proxy_host(), "vm.overcommit_kbytes", Some("10485760")),
            "vm.overcommit_ratio",
            Some("0"),
        );
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("39"));
        assert_eq!(value(&out, "vm.overcommit_kbytes"), None);
        assert!(reason(&out, "vm.overcommit_ratio").contains("overcommit_kbytes"));
        let info = findings(&out, Severity::Info);
        assert_eq!(info.len(), 1);
        assert!(info[0].message.contains("resets vm.overcommit_kbytes to 0"));
    }

    #[test]
    fn no_ram_outside_hugetlb_is_an_error() {
        let mut facts = with(proxy_host(), "vm.overcommit_ratio", Some("50"));
        facts.mem.hugetlb = RAM;
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), None);
        // the mode stays as it is
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("0"));
        assert_eq!(findings(&out, Severity::Error).len(), 1);
        assert_eq!(ratio_for_target(RAM, RAM, 0, 4096, 1), None);
        assert_eq!(ratio_for_target(0, 0, 0, 4096, 1), None);

        // the same host, zero RAM at all, a nonsense page size: no panic
        let mut facts = proxy_host();
        facts.mem.mem_total = 0;
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(findings(&out, Severity::Error).len(), 1);
        let mut facts = proxy_host();
        facts.page_size = 0;
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(findings(&out, Severity::Error).len(), 1);
        assert_eq!(value(&out, "vm.overcommit_ratio"), None);
    }

    #[test]
    fn huge_target_beyond_int_is_an_error() {
        let mut facts = with(proxy_host(), "vm.overcommit_ratio", Some("50"));
        facts.mem.mem_total = 4096;
        let out = run(
            &facts,
            "[memory]\novercommit = \"strict\"\ncommit_target = \"1000TiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), None);
        assert_eq!(findings(&out, Severity::Error).len(), 1);
    }

    #[test]
    fn absent_keys_are_not_managed() {
        let mut facts = proxy_host();
        for k in [MODE, RATIO, KBYTES] {
            facts = with(facts, k, None);
        }
        for mode in ["heuristic", "always", "strict"] {
            let out = run(&facts, &format!("[memory]\novercommit = \"{mode}\""));
            assert!(out.settings.is_empty(), "{mode}");
            assert!(
                findings(&out, Severity::Info)
                    .iter()
                    .any(|f| f.message.contains("absent")),
                "{mode}"
            );
        }
        // a host without facts at all
        let facts = Facts {
            sysctl: Default::default(),
            mem: Default::default(),
            ..proxy_host()
        };
        let out = run(
            &facts,
            "[memory]\novercommit = \"strict\"\ncommit_target = \"1GiB\"",
        );
        assert!(out.settings.is_empty());
    }

    #[test]
    fn negative_ratio_is_raised() {
        let facts = with(proxy_host(), "vm.overcommit_ratio", Some("-20"));
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("39"));
        assert!(reason(&out, "vm.overcommit_ratio").starts_with("raise CommitLimit 0 B"));
    }

    #[test]
    fn doc_has_the_sections() {
        for s in ["What it does", "Why", "Arithmetic", "Choices", "References"] {
            assert!(DOC.contains(s), "{s}");
        }
        assert!(DOC.lines().all(|l| l.chars().count() <= 92));
    }
}
