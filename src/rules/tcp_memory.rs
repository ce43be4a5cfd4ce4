//! Rule `tcp-memory`: sizes `net.ipv4.tcp_mem` (pages) between what the connections need and
//! what the host can give TCP. See [`DOC`].

use super::{Context, Outcome, Rule, Severity, Shrink};
use crate::host::Facts;
use crate::keys;
use crate::units::{Dec4, grouped, human_bytes};

pub const DOC: &str = "\
tcp-memory: net.ipv4.tcp_mem (low pressure high, in PAGES)

What it does
  Sizes the kernel's TCP memory limit so that the connections the profile declares fit
  under it, and so that TCP cannot take memory the host does not have. It manages
  net.ipv4.tcp_mem when the profile declares connections (connections.concurrent +
  outbound.concurrent > 0). Without connections it only lowers a high above the TCP budget,
  and manages the key only then.

Why
  Above tcp_mem[2] (high) the kernel refuses socket memory: \"Out of socket memory\" /
  \"out of memory -- consider tuning tcp_mem\", the proxy of the article failed between
  300 000 and 860 000 connections. A high above what RAM can spare lets TCP push the
  application into the OOM killer instead. tcp_mem is in pages, tcp_rmem/tcp_wmem in
  bytes: mixing the two is the classic mistake, so every figure is shown in both.

Arithmetic (exact integers; headroom and share in ten-thousandths)
  conns             = connections.concurrent + outbound.concurrent
  per_conn_worst    = tcp_rmem[1] + tcp_wmem[1] + control_block
                      (tcp_rmem[1]/tcp_wmem[1]: connections.rmem_default/wmem_default,
                      else the current values; control_block defaults to 1 KiB)
  per_conn_expected = connections.average_memory, else per_conn_worst
  need_pages        = ceil(conns * per_conn_expected * headroom / page)
  budget_bytes      = min(floor(ram * tcp_memory_share), ram - reserved_memory)
  budget_pages      = floor(budget_bytes / page)
  1. need_pages > budget_pages: infeasible (below).
  2. else high < need_pages: high' = need_pages.
  3. else high > budget_pages: high' = budget_pages.
  4. else keep high.
  When high changes: low' = floor(high'/2), pressure' = floor(high'*2/3) (the kernel's own
  3/4 L, L, 3/2 L). Otherwise low and pressure are kept unless low <= pressure <= high
  breaks; then they are derived the same way.
  Capacity: max_connections = floor(high * page / per_conn), worst and expected.

  Infeasible: the budget holds floor(budget_bytes / per_conn_expected) connections.
  Without average_memory, shrinking the default buffers may fit:
    fit_per_conn = floor(budget_bytes / (conns * headroom))
    rmem_fit     = floor(rmem * (fit_per_conn - control_block)
                         / (rmem + wmem) / 1024) * 1024
    wmem_fit     = the same with wmem
  With both >= 4096 and connections.shrink_buffers_to_fit = true they become tcp_rmem[1]
  and tcp_wmem[1] (rule tcp-buffers writes them), need_pages is recomputed and steps 2-4
  run again; a warning says so. Otherwise high' = budget_pages and an error gives the
  need, the budget, the connections it holds and the remedies: the fitted buffers, the
  RAM that would fit = max(ceil(need_bytes / share), need_bytes + reserved_memory), less
  reserved_memory, fewer connections per host.

  Example (the article's proxy: 62 GiB, tcp_mem 6179424 8239232 12358848, 860 000
  connections, 43/32 KiB buffers, average 10 KiB, 15 GiB reserved, share 0.75,
  headroom 1.2): need 2580000 pages = 9.8 GiB, budget min(46.5 GiB, 47 GiB) =
  12189696 pages, high 47.1 GiB is above it: tcp_mem' = 6094848 8126464 12189696.

Choices (where the spec is silent)
  - Buffers are only shrunk when average_memory is not given: with an observed average,
    smaller default buffers would not change the demand.
  - When the profile names only one default (say wmem_default) and the other comes from
    the host, only the named one is shrunk: the other is already live, perhaps from an
    earlier shrink, and scaling it again would give new sizes at every run (the plan
    would never converge). wmem_fit = floor((fit_per_conn - control_block - rmem) / 1024)
    * 1024, and the same the other way round.
  - If page rounding makes the shrunk demand exceed the budget by a page (need_pages
    rounds up, the budget down), fit_per_conn is recomputed from budget_pages * page,
    which fits by construction; with a page-aligned budget both give the same sizes.
  - The remedy 'less reserved_memory' is named, with the largest value that fits, only
    when lowering it alone would make the demand fit.
  - Without connections, tcp_mem is managed when step 3 caps it, and afterwards while it
    still holds exactly the capped value (budget/2, budget*2/3, budget): dropping it from
    the drop-in once applied would let the next boot bring back a high above the budget.
  - tcp_mem absent (inside a network namespace) or unreadable: not managed; an info
    finding when the profile declares connections, nothing otherwise.
  - Sizing defaults unknown (tcp_rmem/tcp_wmem absent, no rmem_default/wmem_default and
    no average_memory): a warning, and only step 3 is applied.
  - A reserved_memory >= ram (rejected by the plan) gives a budget of 0, never a panic.

References
  Documentation/networking/ip-sysctl.rst (tcp_mem, tcp_rmem, tcp_wmem); net/ipv4/tcp.c
  (tcp_init_mem); the article 'OOM killer under high concurrency' (2018): 'Out of socket
  memory' at ~700 000 connections, fixed by halving the default buffers to 43/32 KiB.
";

const ID: &str = "tcp-memory";
const KEY: &str = "net.ipv4.tcp_mem";
/// The smallest default buffer the rule will shrink to (one page on x86-64, tcp_rmem[0]).
const MIN_BUFFER: u64 = 4096;

pub struct TcpMemory;

impl Rule for TcpMemory {
    fn id(&self) -> &'static str {
        ID
    }

    fn keys(&self) -> &'static [&'static str] {
        &[KEY]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, ctx: &Context) -> Outcome {
        let mut out = Outcome::default();
        run(ctx, &mut out);
        out
    }
}

/// Memory per connection: default receive + default send buffer + control block.
pub fn per_conn_worst(rmem_default: u64, wmem_default: u64, control_block: u64) -> u64 {
    rmem_default
        .saturating_add(wmem_default)
        .saturating_add(control_block)
}

/// Connections that fit under `high_pages`: floor(high × page / per_conn), 0 when per_conn
/// is 0.
pub fn max_connections(high_pages: u64, page: u64, per_conn: u64) -> u64 {
    if per_conn == 0 {
        return 0;
    }
    let n = high_pages as u128 * page as u128 / per_conn as u128;
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// ceil(conns × per_conn × headroom / page), saturating (an overflow cannot fit anyway).
fn need_pages(conns: u128, per_conn: u128, headroom: Dec4, page: u64) -> u128 {
    let denom = Dec4::SCALE * page as u128;
    conns
        .checked_mul(per_conn)
        .and_then(|x| x.checked_mul(headroom.0 as u128))
        .map_or(u128::MAX, |x| x.div_ceil(denom.max(1)))
}

/// What the host can give TCP.
struct Budget {
    ram: u64,
    share: Dec4,
    reserved: u64,
    /// floor(ram × share)
    by_share: u128,
    /// ram − reserved (0 when reserved ≥ ram)
    by_reserve: u128,
    bytes: u128,
    pages: u128,
}

impl Budget {
    fn new(ram: u64, share: Dec4, reserved: u64, page: u64) -> Budget {
        let by_share = share.mul_floor(ram as u128);
        let by_reserve = ram.saturating_sub(reserved) as u128;
        let bytes = by_share.min(by_reserve);
        Budget {
            ram,
            share,
            reserved,
            by_share,
            by_reserve,
            bytes,
            pages: bytes / (page.max(1) as u128),
        }
    }

    /// `75% of 62 GiB` or `62 GiB less 15 GiB reserved`: which limit made the budget.
    fn source(&self) -> String {
        if self.by_share <= self.by_reserve {
            format!("{} of {}", self.share.percent(), human(self.ram as u128))
        } else {
            format!(
                "{} less {} reserved",
                human(self.ram as u128),
                human(self.reserved as u128)
            )
        }
    }

    fn steps(&self, page: u64, out: &mut Outcome) {
        out.step(format!(
            "budget_bytes = min(floor({} × {}), {} − {}) = min({}, {}) = {} B ({})",
            self.ram,
            self.share,
            self.ram,
            self.reserved,
            self.by_share,
            self.by_reserve,
            self.bytes,
            human(self.bytes)
        ));
        out.step(format!(
            "budget_pages = floor({} / {page}) = {}",
            self.bytes,
            pages(self.pages, page)
        ));
    }
}

/// `12189696 pages = 46.5 GiB` for a u128 page count.
fn pages(n: u128, page: u64) -> String {
    format!("{n} pages = {}", bytes_of(n, page))
}

fn bytes_of(n: u128, page: u64) -> String {
    human(n.saturating_mul(page as u128))
}

/// [`human_bytes`], which overflows near u128::MAX; such sizes are shown in bytes.
fn human(bytes: u128) -> String {
    if bytes > u128::MAX / 16 {
        format!("{bytes} B")
    } else {
        human_bytes(bytes)
    }
}

/// `44032 B (43 KiB)`.
fn sized(bytes: u128) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{bytes} B ({})", human(bytes))
    }
}

/// Default buffers shrunk in proportion so the connections fit the budget.
struct Fit {
    /// The budget the fit was computed from (budget_bytes, or budget_pages × page).
    budget_bytes: u128,
    per_conn: u128,
    shrink: Shrink,
    /// Both ≥ 4096 and the recomputed need fits the budget.
    ok: bool,
}

struct Demand {
    conns: u128,
    headroom: Dec4,
    control_block: u64,
    page: u64,
}

impl Demand {
    fn need(&self, per_conn: u128) -> u128 {
        need_pages(self.conns, per_conn, self.headroom, self.page)
    }

    /// fit_per_conn and the shrunk buffers for `budget_bytes`; `None` when not even the
    /// control block fits.
    fn fit_with(&self, budget_bytes: u128, rmem: u64, wmem: u64, keep: Keep) -> Option<Fit> {
        let denom = self.conns.checked_mul(self.headroom.0 as u128)?;
        if denom == 0 {
            return None;
        }
        let per_conn = budget_bytes.checked_mul(Dec4::SCALE)? / denom;
        let spare = per_conn.saturating_sub(self.control_block as u128);
        let total = rmem as u128 + wmem as u128;
        if total == 0 {
            return None;
        }
        let scaled = |b: u64| -> Option<u64> {
            let v = (b as u128).checked_mul(spare)? / total / 1024 * 1024;
            u64::try_from(v).ok()
        };
        // Mixed sources: the default the profile names is shrunk, the current one (already
        // live, maybe from an earlier shrink) stays, so planning again converges.
        let rest = |other: u64| -> Option<u64> {
            u64::try_from(spare.saturating_sub(other as u128) / 1024 * 1024).ok()
        };
        let shrink = match keep {
            Keep::Neither => Shrink {
                rmem: scaled(rmem)?,
                wmem: scaled(wmem)?,
            },
            Keep::Rmem => Shrink {
                rmem,
                wmem: rest(rmem)?,
            },
            Keep::Wmem => Shrink {
                rmem: rest(wmem)?,
                wmem,
            },
        };
        let big_enough = shrink.rmem >= MIN_BUFFER && shrink.wmem >= MIN_BUFFER;
        let need = self.need(per_conn_worst(shrink.rmem, shrink.wmem, self.control_block) as u128);
        let budget_pages = budget_bytes / self.page.max(1) as u128;
        Some(Fit {
            budget_bytes,
            per_conn,
            shrink,
            ok: big_enough && need <= budget_pages,
        })
    }

    /// The spec's fit from budget_bytes; when page rounding keeps it a page over the budget,
    /// the same from budget_pages × page (which fits by construction).
    fn fit(&self, budget: &Budget, rmem: u64, wmem: u64, keep: Keep) -> Option<Fit> {
        let first = self.fit_with(budget.bytes, rmem, wmem, keep)?;
        let page_aligned = budget.pages * self.page as u128;
        if first.ok || page_aligned == budget.bytes {
            return Some(first);
        }
        let big_enough = first.shrink.rmem >= MIN_BUFFER && first.shrink.wmem >= MIN_BUFFER;
        if !big_enough {
            return Some(first);
        }
        self.fit_with(page_aligned, rmem, wmem, keep)
    }
}

/// Which default a shrink leaves alone: the one taken from the host when the profile
/// names only the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    Neither,
    Rmem,
    Wmem,
}

/// Steps 2–4: the new high and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Raise,
    Cap,
    Keep,
}

fn choose(high: u128, need: u128, budget_pages: u128) -> (u128, Step) {
    if high < need {
        (need, Step::Raise)
    } else if high > budget_pages {
        (budget_pages, Step::Cap)
    } else {
        (high, Step::Keep)
    }
}

/// low' and pressure' for `high'`; the second value says whether they were re-derived.
fn derive(current: [u64; 3], high: u128) -> ([u128; 3], bool) {
    let [low, pressure, cur_high] = current.map(|v| v as u128);
    let ordered = low <= pressure && pressure <= high;
    if high == cur_high && ordered {
        ([low, pressure, high], false)
    } else {
        ([high / 2, high * 2 / 3, high], true)
    }
}

fn emit(facts: &Facts, out: &mut Outcome, value: [u128; 3], reason: String) {
    let text = format!("{} {} {}", value[0], value[1], value[2]);
    match keys::validate(KEY, &text, &facts.kernel) {
        Ok(v) => out.set(KEY, v, reason),
        Err(e) => out.finding(
            Severity::Warning,
            ID,
            format!("The computed {KEY} is not a value the kernel accepts ({e}); it is not managed."),
        ),
    }
}

fn cap_reason(high: u64, budget: &Budget, page: u64) -> String {
    format!(
        "high {} exceeds the TCP budget {} ({})",
        bytes_of(high as u128, page),
        bytes_of(budget.pages, page),
        budget.source()
    )
}

/// Without connections (or without a way to size them): only step 3.
fn only_cap(facts: &Facts, out: &mut Outcome, current: [u64; 3], budget: &Budget, page: u64) {
    let b = budget.pages;
    if current.map(|v| v as u128) == [b / 2, b * 2 / 3, b] {
        // What step 3 set on an earlier run: still managed, so the drop-in keeps it and
        // the next boot does not bring back a high above the budget.
        budget.steps(page, out);
        out.step(format!(
            "high {} = budget_pages, as step 3 set it: kept",
            pages(b, page)
        ));
        emit(
            facts,
            out,
            current.map(|v| v as u128),
            format!("kept at the TCP budget {}", budget.source()),
        );
        return;
    }
    if current[2] as u128 <= budget.pages {
        return;
    }
    budget.steps(page, out);
    out.step(format!(
        "step 3: high {} > budget_pages {} → high' = {}",
        pages(current[2] as u128, page),
        budget.pages,
        budget.pages
    ));
    let (value, _) = derive(current, budget.pages);
    low_pressure_step(out, value, true);
    emit(facts, out, value, cap_reason(current[2], budget, page));
}

fn low_pressure_step(out: &mut Outcome, v: [u128; 3], derived: bool) {
    if derived {
        out.step(format!(
            "low' = floor({} / 2) = {}, pressure' = floor({} × 2 / 3) = {}",
            v[2], v[0], v[2], v[1]
        ));
    } else {
        out.step(format!("low {} and pressure {} kept", v[0], v[1]));
    }
}

fn run(ctx: &Context, out: &mut Outcome) {
    let facts = ctx.facts;
    let c = &ctx.profile.connections;
    let conns = ctx.profile.conns();
    let page = facts.page_size;

    let Some(current) = facts.triple(KEY) else {
        if conns > 0 {
            let what = match facts.value(KEY) {
                None => "is absent on this kernel (it is host-wide, so a network namespace has none)",
                Some(_) => "cannot be read as three page counts",
            };
            out.finding(
                Severity::Info,
                ID,
                format!("{KEY} {what}; it is not managed here: size TCP memory on the host."),
            );
        }
        return;
    };
    if page == 0 {
        if conns == 0 {
            return;
        }
        out.finding(
            Severity::Warning,
            ID,
            format!(
                "The page size is 0; {KEY} (in pages) is not managed. Set host.page_size in the profile."
            ),
        );
        return;
    }
    let ram = facts.mem.mem_total;
    let budget = Budget::new(ram, c.tcp_memory_share, c.reserved_memory(ram), page);

    if conns == 0 {
        only_cap(facts, out, current, &budget, page);
        return;
    }

    // Sizing defaults: the profile's, else the current ones.
    let current_rmem = facts.triple("net.ipv4.tcp_rmem").map(|t| t[1]);
    let current_wmem = facts.triple("net.ipv4.tcp_wmem").map(|t| t[1]);
    let rmem = c.rmem_default.or(current_rmem);
    let wmem = c.wmem_default.or(current_wmem);
    let cb = c.control_block;

    out.step(format!(
        "conns = connections.concurrent + outbound.concurrent = {} + {} = {conns}",
        c.concurrent, ctx.profile.outbound.concurrent
    ));
    let worst = match (rmem, wmem) {
        (Some(r), Some(w)) => {
            let src = |given: Option<u64>| if given.is_some() { "profile" } else { "current" };
            let worst = per_conn_worst(r, w, cb);
            out.step(format!(
                "per_conn_worst = tcp_rmem[1] ({}) + tcp_wmem[1] ({}) + control_block = {r} + {w} + {cb} = {}",
                src(c.rmem_default),
                src(c.wmem_default),
                sized(worst as u128)
            ));
            Some(worst)
        }
        _ => None,
    };
    let expected = match (c.average_memory, worst) {
        (Some(avg), _) => {
            out.step(format!(
                "per_conn_expected = average_memory = {}",
                sized(avg as u128)
            ));
            avg
        }
        (None, Some(w)) => {
            out.step(format!(
                "per_conn_expected = per_conn_worst = {}",
                sized(w as u128)
            ));
            w
        }
        (None, None) => {
            let missing = if rmem.is_none() {
                "net.ipv4.tcp_rmem is absent and connections.rmem_default is not given"
            } else {
                "net.ipv4.tcp_wmem is absent and connections.wmem_default is not given"
            };
            out.steps.clear();
            out.finding(
                Severity::Warning,
                ID,
                format!(
                    "Cannot size TCP memory for {} connections: {missing}; set connections.rmem_default and \
                     wmem_default, or average_memory. Only the TCP budget is checked.",
                    grouped(conns)
                ),
            );
            only_cap(facts, out, current, &budget, page);
            return;
        }
    };

    let demand = Demand {
        conns,
        headroom: ctx.profile.headroom,
        control_block: cb,
        page,
    };
    let per_expected = expected as u128;
    let mut need = demand.need(per_expected);
    out.step(format!(
        "need_pages = ceil({conns} × {per_expected} B × {} / {page}) = {}",
        demand.headroom,
        pages(need, page)
    ));
    budget.steps(page, out);

    let high = current[2];
    let mut recommended_worst = worst;

    if need > budget.pages {
        out.step(format!(
            "step 1: need_pages {need} > budget_pages {} → infeasible",
            budget.pages
        ));
        let fit = match (c.average_memory, rmem, wmem) {
            (None, Some(r), Some(w)) => {
                let keep = match (c.rmem_default, c.wmem_default) {
                    (None, Some(_)) => Keep::Rmem,
                    (Some(_), None) => Keep::Wmem,
                    _ => Keep::Neither,
                };
                demand.fit(&budget, r, w, keep).map(|f| (f, r, w))
            }
            _ => None,
        };
        if let Some((f, r, w)) = &fit {
            out.step(format!(
                "fit_per_conn = floor({} B / ({conns} × {})) = {}",
                f.budget_bytes,
                demand.headroom,
                sized(f.per_conn)
            ));
            out.step(format!(
                "rmem_fit = floor({r} × ({} − {cb}) / ({r} + {w}) / 1024) × 1024 = {}; wmem_fit = {}",
                f.per_conn,
                sized(f.shrink.rmem as u128),
                sized(f.shrink.wmem as u128)
            ));
        }
        let applied = match &fit {
            Some((f, r, w)) if f.ok && c.shrink_buffers_to_fit => Some((f.shrink, *r, *w)),
            _ => None,
        };
        if let Some((s, r, w)) = applied {
            let worst_fit = per_conn_worst(s.rmem, s.wmem, cb);
            let need_fit = demand.need(worst_fit as u128);
            out.shrink = Some(s);
            recommended_worst = Some(worst_fit);
            out.step(format!(
                "shrink_buffers_to_fit: per_conn = {} + {} + {cb} = {}; need_pages = {}",
                s.rmem,
                s.wmem,
                sized(worst_fit as u128),
                pages(need_fit, page)
            ));
            out.finding(
                Severity::Warning,
                ID,
                format!(
                    "{} connections did not fit the TCP budget {} at default buffers of {} receive and {} send \
                     ({} needed); shrink_buffers_to_fit shrank them to {} receive and {} send (tcp_rmem[1], \
                     tcp_wmem[1]), which need {}.",
                    grouped(conns),
                    bytes_of(budget.pages, page),
                    sized(r as u128),
                    sized(w as u128),
                    bytes_of(need, page),
                    sized(s.rmem as u128),
                    sized(s.wmem as u128),
                    bytes_of(need_fit, page)
                ),
            );
            need = need_fit;
        } else {
            infeasible(
                facts,
                out,
                &budget,
                &demand,
                current,
                need,
                per_expected,
                fit.as_ref().map(|(f, _, _)| f),
                c.shrink_buffers_to_fit,
            );
            capacity_steps(
                out,
                current,
                page,
                budget.pages,
                current_rmem,
                current_wmem,
                cb,
                c.average_memory,
                worst,
            );
            return;
        }
    }

    let (new_high, step) = choose(high as u128, need, budget.pages);
    let (value, derived) = derive(current, new_high);
    let reason = match step {
        Step::Raise => {
            out.step(format!(
                "step 2: high {} < need_pages {need} → high' = {need}",
                pages(high as u128, page)
            ));
            format!(
                "high {} is below the {} {} connections need",
                bytes_of(high as u128, page),
                bytes_of(need, page),
                grouped(conns)
            )
        }
        Step::Cap => {
            out.step(format!(
                "step 3: high {} > budget_pages {} → high' = {}",
                pages(high as u128, page),
                budget.pages,
                budget.pages
            ));
            cap_reason(high, &budget, page)
        }
        Step::Keep => {
            out.step(format!(
                "step 4: need_pages {need} ≤ high {high} ≤ budget_pages {} → keep",
                budget.pages
            ));
            if derived {
                "low/pressure were out of order; re-derived from high".to_string()
            } else {
                format!(
                    "already fits {} needed; within the {} budget",
                    bytes_of(need, page),
                    bytes_of(budget.pages, page)
                )
            }
        }
    };
    low_pressure_step(out, value, derived);
    capacity_steps(
        out,
        current,
        page,
        value[2],
        current_rmem,
        current_wmem,
        cb,
        c.average_memory,
        recommended_worst,
    );
    emit(facts, out, value, reason);
}

/// high' = budget_pages and an error finding with the need, the budget, what it holds and
/// the remedies.
#[allow(clippy::too_many_arguments)]
fn infeasible(
    facts: &Facts,
    out: &mut Outcome,
    budget: &Budget,
    demand: &Demand,
    current: [u64; 3],
    need: u128,
    per_expected: u128,
    fit: Option<&Fit>,
    shrink_flag: bool,
) {
    let page = demand.page;
    let need_bytes = need.saturating_mul(page as u128);
    let holds = budget.bytes.checked_div(per_expected).unwrap_or(0);

    let mut remedies = Vec::new();
    match fit {
        Some(f) if f.ok && !shrink_flag => remedies.push(format!(
            "default buffers of {} receive and {} send (set connections.shrink_buffers_to_fit = true to apply them)",
            sized(f.shrink.rmem as u128),
            sized(f.shrink.wmem as u128)
        )),
        Some(f) if !f.ok => remedies.push(format!(
            "Shrinking the default buffers cannot make it fit: they would be {} and {}, below 4096 B.",
            sized(f.shrink.rmem as u128),
            sized(f.shrink.wmem as u128)
        )),
        _ => {}
    }
    let share = budget.share.0 as u128;
    let ram_by_share = if share == 0 {
        u128::MAX
    } else {
        need_bytes.saturating_mul(Dec4::SCALE).div_ceil(share)
    };
    let ram_fit = ram_by_share.max(need_bytes.saturating_add(budget.reserved as u128));
    remedies.push(format!("at least {} of RAM", human(ram_fit)));
    if budget.reserved > 0 && need_bytes <= budget.by_share && need_bytes <= budget.ram as u128 {
        let max_reserved = budget.ram as u128 - need_bytes;
        remedies.push(format!(
            "reserved_memory of at most {} (now {})",
            human(max_reserved),
            human(budget.reserved as u128)
        ));
    }
    remedies.push(format!(
        "fewer connections per host (this one holds {})",
        grouped(holds)
    ));
    let (buffers, fixes) = match remedies.first() {
        Some(first) if first.starts_with("Shrinking") => {
            let note = remedies.remove(0);
            (format!(" {note}"), remedies.join("; or "))
        }
        _ => (String::new(), remedies.join("; or ")),
    };
    let whole_host = if need_bytes > budget.ram as u128 {
        format!(", more than the host's {} of RAM", human(budget.ram as u128))
    } else {
        String::new()
    };
    out.finding(
        Severity::Error,
        ID,
        format!(
            "{} connections need {} of TCP memory at {} each with headroom {}{whole_host}, but the TCP budget is {} \
             ({}), which holds {} connections; tcp_mem high is capped at the budget.{buffers} Fix: {fixes}.",
            grouped(demand.conns),
            pages(need, page),
            sized(per_expected),
            demand.headroom,
            pages(budget.pages, page),
            budget.source(),
            grouped(holds)
        ),
    );
    out.step(format!("infeasible: high' = budget_pages = {}", budget.pages));
    let (value, derived) = derive(current, budget.pages);
    low_pressure_step(out, value, derived);
    emit(
        facts,
        out,
        value,
        format!(
            "{} connections need {}; capped at the {} budget",
            grouped(demand.conns),
            bytes_of(need, page),
            bytes_of(budget.pages, page)
        ),
    );
}

/// The capacity figures, current and recommended, for `plan -v`.
#[allow(clippy::too_many_arguments)]
fn capacity_steps(
    out: &mut Outcome,
    current: [u64; 3],
    page: u64,
    new_high: u128,
    current_rmem: Option<u64>,
    current_wmem: Option<u64>,
    cb: u64,
    average: Option<u64>,
    recommended_worst: Option<u64>,
) {
    let new_high = u64::try_from(new_high).unwrap_or(u64::MAX);
    let line = |label: &str, high: u64, per: u64| {
        format!(
            "{label} = floor({high} × {page} / {per}) = {}",
            max_connections(high, page, per)
        )
    };
    if let (Some(r), Some(w)) = (current_rmem, current_wmem) {
        let per = per_conn_worst(r, w, cb);
        out.step(line("max_connections_worst (current)", current[2], per));
    }
    if let Some(per) = recommended_worst {
        out.step(line("max_connections_worst (recommended)", new_high, per));
    }
    let expected_current = average.or(current_rmem
        .zip(current_wmem)
        .map(|(r, w)| per_conn_worst(r, w, cb)));
    if let Some(per) = expected_current {
        out.step(line("max_connections_expected (current)", current[2], per));
    }
    if let Some(per) = average.or(recommended_worst) {
        out.step(line("max_connections_expected (recommended)", new_high, per));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Severity, Shrink};
    use super::*;
    use crate::host::Facts;
    use crate::profile::Profile;

    const CLI_EXAMPLE: &str = r#"
headroom = 1.2
[connections]
concurrent = 860000
rmem_default = "43KiB"
wmem_default = "32KiB"
average_memory = "10KiB"
tcp_memory_share = 0.75
reserved_memory = "15GiB"
"#;

    /// The cli.md example without average_memory: 860 000 connections at 77 824 B.
    const WORST_CASE: &str = r#"
headroom = 1.2
[connections]
concurrent = 860000
rmem_default = "43KiB"
wmem_default = "32KiB"
tcp_memory_share = 0.75
reserved_memory = "15GiB"
"#;

    fn eval(facts: &Facts, profile: &Profile) -> Outcome {
        let out = evaluate_checked(&TcpMemory, facts, profile, None);
        for s in &out.settings {
            assert_eq!(s.key, KEY);
            let v: Vec<u128> = s.value.split(' ').map(|x| x.parse().unwrap()).collect();
            assert!(v[0] <= v[1] && v[1] <= v[2], "{}", s.value);
        }
        out
    }

    fn value(out: &Outcome) -> &str {
        assert_eq!(out.settings.len(), 1, "{out:#?}");
        &out.settings[0].value
    }

    fn severities(out: &Outcome) -> Vec<Severity> {
        out.findings.iter().map(|f| f.severity).collect()
    }

    #[test]
    fn article_capacity_figures() {
        assert_eq!(per_conn_worst(87380, 65536, 1024), 153940);
        assert_eq!(max_connections(12358848, 4096, 153940), 328841);
        assert_eq!(per_conn_worst(43 << 10, 32 << 10, 1024), 77824);
        assert_eq!(max_connections(12358848, 4096, 77824), 650465);
        assert_eq!(max_connections(12358848, 4096, 0), 0);
        assert_eq!(max_connections(u64::MAX, u64::MAX, 1), u64::MAX);
        assert_eq!(per_conn_worst(u64::MAX, 1, 1), u64::MAX);
    }

    #[test]
    fn cli_example_caps_high_at_the_budget() {
        let facts = proxy_host();
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "6094848 8126464 12189696");
        assert_eq!(
            out.settings[0].reason,
            "high 47.1 GiB exceeds the TCP budget 46.5 GiB (75% of 62 GiB)"
        );
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert_eq!(out.shrink, None);
        let steps = out.steps.join("\n");
        for s in [
            "need_pages = ceil(860000 × 10240 B × 1.2 / 4096) = 2580000 pages = 9.8 GiB",
            "min(49928994816, 50465865728) = 49928994816 B (46.5 GiB)",
            "budget_pages = floor(49928994816 / 4096) = 12189696 pages = 46.5 GiB",
            "= 44032 + 32768 + 1024 = 77824 B (76 KiB)",
            "low' = floor(12189696 / 2) = 6094848, pressure' = floor(12189696 × 2 / 3) = 8126464",
            "max_connections_worst (current) = floor(12358848 × 4096 / 153940) = 328841",
            "max_connections_worst (recommended) = floor(12189696 × 4096 / 77824) = 641562",
            "max_connections_expected (current) = floor(12358848 × 4096 / 10240) = 4943539",
            "max_connections_expected (recommended) = floor(12189696 × 4096 / 10240) = 4875878",
        ] {
            assert!(steps.contains(s), "missing {s:?} in\n{steps}");
        }
        // the capacity figures of cli.md's JSON example
        assert_eq!(max_connections(12189696, 4096, 77824), 641562);
        assert_eq!(max_connections(12358848, 4096, 10240), 4943539);
        assert_eq!(max_connections(12189696, 4096, 10240), 4875878);
        assert_eq!(need_pages(860000, 10240, Dec4(12000), 4096), 2580000);
    }

    #[test]
    fn worst_case_860k_does_not_fit_and_says_how_to_fix_it() {
        let facts = proxy_host();
        let out = eval(&facts, &profile(WORST_CASE));
        // high' = budget_pages
        assert_eq!(value(&out), "6094848 8126464 12189696");
        assert_eq!(
            out.settings[0].reason,
            "860 000 connections need 74.8 GiB; capped at the 46.5 GiB budget"
        );
        assert_eq!(out.shrink, None);
        assert_eq!(severities(&out), [Severity::Error]);
        let m = &out.findings[0].message;
        for s in [
            "860 000 connections need 19608000 pages = 74.8 GiB",
            "at 77824 B (76 KiB) each with headroom 1.2,",
            "more than the host's 62 GiB of RAM",
            "12189696 pages = 46.5 GiB (75% of 62 GiB)",
            "holds 641 562 connections",
            "26624 B (26 KiB) receive and 19456 B (19 KiB) send",
            "shrink_buffers_to_fit = true",
            "at least 99.7 GiB of RAM",
            "fewer connections per host",
        ] {
            assert!(m.contains(s), "missing {s:?} in {m}");
        }
        // lowering reserved_memory alone cannot help: the need exceeds the host
        assert!(!m.contains("reserved_memory of at most"), "{m}");
        let steps = out.steps.join("\n");
        assert!(
            steps.contains("fit_per_conn = floor(49928994816 B / (860000 × 1.2)) = 48380 B"),
            "{steps}"
        );
        assert!(
            steps
                .contains("rmem_fit = floor(44032 × (48380 − 1024) / (44032 + 32768) / 1024) × 1024 = 26624"),
            "{steps}"
        );
    }

    #[test]
    fn shrink_to_fit_applies_the_fitted_buffers() {
        let facts = proxy_host();
        let p = profile(&format!("{WORST_CASE}shrink_buffers_to_fit = true\n"));
        let out = eval(&facts, &p);
        assert_eq!(
            out.shrink,
            Some(Shrink {
                rmem: 26624,
                wmem: 19456
            })
        );
        assert_eq!(severities(&out), [Severity::Warning]);
        let m = &out.findings[0].message;
        for s in [
            "44032 B (43 KiB) receive",
            "26624 B (26 KiB) receive",
            "19456 B (19 KiB) send",
            "45.3 GiB",
        ] {
            assert!(m.contains(s), "missing {s:?} in {m}");
        }
        // need 11868000 pages fits; the current high is above the budget: step 3
        assert_eq!(
            need_pages(860000, 26624 + 19456 + 1024, Dec4(12000), 4096),
            11868000
        );
        assert_eq!(value(&out), "6094848 8126464 12189696");

        // a lower current high is raised to the shrunk need (step 2 after the shrink)
        let low = with(proxy_host(), KEY, Some("2000000 3000000 4000000"));
        let out = eval(&low, &p);
        assert_eq!(
            out.shrink,
            Some(Shrink {
                rmem: 26624,
                wmem: 19456
            })
        );
        assert_eq!(value(&out), "5934000 7912000 11868000");
        assert!(
            out.settings[0].reason.contains("is below the 45.3 GiB"),
            "{}",
            out.settings[0].reason
        );
    }

    #[test]
    fn shrink_off_gives_an_error_and_no_shrink() {
        let facts = proxy_host();
        let p = profile(&format!("{WORST_CASE}shrink_buffers_to_fit = false\n"));
        let out = eval(&facts, &p);
        assert_eq!(out.shrink, None);
        assert_eq!(severities(&out), [Severity::Error]);
    }

    #[test]
    fn shrink_that_would_go_below_4k_is_refused() {
        // 10 million connections at 77 824 B: fit_per_conn ≈ 4 KiB, buffers < 4096
        let p = profile(
            "[connections]\nconcurrent = 10000000\nrmem_default = \"43KiB\"\nwmem_default = \"32KiB\"\n\
             shrink_buffers_to_fit = true\n",
        );
        let out = eval(&proxy_host(), &p);
        assert_eq!(out.shrink, None);
        assert_eq!(severities(&out), [Severity::Error]);
        let m = &out.findings[0].message;
        assert!(
            m.contains("they would be 1024 B (1 KiB) and 1024 B (1 KiB), below 4096 B."),
            "{m}"
        );
        assert!(!m.contains("shrink_buffers_to_fit = true"), "{m}");
        assert_eq!(value(&out), "6094848 8126464 12189696");
    }

    #[test]
    fn average_memory_does_not_shrink_buffers() {
        // 5 million connections at 10 KiB do not fit; shrinking buffers would not help
        let p = profile(
            &CLI_EXAMPLE
                .replace("860000", "5000000")
                .replace("\n[connections]", "\n[connections]\nshrink_buffers_to_fit = true"),
        );
        let out = eval(&proxy_host(), &p);
        assert_eq!(out.shrink, None);
        assert_eq!(severities(&out), [Severity::Error]);
        let m = &out.findings[0].message;
        assert!(!m.contains("default buffers"), "{m}");
        assert!(m.contains("holds 4 875 878 connections"), "{m}");
    }

    #[test]
    fn lowering_reserved_memory_is_named_when_it_alone_fits() {
        // 2 million at 10 KiB × 1.2 = 22.9 GiB; budget min(46.5, 62 − 50 = 12 GiB)
        let p = profile(
            "[connections]\nconcurrent = 2000000\naverage_memory = \"10KiB\"\nreserved_memory = \"50GiB\"\n",
        );
        let out = eval(&proxy_host(), &p);
        assert_eq!(severities(&out), [Severity::Error]);
        let m = &out.findings[0].message;
        assert!(m.contains("(62 GiB less 50 GiB reserved)"), "{m}");
        assert!(
            m.contains("reserved_memory of at most 39.1 GiB (now 50 GiB)"),
            "{m}"
        );
        assert!(!m.contains("more than the host"), "{m}");
        // 12 GiB = 3145728 pages
        assert_eq!(value(&out), "1572864 2097152 3145728");
    }

    #[test]
    fn step_2_raises_a_low_high() {
        let facts = with(proxy_host(), KEY, Some("288459 384612 576918"));
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "1290000 1720000 2580000");
        assert_eq!(
            out.settings[0].reason,
            "high 2.2 GiB is below the 9.8 GiB 860 000 connections need"
        );
        assert!(out.findings.is_empty());
    }

    #[test]
    fn step_4_keeps_a_fitting_value_and_still_manages_it() {
        let facts = with(proxy_host(), KEY, Some("3000000 4000000 6000000"));
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "3000000 4000000 6000000");
        assert_eq!(
            out.settings[0].reason,
            "already fits 9.8 GiB needed; within the 46.5 GiB budget"
        );
        assert!(out.findings.is_empty());
    }

    #[test]
    fn step_4_rederives_low_and_pressure_out_of_order() {
        let facts = with(proxy_host(), KEY, Some("5000000 4000000 6000000"));
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "3000000 4000000 6000000");
        assert!(out.settings[0].reason.contains("out of order"));
    }

    #[test]
    fn without_input_a_high_above_the_budget_is_capped_and_managed() {
        // share 0.75, no reserve: 46.5 GiB = 12189696 pages < 12358848
        let out = eval(&proxy_host(), &profile(""));
        assert_eq!(value(&out), "6094848 8126464 12189696");
        assert_eq!(
            out.settings[0].reason,
            "high 47.1 GiB exceeds the TCP budget 46.5 GiB (75% of 62 GiB)"
        );
        assert!(out.findings.is_empty());
    }

    #[test]
    fn without_input_a_fine_value_is_left_alone() {
        let facts = with(proxy_host(), KEY, Some("288459 384612 576918"));
        let out = eval(&facts, &profile(""));
        assert_eq!(out, Outcome::default());
        // out-of-order low/pressure: still not the rule's business without input
        let facts = with(proxy_host(), KEY, Some("500000 384612 576918"));
        assert_eq!(eval(&facts, &profile("")), Outcome::default());
    }

    #[test]
    fn absent_tcp_mem_is_not_managed() {
        let facts = with(proxy_host(), KEY, None);
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert!(out.settings.is_empty());
        assert_eq!(severities(&out), [Severity::Info]);
        assert!(out.findings[0].message.contains("absent"));
        // without input: silent
        assert_eq!(eval(&facts, &profile("")), Outcome::default());
    }

    #[test]
    fn unknown_buffer_sizes_only_check_the_budget() {
        let facts = with(
            with(proxy_host(), "net.ipv4.tcp_rmem", None),
            "net.ipv4.tcp_wmem",
            None,
        );
        let out = eval(&facts, &profile("[connections]\nconcurrent = 1000\n"));
        assert_eq!(severities(&out), [Severity::Warning]);
        assert_eq!(value(&out), "6094848 8126464 12189696");
        // with an average it sizes normally
        let out = eval(
            &facts,
            &profile(CLI_EXAMPLE.replace("rmem_default = \"43KiB\"\n", "").as_str()),
        );
        assert_eq!(value(&out), "6094848 8126464 12189696");
        assert!(out.findings.is_empty());
    }

    #[test]
    fn reserved_at_or_above_ram_never_panics() {
        let p = profile("[connections]\nconcurrent = 1000\nreserved_memory = \"100GiB\"\n");
        let out = eval(&proxy_host(), &p);
        assert_eq!(value(&out), "0 0 0");
        assert_eq!(severities(&out), [Severity::Error]);
    }

    #[test]
    fn odd_facts_never_panic() {
        let big = profile(
            "headroom = 10\n[connections]\nconcurrent = 18446744073709551615\n\
             average_memory = 18446744073709551615\n[outbound]\nconcurrent = 18446744073709551615\n",
        );
        let mut huge = proxy_host();
        huge.mem.mem_total = u64::MAX;
        huge.page_size = 1;
        let mut zero_page = proxy_host();
        zero_page.page_size = 0;
        let mut no_ram = proxy_host();
        no_ram.mem.mem_total = 0;
        for facts in [
            huge,
            zero_page,
            no_ram,
            with(proxy_host(), KEY, Some("-1 2 3")),
            with(proxy_host(), KEY, Some("0 0 0")),
            with(
                proxy_host(),
                KEY,
                Some("18446744073709551615 18446744073709551615 18446744073709551615"),
            ),
            with(proxy_host(), "net.ipv4.tcp_rmem", Some("0 0 0")),
        ] {
            for p in [
                profile(""),
                profile(CLI_EXAMPLE),
                profile(WORST_CASE),
                big.clone(),
            ] {
                let _ = eval(&facts, &p);
            }
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn values_are_ordered_valid_and_within_the_budget(
                conns in 0u64..20_000_000,
                avg in proptest::option::of(1u64..200_000),
                rmem in 4096u64..300_000,
                wmem in 4096u64..300_000,
                share in 1u64..=10_000,
                headroom in 10_000u64..=100_000,
                reserved_gib in 0u64..70,
                shrink in any::<bool>(),
                cur in proptest::array::uniform3(0u64..30_000_000),
            ) {
                let mut p = profile("");
                p.connections.concurrent = conns;
                p.connections.average_memory = avg;
                p.connections.rmem_default = Some(rmem);
                p.connections.wmem_default = Some(wmem);
                p.connections.tcp_memory_share = Dec4(share);
                p.headroom = Dec4(headroom);
                p.connections.reserved_memory = crate::profile::MemSize::Bytes(reserved_gib << 30);
                p.connections.shrink_buffers_to_fit = shrink;
                let facts = with(proxy_host(), KEY, Some(&format!("{} {} {}", cur[0], cur[1], cur[2])));
                let out = eval(&facts, &p);
                let budget = Budget::new(facts.mem.mem_total, Dec4(share), reserved_gib << 30, 4096);
                if conns > 0 {
                    prop_assert_eq!(out.settings.len(), 1);
                }
                for s in &out.settings {
                    let v: Vec<u128> = s.value.split(' ').map(|x| x.parse().unwrap()).collect();
                    prop_assert!(v[2] <= budget.pages);
                }
                if let Some(s) = out.shrink {
                    prop_assert!(s.rmem >= 4096 && s.wmem >= 4096 && s.rmem <= rmem && s.wmem <= wmem);
                    let per = per_conn_worst(s.rmem, s.wmem, 1024) as u128;
                    let need = need_pages(conns as u128, per, Dec4(headroom), 4096);
                    prop_assert!(need <= budget.pages);
                }
            }
        }
    }
}
