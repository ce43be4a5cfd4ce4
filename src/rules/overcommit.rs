//! Rule `overcommit`: the overcommit mode and, in strict mode, the CommitLimit. See [`DOC`].

use crate::host::{Facts, MemInfo};
use crate::keys;
use crate::profile::Overcommit as Mode;
use crate::units::human_bytes;

use super::{Code, Context, Hazard, Measure, Outcome, Proposal, Rule, Severity, Unit, Values};

pub const DOC: &str = "\
What it does
  Sets the kernel's overcommit mode from the profile's memory.overcommit, and in strict
  mode sizes the CommitLimit (through vm.overcommit_ratio, or keeps vm.overcommit_kbytes)
  so that it holds a target amount of committed address space, with the reserves the
  kernel keeps back from every allocation. Whatever the profile, it checks its model
  against the kernel (the CommitLimit it computes for the current values must be the one
  /proc/meminfo shows) and reports a host in strict mode whose Committed_AS is already
  above its CommitLimit. It reads vm.admin_reserve_kbytes and vm.user_reserve_kbytes and
  never sets them.

  heuristic -> vm.overcommit_memory = 0: since 5.2 refuses only a single request larger
               than RAM + swap; older kernels refuse a request larger than their estimate
               of free memory (free and page-cache pages, swap, reclaimable slab).
  always    -> vm.overcommit_memory = 1: refuses nothing (a warning says so).
  strict    -> vm.overcommit_memory = 2: an allocation fails with ENOMEM when Committed_AS
               would pass CommitLimit less the reserves, plus vm.overcommit_ratio (or
               vm.overcommit_kbytes).

Why
  In the article the batch host was killed by the OOM killer: with overcommit the kernel
  says yes to nearly every allocation and, when memory really runs out, kills processes.
  Strict mode turns that into a clean ENOMEM at allocation time, but only if CommitLimit
  is large enough: the article's host showed CommitLimit 517584 kB against Committed_AS
  3306488 kB, where every new allocation is refused. A limit has to be sized, not guessed.

Arithmetic (exact integers; facts in bytes, the kernel's formula in pages)
  ram_pages     = MemTotal / page        swap_pages = SwapTotal / page
  hugetlb_pages = hugetlb / page, hugetlb = Hugetlb: of /proc/meminfo; where that line
                  is missing (kernels before 4.16), HugePages_Total x Hugepagesize
  commit_limit  = (kbytes ? kbytes / (page/1024)
                          : (ram_pages - hugetlb_pages) x ratio / 100) + swap_pages  pages
  (the kernel's vm_commit_limit in mm/util.c, integer division; /proc/meminfo prints it
  as CommitLimit, meminfo_proc_show in fs/proc/meminfo.c. Checked: MemTotal 24731708 kB,
  ratio 50, page 4096 -> 3091463 pages = 12365852 kB, exactly /proc/meminfo's CommitLimit)

  check: commit_limit(current ratio or kbytes) must equal /proc/meminfo's CommitLimit to
  the kB. When it does not, the host has something the model lacks: an error names both
  figures and the rule changes nothing (its keys are shown unchanged).

  reserves: in mode 2 a non-root allocation succeeds only while
    Committed_AS + request < CommitLimit - admin_reserve
                             - min(total_vm / 32, user_reserve)
  (__vm_enough_memory in mm/util.c), admin_reserve = vm.admin_reserve_kbytes and
  user_reserve = vm.user_reserve_kbytes, each truncated to pages as the kernel does. So
    fits(limit) = limit - admin_reserve - user_reserve >= target
  (the whole user reserve: it is what a process large enough, total_vm / 32 >= reserve,
  meets). Where the keys are absent: the kernel's defaults (init_admin_reserve,
  init_user_reserve in mm/mmap.c), min(free / 32, 8 MiB) and min(free / 32, 128 MiB) of
  the memory free at boot, taken here as min(MemTotal / 32, 8 MiB) and
  min(MemTotal / 32, 128 MiB); an info finding says so.

  strict:
  target  = memory.commit_target as given (no headroom; a size, or a share of RAM:
            \"80%\" = floor(MemTotal x 80 / 100)), else ceil(Committed_AS x headroom)
  keep the current limit (from the ratio, or from overcommit_kbytes when non-zero) if it
  fits target: strict mode only ever raises the limit (a limit sized down to an idle
  host's Committed_AS refuses allocations the moment the service starts). Else
  ratio'  = ceil(max(0, target + admin_reserve + user_reserve - swap) x 100
                 / (ram - hugetlb)),
            then stepped up by 1 while commit_limit(ratio') does not fit target (the
            kernel truncates to pages).
  Warning: ratio' > 100 (the limit exceeds RAM: add swap of at least
  target + admin_reserve + user_reserve - (ram - hugetlb) and keep ratio 100, or use
  heuristic mode).
  Error, and the mode left as it is (the ratio is still shown): the resulting CommitLimit,
  kept or raised, below Committed_AS; it would refuse allocations at once, and apply
  refuses the plan. A target below Committed_AS alone is no error when the limit kept is
  above Committed_AS.

  Writing overcommit_ratio sets overcommit_kbytes to 0 in the kernel, and writing
  overcommit_kbytes (even 0) sets the ratio to 0 (overcommit_ratio_handler,
  overcommit_kbytes_handler in mm/util.c), so the plan never writes both. When a non-zero
  overcommit_kbytes limit is kept, the plan manages overcommit_kbytes with its current
  value: a drop-in pinning the ratio would wipe the kbytes limit at the next boot and
  leave strict mode with a limit of swap alone.

  Current state, whatever the profile: mode 2 with Committed_AS above CommitLimit (both
  as /proc/meminfo shows them) is an error: allocations are being refused now.

Choices
  - The current limit is computed with the kernel's formula from the effective facts
    (the profile's [host] ram and swap applied), so a plan for another host is
    consistent; that host's /proc/meminfo is not read, so its CommitLimit is the
    formula's and the check holds by construction.
  - Before 4.16, HugePages_Total x Hugepagesize counts only the default huge page size;
    huge pages of another size are in the kernel's hugetlb_total_pages but not in
    /proc/meminfo (hugetlb_report_meminfo in mm/hugetlb.c): the check then fails, as it
    should.
  - The kernel compares strictly (<); fits uses >=, as sysctune's arithmetic specifies:
    a limit that fits exactly leaves the last page of the target refused.
  - Absent reserve keys (kernels before 3.10, or hidden): the free memory at boot is not
    known and is at most MemTotal, so the assumed reserves are at least the kernel's.
  - The step-up loop is computed in closed form: the least ratio with
    floor((ram_pages - hugetlb_pages) x ratio / 100)
      >= ceil(target / page) + admin_reserve_pages + user_reserve_pages - swap_pages,
    and ratio' is the larger of that and the ceil above (the loop's result, exactly).
  - The swap suggested with ratio' > 100 covers the reserves too: with only
    target - (ram - hugetlb) of swap the limit would still not fit the target.
  - A resulting limit at least Committed_AS but below Committed_AS plus the reserves:
    a warning (only root can allocate at once).
  - A negative ratio (the kernel accepts it) is computed in i128 and the limit clamped
    at 0; the kernel's unsigned arithmetic would wrap instead.
  - When strict mode cannot be sized (no RAM outside hugetlb, a ratio beyond the
    kernel's int, an invalid page size) an error says so, no ratio is written, and the
    mode keeps its current value: strict mode with an unsized limit would refuse
    allocations at once.
  - memory.commit_target without strict mode is ignored, with a warning.
  - Moving from overcommit_kbytes to a ratio is said in the reason and an info finding;
    overcommit_kbytes itself is not written (the kernel zeroes it when the ratio is).

References
  mm/util.c: vm_commit_limit(), __vm_enough_memory(), overcommit_ratio_handler(),
  overcommit_kbytes_handler(); mm/mmap.c: init_admin_reserve(), init_user_reserve();
  fs/proc/meminfo.c: meminfo_proc_show() (CommitLimit, Committed_AS); mm/hugetlb.c:
  hugetlb_report_meminfo() (the Hugetlb: line since 4.16), hugetlb_total_pages();
  Documentation/admin-guide/sysctl/vm.rst (overcommit_memory, overcommit_ratio,
  overcommit_kbytes, admin_reserve_kbytes, user_reserve_kbytes);
  Documentation/mm/overcommit-accounting.rst; the article (CommitLimit 517584 kB,
  Committed_AS 3306488 kB; the OOM killer under high concurrency).
";

const MODE: &str = "vm.overcommit_memory";
const RATIO: &str = "vm.overcommit_ratio";
const KBYTES: &str = "vm.overcommit_kbytes";
const ADMIN_RESERVE: &str = "vm.admin_reserve_kbytes";
const USER_RESERVE: &str = "vm.user_reserve_kbytes";

/// The kernel's default caps of the reserves, in kB (`init_admin_reserve`,
/// `init_user_reserve` in mm/mmap.c): 8 MiB and 128 MiB.
const ADMIN_RESERVE_CAP_KB: u64 = 1 << 13;
const USER_RESERVE_CAP_KB: u64 = 1 << 17;

pub struct Overcommit;

impl Rule for Overcommit {
    fn code(&self) -> Code {
        Code::Overcommit
    }

    fn keys(&self) -> &'static [&'static str] {
        &[MODE, RATIO, KBYTES]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, ctx: &Context) -> Outcome {
        let mut out = Outcome::default();
        let id = self.code();
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

        if let Some(check) = CommitCheck::of(facts) {
            // Without the input the rule shows no arithmetic, but a mismatch is still an error.
            if memory.overcommit.is_some() {
                out.step(check.step());
            }
            if !check.matches() {
                out.finding(Severity::Error, id, check.mismatch());
                if let Some(mode) = memory.overcommit {
                    unchanged(&mut out, facts, id, mode);
                }
                return out;
            }
        }

        match memory.overcommit {
            None => {}
            Some(Mode::Heuristic) => {
                let reason = match keys::kernel_version(&facts.kernel) {
                    Some(v) if v < (5, 2) => "heuristic: refuse requests above the free-memory estimate",
                    _ => "heuristic: refuse only requests larger than RAM + swap",
                };
                out.set_checked(facts, id, MODE, "0", reason);
            }
            Some(Mode::Always) => {
                out.set_checked(
                    facts,
                    id,
                    MODE,
                    "1",
                    "always: never refuse; the OOM killer acts when memory runs out",
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

    fn capacity(&self, ctx: &Context, v: &Values) -> Vec<(&'static Measure, Option<u64>)> {
        vec![(&COMMIT_LIMIT, Some(commit_limit_with(ctx.facts, v)))]
    }

    fn hazards(&self, p: &Proposal) -> crate::error::Result<Vec<Hazard>> {
        Ok(hazard(p).into_iter().collect())
    }
}

pub const COMMIT_LIMIT: Measure = Measure::new("commit_limit", "CommitLimit", false, Unit::Bytes);

/// The CommitLimit the kernel computes from `values` (ratio or kbytes) on the host of
/// `facts` (RAM, huge pages, swap, page size).
pub fn commit_limit_with(f: &Facts, values: &Values) -> u64 {
    let int = |k: &str| values(k).and_then(|v| v.trim().parse::<i128>().ok());
    let ratio = int(RATIO).unwrap_or(50);
    let kbytes = int(KBYTES).and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
    commit_limit_bytes(
        f.mem.mem_total,
        f.mem.hugetlb,
        f.mem.swap_total,
        f.page_size,
        ratio,
        kbytes,
    )
}

/// Strict overcommit (2) with a CommitLimit below what is committed now (Committed_AS):
/// every new allocation would fail at once, the article's OOM incident.
fn hazard(p: &Proposal) -> Option<Hazard> {
    let strict = match (p.setting)(MODE) {
        Some((v, _)) => v == "2",
        None => p.facts.value(MODE) == Some("2"),
    };
    let changes = [MODE, RATIO, KBYTES]
        .iter()
        .any(|k| (p.setting)(k).is_some_and(|(_, change)| change));
    let limit = p.capacity.get(COMMIT_LIMIT.name).recommended?;
    let committed = p.facts.mem.committed_as;
    (strict && changes && limit < committed).then(|| Hazard {
        key: MODE,
        message: format!(
            "strict overcommit with a CommitLimit of {} is below the {} committed now (Committed_AS): every new \
             allocation would fail at once",
            human_bytes(u128::from(limit)),
            human_bytes(u128::from(committed))
        ),
    })
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

/// What the kernel keeps back from a non-root allocation in strict mode
/// (`__vm_enough_memory`), in kB as the sysctls hold them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserves {
    /// `vm.admin_reserve_kbytes`.
    pub admin_kb: u64,
    /// `vm.user_reserve_kbytes`.
    pub user_kb: u64,
    /// Which of the two were absent and assumed at the kernel's default.
    pub admin_assumed: bool,
    pub user_assumed: bool,
}

impl Reserves {
    pub fn new(admin_kb: u64, user_kb: u64) -> Reserves {
        Reserves {
            admin_kb,
            user_kb,
            admin_assumed: false,
            user_assumed: false,
        }
    }

    /// The host's reserves; an absent key is the kernel's default, `min(free / 32, cap)`
    /// with MemTotal for the memory free at boot (which is at most MemTotal).
    pub fn of(facts: &Facts) -> Reserves {
        let default = |cap: u64| (facts.mem.mem_total / 1024 / 32).min(cap);
        let admin = facts.u64(ADMIN_RESERVE);
        let user = facts.u64(USER_RESERVE);
        Reserves {
            admin_kb: admin.unwrap_or_else(|| default(ADMIN_RESERVE_CAP_KB)),
            user_kb: user.unwrap_or_else(|| default(USER_RESERVE_CAP_KB)),
            admin_assumed: admin.is_none(),
            user_assumed: user.is_none(),
        }
    }

    /// Both reserves in bytes, for the first estimate of ratio'.
    pub fn bytes(&self) -> u128 {
        (self.admin_kb as u128 + self.user_kb as u128) * 1024
    }

    /// Both reserves in pages, each truncated as the kernel does
    /// (`kbytes >> (PAGE_SHIFT - 10)`); `page` ≥ 1024.
    fn pages(&self, page: u64) -> i128 {
        let per = (page / 1024).max(1) as i128;
        self.admin_kb as i128 / per + self.user_kb as i128 / per
    }
}

/// The smallest ratio whose CommitLimit fits `target` bytes with the reserves, as
/// the rule's DOC gives it: `ceil(max(0, target + reserves − swap) × 100 / (ram −
/// hugetlb))`, stepped up while the limit does not fit. Returns (the first ratio, the
/// stepped-up ratio), or `None` when no RAM is left outside hugetlb (or the page size is
/// unusable).
pub fn ratio_for_target(
    mem_total: u64,
    hugetlb: u64,
    swap_total: u64,
    page: u64,
    reserves: &Reserves,
    target: u128,
) -> Option<(u128, u128)> {
    let g = Geometry::new(mem_total, hugetlb, swap_total, page)?;
    let usable = g.usable_pages();
    let usable_bytes = mem_total.saturating_sub(hugetlb) as u128;
    if usable <= 0 || usable_bytes == 0 {
        return None;
    }
    let first = target
        .saturating_add(reserves.bytes())
        .saturating_sub(swap_total as u128)
        .saturating_mul(100)
        .div_ceil(usable_bytes);
    // The step-up loop in closed form: the least r with
    // floor(usable × r / 100) + swap_pages − reserve_pages ≥ ceil(target / page).
    let need = (target.div_ceil(page as u128) as i128)
        .saturating_add(reserves.pages(page))
        .saturating_sub(g.swap_pages)
        .max(0) as u128;
    let least = need.saturating_mul(100).div_ceil(usable as u128);
    Some((first, first.max(least)))
}

/// Whether a CommitLimit of `limit_pages` fits `target` bytes: what is left after the
/// reserves holds it (`__vm_enough_memory`).
pub fn fits(limit_pages: i128, page: u64, reserves: &Reserves, target: u128) -> bool {
    allowed_bytes(limit_pages, page, reserves) >= target
}

/// What a non-root allocation may reach: the limit less both reserves, in bytes.
fn allowed_bytes(limit_pages: i128, page: u64, reserves: &Reserves) -> u128 {
    let allowed = limit_pages.saturating_sub(reserves.pages(page)).max(0);
    (allowed as u128).saturating_mul(page as u128)
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

    /// The formula with the numbers: `(4066309 − 0) × 50 / 100 + 0`.
    fn formula(&self, ratio: i128, kbytes: u64) -> String {
        if kbytes > 0 {
            format!(
                "overcommit_kbytes / (page/1024) + swap_pages = {kbytes} / {} + {}",
                self.page / 1024,
                self.swap_pages
            )
        } else {
            format!(
                "(ram_pages − hugetlb_pages) × ratio / 100 + swap_pages = ({} − {}) × {ratio} / 100 + {}",
                self.ram_pages, self.hugetlb_pages, self.swap_pages
            )
        }
    }
}

/// The CommitLimit the kernel's formula gives for the current values, against the one
/// /proc/meminfo shows: the model is checked against the kernel before it sizes anything.
struct CommitCheck {
    geometry: Geometry,
    ratio: i128,
    kbytes: u64,
    /// The formula's limit, in pages.
    pages: i128,
    /// /proc/meminfo's CommitLimit, in bytes.
    meminfo: u64,
}

impl CommitCheck {
    /// `None` when the limit cannot be computed: no ratio (and no kbytes) to compute it
    /// from, or an unusable page size (strict mode reports that on its own).
    fn of(facts: &Facts) -> Option<CommitCheck> {
        let geometry = Geometry::of(&facts.mem, facts.page_size)?;
        let kbytes = facts.u64(KBYTES).unwrap_or(0);
        let ratio = match facts.int(RATIO) {
            Some(r) => r,
            None if kbytes > 0 => 0,
            None => return None,
        };
        Some(CommitCheck {
            geometry,
            ratio,
            kbytes,
            pages: geometry.limit_pages(ratio, kbytes),
            meminfo: facts.mem.commit_limit,
        })
    }

    fn formula_kb(&self) -> u128 {
        self.geometry.bytes_of(self.pages) / 1024
    }

    fn meminfo_kb(&self) -> u128 {
        self.meminfo as u128 / 1024
    }

    fn matches(&self) -> bool {
        self.formula_kb() == self.meminfo_kb()
    }

    fn step(&self) -> String {
        format!(
            "check: CommitLimit = {} = {} pages = {} kB; /proc/meminfo CommitLimit {} kB: {}",
            self.geometry.formula(self.ratio, self.kbytes),
            self.pages,
            self.formula_kb(),
            self.meminfo_kb(),
            if self.matches() { "equal" } else { "different" }
        )
    }

    fn mismatch(&self) -> String {
        format!(
            "/proc/meminfo shows CommitLimit {} kB, but the kernel's formula for the current values gives {} kB (vm_commit_limit in mm/util.c: {} = {} pages): the host has something this model lacks (huge pages of a size HugePages_Total does not count, memory added or removed since boot, a container's own /proc/meminfo), so rule overcommit changes nothing; compare Hugetlb, MemTotal and SwapTotal with the kernel's.",
            self.meminfo_kb(),
            self.formula_kb(),
            self.geometry.formula(self.ratio, self.kbytes),
            self.pages
        )
    }
}

/// The CommitLimit check failed: the rule's keys stay as they are (managed, since the
/// profile asks about them), the mode and, for strict mode, the key of the limit.
fn unchanged(out: &mut Outcome, facts: &Facts, id: Code, mode: Mode) {
    const WHY: &str = "unchanged: /proc/meminfo's CommitLimit is not the formula's";
    match facts.value(MODE) {
        Some(v) => {
            out.set_checked(facts, id, MODE, v, WHY);
        }
        None => out.absent(id, MODE),
    }
    if mode != Mode::Strict {
        return;
    }
    let key = if facts.u64(KBYTES).unwrap_or(0) > 0 {
        KBYTES
    } else {
        RATIO
    };
    match facts.value(key) {
        Some(v) => {
            out.set_checked(facts, id, key, v, WHY);
        }
        None => out.absent(id, key),
    }
}

/// What strict mode does with the limit.
#[derive(Clone, Copy)]
enum Limit {
    /// Keep the current non-zero overcommit_kbytes.
    KeepKbytes(u64),
    /// Keep the current ratio.
    KeepRatio(i128),
    /// Write a new ratio (from a kbytes limit when `from_kbytes`).
    Raise { ratio: i128, from_kbytes: bool },
}

impl Limit {
    /// The CommitLimit it gives, in pages.
    fn pages(self, g: &Geometry) -> i128 {
        match self {
            Limit::KeepKbytes(k) => g.limit_pages(0, k),
            Limit::KeepRatio(r) | Limit::Raise { ratio: r, .. } => g.limit_pages(r, 0),
        }
    }
}

/// Strict mode (2): the CommitLimit sized to hold the target with the reserves, raised
/// only, and the mode set only when the result does not refuse allocations at once.
fn strict(ctx: &Context, id: Code, out: &mut Outcome) {
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
    geometry_steps(&g, facts, out);
    let target = target(ctx, out);
    let reserves = Reserves::of(facts);
    reserve_steps(&reserves, &g, &mem, id, out);

    let kbytes = facts.u64(KBYTES).unwrap_or(0);
    let ratio = facts.int(RATIO);
    let current: Option<i128> = if kbytes > 0 {
        Some(g.limit_pages(0, kbytes))
    } else {
        ratio.map(|r| g.limit_pages(r, 0))
    };
    match current {
        Some(p) => out.step(format!(
            "current CommitLimit = {} = {}",
            g.formula(ratio.unwrap_or(0), kbytes),
            g.show(p)
        )),
        None => out.step("current CommitLimit unknown: vm.overcommit_ratio is absent"),
    }
    let sizing = Sizing {
        g: &g,
        mem: &mem,
        reserves: &reserves,
        target,
    };
    let Some(limit) = choose(&sizing, current, ratio, kbytes, id, out) else {
        keep_mode(out, facts, id, current_mode);
        return;
    };
    set_mode(&sizing, facts, limit.pages(&g), current_mode, id, out);
    emit_limit(&sizing, facts, limit, current, kbytes, id, out);
}

/// What strict mode is sized from: the page geometry, the host's memory, the reserves and
/// the target in bytes.
struct Sizing<'a> {
    g: &'a Geometry,
    mem: &'a MemInfo,
    reserves: &'a Reserves,
    target: u128,
}

/// The steps of the page geometry: RAM, huge pages and swap in pages.
fn geometry_steps(g: &Geometry, facts: &Facts, out: &mut Outcome) {
    let mem = facts.mem;
    out.step(format!(
        "ram_pages = MemTotal / page = {} / {} = {}",
        mem.mem_total,
        g.page,
        g.show(g.ram_pages)
    ));
    let huge_source = match keys::kernel_version(&facts.kernel) {
        Some(v) if v < (4, 16) => "HugePages_Total × Hugepagesize (no Hugetlb: line before 4.16)",
        _ => "Hugetlb",
    };
    out.step(format!(
        "hugetlb_pages = {huge_source} / page = {} / {} = {}",
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
}

/// The committed address space to hold: memory.commit_target, else Committed_AS with the
/// headroom.
fn target(ctx: &Context, out: &mut Outcome) -> u128 {
    let mem = ctx.facts.mem;
    match ctx.profile.memory.commit_target {
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
    }
}

/// Keep the current limit when it holds the target with the reserves, else the smallest
/// ratio that does; `None` when none can.
fn choose(
    z: &Sizing,
    current: Option<i128>,
    ratio: Option<i128>,
    kbytes: u64,
    id: Code,
    out: &mut Outcome,
) -> Option<Limit> {
    let (g, reserves, target) = (z.g, z.reserves, z.target);
    let limit = match current {
        Some(p) if fits(p, g.page, reserves, target) => {
            out.step(format!(
                "fits: CommitLimit − reserves = {} ≥ target {}: keep it (strict mode only raises the limit)",
                bytes(allowed_bytes(p, g.page, reserves)),
                bytes(target)
            ));
            if kbytes > 0 {
                Limit::KeepKbytes(kbytes)
            } else {
                // `current` is Some only with a ratio here.
                Limit::KeepRatio(ratio.unwrap_or(0))
            }
        }
        _ => {
            if let Some(p) = current {
                out.step(format!(
                    "does not fit: CommitLimit − reserves = {} < target {}",
                    bytes(allowed_bytes(p, g.page, reserves)),
                    bytes(target)
                ));
            }
            match raise(g, z.mem, reserves, target, id, out) {
                Some(r) => Limit::Raise {
                    ratio: r,
                    from_kbytes: kbytes > 0,
                },
                None => return None,
            }
        }
    };

    Some(limit)
}

/// Set strict mode unless the new limit is below Committed_AS (revision 2, item 9: every
/// allocation would be refused at once; the mode stays, the limit is still shown), with a
/// warning when only root could allocate.
fn set_mode(
    z: &Sizing,
    facts: &Facts,
    new_pages: i128,
    current_mode: Option<String>,
    id: Code,
    out: &mut Outcome,
) {
    let (g, reserves, target) = (z.g, z.reserves, z.target);
    let new_bytes = g.bytes_of(new_pages);
    let committed = z.mem.committed_as as u128;
    let below_committed = new_bytes < committed;
    if below_committed {
        out.finding(
            Severity::Error,
            id,
            format!(
                "Strict overcommit is not applied: the resulting CommitLimit {} is below Committed_AS {}, so every new allocation would be refused at once; vm.overcommit_memory stays as it is. Raise memory.commit_target (now {}) to at least Committed_AS, add swap, or keep heuristic mode.",
                bytes(new_bytes),
                bytes(committed),
                bytes(target)
            ),
        );
        keep_mode_because(
            out,
            facts,
            id,
            current_mode,
            "unchanged: strict mode would refuse allocations at once",
        );
    } else {
        out.set_checked(
            facts,
            id,
            MODE,
            "2",
            "strict: refuse allocations beyond CommitLimit, no OOM kill",
        );
        let allowed = allowed_bytes(new_pages, g.page, reserves);
        if allowed < committed {
            out.finding(
                Severity::Warning,
                id,
                format!(
                    "The CommitLimit {} less the reserves is {}, below Committed_AS {}: in strict mode only root can allocate at once; raise memory.commit_target to at least Committed_AS plus the reserves ({}).",
                    bytes(new_bytes),
                    bytes(allowed),
                    bytes(committed),
                    bytes(committed + reserves.bytes())
                ),
            );
        }
    }
}

/// The limit's key: the kbytes or ratio kept, or the ratio raised (which resets kbytes).
/// `current`: the current limit in pages, when known.
fn emit_limit(
    z: &Sizing,
    facts: &Facts,
    limit: Limit,
    current: Option<i128>,
    kbytes: u64,
    id: Code,
    out: &mut Outcome,
) {
    let target = z.target;
    let current_bytes = current.map(|p| z.g.bytes_of(p));
    let new_bytes = z.g.bytes_of(limit.pages(z.g));
    match limit {
        Limit::KeepKbytes(k) => {
            out.set_checked(
                facts,
                id,
                KBYTES,
                &k.to_string(),
                format!(
                    "CommitLimit {} from overcommit_kbytes holds the target {}",
                    human_bytes(new_bytes),
                    human_bytes(target)
                ),
            );
        }
        Limit::KeepRatio(r) => {
            out.set_checked(
                facts,
                id,
                RATIO,
                &r.to_string(),
                format!(
                    "CommitLimit {} already holds the target {}",
                    human_bytes(new_bytes),
                    human_bytes(target)
                ),
            );
        }
        Limit::Raise {
            ratio: r,
            from_kbytes,
        } => {
            let new = human_bytes(new_bytes);
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
            if out.set_checked(facts, id, RATIO, &r.to_string(), reason) && from_kbytes {
                out.finding(
                    Severity::Info,
                    id,
                    format!(
                        "vm.overcommit_kbytes = {kbytes} gives a CommitLimit of {}, which does not hold the target {} with the reserves; the plan sets vm.overcommit_ratio = {r} instead, and writing the ratio resets vm.overcommit_kbytes to 0 in the kernel.",
                        bytes(current_bytes.unwrap_or(0)),
                        bytes(target)
                    ),
                );
            }
        }
    }
}

/// The reserves' steps, and an info finding for those assumed at the kernel's default.
fn reserve_steps(r: &Reserves, g: &Geometry, mem: &MemInfo, id: Code, out: &mut Outcome) {
    let per = g.page / 1024;
    let source = |assumed: bool, key: &str, cap: &str| {
        if assumed {
            format!("absent, assumed min(MemTotal / 32, {cap})")
        } else {
            key.to_string()
        }
    };
    out.step(format!(
        "admin_reserve = {} = {} kB = {} pages; user_reserve = {} = {} kB = {} pages",
        source(r.admin_assumed, ADMIN_RESERVE, "8 MiB"),
        r.admin_kb,
        r.admin_kb / per,
        source(r.user_assumed, USER_RESERVE, "128 MiB"),
        r.user_kb,
        r.user_kb / per
    ));
    let assumed: Vec<(&str, String)> = [
        (r.admin_assumed, ADMIN_RESERVE, r.admin_kb, "8 MiB"),
        (r.user_assumed, USER_RESERVE, r.user_kb, "128 MiB"),
    ]
    .iter()
    .filter(|(a, ..)| *a)
    .map(|&(_, key, kb, cap)| (key, format!("{key} = {kb} (min(MemTotal / 32, {cap}))")))
    .collect();
    if !assumed.is_empty() {
        let keys: Vec<&str> = assumed.iter().map(|(k, _)| *k).collect();
        let values: Vec<&str> = assumed.iter().map(|(_, v)| v.as_str()).collect();
        out.finding(
            Severity::Info,
            id,
            format!(
                "{} absent (the keys exist since 3.10): strict mode is sized with the kernel's default, {}, taking MemTotal {} kB for the memory free at boot that the kernel divides, so at least the kernel's reserve.",
                match keys[..] {
                    [one] => format!("{one} is"),
                    _ => format!("{} are", keys.join(" and ")),
                },
                values.join(" and "),
                mem.mem_total / 1024
            ),
        );
    }
}

/// Compute ratio' for `target`, with its steps and findings; `None` (with an error
/// finding) when no valid ratio can size the limit.
fn raise(
    g: &Geometry,
    mem: &MemInfo,
    reserves: &Reserves,
    target: u128,
    id: Code,
    out: &mut Outcome,
) -> Option<i128> {
    let usable_bytes = mem.mem_total.saturating_sub(mem.hugetlb) as u128;
    let Some((first, ratio)) = ratio_for_target(
        mem.mem_total,
        mem.hugetlb,
        mem.swap_total,
        g.page,
        reserves,
        target,
    ) else {
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
        "ratio' = ceil(max(0, target + admin_reserve + user_reserve − swap) × 100 / (ram − hugetlb)) = ceil(max(0, {target} + {} − {}) × 100 / {usable_bytes}) = {first}",
        reserves.bytes(),
        mem.swap_total
    ));
    let show = |r: u128| {
        let p = g.limit_pages(i128::try_from(r).unwrap_or(i128::MAX), 0);
        (g.show(p), g.bytes_of(p), allowed_bytes(p, g.page, reserves))
    };
    if ratio > first {
        let (shown, b, allowed) = show(first);
        out.step(format!(
            "commit_limit({first}) = {shown} ({b} B), less the reserves {allowed} B < target {target} B: step ratio' up to {ratio}"
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
    let (shown, b, allowed) = show(ratio);
    out.step(format!(
        "commit_limit({ratio}) = ({} − {}) × {ratio} / 100 + {} = {shown} ({b} B), less the reserves {allowed} B ≥ target {target} B",
        g.ram_pages, g.hugetlb_pages, g.swap_pages
    ));
    if ratio > 100 {
        // With ratio 100 the limit is the RAM outside hugetlb plus swap; it fits once swap
        // covers the rest of the target and the reserves.
        let swap_needed = target
            .saturating_add(reserves.bytes())
            .saturating_sub(usable_bytes);
        out.finding(
            Severity::Warning,
            id,
            format!(
                "vm.overcommit_ratio = {ratio} is above 100: the CommitLimit {} exceeds the RAM outside hugetlb, {}; add at least {} of swap (the target plus the reserves, less that RAM) and keep the ratio at 100 (the article added swap), or use \"heuristic\".",
                bytes(b),
                bytes(usable_bytes),
                bytes(swap_needed)
            ),
        );
    }
    Some(r as i128)
}

/// Strict mode could not be sized or would refuse allocations at once: keep the mode as
/// it is (managed, since the profile asks about it).
fn keep_mode(out: &mut Outcome, facts: &Facts, id: Code, current: Option<String>) {
    keep_mode_because(
        out,
        facts,
        id,
        current,
        "unchanged: the strict CommitLimit cannot be sized",
    );
}

fn keep_mode_because(out: &mut Outcome, facts: &Facts, id: Code, current: Option<String>, why: &str) {
    match current {
        Some(mode) => {
            out.set_checked(facts, id, MODE, &mode, why);
        }
        None => out.absent(id, MODE),
    }
}

/// The finding about the host as it is, whatever the profile: strict mode with
/// Committed_AS already above CommitLimit refuses allocations now.
fn current_state(facts: &Facts, id: Code, out: &mut Outcome) {
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
    const MIB: u64 = 1 << 20;
    const RAM: u64 = 62 * GIB;
    /// The kernel's default reserves on a host with 4 GiB or more free at boot: 8 MiB
    /// admin + 128 MiB user = 136 MiB = 34816 pages.
    const RESERVES: u128 = 136 * MIB as u128;

    /// The article's proxy with the reserve keys at their usual values (8 MiB, 128 MiB).
    fn host() -> Facts {
        with(
            with(proxy_host(), ADMIN_RESERVE, Some("8192")),
            USER_RESERVE,
            Some("131072"),
        )
    }

    /// /proc/meminfo's CommitLimit as the kernel computes it from the other facts.
    fn consistent(mut f: Facts) -> Facts {
        f.mem.commit_limit = commit_limit_with(&f, &|k| f.value(k).map(str::to_string));
        f
    }

    fn no_reserves(f: Facts) -> Facts {
        with(with(f, ADMIN_RESERVE, Some("0")), USER_RESERVE, Some("0"))
    }

    const USUAL: Reserves = Reserves {
        admin_kb: 8192,
        user_kb: 131072,
        admin_assumed: false,
        user_assumed: false,
    };
    const NONE: Reserves = Reserves {
        admin_kb: 0,
        user_kb: 0,
        admin_assumed: false,
        user_assumed: false,
    };

    // ---- the kernel's formula and the worked numbers ----------------------------------

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
        // The proxy host: 62 GiB, ratio 50, no swap → 33285996544
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

    /// The article: `CommitLimit 517584 kB, Committed_AS 3306488 kB` in strict mode, on a
    /// host whose formula gives that limit (2070336 kB of RAM, ratio 25).
    #[test]
    fn article_current_state_is_an_error() {
        let mut facts = with(with(host(), "vm.overcommit_memory", Some("2")), RATIO, Some("25"));
        facts.mem.mem_total = 2070336 * 1024;
        facts.mem.committed_as = 3306488 * 1024;
        let facts = consistent(facts);
        assert_eq!(facts.mem.commit_limit, 517584 * 1024);
        let out = run(&facts, "");
        assert!(out.settings.is_empty());
        let errors = findings(&out, Severity::Error);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let m = &errors[0].message;
        assert!(m.contains("3306488 kB") && m.contains("517584 kB"), "{m}");
        assert!(m.contains("3.2 GiB") && m.contains("505.5 MiB"), "{m}");
        assert!(m.contains("refused now"), "{m}");

        // the same figures in heuristic mode are not enforced: no finding
        let facts = with(facts, "vm.overcommit_memory", Some("0"));
        assert!(run(&facts, "").findings.is_empty());
    }

    /// "The hugetlb host": a 3.10 host with 8 GiB of 2 MiB huge pages and no Hugetlb:
    /// line. Counted from HugePages_Total × Hugepagesize, the formula gives
    /// /proc/meminfo's CommitLimit (3938312 kB); read as 0 it gave 8132616 kB, twice the
    /// real limit, and strict mode kept a ratio that does not hold the target.
    #[test]
    fn hugetlb_host_before_4_16() {
        let meminfo = "MemTotal:       16265236 kB\nSwapTotal:             0 kB\nHugePages_Total:    4096\nHugePages_Free:     4096\nHugepagesize:       2048 kB\nCommitLimit:     3938312 kB\nCommitted_AS:    3306488 kB\n";
        let mut facts = host();
        facts.kernel = "3.10.0-862.el7.x86_64".into();
        facts.mem = crate::host::meminfo::parse(meminfo).unwrap();
        assert_eq!(facts.mem.hugetlb, 8 * GIB);
        // (4066309 − 2097152) × 50 / 100 = 984578 pages = 3938312 kB, to the kB
        let limit = commit_limit_bytes(facts.mem.mem_total, facts.mem.hugetlb, 0, 4096, 50, 0);
        assert_eq!(limit / 4096, 984578);
        assert_eq!(limit / 1024, 3938312);
        assert_eq!(limit, facts.mem.commit_limit);
        // without the huge pages: 2033154 pages = 8132616 kB, 2.06 × the kernel's
        assert_eq!(
            commit_limit_bytes(facts.mem.mem_total, 0, 0, 4096, 50, 0) / 1024,
            8132616
        );

        // target = ceil(3306488 kB × 1.2) = 4063012455 B; ratio 50 less the reserves holds
        // 3.6 GiB: raise to ceil((4063012455 + 142606336) × 100 / 8065667072) = ceil(52.1)
        // = 53: 4174612 kB (52 gives 4095844 kB, less the reserves 3.77 GiB < 3.78 GiB)
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert!(findings(&out, Severity::Error).is_empty(), "{:?}", out.findings);
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("2"));
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("53"));
        assert_eq!(
            commit_limit_bytes(facts.mem.mem_total, 8 * GIB, 0, 4096, 53, 0) / 1024,
            4174612
        );
        assert_eq!(
            ratio_for_target(facts.mem.mem_total, 8 * GIB, 0, 4096, &USUAL, 4063012455),
            Some((53, 53))
        );
        assert!(reason(&out, "vm.overcommit_ratio").starts_with("raise CommitLimit 3.8 GiB"));
        assert!(
            out.steps
                .iter()
                .any(|s| s.contains("HugePages_Total × Hugepagesize") && s.contains("2097152 pages")),
            "{:#?}",
            out.steps
        );
        assert!(
            out.steps
                .iter()
                .any(|s| s.starts_with("check: ") && s.contains("3938312 kB: equal")),
            "{:#?}",
            out.steps
        );
    }

    // ---- the CommitLimit check --------------------------------------------------------

    #[test]
    fn commit_limit_is_checked_to_the_kb() {
        // one kB off: an error naming both figures and the formula, and no change
        let mut facts = host();
        facts.mem.commit_limit = 33285996544 + 1024;
        for profile in [
            "[memory]\novercommit = \"strict\"",
            "[memory]\novercommit = \"heuristic\"",
        ] {
            let facts = with(facts.clone(), MODE, Some("1"));
            let out = run(&facts, profile);
            let errors = findings(&out, Severity::Error);
            assert_eq!(errors.len(), 1, "{errors:?}");
            let m = &errors[0].message;
            assert!(
                m.contains("CommitLimit 32505857 kB") && m.contains("gives 32505856 kB"),
                "{m}"
            );
            assert!(
                m.contains("vm_commit_limit") && m.contains("(16252928 − 0) × 50 / 100 + 0 = 8126464 pages"),
                "{m}"
            );
            assert!(m.contains("changes nothing"), "{m}");
            // the keys stay as they are
            assert_eq!(value(&out, MODE), Some("1"), "{profile}");
            assert!(out.settings.iter().all(|s| s.reason.starts_with("unchanged")));
            assert_eq!(out.findings.len(), 1, "{:?}", out.findings);
        }
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, RATIO), Some("50"));
        assert_eq!(out.settings.len(), 2);

        // without the input the error is still given, and nothing is managed
        let out = run(&facts, "");
        assert!(out.settings.is_empty());
        assert_eq!(findings(&out, Severity::Error).len(), 1);
        assert!(out.steps.is_empty());

        // the kbytes formula is checked too; a sub-kB difference is no difference
        let mut facts = with(with(host(), KBYTES, Some("41943040")), RATIO, Some("0"));
        facts.mem.commit_limit = 40 * GIB + 512;
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        facts.mem.commit_limit = 40 * GIB - 1024;
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        let m = &findings(&out, Severity::Error)[0].message;
        assert!(
            m.contains("overcommit_kbytes / (page/1024) + swap_pages = 41943040 / 4 + 0"),
            "{m}"
        );
        assert_eq!(value(&out, KBYTES), Some("41943040"));
        assert_eq!(value(&out, RATIO), None);

        // doctor-memory's figures: 16265236 kB at ratio 50 is 8132616 kB, not 517584 kB
        let mut facts = with(host(), MODE, Some("2"));
        facts.mem.mem_total = 16265236 * 1024;
        facts.mem.commit_limit = 517584 * 1024;
        facts.mem.committed_as = 3306488 * 1024;
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        let errors = findings(&out, Severity::Error);
        // the current state (meminfo's own figures) and the mismatch
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[1].message.contains("517584 kB") && errors[1].message.contains("8132616 kB"));
        assert_eq!(value(&out, MODE), Some("2"));
        assert_eq!(value(&out, RATIO), Some("50"));

        // matching figures: the check is a step of the arithmetic, no finding
        let out = run(&host(), "[memory]\novercommit = \"heuristic\"");
        assert!(out.findings.is_empty());
        assert!(out.steps[0].ends_with("32505856 kB: equal"), "{:?}", out.steps);
    }

    #[test]
    fn no_input_no_settings() {
        let out = run(&host(), "");
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn heuristic_is_zero() {
        let facts = with(host(), "vm.overcommit_memory", Some("1"));
        let out = run(&facts, "[memory]\novercommit = \"heuristic\"");
        assert_eq!(out.settings.len(), 1);
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("0"));
        assert!(out.findings.is_empty());
        // the 3.10 host estimates free memory; since 5.2 only a request > RAM + swap fails
        assert!(reason(&out, MODE).contains("free-memory estimate"));
        let mut modern = facts.clone();
        modern.kernel = "6.18.44".into();
        let out = run(&modern, "[memory]\novercommit = \"heuristic\"");
        assert!(reason(&out, MODE).contains("larger than RAM + swap"));
        // managed even when unchanged
        let out = run(&host(), "[memory]\novercommit = \"heuristic\"");
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("0"));
    }

    #[test]
    fn always_warns() {
        let out = run(&host(), "[memory]\novercommit = \"always\"");
        assert_eq!(out.settings.len(), 1);
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("1"));
        let w = findings(&out, Severity::Warning);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("OOM killer"));
    }

    #[test]
    fn commit_target_without_strict_is_ignored() {
        let out = run(
            &host(),
            "[memory]\novercommit = \"heuristic\"\ncommit_target = \"40GiB\"",
        );
        assert_eq!(out.settings.len(), 1);
        let w = findings(&out, Severity::Warning);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("ignored"));
        let out = run(&host(), "[memory]\ncommit_target = \"80%\"");
        assert!(out.settings.is_empty());
        let w = findings(&out, Severity::Warning);
        assert!(w[0].message.contains("80% of RAM = 49.6 GiB"), "{}", w[0].message);
    }

    // ---- strict mode --------------------------------------------------------------------

    #[test]
    fn strict_keeps_a_sufficient_ratio() {
        // target = ceil(20 GiB × 1.2) = 25769803776 B (24 GiB) ≤ 31 GiB − 136 MiB
        let out = run(&host(), "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("2"));
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("50"));
        assert_eq!(value(&out, "vm.overcommit_kbytes"), None);
        assert_eq!(out.settings.len(), 2);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(reason(&out, "vm.overcommit_ratio").contains("already holds"));
        assert!(out.steps.iter().any(|s| s.contains("25769803776")));
        assert!(
            out.steps
                .iter()
                .any(|s| s.contains("fits: CommitLimit − reserves = 33143390208 B")),
            "{:#?}",
            out.steps
        );
    }

    /// Strict mode only ever raises the limit: a limit above the target is kept, whether
    /// the target is declared or comes from an idle host's Committed_AS.
    #[test]
    fn strict_never_lowers_the_limit() {
        // an idle host: Committed_AS 1 GiB, target 1.2 GiB; the current 31 GiB stays
        let mut idle = host();
        idle.mem.committed_as = GIB;
        let out = run(&idle, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, RATIO), Some("50"));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        // a declared target far below the limit: kept too
        let out = run(
            &idle,
            "[memory]\novercommit = \"strict\"\ncommit_target = \"2GiB\"",
        );
        assert_eq!(value(&out, RATIO), Some("50"));
        // a ratio above 100 is kept, not brought down to 100
        let big = consistent(with(idle, RATIO, Some("150")));
        let out = run(&big, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, RATIO), Some("150"));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        // and when it is raised, the new limit is above the old one
        for (ratio, kbytes) in [(30, 0), (0, 10 << 20), (-20, 0), (38, 0)] {
            let f = consistent(with(
                with(host(), RATIO, Some(&ratio.to_string())),
                KBYTES,
                Some(&kbytes.to_string()),
            ));
            let out = run(&f, "[memory]\novercommit = \"strict\"");
            let r: i128 = value(&out, RATIO).unwrap().parse().unwrap();
            assert!(
                commit_limit_bytes(RAM, 0, 0, 4096, r, 0) > f.mem.commit_limit,
                "{ratio} {kbytes} → {r}"
            );
        }
    }

    #[test]
    fn strict_raises_the_ratio() {
        // ratio 30: 4875878 pages = 18.6 GiB < 24 GiB;
        // ceil((25769803776 + 142606336) × 100 / 62 GiB) = ceil(38.92) = 39
        let facts = consistent(with(host(), "vm.overcommit_ratio", Some("30")));
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("39"));
        assert!(fits((RAM / 4096 * 39 / 100) as i128, 4096, &USUAL, 25769803776));
        assert!(!fits((RAM / 4096 * 38 / 100) as i128, 4096, &USUAL, 25769803776));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(reason(&out, "vm.overcommit_ratio").starts_with("raise CommitLimit 18.6 GiB"));
    }

    #[test]
    fn strict_steps_the_ratio_up() {
        // without reserves: 62 GiB × 0.6 = 9751756.8 pages, truncated to 9751756 =
        // 39943192576 B < target
        let target = 39943195000u64;
        assert_eq!(
            ratio_for_target(RAM, 0, 0, 4096, &NONE, target as u128),
            Some((60, 61))
        );
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 60, 0), 39943192576);
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 61, 0), 40608915456);
        let out = run(
            &no_reserves(host()),
            &format!("[memory]\novercommit = \"strict\"\ncommit_target = {target}"),
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("61"));
        assert!(out.steps.iter().any(|s| s.contains("step ratio' up to 61")));
        assert!(out.findings.is_empty(), "{:?}", out.findings);

        // a tiny host where one step of the ratio is less than a page
        assert_eq!(
            ratio_for_target(150 * 4096, 0, 0, 4096, &NONE, 5000),
            Some((1, 2))
        );
        assert_eq!(commit_limit_bytes(150 * 4096, 0, 0, 4096, 1, 0), 4096);
        assert_eq!(commit_limit_bytes(150 * 4096, 0, 0, 4096, 2, 0), 12288);
        // reserves that are not whole pages: the kernel truncates each (4095 kB → 1023
        // pages), so the first estimate in bytes may already be the answer
        let odd = Reserves::new(4095, 4095);
        let (first, got) = ratio_for_target(RAM, 0, 0, 4096, &odd, 10 * GIB as u128).unwrap();
        assert_eq!((first, got), (17, 17));
    }

    #[test]
    fn strict_ratio_matches_the_loop() {
        // the closed form equals the spec's loop on assorted hosts and reserves
        for reserves in [NONE, USUAL, Reserves::new(4095, 1), Reserves::new(64698, 8192)] {
            for (ram, huge, swap, target) in [
                (RAM, 0, 0, 40 * GIB as u128),
                (RAM, 2 * GIB, 3 * GIB + 5, 50 * GIB as u128 + 7),
                (150 * 4096 + 100, 4096, 4096 * 3 + 1, 99_999),
                (123_456_789, 0, 7, 1),
                (RAM, 0, 8 * GIB, 4 * GIB as u128),
                (16265236 * 1024, 8 * GIB, 0, 4063012455),
            ] {
                let (first, got) = ratio_for_target(ram, huge, swap, 4096, &reserves, target).unwrap();
                let mut r = first;
                let g = Geometry::new(ram, huge, swap, 4096).unwrap();
                while !fits(g.limit_pages(r as i128, 0), 4096, &reserves, target) {
                    r += 1;
                }
                assert_eq!(got, r, "{ram} {huge} {swap} {target} {reserves:?}");
            }
        }
    }

    #[test]
    fn strict_with_swap() {
        // 40 GiB target, 8 GiB swap: ceil((32 GiB + 136 MiB) × 100 / 62 GiB) = 52
        let mut facts = host();
        facts.mem.swap_total = 8 * GIB;
        let out = run(
            &consistent(facts),
            "[memory]\novercommit = \"strict\"\ncommit_target = \"40GiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("52"));
    }

    #[test]
    fn strict_subtracts_hugetlb() {
        // 30 GiB of huge pages: ratio 50 gives 16 GiB < 24 GiB;
        // ceil((24 GiB + 136 MiB) × 100 / 32 GiB) = 76 → 24.3 GiB
        let mut facts = host();
        facts.mem.hugetlb = 30 * GIB;
        let out = run(&consistent(facts), "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("76"));
        assert_eq!(commit_limit_bytes(RAM, 30 * GIB, 0, 4096, 76, 0), 26113400832);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }

    #[test]
    fn ratio_above_100_warns() {
        // 80 GiB on 62 GiB: ceil((80 GiB + 136 MiB) × 100 / 62 GiB) = ceil(129.2) = 130;
        // swap for ratio 100: 80 GiB + 136 MiB − 62 GiB
        let out = run(
            &host(),
            "[memory]\novercommit = \"strict\"\ncommit_target = \"80GiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("130"));
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 130, 0), 86543589376);
        let w = findings(&out, Severity::Warning);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].message.contains("above 100"));
        assert!(
            w[0].message.contains("19469959168 B (18.1 GiB)"),
            "{}",
            w[0].message
        );
        // that swap with ratio 100 does fit
        let swap = 19469959168u64;
        let g = Geometry::new(RAM, 0, swap, 4096).unwrap();
        assert!(fits(g.limit_pages(100, 0), 4096, &USUAL, 80 * GIB as u128));
    }

    // ---- revision 2, item 9: the resulting limit against Committed_AS -----------------

    #[test]
    fn resulting_limit_below_committed_is_an_error() {
        // Committed_AS 20 GiB, target 10 GiB, ratio 10 (6.2 GiB): raised to
        // ceil((10 GiB + 136 MiB) × 100 / 62 GiB) = 17, 10.5 GiB < 20 GiB: an error, the
        // mode stays 0, the ratio is still shown
        let facts = consistent(with(host(), "vm.overcommit_ratio", Some("10")));
        let out = run(
            &facts,
            "[memory]\novercommit = \"strict\"\ncommit_target = \"10GiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("17"));
        assert_eq!(value(&out, MODE), Some("0"));
        assert!(reason(&out, MODE).starts_with("unchanged"));
        let e = findings(&out, Severity::Error);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].message
                .contains("11317235712 B (10.5 GiB) is below Committed_AS 21474836480 B"),
            "{}",
            e[0].message
        );
        assert!(e[0].message.contains("at once"));

        // a kept limit below Committed_AS: ratio 20 (12.4 GiB) holds 10 GiB, but not the
        // 20 GiB in use: the same error, the mode stays, the ratio is kept
        let facts = consistent(with(host(), "vm.overcommit_ratio", Some("20")));
        let out = run(
            &facts,
            "[memory]\novercommit = \"strict\"\ncommit_target = \"10GiB\"",
        );
        assert_eq!(value(&out, RATIO), Some("20"));
        assert_eq!(value(&out, MODE), Some("0"));
        assert_eq!(findings(&out, Severity::Error).len(), 1);

        // a target below Committed_AS alone is no error when the limit kept is above it
        let out = run(
            &host(),
            "[memory]\novercommit = \"strict\"\ncommit_target = \"10GiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("50"));
        assert_eq!(value(&out, MODE), Some("2"));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }

    #[test]
    fn limit_above_committed_but_not_its_reserves_warns() {
        // kbytes 20 GiB + 64 MiB ≥ Committed_AS 20 GiB, but less the 136 MiB of reserves
        // it is below: only root allocates at once
        let facts = consistent(with(with(host(), KBYTES, Some("21037056")), RATIO, Some("0")));
        let out = run(
            &facts,
            "[memory]\novercommit = \"strict\"\ncommit_target = \"10GiB\"",
        );
        assert_eq!(value(&out, MODE), Some("2"));
        assert_eq!(value(&out, KBYTES), Some("21037056"));
        let w = findings(&out, Severity::Warning);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].message.contains("21399339008 B"), "{}", w[0].message);
        assert!(w[0].message.contains("only root"), "{}", w[0].message);
        assert!(findings(&out, Severity::Error).is_empty());
    }

    // ---- reserves -------------------------------------------------------------------------

    #[test]
    fn reserves_decide_whether_it_fits() {
        // 31 GiB − 100 MiB fits the 31 GiB limit, but not with the 136 MiB of reserves:
        // ceil((31 GiB − 100 MiB + 136 MiB) × 100 / 62 GiB) = 51
        let target = format!("commit_target = {}", 31 * GIB - 100 * MIB);
        let profile = format!("[memory]\novercommit = \"strict\"\n{target}");
        let out = run(&host(), &profile);
        assert_eq!(value(&out, RATIO), Some("51"));
        let out = run(&no_reserves(host()), &profile);
        assert_eq!(value(&out, RATIO), Some("50"));
        // the host's own values are used, in pages as the kernel truncates them
        let f = with(with(host(), ADMIN_RESERVE, Some("4095")), USER_RESERVE, Some("0"));
        let r = Reserves::of(&f);
        assert_eq!((r.admin_kb, r.user_kb, r.pages(4096)), (4095, 0, 1023));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(
            run(&host(), &profile)
                .steps
                .iter()
                .any(|s| s.contains("admin_reserve = vm.admin_reserve_kbytes = 8192 kB = 2048 pages")),
        );
    }

    #[test]
    fn absent_reserves_are_the_kernels_defaults() {
        // 62 GiB: min(MemTotal / 32, cap) is the cap, 8 MiB and 128 MiB
        let r = Reserves::of(&proxy_host());
        assert_eq!((r.admin_kb, r.user_kb), (8192, 131072));
        assert!(r.admin_assumed && r.user_assumed);
        assert_eq!(r.bytes(), RESERVES);
        // a 2 GiB host (2070336 kB): the user reserve is 64698 kB, 1/32 of the memory
        let mut small = proxy_host();
        small.mem.mem_total = 2070336 * 1024;
        let r = Reserves::of(&small);
        assert_eq!((r.admin_kb, r.user_kb), (8192, 64698));
        // one key present, one absent
        let r = Reserves::of(&with(proxy_host(), USER_RESERVE, Some("100389")));
        assert_eq!((r.admin_kb, r.user_kb), (8192, 100389));
        assert!(r.admin_assumed && !r.user_assumed);

        // strict mode says what it assumed; other modes do not need the reserves
        let out = run(&proxy_host(), "[memory]\novercommit = \"strict\"");
        let info = findings(&out, Severity::Info);
        assert_eq!(info.len(), 1, "{info:?}");
        assert!(
            info[0]
                .message
                .contains("vm.admin_reserve_kbytes = 8192 (min(MemTotal / 32, 8 MiB))")
                && info[0]
                    .message
                    .contains("vm.user_reserve_kbytes = 131072 (min(MemTotal / 32, 128 MiB))"),
            "{}",
            info[0].message
        );
        assert_eq!(value(&out, RATIO), Some("50"));
        assert!(
            run(&proxy_host(), "[memory]\novercommit = \"heuristic\"")
                .findings
                .is_empty()
        );
    }

    // ---- a share of RAM -------------------------------------------------------------------

    #[test]
    fn commit_target_as_a_share_of_ram() {
        // 80% of 62 GiB = floor(66571993088 × 8000 / 10000) = 53257594470 B;
        // ceil((53257594470 + 142606336) × 100 / 66571993088) = ceil(80.2) = 81
        let out = run(
            &host(),
            "[memory]\novercommit = \"strict\"\ncommit_target = \"80%\"",
        );
        assert_eq!(value(&out, RATIO), Some("81"));
        assert_eq!(commit_limit_bytes(RAM, 0, 0, 4096, 81, 0), 53923311616);
        assert!(
            out.steps
                .iter()
                .any(|s| s.contains("target = memory.commit_target = 80% of RAM = 49.6 GiB = 53257594470 B")),
            "{:#?}",
            out.steps
        );
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        // the same profile on a 16 GiB host (host.ram is applied to MemTotal by the plan)
        let mut small = host();
        small.mem.mem_total = 16 * GIB;
        small.mem.committed_as = 4 * GIB;
        let out = run(
            &consistent(small),
            "[memory]\novercommit = \"strict\"\ncommit_target = \"80%\"",
        );
        // ceil((13743895347 + 142606336) × 100 / 17179869184) = 81
        assert_eq!(value(&out, RATIO), Some("81"));
        // 12.34% of 62 GiB is below Committed_AS: the limit kept (31 GiB) is above it
        let out = run(
            &host(),
            "[memory]\novercommit = \"strict\"\ncommit_target = \"12.34%\"",
        );
        assert_eq!(value(&out, RATIO), Some("50"));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }

    // ---- overcommit_kbytes ----------------------------------------------------------------

    #[test]
    fn kept_kbytes_are_managed_not_the_ratio() {
        // 40 GiB in kbytes ≥ 24 GiB target: keep, and pin kbytes (not the ratio)
        let facts = consistent(with(
            with(host(), "vm.overcommit_kbytes", Some("41943040")),
            "vm.overcommit_ratio",
            Some("0"),
        ));
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
        let facts = consistent(with(
            with(host(), "vm.overcommit_kbytes", Some("10485760")),
            "vm.overcommit_ratio",
            Some("0"),
        ));
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("39"));
        assert_eq!(value(&out, "vm.overcommit_kbytes"), None);
        assert!(reason(&out, "vm.overcommit_ratio").contains("overcommit_kbytes"));
        let info = findings(&out, Severity::Info);
        assert_eq!(info.len(), 1);
        assert!(info[0].message.contains("resets vm.overcommit_kbytes to 0"));
    }

    // ---- what cannot be sized ---------------------------------------------------------

    #[test]
    fn no_ram_outside_hugetlb_is_an_error() {
        let mut facts = with(host(), "vm.overcommit_ratio", Some("50"));
        facts.mem.hugetlb = RAM;
        let out = run(&consistent(facts), "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), None);
        // the mode stays as it is
        assert_eq!(value(&out, "vm.overcommit_memory"), Some("0"));
        assert_eq!(findings(&out, Severity::Error).len(), 1);
        assert_eq!(ratio_for_target(RAM, RAM, 0, 4096, &USUAL, 1), None);
        assert_eq!(ratio_for_target(0, 0, 0, 4096, &USUAL, 1), None);

        // the same host, zero RAM at all, a nonsense page size: no panic
        let mut facts = host();
        facts.mem.mem_total = 0;
        let out = run(&consistent(facts), "[memory]\novercommit = \"strict\"");
        assert_eq!(findings(&out, Severity::Error).len(), 1);
        let mut facts = host();
        facts.page_size = 0;
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(findings(&out, Severity::Error).len(), 1);
        assert_eq!(value(&out, "vm.overcommit_ratio"), None);
    }

    #[test]
    fn huge_target_beyond_int_is_an_error() {
        let mut facts = with(host(), "vm.overcommit_ratio", Some("50"));
        facts.mem.mem_total = 4096;
        let out = run(
            &consistent(facts),
            "[memory]\novercommit = \"strict\"\ncommit_target = \"1000TiB\"",
        );
        assert_eq!(value(&out, "vm.overcommit_ratio"), None);
        assert_eq!(findings(&out, Severity::Error).len(), 1);
    }

    #[test]
    fn absent_keys_are_not_managed() {
        let mut facts = host();
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
        let facts = consistent(with(host(), "vm.overcommit_ratio", Some("-20")));
        let out = run(&facts, "[memory]\novercommit = \"strict\"");
        assert_eq!(value(&out, "vm.overcommit_ratio"), Some("39"));
        assert!(reason(&out, "vm.overcommit_ratio").starts_with("raise CommitLimit 0 B"));
    }

    #[test]
    fn doc_has_the_sections() {
        for s in ["What it does", "Why", "Arithmetic", "Choices", "References"] {
            assert!(DOC.contains(s), "{s}");
        }
        for f in [
            "vm_commit_limit",
            "__vm_enough_memory",
            "meminfo_proc_show",
            "hugetlb_report_meminfo",
            "init_user_reserve",
        ] {
            assert!(DOC.contains(f), "{f}");
        }
        assert!(!DOC.contains("../shared") && !DOC.contains("shared/"));
        assert!(DOC.lines().all(|l| l.chars().count() <= 92));
    }
}
