//! Rule `tcp-memory`: sizes `net.ipv4.tcp_mem` (in quanta: pages) so the declared
//! connections sit below memory pressure, within what the host can give TCP. See [`DOC`].

use super::tcp_buffers::{bdp_bytes, max_target};
use super::{
    Capacity, Code, Context, Finding, Hazard, Measure, Outcome, Proposal, Rule, Severity, Shrink,
    Unit as Shown, Values,
};
use crate::host::Facts;
use crate::keys;
use crate::profile::Profile;
use crate::units::{Dec4, grouped, human_bytes, sized};

pub const DOC: &str = "\
What it does
  Sizes the kernel's TCP memory limits so that the connections the profile declares fit
  below memory pressure, and so that TCP cannot take memory the host does not have. It
  manages net.ipv4.tcp_mem when the profile declares connections (connections.concurrent
  + outbound.concurrent > 0). Without connections it only lowers a high above the TCP
  budget, and manages the key only then.

Why
  The kernel adds up the memory queued on all TCP sockets and compares it with tcp_mem.
  Above tcp_mem[1] (pressure) it is in memory pressure: send buffers are moderated and
  receive windows stop growing, all the time if the planned load sits there. Above
  tcp_mem[2] (high) it refuses socket memory: \"out of memory -- consider tuning tcp_mem\"
  (older kernels: \"Out of socket memory\"); the proxy of the article failed between
  300 000 and 860 000 connections. A high above what RAM can spare lets TCP push the
  application into the OOM killer instead. tcp_mem counts quanta (pages), tcp_rmem and
  tcp_wmem count bytes: mixing the two is the classic mistake, so every figure is shown in
  both.

What a connection costs
  The article: 85 KiB default receive + 64 KiB default send + 1 KiB of control block =
  150 KiB (87380 + 65536 + 1024 = 153940 B), so its 47.1 GiB high (12358848 pages) holds
  floor(12358848 * 4096 / 153940) = 328 841 connections (\"about 320 000\").
  What the kernel charges: a socket reserves memory for its queues in sk_forward_alloc a
  whole quantum at a time (sk_mem_pages() rounds up; __sk_mem_raise_allocated() in
  net/core/sock.c adds the quanta to TCP's total and checks it against tcp_mem), so
  87380 + 65536 = 152916 B costs 38 pages = 155648 B = 152 KiB of tcp_mem, and the
  socket, inode, file, dentry and epoll item (about 3.7 KiB on 6.x, from the slab sizes)
  are ~4 KiB of kernel memory outside tcp_mem. The same high holds
  floor(12358848 * 4096 / 155648) = 325 232 such connections.
  The quantum is the page, except on kernels 4.10-5.19 with pages larger than 4 KiB:
  there SK_MEM_QUANTUM was 4096 (commit bd68a2a854ad; 6.0 restored the page), and tcp_mem
  and sockstat mem count 4 KiB units. On a 6.x kernel with 64 KiB pages a connection
  holding 10 KiB costs 64 KiB.
  An idle connection has nothing queued and costs 0 of tcp_mem; the figures \"at default
  buffers\" are for connections whose queues hold their default buffers. Measured on 6.18
  (tests/tcp_memory_real.rs, loopback at MTU 1500, tcp_rmem 131072, tcp_wmem 16384, both
  maxima = defaults): every socket's charge is whole pages, idle sockets 0, a full
  receive queue 32 pages, a full send queue up to 12 (tcp_sendmsg() checks sk_sndbuf only
  before starting a segment), against per_conn_default = 36 pages.
  Autotuning grows busy connections' buffers up to tcp_rmem[2] and
  tcp_wmem[2], and the kernel raises each send buffer at connect (tcp_sndbuf_expand() in
  net/ipv4/tcp_input.c: about 2 x 10 segments' truesize, ~80 KiB at Ethernet MSS), so a
  wmem_default below that does not cap what a busy connection may queue: an info finding
  says so when the plan sets one.

Arithmetic (exact integers; headroom and share in ten-thousandths)
  quantum           = 4096 on kernels 4.10-5.19 with pages > 4 KiB, else the page
  quantum_up(x)     = ceil(x / quantum) * quantum
  conns             = connections.concurrent + outbound.concurrent
  per_conn_default  = quantum_up(tcp_rmem[1] + tcp_wmem[1])
                      (connections.rmem_default / wmem_default, else the current values)
  per_conn_expected = quantum_up(connections.average_memory), else per_conn_default
  need              = ceil(conns * per_conn_expected * headroom / quantum)     quanta
  usable            = MemTotal - Hugetlb
  budget_bytes      = min(floor(usable * tcp_memory_share),
                          usable - reserved_memory - conns * control_block)
  budget            = floor(budget_bytes / quantum)                            quanta
  control_block (default 4 KiB) is RAM the budget leaves free, not part of tcp_mem.
  A budget of less than one quantum is a validation error naming the three terms.
  1. need > budget: infeasible (below).
  2. Keep the current values when pressure >= need, high <= budget and
     low <= pressure <= high.
  3. Else pressure' = need when pressure < need, else min(pressure, budget);
     high'     = min(budget, max(high, ceil(pressure' * 3 / 2)));
     low'      = floor(pressure' * 3 / 4).
     The kernel's own defaults (tcp_init_mem() in net/ipv4/tcp.c) are 3/4 L, L, 3/2 L:
     high keeps that 50 % margin above pressure where the budget allows; a warning when
     high' < ceil(pressure' * 3 / 2).
  Capacity, for the current values and the recommended ones (JSON: *_worst is at
  default buffers):
    max_connections_*      = floor(high * quantum / per_conn_*)       refused above
    pressure_connections_* = floor(pressure * quantum / per_conn_*)   throttled above

  Infeasible: the budget holds floor(budget_bytes / per_conn_expected) connections.
  Without average_memory, shrinking the default buffers may fit:
    fit_per_conn = floor(floor(budget * 2 / 3) * quantum / (conns * headroom))
    rmem_fit     = floor(rmem * fit_per_conn / (rmem + wmem) / quantum) * quantum
    wmem_fit     = the same with wmem
  Multiples of the quantum computed from the quantum-aligned budget, so the shrunk demand
  fits at pressure floor(budget * 2 / 3) by construction and high = budget keeps the 50 %
  margin. With both >= 4096 and connections.shrink_buffers_to_fit = true they become
  tcp_rmem[1] and tcp_wmem[1] (rule tcp-buffers writes them), per_conn_* and need are
  recomputed and steps 2-3 run again; a warning says so. Otherwise high' = budget,
  pressure' = floor(high' * 2 / 3), low' = floor(pressure' * 3 / 4), and an error gives
  the need, the budget, the connections it holds and the remedies: the fitted buffers,
  the RAM that would fit = hugetlb + max(ceil(need_bytes / share),
  need_bytes + reserved_memory + conns * control_block), less reserved_memory, fewer
  connections per host.
  Without connections: only high > budget is checked; then high' = budget and pressure,
  low are scaled by high' / high, each floored.

  Example (the article's proxy: 62 GiB, tcp_mem 6179424 8239232 12358848, 860 000
  connections, 43/32 KiB buffers, average 10 KiB charged as 3 pages = 12 KiB, 15 GiB
  reserved, control_block 4 KiB, share 0.75, headroom 1.2): need 3096000 pages =
  11.8 GiB; budget min(46.5 GiB, 62 GiB - 15 GiB - 860 000 * 4 KiB = 43.7 GiB) =
  11460768 pages. The current pressure already holds the need, the current high is above
  the budget: tcp_mem' = 6179424 8239232 11460768, with a warning (high only 39 % above
  pressure). Connections at default buffers 325 232 -> 603 198 (at 77824 B each);
  expected (12 KiB) 4 119 616 -> 3 820 256; at pressure, expected 2 746 410.

Choices
  - Buffers are only shrunk when average_memory is not given: with an observed average,
    smaller default buffers would not change the demand.
  - When the profile names only one default (say wmem_default) and the other comes from
    the host, only the named one is shrunk: the other is already live, perhaps from an
    earlier shrink, and scaling it again would give new sizes at every run (the plan
    would never converge). The named one gets
    floor((fit_per_conn - quantum_up(other)) / quantum) * quantum.
  - A budget below one quantum (not only <= 0) is refused: tcp_mem 0 0 0 would refuse
    every socket its memory.
  - The remedy 'less reserved_memory' is named, with the largest value that fits, only
    when lowering it alone would make the demand fit.
  - Without connections, tcp_mem stays managed while its high equals the budget (what the
    cap set): dropping it from the drop-in once applied would let the next boot bring
    back a high above the budget. Scaling keeps low <= pressure <= high: a current
    pressure above high is capped at high', and low at pressure'.
  - The tcp_sndbuf_expand() info finding is given when the plan sets tcp_wmem[1] (from
    wmem_default or a shrink) below min(87040 B, tcp_wmem[2]'): 87040 = 2 * 10 *
    (4096 + 256), the kernel's formula at MSS 1460 where a segment's head rounds up to
    4 KiB. Builds whose heads fit in 2 KiB give 46080 B, and 3 * 10 segments with BBR
    (69120 B, measured on 6.18).
  - tcp_mem absent (inside a network namespace) or unreadable: not managed; an info
    finding when the profile declares connections, nothing otherwise.
  - Sizing defaults unknown (tcp_rmem/tcp_wmem absent, no rmem_default/wmem_default and
    no average_memory): a warning, and only the high > budget check.
  - Decided before the rules run, from the host (the plan shows each as a 'profile' info
    finding): connections.average_memory = \"observed\" is ceil(sockstat mem * quantum /
    inuse), refused below 1000 TCP sockets in use, then rounded up to whole quanta and,
    above 4 quanta, to a quarter of the power of two at or below it (at most 25 % more),
    so that a plan does not change with every second's traffic (give a size for a plan
    that never changes); with defaults_at_most, a default the host already has at or
    below rmem_default / wmem_default is kept and not managed;
    connections.concurrent = \"fit\" is the largest n whose need_pages (n connections plus
    outbound.concurrent, at per_conn_expected, with headroom) is at most
    floor(budget_pages(n) * 2 / 3), with the budget taken as if Committed_AS were
    reserved too (memory already promised to processes is not TCP's; not with host.ram,
    which plans another machine): pressure' holds them and high' = 3/2 pressure' stays
    within the RAM the reserve, the processes and the control blocks leave. It is also
    at most what file descriptors allow: n * headroom <= processes * (2147483584 - 1024),
    fs.nr_open's kernel maximum less the 1024 other files rule file-descriptors counts.
    None fitting is a validation error. Not caps: local ports (inbound connections are
    told apart by the client's address and port), and fs.epoll.max_user_watches (by
    default 4 % of RAM / ~160 B per watch, eventpoll_init() in fs/eventpoll.c: about
    RAM / 4 KB, more than the n <= RAM * 2 / 3 / (4096 * headroom) the budget allows).
  - A high at or below the TCP memory in use now (sockstat mem) would refuse every
    socket memory at once (apply refuses such a value): when the budget cap would lower
    high that far, the current high is kept and nothing is lowered, with a warning; a
    re-run lowers it once the use is below the budget.
  - 'gap' (info): when conns exceeds twice max_connections_worst after the plan, one line
    says the plan relies on most connections holding about average_memory.

References
  net/core/sock.c: __sk_mem_schedule(), __sk_mem_raise_allocated() (sk_forward_alloc,
  checked against sk_prot_mem_limits(), i.e. tcp_mem); include/net/sock.h: sk_mem_pages(),
  SK_MEM_QUANTUM (4096 on 4.10-5.19, commit bd68a2a854ad \"net: set SK_MEM_QUANTUM to
  4096\", reverted for 6.0); net/ipv4/tcp.c: tcp_init_mem(); net/ipv4/tcp_input.c:
  tcp_sndbuf_expand(); Documentation/networking/ip-sysctl.rst (tcp_mem, tcp_rmem,
  tcp_wmem); the article 'OOM killer under high concurrency' (2018): 'Out of socket
  memory' at ~700 000 connections, fixed by halving the default buffers to 43/32 KiB.
";

const ID: Code = Code::TcpMemory;
const KEY: &str = "net.ipv4.tcp_mem";
/// The smallest default buffer the rule will shrink to (tcp_rmem[0] on x86-64).
const MIN_BUFFER: u64 = 4096;
/// SK_MEM_QUANTUM on kernels 4.10-5.19, whatever the page size (commit bd68a2a854ad).
const OLD_QUANTUM: u64 = 4096;
/// What tcp_sndbuf_expand() gives a send buffer at connect at Ethernet MSS: 2 × 10
/// segments of roundup_pow_of_two(1460 + headers) + sk_buff = 4096 + 256 bytes.
pub const SNDBUF_AT_CONNECT: u64 = 2 * 10 * (4096 + 256);
/// The kernel's limit for each value of tcp_wmem (INT_MAX).
const MAX_BUFFER: u128 = 2147483647;

pub struct TcpMemory;

impl Rule for TcpMemory {
    fn code(&self) -> Code {
        Code::TcpMemory
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

    fn capacity(&self, ctx: &Context, v: &Values) -> Vec<(&'static Measure, Option<u64>)> {
        capacity(ctx, v)
    }

    fn review(&self, ctx: &Context, capacity: &Capacity) -> Vec<Finding> {
        gap(ctx.profile, capacity).into_iter().collect()
    }

    fn hazards(&self, p: &Proposal) -> crate::error::Result<Vec<Hazard>> {
        Ok(hazard(p).into_iter().collect())
    }
}

/// tcp_mem[2] (high: refused above) and tcp_mem[1] (pressure: throttled above) over the
/// charge of one connection, at default buffers and at the profile's `average_memory`.
pub const MAX_AT_DEFAULT: Measure = Measure::new(
    "max_connections_worst",
    "connections at default buffers",
    false,
    Shown::Count,
);
pub const PRESSURE_AT_DEFAULT: Measure = Measure::new(
    "pressure_connections_worst",
    "below memory pressure",
    true,
    Shown::Count,
);
pub const MAX_EXPECTED: Measure = Measure::new(
    "max_connections_expected",
    "connections, expected",
    false,
    Shown::Count,
);
pub const PRESSURE_EXPECTED: Measure = Measure::new(
    "pressure_connections_expected",
    "below memory pressure",
    true,
    Shown::Count,
);
pub const PER_CONN_DEFAULT: Measure = Measure::new(
    "per_connection_worst",
    "memory per connection, default buffers",
    true,
    Shown::Bytes,
);
pub const PER_CONN_EXPECTED: Measure = Measure::new(
    "per_connection_expected",
    "memory per connection, expected",
    true,
    Shown::Bytes,
);

/// The capacity figures from `v`: the charge per connection rounded up to the quantum,
/// and the connections tcp_mem's high and pressure hold at that charge.
fn capacity(ctx: &Context, v: &Values) -> Vec<(&'static Measure, Option<u64>)> {
    let q = quantum(&ctx.facts.kernel, ctx.facts.page_size);
    let ints = |k: &str| -> Option<Vec<u64>> { v(k)?.split_whitespace().map(|s| s.parse().ok()).collect() };
    let per_default = (|| {
        let r = ints("net.ipv4.tcp_rmem")?;
        let w = ints("net.ipv4.tcp_wmem")?;
        Some(per_conn_default(*r.get(1)?, *w.get(1)?, q))
    })();
    let expected = ctx
        .profile
        .connections
        .average_memory
        .map(|a| quantum_up(a, q))
        .or(per_default);
    let under = |i: usize, per: Option<u64>| {
        let units = ints(KEY).and_then(|t| t.get(i).copied())?;
        Some(connections_under(units, q, per?))
    };
    vec![
        (&MAX_AT_DEFAULT, under(2, per_default)),
        (&PRESSURE_AT_DEFAULT, under(1, per_default)),
        (&MAX_EXPECTED, under(2, expected)),
        (&PRESSURE_EXPECTED, under(1, expected)),
        (&PER_CONN_DEFAULT, per_default),
        (&PER_CONN_EXPECTED, expected),
    ]
}

/// One line when the connections the profile asks for are far more (over twice) than
/// tcp_mem holds at default buffers after the plan: the plan then relies on most
/// connections holding about `average_memory`, and says so.
fn gap(profile: &Profile, capacity: &Capacity) -> Option<Finding> {
    let asked = profile.conns();
    let at_default = capacity.get(MAX_AT_DEFAULT.name).recommended? as u128;
    let per = capacity.get(PER_CONN_DEFAULT.name).recommended?;
    if asked == 0 || at_default.saturating_mul(2) >= asked {
        return None;
    }
    let expected = match profile.connections.average_memory {
        Some(_) => capacity
            .get(PER_CONN_EXPECTED.name)
            .recommended
            .map(|e| {
                format!(
                    "relies on most of them holding about {} (average_memory)",
                    human_bytes(e as u128)
                )
            })
            .unwrap_or_default(),
        None => "cannot hold them all at once".to_string(),
    };
    Some(Finding::new(
        Severity::Info,
        ID,
        format!(
            "gap: the profile asks for {} connections, tcp_mem holds {} at default buffers ({} each, {}%): the plan {expected}",
            grouped(asked),
            grouped(at_default),
            human_bytes(per as u128),
            at_default * 100 / asked
        ),
    ))
}

/// Why `net.ipv4.tcp_mem = value` would break this host at once: a zero, or a high at or
/// below the TCP memory in use now (sockstat `mem`: every socket would be refused memory).
/// The one statement of the check: the rule keeps a high it would lower that far, and the
/// plan's hazard (an error finding apply refuses on) is this.
pub fn breaks(value: &str, facts: &Facts) -> Option<String> {
    let v: Vec<u64> = value.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    if v.contains(&0) {
        return Some(format!(
            "{KEY} = {value} has a zero: the kernel would refuse TCP memory to every socket"
        ));
    }
    let used = facts.sockstat.map(|s| s.tcp_mem)?;
    let high = *v.get(2)?;
    (high <= used).then(|| {
        format!(
            "{KEY} high {high} is at or below the {used} pages TCP uses now (sockstat mem): every socket would be \
             refused memory at once"
        )
    })
}

fn hazard(p: &Proposal) -> Option<Hazard> {
    let (value, change) = (p.setting)(KEY)?;
    let message = breaks(&value, p.facts).filter(|_| change)?;
    Some(Hazard { key: KEY, message })
}

/// tcp_mem's unit, in bytes: 4096 on kernels 4.10-5.19 with pages larger than 4 KiB
/// (SK_MEM_QUANTUM), else the page. A release without a parsable major.minor counts as
/// outside 4.10-5.19.
pub fn quantum(kernel: &str, page: u64) -> u64 {
    let fixed = matches!(keys::kernel_version(kernel), Some(v) if ((4, 10)..=(5, 19)).contains(&v));
    if fixed && page > OLD_QUANTUM {
        OLD_QUANTUM
    } else {
        page
    }
}

/// ceil(bytes / quantum) × quantum: what a socket holding `bytes` is charged. Saturating;
/// a quantum of 0 leaves the size as it is.
pub fn quantum_up(bytes: u64, quantum: u64) -> u64 {
    if quantum == 0 {
        return bytes;
    }
    bytes.div_ceil(quantum).saturating_mul(quantum)
}

/// per_conn_default = quantum_up(tcp_rmem[1] + tcp_wmem[1]).
pub fn per_conn_default(rmem_default: u64, wmem_default: u64, quantum: u64) -> u64 {
    quantum_up(rmem_default.saturating_add(wmem_default), quantum)
}

/// Connections of `per_conn` bytes each under `units` quanta of tcp_mem:
/// floor(units × quantum / per_conn); 0 when per_conn is 0.
pub fn connections_under(units: u64, quantum: u64, per_conn: u64) -> u64 {
    if per_conn == 0 {
        return 0;
    }
    let n = units as u128 * quantum as u128 / per_conn as u128;
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The validation error when the TCP budget is below one quantum, whatever `conns` is
/// (the plan refuses such a profile: exit 2, no plan). `facts` are the effective facts.
pub fn budget_error(facts: &Facts, profile: &Profile) -> Option<String> {
    let c = &profile.connections;
    let q = quantum(&facts.kernel, facts.page_size).max(1);
    let b = Budget::new(facts, profile, q);
    if b.bytes >= q as u128 {
        return None;
    }
    let ram = if profile.host.ram.is_some() {
        "host.ram"
    } else {
        "MemTotal"
    };
    Some(format!(
        "the TCP budget min(floor(usable × connections.tcp_memory_share), usable − connections.reserved_memory \
         − connections × connections.control_block) must hold at least one {q} B unit of tcp_mem, but is {}: \
         usable = {ram} \
         {} − Hugetlb {} = {}, reserved_memory = {}, {} connections × control_block {} = {}. Valid: \
         reserved_memory + connections × control_block below {}",
        if b.bytes > 0 {
            format!("{} B", b.bytes)
        } else {
            "0 B or less".to_string()
        },
        human_bytes(b.ram as u128),
        human_bytes(b.hugetlb as u128),
        human_bytes(b.usable),
        c.reserved_memory.describe(b.ram),
        grouped(b.conns),
        human_bytes(c.control_block as u128),
        human_bytes(b.blocks),
        human_bytes(b.usable),
    ))
}

/// `connections.concurrent = "fit"`: the most inbound connections (besides the profile's
/// `outbound.concurrent`) whose demand at `per_conn` bytes each, with headroom, sits at
/// or below two thirds of the TCP budget they leave: pressure' then holds them and high'
/// keeps the kernel's 50 % margin above it within the budget. The budget is taken with
/// `committed` bytes counted as reserved besides `reserved_memory` (the caller passes
/// Committed_AS: memory already promised to processes is not TCP's), so high' stays
/// within the RAM left once the reserve, the processes and the control blocks have theirs.
/// The largest `n` with `need_units(n) ≤ floor(budget_units(n) × 2 / 3)`, found by
/// bisection (both sides are monotonic in `n`); exact. `facts` are the effective facts.
pub fn connections_that_fit(facts: &Facts, profile: &Profile, per_conn: u64, committed: u64) -> u64 {
    let q = quantum(&facts.kernel, facts.page_size).max(1);
    let mut base = profile.clone();
    let reserved = profile.connections.reserved_memory(facts.mem.mem_total);
    base.connections.reserved_memory = crate::profile::MemSize::Bytes(reserved.saturating_add(committed));
    let fits = |n: u64| {
        let mut p = base.clone();
        p.connections.concurrent = n;
        let budget = Budget::new(facts, &p, q);
        need_units(p.conns(), per_conn, profile.headroom, q) <= budget.units * 2 / 3
    };
    if !fits(0) {
        return 0;
    }
    // Every connection costs at least one control block or one quantum of RAM.
    let per = (per_conn.max(1))
        .min(profile.connections.control_block.max(1))
        .min(q);
    let mut hi = (facts.mem.mem_total / per.max(1)).saturating_add(1);
    while hi > 0 && fits(hi) {
        hi = hi.saturating_mul(2);
        if hi == u64::MAX {
            break;
        }
    }
    let mut lo = 0u64;
    // invariant: fits(lo), !fits(hi) (or hi saturated)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// ceil(conns × per_conn × headroom / quantum), saturating (an overflow cannot fit anyway).
fn need_units(conns: u128, per_conn: u64, headroom: Dec4, quantum: u64) -> u128 {
    let denom = Dec4::SCALE * quantum.max(1) as u128;
    conns
        .checked_mul(per_conn as u128)
        .and_then(|x| x.checked_mul(headroom.0 as u128))
        .map_or(u128::MAX, |x| x.div_ceil(denom))
}

/// What the host can give TCP.
struct Budget {
    ram: u64,
    hugetlb: u64,
    /// ram − hugetlb
    usable: u128,
    share: Dec4,
    reserved: u64,
    conns: u128,
    control_block: u64,
    /// conns × control_block: kernel memory outside tcp_mem the budget leaves free.
    blocks: u128,
    /// floor(usable × share)
    by_share: u128,
    /// usable − reserved − blocks (0 when that is negative)
    by_reserve: u128,
    bytes: u128,
    /// floor(bytes / quantum): tcp_mem units.
    units: u128,
}

impl Budget {
    fn new(facts: &Facts, profile: &Profile, quantum: u64) -> Budget {
        let c = &profile.connections;
        let ram = facts.mem.mem_total;
        let hugetlb = facts.mem.hugetlb;
        let usable = ram.saturating_sub(hugetlb) as u128;
        // a share of RAM ("20%") is of MemTotal, not of MemTotal − hugetlb
        let reserved = c.reserved_memory(ram);
        let conns = profile.conns();
        let blocks = conns.saturating_mul(c.control_block as u128);
        let by_share = c.tcp_memory_share.mul_floor(usable);
        let by_reserve = usable.saturating_sub(reserved as u128).saturating_sub(blocks);
        let bytes = by_share.min(by_reserve);
        Budget {
            ram,
            hugetlb,
            usable,
            share: c.tcp_memory_share,
            reserved,
            conns,
            control_block: c.control_block,
            blocks,
            by_share,
            by_reserve,
            bytes,
            units: bytes / quantum.max(1) as u128,
        }
    }

    /// `62 GiB`, or `the 48 GiB outside hugetlb`.
    fn usable_text(&self) -> String {
        if self.hugetlb == 0 {
            human_bytes(self.usable)
        } else {
            format!("the {} outside hugetlb", human_bytes(self.usable))
        }
    }

    /// `75% of 62 GiB` or `62 GiB less 15 GiB reserved and 3.3 GiB of control blocks`:
    /// which limit made the budget.
    fn source(&self) -> String {
        if self.by_share <= self.by_reserve {
            return format!("{} of {}", self.share.percent(), self.usable_text());
        }
        let mut less = Vec::new();
        if self.reserved > 0 {
            less.push(format!("{} reserved", human_bytes(self.reserved as u128)));
        }
        if self.blocks > 0 {
            less.push(format!("{} of control blocks", human_bytes(self.blocks)));
        }
        format!("{} less {}", self.usable_text(), less.join(" and "))
    }

    fn steps(&self, u: &Unit, out: &mut Outcome) {
        out.step(format!(
            "usable = MemTotal − Hugetlb = {} − {} = {} B ({})",
            self.ram,
            self.hugetlb,
            self.usable,
            human_bytes(self.usable)
        ));
        out.step(format!(
            "budget_bytes = min(floor({} × {}), {} − {} − {} × {}) = min({}, {}) = {} B ({})",
            self.usable,
            self.share,
            self.usable,
            self.reserved,
            self.conns,
            self.control_block,
            self.by_share,
            self.by_reserve,
            self.bytes,
            human_bytes(self.bytes)
        ));
        out.step(format!(
            "budget = floor({} / {}) = {}",
            self.bytes,
            u.quantum,
            u.units(self.units)
        ));
    }
}

/// tcp_mem's unit on this host, for figures: `12189696 pages = 46.5 GiB`, or on a kernel
/// whose quantum is not the page, `12189696 × 4 KiB = 46.5 GiB`.
struct Unit {
    quantum: u64,
    page: u64,
}

impl Unit {
    fn units(&self, n: u128) -> String {
        if self.quantum == self.page {
            format!("{n} pages = {}", self.bytes(n))
        } else {
            format!("{n} × {} = {}", human_bytes(self.quantum as u128), self.bytes(n))
        }
    }

    fn bytes(&self, n: u128) -> String {
        human_bytes(n.saturating_mul(self.quantum as u128))
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

/// Default buffers shrunk so the connections fit at pressure floor(budget × 2 / 3).
struct Fit {
    per_conn: u128,
    shrink: Shrink,
    /// Both ≥ 4096 and the recomputed need fits (it does by construction).
    ok: bool,
}

struct Demand {
    conns: u128,
    headroom: Dec4,
    quantum: u64,
}

impl Demand {
    fn need(&self, per_conn: u64) -> u128 {
        need_units(self.conns, per_conn, self.headroom, self.quantum)
    }

    /// fit_per_conn and the shrunk buffers; `None` when there is nothing to scale.
    fn fit(&self, budget_units: u128, rmem: u64, wmem: u64, keep: Keep) -> Option<Fit> {
        let q = self.quantum as u128;
        let denom = self.conns.checked_mul(self.headroom.0 as u128)?;
        if denom == 0 || q == 0 {
            return None;
        }
        let pressure = budget_units * 2 / 3;
        let per_conn = pressure.checked_mul(q)?.checked_mul(Dec4::SCALE)? / denom;
        let down = |x: u128| -> Option<u64> { u64::try_from(x / q * q).ok() };
        let total = rmem as u128 + wmem as u128;
        if total == 0 {
            return None;
        }
        // Mixed sources: the default the profile names is shrunk, the current one (already
        // live, maybe from an earlier shrink) stays, so planning again converges.
        let rest = |other: u64| down(per_conn.saturating_sub(quantum_up(other, self.quantum) as u128));
        let shrink = match keep {
            Keep::Neither => Shrink {
                rmem: down(rmem as u128 * per_conn / total)?,
                wmem: down(wmem as u128 * per_conn / total)?,
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
        let need = self.need(per_conn_default(shrink.rmem, shrink.wmem, self.quantum));
        Some(Fit {
            per_conn,
            shrink,
            ok: big_enough && need <= pressure,
        })
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

/// A high the rule would lower to or below what TCP holds now (sockstat `mem`, the check
/// of [`breaks`]) would refuse every socket memory at once: the
/// current high is kept instead (when it is above that use), and nothing else is lowered
/// (a pressure the need raises is still raised), with a warning. The budget cap waits
/// until the host's use falls below it; re-running then lowers it.
fn keep_high_above_use(
    facts: &Facts,
    out: &mut Outcome,
    value: [u128; 3],
    reason: String,
) -> ([u128; 3], String) {
    let (Some(current), Some(ss)) = (facts.triple(KEY), facts.sockstat) else {
        return (value, reason);
    };
    let text = |v: [u128; 3]| format!("{} {} {}", v[0], v[1], v[2]);
    let now = current.map(|v| v as u128);
    let breaks = |v: [u128; 3]| breaks(&text(v), facts).is_some();
    if value[2] >= now[2] || !breaks(value) || breaks(now) {
        return (value, reason);
    }
    let page = facts.page_size;
    let u = Unit {
        quantum: quantum(&facts.kernel, page),
        page,
    };
    // Nothing lowered: each value the larger of the rule's and the current one (both
    // ordered, so the result is), high the current one.
    let kept = [value[0].max(now[0]), value[1].max(now[1]), now[2]];
    // The margin warning was about the high that is not set.
    let margin_warning = format!("{KEY} high' ");
    out.findings.retain(|f| !f.message.starts_with(&margin_warning));
    out.step(format!(
        "high' {} ≤ sockstat mem {} (TCP memory in use now) → high' = current high {}",
        value[2], ss.tcp_mem, now[2]
    ));
    out.finding(
        Severity::Warning,
        ID,
        format!(
            "TCP holds {} now (sockstat mem), more than the high of {} this plan would set ({reason}): lowering it \
             that far would refuse every socket memory at once, so high stays at {}. Once this host's TCP use is \
             below the new high (the profile's smaller buffers, fewer connections), re-run the plan to lower it.",
            u.units(ss.tcp_mem as u128),
            u.units(value[2]),
            u.units(now[2]),
        ),
    );
    let reason = format!(
        "high {} kept: TCP holds {} now, above the {} the budget allows",
        u.bytes(now[2]),
        u.bytes(ss.tcp_mem as u128),
        u.bytes(value[2])
    );
    (kept, reason)
}

fn cap_reason(high: u64, budget: &Budget, u: &Unit) -> String {
    format!(
        "high {} exceeds the TCP budget {} ({})",
        u.bytes(high as u128),
        u.bytes(budget.units),
        budget.source()
    )
}

/// Without connections (or without a way to size them): only high > budget.
fn only_cap(facts: &Facts, out: &mut Outcome, current: [u64; 3], budget: &Budget, u: &Unit) {
    let b = budget.units;
    let [low, pressure, high] = current.map(|v| v as u128);
    if high == b {
        // What the cap set on an earlier run: still managed, so the drop-in keeps it and
        // the next boot does not bring back a high above the budget.
        budget.steps(u, out);
        out.step(format!(
            "high {} = budget, as the cap set it: kept",
            u.units(high)
        ));
        emit(
            facts,
            out,
            [low, pressure, high],
            format!(
                "high {} = the TCP budget ({}), as sysctune set it",
                u.bytes(b),
                budget.source()
            ),
        );
        return;
    }
    if high < b {
        return;
    }
    budget.steps(u, out);
    // high > b ≥ 0, so high ≥ 1; the scaled values keep low ≤ pressure ≤ high'.
    let pressure2 = (pressure.saturating_mul(b) / high).min(b);
    let low2 = (low.saturating_mul(b) / high).min(pressure2);
    out.step(format!(
        "high {} > budget {b} → high' = {b}; pressure' = floor({pressure} × {b} / {high}) = {pressure2}, \
         low' = floor({low} × {b} / {high}) = {low2}",
        u.units(high)
    ));
    let (value, reason) = keep_high_above_use(
        facts,
        out,
        [low2, pressure2, b],
        cap_reason(current[2], budget, u),
    );
    emit(facts, out, value, reason);
}

fn run(ctx: &Context, out: &mut Outcome) {
    let facts = ctx.facts;
    let profile = ctx.profile;
    let c = &profile.connections;
    let conns = profile.conns();
    let Some((current, u)) = current_and_unit(ctx, out) else {
        return;
    };
    let q = u.quantum;
    let budget = Budget::new(facts, profile, q);
    if conns == 0 {
        only_cap(facts, out, current, &budget, &u);
        return;
    }

    // Sizing defaults: the profile's, else the current ones.
    let current_rmem = facts.triple("net.ipv4.tcp_rmem").map(|t| t[1]);
    let current_wmem = facts.triple("net.ipv4.tcp_wmem").map(|t| t[1]);
    let rmem = c.rmem_default.or(current_rmem);
    let wmem = c.wmem_default.or(current_wmem);
    out.step(format!(
        "conns = connections.concurrent + outbound.concurrent = {} + {} = {conns}",
        c.concurrent, profile.outbound.concurrent
    ));
    if q == u.page {
        out.step(format!("quantum = the page = {q} B (tcp_mem counts pages)"));
    } else {
        out.step(format!(
            "quantum = {q} B: kernel {} with {} B pages charges SK_MEM_QUANTUM = 4096 (4.10-5.19), \
             so tcp_mem counts 4 KiB units",
            facts.kernel, u.page
        ));
    }
    let Some((default, expected)) = per_conn(ctx, rmem, wmem, q, out) else {
        only_cap(facts, out, current, &budget, &u);
        return;
    };

    let demand = Demand {
        conns,
        headroom: profile.headroom,
        quantum: q,
    };
    let mut need = demand.need(expected);
    out.step(format!(
        "need = ceil({conns} × {expected} B × {} / {q}) = {}",
        demand.headroom,
        u.units(need)
    ));
    budget.steps(&u, out);

    let mut recommended_default = default;
    let mut shrunk = None;
    if need > budget.units {
        out.step(format!(
            "step 1: need {need} > budget {} → infeasible",
            budget.units
        ));
        let fit = fit_to_budget(ctx, &demand, &budget, rmem, wmem, out);
        match shrink(ctx, &demand, &budget, &u, need, fit.as_ref(), out) {
            Some((s, d, need_fit)) => {
                shrunk = Some(s);
                recommended_default = Some(d);
                need = need_fit;
            }
            None => {
                let capped = infeasible(
                    out,
                    &budget,
                    &demand,
                    &u,
                    need,
                    expected,
                    fit.as_ref().map(|(f, _, _, _)| f),
                    c.shrink_buffers_to_fit,
                );
                let reason = format!(
                    "{} connections need {}; capped at the {} budget",
                    grouped(conns),
                    u.bytes(need),
                    u.bytes(budget.units)
                );
                let buffers = (current_rmem.zip(current_wmem), default);
                finish(ctx, out, &u, current, (capped, reason), buffers, None);
                return;
            }
        }
    }
    let sized = size(out, &budget, &u, current, need, conns);
    let buffers = (current_rmem.zip(current_wmem), recommended_default);
    finish(ctx, out, &u, current, sized, buffers, shrunk);
}

/// The current tcp_mem and its unit, or a finding and `None` when the key is absent or
/// unreadable, or the page size is 0 (only said when the profile declares connections).
fn current_and_unit(ctx: &Context, out: &mut Outcome) -> Option<([u64; 3], Unit)> {
    let facts = ctx.facts;
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
        return None;
    };
    if page == 0 {
        if conns > 0 {
            out.finding(
                Severity::Warning,
                ID,
                format!(
                    "The page size is 0; {KEY} (in pages) is not managed. Set host.page_size in the profile."
                ),
            );
        }
        return None;
    }
    let quantum = quantum(&facts.kernel, page);
    Some((current, Unit { quantum, page }))
}

/// per_conn_default (when both default buffers are known) and per_conn_expected; `None`,
/// with a warning, when neither average_memory nor both buffers are known.
fn per_conn(
    ctx: &Context,
    rmem: Option<u64>,
    wmem: Option<u64>,
    q: u64,
    out: &mut Outcome,
) -> Option<(Option<u64>, u64)> {
    let c = &ctx.profile.connections;
    let conns = ctx.profile.conns();
    let default = match (rmem, wmem) {
        (Some(r), Some(w)) => {
            let src = |given: Option<u64>| if given.is_some() { "profile" } else { "current" };
            let d = per_conn_default(r, w, q);
            out.step(format!(
                "per_conn_default = quantum_up(tcp_rmem[1] ({}) + tcp_wmem[1] ({})) = quantum_up({r} + {w}) = {}",
                src(c.rmem_default),
                src(c.wmem_default),
                sized(d as u128)
            ));
            Some(d)
        }
        _ => None,
    };
    let expected = match (c.average_memory, default) {
        (Some(avg), _) => {
            let e = quantum_up(avg, q);
            out.step(format!(
                "per_conn_expected = quantum_up(average_memory {avg}) = {}",
                sized(e as u128)
            ));
            e
        }
        (None, Some(d)) => {
            out.step(format!(
                "per_conn_expected = per_conn_default = {}",
                sized(d as u128)
            ));
            d
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
            return None;
        }
    };

    Some((default, expected))
}

/// The default buffers that would fit the budget (keeping the one the host gave when the
/// profile names only the other), with their steps; `None` with average_memory (smaller
/// buffers would not change the demand) or without both buffers.
fn fit_to_budget(
    ctx: &Context,
    demand: &Demand,
    budget: &Budget,
    rmem: Option<u64>,
    wmem: Option<u64>,
    out: &mut Outcome,
) -> Option<(Fit, u64, u64, Keep)> {
    let c = &ctx.profile.connections;
    let (conns, q) = (demand.conns, demand.quantum);
    let fit = match (c.average_memory, rmem, wmem) {
        (None, Some(r), Some(w)) => {
            let keep = match (c.rmem_default, c.wmem_default) {
                (None, Some(_)) => Keep::Rmem,
                (Some(_), None) => Keep::Wmem,
                _ => Keep::Neither,
            };
            demand.fit(budget.units, r, w, keep).map(|f| (f, r, w, keep))
        }
        _ => None,
    };
    if let Some((f, r, w, keep)) = &fit {
        out.step(format!(
            "fit_per_conn = floor(floor({} × 2 / 3) × {q} / ({conns} × {})) = {}",
            budget.units,
            demand.headroom,
            sized(f.per_conn)
        ));
        let per = f.per_conn;
        out.step(match keep {
            Keep::Neither => format!(
                "rmem_fit = floor({r} × {per} / ({r} + {w}) / {q}) × {q} = {}; wmem_fit = floor({w} × {per} / \
                 ({r} + {w}) / {q}) × {q} = {}",
                sized(f.shrink.rmem as u128),
                sized(f.shrink.wmem as u128)
            ),
            Keep::Rmem => format!(
                "wmem_fit = floor(({per} − quantum_up({r})) / {q}) × {q} = {} (tcp_rmem[1] {r} is the host's: kept)",
                sized(f.shrink.wmem as u128)
            ),
            Keep::Wmem => format!(
                "rmem_fit = floor(({per} − quantum_up({w})) / {q}) × {q} = {} (tcp_wmem[1] {w} is the host's: kept)",
                sized(f.shrink.rmem as u128)
            ),
        });
    }
    fit
}

/// shrink_buffers_to_fit: the shrunk buffers, their per_conn_default and need, with the
/// warning that says so; `None` when not asked for or the fit is not good enough.
fn shrink(
    ctx: &Context,
    demand: &Demand,
    budget: &Budget,
    u: &Unit,
    need: u128,
    fit: Option<&(Fit, u64, u64, Keep)>,
    out: &mut Outcome,
) -> Option<(Shrink, u64, u128)> {
    let c = &ctx.profile.connections;
    let (conns, q) = (demand.conns, demand.quantum);
    let (f, r, w, _) = fit?;
    let (r, w) = (*r, *w);
    if !(f.ok && c.shrink_buffers_to_fit) {
        return None;
    }
    let s = f.shrink;
    let d = per_conn_default(s.rmem, s.wmem, q);
    let need_fit = demand.need(d);
    out.shrink = Some(s);
    out.step(format!(
        "shrink_buffers_to_fit: per_conn_default = quantum_up({} + {}) = {}; need = {}",
        s.rmem,
        s.wmem,
        sized(d as u128),
        u.units(need_fit)
    ));
    out.finding(
        Severity::Warning,
        ID,
        format!(
            "{} connections did not fit the TCP budget {} at default buffers of {} receive and {} send \
             ({} needed); shrink_buffers_to_fit shrank them to {} receive and {} send (tcp_rmem[1], \
             tcp_wmem[1]), which need {}: below pressure at two thirds of the budget, so high = budget \
             keeps the kernel's 50% margin.",
            grouped(conns),
            u.bytes(budget.units),
            sized(r as u128),
            sized(w as u128),
            u.bytes(need),
            sized(s.rmem as u128),
            sized(s.wmem as u128),
            u.bytes(need_fit)
        ),
    );
    Some((s, d, need_fit))
}

/// The last steps of every sized plan: keep a high TCP already holds, the sndbuf note,
/// the capacity steps, and the value. `buffers`: the current default buffers and the
/// per_conn_default the plan leaves.
fn finish(
    ctx: &Context,
    out: &mut Outcome,
    u: &Unit,
    current: [u64; 3],
    sized: ([u128; 3], String),
    buffers: (Option<(u64, u64)>, Option<u64>),
    shrunk: Option<Shrink>,
) {
    let facts = ctx.facts;
    let (value, reason) = keep_high_above_use(facts, out, sized.0, sized.1);
    sndbuf_finding(ctx, out, shrunk);
    capacity_steps(
        out,
        u,
        current,
        value,
        buffers.0,
        ctx.profile.connections.average_memory,
        buffers.1,
    );
    emit(facts, out, value, reason);
}

/// Steps 2-3: keep the current values, or size pressure to the need and give high the
/// kernel's margin within the budget.
fn size(
    out: &mut Outcome,
    budget: &Budget,
    u: &Unit,
    current: [u64; 3],
    need: u128,
    conns: u128,
) -> ([u128; 3], String) {
    let [low, pressure, high] = current.map(|v| v as u128);
    let b = budget.units;
    let ordered = low <= pressure && pressure <= high;
    if pressure >= need && high <= b && ordered {
        out.step(format!(
            "step 2: pressure {pressure} ≥ need {need}, high {high} ≤ budget {b}, low ≤ pressure ≤ high → keep"
        ));
        let reason = format!(
            "pressure {} already holds the {} needed, within the budget",
            u.bytes(pressure),
            u.bytes(need)
        );
        return ([low, pressure, high], reason);
    }
    let pressure2 = if pressure < need {
        out.step(format!(
            "step 3: pressure {pressure} < need {need} → pressure' = {need}"
        ));
        need
    } else {
        let p = pressure.min(b);
        out.step(format!(
            "step 3: pressure {pressure} ≥ need {need} → pressure' = min({pressure}, budget {b}) = {p}"
        ));
        p
    };
    let margin = pressure2.saturating_mul(3).div_ceil(2);
    let high2 = b.min(high.max(margin));
    let low2 = pressure2.saturating_mul(3) / 4;
    out.step(format!(
        "high' = min(budget {b}, max(high {high}, ceil({pressure2} × 3 / 2) = {margin})) = {high2}"
    ));
    out.step(format!("low' = floor({pressure2} × 3 / 4) = {low2}"));
    if high2 < margin {
        let pct = (high2 - pressure2)
            .saturating_mul(100)
            .checked_div(pressure2)
            .unwrap_or(0);
        let lower = if need <= b * 2 / 3 && pressure2 > b * 2 / 3 {
            format!(
                " The need ({}) is below two thirds of the budget: a pressure of {} would hold it with the \
                 full margin.",
                u.units(need),
                b * 2 / 3
            )
        } else {
            String::new()
        };
        out.finding(
            Severity::Warning,
            ID,
            format!(
                "{KEY} high' {} is only {pct}% above pressure' {}: the TCP budget {} ({}) allows no more, less \
                 than the kernel's own 50% margin between pressure and refusal (tcp_init_mem(): low 3/4, high 3/2 \
                 of pressure). Bursts above pressure meet refusals sooner; more RAM, less reserved_memory or \
                 fewer connections per host restore it.{lower}",
                u.units(high2),
                u.units(pressure2),
                u.bytes(b),
                budget.source()
            ),
        );
    }
    let reason = if pressure < need {
        format!(
            "pressure {} is below the {} {} connections need",
            u.bytes(pressure),
            u.bytes(need),
            grouped(conns)
        )
    } else if high > b {
        cap_reason(high as u64, budget, u)
    } else {
        "low/pressure/high were out of order; re-derived from pressure".to_string()
    };
    ([low2, pressure2, high2], reason)
}

/// high' = budget and an error finding with the need, the budget, what it holds and the
/// remedies; the recommended value.
#[allow(clippy::too_many_arguments)]
fn infeasible(
    out: &mut Outcome,
    budget: &Budget,
    demand: &Demand,
    u: &Unit,
    need: u128,
    per_expected: u64,
    fit: Option<&Fit>,
    shrink_flag: bool,
) -> [u128; 3] {
    let need_bytes = need.saturating_mul(u.quantum as u128);
    let holds = budget.bytes.checked_div(per_expected as u128).unwrap_or(0);

    let mut remedies = Vec::new();
    let mut buffers = String::new();
    match fit {
        Some(f) if f.ok && !shrink_flag => remedies.push(format!(
            "default buffers of {} receive and {} send (set connections.shrink_buffers_to_fit = true to apply them)",
            sized(f.shrink.rmem as u128),
            sized(f.shrink.wmem as u128)
        )),
        Some(f) if !f.ok => {
            buffers = format!(
                " Shrinking the default buffers cannot make it fit: they would be {} and {}, below 4096 B.",
                sized(f.shrink.rmem as u128),
                sized(f.shrink.wmem as u128)
            )
        }
        _ => {}
    }
    let share = budget.share.0 as u128;
    let ram_by_share = if share == 0 {
        u128::MAX
    } else {
        need_bytes.saturating_mul(Dec4::SCALE).div_ceil(share)
    };
    let ram_by_reserve = need_bytes
        .saturating_add(budget.reserved as u128)
        .saturating_add(budget.blocks);
    let ram_fit = ram_by_share
        .max(ram_by_reserve)
        .saturating_add(budget.hugetlb as u128);
    remedies.push(format!("at least {} of RAM", human_bytes(ram_fit)));
    let room = budget.usable.saturating_sub(budget.blocks);
    if budget.reserved > 0 && need_bytes <= budget.by_share && need_bytes <= room {
        remedies.push(format!(
            "reserved_memory of at most {} (now {})",
            human_bytes(room - need_bytes),
            human_bytes(budget.reserved as u128)
        ));
    }
    remedies.push(format!(
        "fewer connections per host (this one holds {})",
        grouped(holds)
    ));
    let whole_host = match (need_bytes > budget.usable, budget.hugetlb) {
        (false, _) => String::new(),
        (true, 0) => format!(", more than the host's {} of RAM", human_bytes(budget.usable)),
        (true, _) => format!(
            ", more than the {} of RAM outside hugetlb",
            human_bytes(budget.usable)
        ),
    };
    out.finding(
        Severity::Error,
        ID,
        format!(
            "{} connections need {} of TCP memory at {} each with headroom {}{whole_host}, but the TCP budget is {} \
             ({}), which holds {} connections; tcp_mem high is capped at the budget.{buffers} Fix: {}.",
            grouped(demand.conns),
            u.units(need),
            sized(per_expected as u128),
            demand.headroom,
            u.units(budget.units),
            budget.source(),
            grouped(holds),
            remedies.join("; or ")
        ),
    );
    let high = budget.units;
    let pressure = high * 2 / 3;
    let low = pressure * 3 / 4;
    out.step(format!(
        "infeasible: high' = budget = {high}, pressure' = floor({high} × 2 / 3) = {pressure}, \
         low' = floor({pressure} × 3 / 4) = {low}"
    ));
    [low, pressure, high]
}

/// The info finding that tcp_wmem[1] does not cap a busy connection's send queue, when
/// the plan sets it (from the profile, or shrunk) below what tcp_sndbuf_expand() gives.
fn sndbuf_finding(ctx: &Context, out: &mut Outcome, shrunk: Option<Shrink>) {
    let c = &ctx.profile.connections;
    let (wmem, source) = match (shrunk, c.wmem_default) {
        (Some(s), _) => (s.wmem, "shrunk to fit"),
        (None, Some(w)) => (w, "from connections.wmem_default"),
        (None, None) => return,
    };
    let Some([_, _, current_max]) = ctx.facts.triple("net.ipv4.tcp_wmem") else {
        return;
    };
    // tcp_wmem[2] as rule tcp-buffers recommends it: raised to 2 × BDP, never lowered.
    let mut max = current_max as u128;
    if let (Some(bandwidth), Some(rtt)) = (c.bandwidth, c.rtt) {
        max = max
            .max(max_target(bdp_bytes(bandwidth, rtt), ctx.facts.page_size))
            .min(MAX_BUFFER);
    }
    let max = max.max(wmem as u128);
    if wmem as u128 >= (SNDBUF_AT_CONNECT as u128).min(max) {
        return;
    }
    out.finding(
        Severity::Info,
        ID,
        format!(
            "tcp_wmem[1] = {}, {source}, is where a connection's send buffer starts, not a cap: at connect the \
             kernel raises it to about 2 × 10 segments' truesize (tcp_sndbuf_expand() in net/ipv4/tcp_input.c, \
             ~80 KiB at Ethernet MSS), and further as the congestion window grows, up to tcp_wmem[2] = {}. The \
             capacity at default buffers counts connections whose queues stay within the defaults: busy ones may \
             hold more, idle ones hold ~0.",
            sized(wmem as u128),
            sized(max)
        ),
    );
}

/// The capacity figures, current and recommended, for `plan -v` (JSON names: `*_worst`
/// is at default buffers).
fn capacity_steps(
    out: &mut Outcome,
    u: &Unit,
    current: [u64; 3],
    recommended: [u128; 3],
    current_buffers: Option<(u64, u64)>,
    average: Option<u64>,
    recommended_default: Option<u64>,
) {
    let q = u.quantum;
    let recommended = recommended.map(|v| u64::try_from(v).unwrap_or(u64::MAX));
    let mut lines = |which: &str, values: [u64; 3], per: Option<u64>| {
        let Some(per) = per else {
            return;
        };
        for (name, i) in [("max", 2), ("pressure", 1)] {
            out.step(format!(
                "{name}_connections_{which} = floor({} × {q} / {per}) = {}",
                values[i],
                connections_under(values[i], q, per)
            ));
        }
    };
    let current_default = current_buffers.map(|(r, w)| per_conn_default(r, w, q));
    let expected = |d: Option<u64>| average.map(|a| quantum_up(a, q)).or(d);
    lines("worst (current)", current, current_default);
    lines("worst (recommended)", recommended, recommended_default);
    lines("expected (current)", current, expected(current_default));
    lines(
        "expected (recommended)",
        recommended,
        expected(recommended_default),
    );
}
#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Severity, Shrink};
    use super::*;
    use crate::host::Facts;
    use crate::profile::Profile;

    /// The article's proxy profile (tests/profiles/article-proxy.toml) with the control block (4 KiB, the default).
    const CLI_EXAMPLE: &str = r#"
headroom = 1.2
[connections]
concurrent = 860000
rmem_default = "43KiB"
wmem_default = "32KiB"
average_memory = "10KiB"
control_block = "4KiB"
tcp_memory_share = 0.75
reserved_memory = "15GiB"
"#;

    /// The article's proxy profile without average_memory: 860 000 connections at 77 824 B.
    const WORST_CASE: &str = r#"
headroom = 1.2
[connections]
concurrent = 860000
rmem_default = "43KiB"
wmem_default = "32KiB"
tcp_memory_share = 0.75
reserved_memory = "15GiB"
"#;

    const GIB: u64 = 1 << 30;

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

    fn message(out: &Outcome, severity: Severity) -> &str {
        let f = out.findings.iter().find(|f| f.severity == severity);
        &f.unwrap_or_else(|| panic!("no {severity:?} in {:#?}", out.findings))
            .message
    }

    fn has_steps(out: &Outcome, expected: &[&str]) {
        let steps = out.steps.join("\n");
        for s in expected {
            assert!(steps.contains(s), "missing {s:?} in\n{steps}");
        }
    }

    /// A 64 GiB host with 64 KiB pages (arm64, ppc64le) on `kernel`, with 6.x-like
    /// defaults for the buffers.
    fn host_64k(kernel: &str, tcp_mem: &str) -> Facts {
        let mut f = with(proxy_host(), KEY, Some(tcp_mem));
        f = with(f, "net.ipv4.tcp_rmem", Some("4096 131072 6291456"));
        f = with(f, "net.ipv4.tcp_wmem", Some("4096 16384 4194304"));
        f.kernel = kernel.into();
        f.page_size = 65536;
        f.mem.mem_total = 64 * GIB;
        f
    }

    /// A 64 GiB host with 16 GiB of it in huge pages.
    fn hugetlb_host(tcp_mem: &str) -> Facts {
        let mut f = with(proxy_host(), KEY, Some(tcp_mem));
        f.kernel = "6.8.0".into();
        f.mem.mem_total = 64 * GIB;
        f.mem.hugetlb = 16 * GIB;
        f
    }

    #[test]
    fn the_quantum_is_the_page_except_on_4_10_to_5_19_with_large_pages() {
        for (kernel, page, q) in [
            ("3.10.0-327.el7.x86_64", 4096, 4096),
            ("4.9.0", 65536, 65536),
            ("4.10.0", 65536, 4096),
            ("5.4.0-150-generic", 65536, 4096),
            ("5.4.0-150-generic", 16384, 4096),
            ("5.4.0-150-generic", 4096, 4096),
            ("5.19.17", 65536, 4096),
            ("6.0.0", 65536, 65536),
            ("6.18.44-fc", 65536, 65536),
            ("unknown", 65536, 65536),
            ("5", 65536, 65536),
        ] {
            assert_eq!(quantum(kernel, page), q, "{kernel} {page}");
        }
        assert_eq!(quantum_up(10240, 4096), 12288);
        assert_eq!(quantum_up(10240, 65536), 65536);
        assert_eq!(quantum_up(8192, 4096), 8192);
        assert_eq!(quantum_up(0, 4096), 0);
        assert_eq!(quantum_up(u64::MAX, 4096), u64::MAX);
        assert_eq!(quantum_up(5, 0), 5);
    }

    /// The worked numbers of the DOC: the article's figure, then what the kernel charges.
    #[test]
    fn article_capacity_figures() {
        // the article: 87380 + 65536 + 1024 = 153940 B → "about 320 000"
        assert_eq!(connections_under(12358848, 4096, 87380 + 65536 + 1024), 328841);
        // the kernel: quantum_up(152916) = 155648 (38 pages)
        assert_eq!(per_conn_default(87380, 65536, 4096), 155648);
        assert_eq!(connections_under(12358848, 4096, 155648), 325232);
        assert_eq!(connections_under(8239232, 4096, 155648), 216821);
        // halved buffers 43/32 KiB
        assert_eq!(per_conn_default(44032, 32768, 4096), 77824);
        assert_eq!(connections_under(12358848, 4096, 77824), 650465);
        // 860 000 at 77 824 B: 62.3 GiB, more than the host; at 10 KiB charged as 12 KiB:
        // 9.8 GiB, 11.8 GiB with headroom 1.2
        assert_eq!(need_units(860000, 77824, Dec4::ONE, 4096) * 4096, 66928640000);
        assert_eq!(human_bytes(66928640000), "62.3 GiB");
        assert_eq!(human_bytes(860000 * 12288), "9.8 GiB");
        assert_eq!(need_units(860000, 12288, Dec4(12000), 4096), 3096000);
        assert_eq!(human_bytes(3096000 * 4096), "11.8 GiB");
        // edges
        assert_eq!(connections_under(12358848, 4096, 0), 0);
        assert_eq!(connections_under(u64::MAX, u64::MAX, 1), u64::MAX);
        assert_eq!(per_conn_default(u64::MAX, 1, 4096), u64::MAX);
    }

    #[test]
    fn the_doc_shows_both_figures_and_cites_the_kernel() {
        for s in [
            "85 KiB default receive + 64 KiB default send + 1 KiB of control block",
            "150 KiB (87380 + 65536 + 1024 = 153940 B)",
            "328 841 connections",
            "38 pages = 155648 B = 152 KiB",
            "~4 KiB of kernel memory outside tcp_mem",
            "325 232",
            "sk_forward_alloc",
            "__sk_mem_raise_allocated() in",
            "net/core/sock.c",
            "tcp_init_mem() in net/ipv4/tcp.c",
            "sk_mem_pages()",
            "SK_MEM_QUANTUM",
            "bd68a2a854ad",
            "tcp_sndbuf_expand()",
            "6179424 8239232 11460768",
            "603 198",
            "2 746 410",
        ] {
            assert!(DOC.contains(s), "DOC lacks {s:?}");
        }
        assert!(
            !DOC.contains("../shared"),
            "the DOC must not point outside the repository"
        );
    }

    /// The cap never lowers high to or below what TCP holds now: the kernel would refuse
    /// every socket memory at once (the check apply refuses on, breaks).
    #[test]
    fn high_is_not_lowered_below_the_memory_in_use() {
        let sockstat = |mem| crate::host::Sockstat {
            sockets_used: 702_400,
            tcp_inuse: 702_311,
            tcp_orphan: 0,
            tcp_tw: 0,
            tcp_alloc: 702_400,
            tcp_mem: mem,
        };
        // The article's proxy at the failure: 11902211 pages in use, above the budget
        // 11460768: high stays 12358848, with a warning; the margin warning is dropped.
        let mut facts = proxy_host();
        facts.sockstat = Some(sockstat(11_902_211));
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "6179424 8239232 12358848");
        assert_eq!(
            out.settings[0].reason,
            "high 47.1 GiB kept: TCP holds 45.4 GiB now, above the 43.7 GiB the budget allows"
        );
        assert_eq!(severities(&out), [Severity::Warning, Severity::Info]);
        let w = message(&out, Severity::Warning);
        assert!(
            w.starts_with(
                "TCP holds 11902211 pages = 45.4 GiB now (sockstat mem), more than the high of 11460768"
            ) && w.contains("so high stays at 12358848 pages = 47.1 GiB"),
            "{w}"
        );
        assert!(breaks(value(&out), &facts).is_none());
        // In use just below the budget: capped as before.
        facts.sockstat = Some(sockstat(11_460_767));
        assert_eq!(
            value(&eval(&facts, &profile(CLI_EXAMPLE))),
            "6179424 8239232 11460768"
        );
        // At the budget exactly: at or below is refused, so kept.
        facts.sockstat = Some(sockstat(11_460_768));
        assert_eq!(
            value(&eval(&facts, &profile(CLI_EXAMPLE))),
            "6179424 8239232 12358848"
        );
        // Without connections (only the cap) the same.
        facts.sockstat = Some(sockstat(11_902_211));
        let facts = with(facts, "net.ipv4.tcp_mem", Some("6179424 8239232 99999999"));
        let out = eval(&facts, &profile("[connections]\nreserved_memory = \"20GiB\"\n"));
        assert_eq!(value(&out), "6179424 8239232 99999999");
        // A host already at its high (the kernel refusing now) within the budget: kept as it
        // is (step 2), so nothing changes for apply to refuse.
        let facts = with(facts, "net.ipv4.tcp_mem", Some("6179424 8239232 11000000"));
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "6179424 8239232 11000000");
    }

    /// The worked numbers of the DOC: the article's proxy profile on the proxy host.
    #[test]
    fn cli_example_keeps_pressure_and_caps_high_at_the_budget() {
        let out = eval(&proxy_host(), &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "6179424 8239232 11460768");
        assert_eq!(
            out.settings[0].reason,
            "high 47.1 GiB exceeds the TCP budget 43.7 GiB (62 GiB less 15 GiB reserved and 3.3 GiB of control \
             blocks)"
        );
        assert_eq!(out.shrink, None);
        assert_eq!(severities(&out), [Severity::Warning, Severity::Info]);
        let w = message(&out, Severity::Warning);
        for s in [
            "high' 11460768 pages = 43.7 GiB is only 39% above pressure' 8239232 pages = 31.4 GiB",
            "less than the kernel's own 50% margin",
            "a pressure of 7640512 would hold it",
        ] {
            assert!(w.contains(s), "missing {s:?} in {w}");
        }
        has_steps(
            &out,
            &[
                "quantum = the page = 4096 B",
                "per_conn_default = quantum_up(tcp_rmem[1] (profile) + tcp_wmem[1] (profile)) = quantum_up(44032 + \
                 32768) = 77824 B (76 KiB)",
                "per_conn_expected = quantum_up(average_memory 10240) = 12288 B (12 KiB)",
                "need = ceil(860000 × 12288 B × 1.2 / 4096) = 3096000 pages = 11.8 GiB",
                "budget_bytes = min(floor(66571993088 × 0.75), 66571993088 − 16106127360 − 860000 × 4096) = \
                 min(49928994816, 46943305728) = 46943305728 B (43.7 GiB)",
                "budget = floor(46943305728 / 4096) = 11460768 pages = 43.7 GiB",
                "pressure' = min(8239232, budget 11460768) = 8239232",
                "high' = min(budget 11460768, max(high 12358848, ceil(8239232 × 3 / 2) = 12358848)) = 11460768",
                "low' = floor(8239232 × 3 / 4) = 6179424",
                "max_connections_worst (current) = floor(12358848 × 4096 / 155648) = 325232",
                "pressure_connections_worst (current) = floor(8239232 × 4096 / 155648) = 216821",
                "max_connections_worst (recommended) = floor(11460768 × 4096 / 77824) = 603198",
                "max_connections_expected (current) = floor(12358848 × 4096 / 12288) = 4119616",
                "max_connections_expected (recommended) = floor(11460768 × 4096 / 12288) = 3820256",
                "pressure_connections_expected (recommended) = floor(8239232 × 4096 / 12288) = 2746410",
            ],
        );
        assert_eq!(connections_under(11460768, 4096, 77824), 603198);
        assert_eq!(connections_under(12358848, 4096, 12288), 4119616);
        assert_eq!(connections_under(11460768, 4096, 12288), 3820256);
        assert_eq!(connections_under(8239232, 4096, 12288), 2746410);
        // the same with control_block left at its default (4 KiB)
        let default_cb = eval(
            &proxy_host(),
            &profile(&CLI_EXAMPLE.replace("control_block = \"4KiB\"\n", "")),
        );
        assert_eq!(value(&default_cb), "6179424 8239232 11460768");
    }

    #[test]
    fn the_sndbuf_expand_finding_when_the_plan_sets_a_small_wmem_default() {
        let out = eval(&proxy_host(), &profile(CLI_EXAMPLE));
        let m = message(&out, Severity::Info);
        for s in [
            "tcp_wmem[1] = 32768 B (32 KiB), from connections.wmem_default, is where a connection's send buffer \
             starts, not a cap",
            "tcp_sndbuf_expand() in net/ipv4/tcp_input.c",
            "up to tcp_wmem[2] = 16777216 B (16 MiB)",
        ] {
            assert!(m.contains(s), "missing {s:?} in {m}");
        }
        // a default above what tcp_sndbuf_expand() gives at Ethernet MSS: nothing to say
        let big = eval(
            &proxy_host(),
            &profile(&CLI_EXAMPLE.replace("\"32KiB\"", "\"128KiB\"")),
        );
        assert!(
            big.findings.iter().all(|f| f.severity != Severity::Info),
            "{big:#?}"
        );
        // a max equal to the default caps the send buffer: nothing to say
        let capped = with(proxy_host(), "net.ipv4.tcp_wmem", Some("4096 32768 32768"));
        let out = eval(&capped, &profile(CLI_EXAMPLE));
        assert!(
            out.findings.iter().all(|f| f.severity != Severity::Info),
            "{out:#?}"
        );
        // ... unless rule tcp-buffers raises the max from the bandwidth-delay product
        let p = profile(&format!("{CLI_EXAMPLE}bandwidth = \"1Gbit\"\nrtt = \"10ms\"\n"));
        let out = eval(&capped, &p);
        assert!(
            message(&out, Severity::Info).contains("up to tcp_wmem[2] = 2502656 B (2.4 MiB)"),
            "{out:#?}"
        );
        // the profile does not set wmem_default: the host's own is not the plan's business
        let out = eval(
            &proxy_host(),
            &profile(&CLI_EXAMPLE.replace("wmem_default = \"32KiB\"\n", "")),
        );
        assert!(
            out.findings.iter().all(|f| f.severity != Severity::Info),
            "{out:#?}"
        );
    }

    #[test]
    fn worst_case_860k_does_not_fit_and_says_how_to_fix_it() {
        let out = eval(&proxy_host(), &profile(WORST_CASE));
        // high' = budget, pressure' = 2/3 of it, low' = 3/4 of that
        assert_eq!(value(&out), "5730384 7640512 11460768");
        assert_eq!(
            out.settings[0].reason,
            "860 000 connections need 74.8 GiB; capped at the 43.7 GiB budget"
        );
        assert_eq!(out.shrink, None);
        assert_eq!(severities(&out), [Severity::Error, Severity::Info]);
        let m = message(&out, Severity::Error);
        for s in [
            "860 000 connections need 19608000 pages = 74.8 GiB",
            "at 77824 B (76 KiB) each with headroom 1.2,",
            "more than the host's 62 GiB of RAM",
            "11460768 pages = 43.7 GiB (62 GiB less 15 GiB reserved and 3.3 GiB of control blocks)",
            "holds 603 198 connections",
            "16384 B (16 KiB) receive and 12288 B (12 KiB) send",
            "shrink_buffers_to_fit = true",
            "at least 99.7 GiB of RAM",
            "fewer connections per host",
        ] {
            assert!(m.contains(s), "missing {s:?} in {m}");
        }
        // lowering reserved_memory alone cannot help: the need exceeds the host
        assert!(!m.contains("reserved_memory of at most"), "{m}");
        has_steps(
            &out,
            &[
                "fit_per_conn = floor(floor(11460768 × 2 / 3) × 4096 / (860000 × 1.2)) = 30325 B (29.6 KiB)",
                "rmem_fit = floor(44032 × 30325 / (44032 + 32768) / 4096) × 4096 = 16384 B (16 KiB)",
                "wmem_fit = floor(32768 × 30325 / (44032 + 32768) / 4096) × 4096 = 12288 B (12 KiB)",
                "infeasible: high' = budget = 11460768, pressure' = floor(11460768 × 2 / 3) = 7640512",
            ],
        );
    }

    /// Revision 2, item 12: the shrink is computed from the quantum-aligned budget and fits at
    /// pressure = 2/3 of it by construction.
    #[test]
    fn shrink_to_fit_applies_the_fitted_buffers() {
        let p = profile(&format!("{WORST_CASE}shrink_buffers_to_fit = true\n"));
        let out = eval(&proxy_host(), &p);
        let fitted = Shrink {
            rmem: 16384,
            wmem: 12288,
        };
        assert_eq!(out.shrink, Some(fitted));
        let m = message(&out, Severity::Warning);
        for s in [
            "did not fit the TCP budget 43.7 GiB",
            "44032 B (43 KiB) receive",
            "16384 B (16 KiB) receive and 12288 B (12 KiB) send",
            "which need 27.6 GiB",
        ] {
            assert!(m.contains(s), "missing {s:?} in {m}");
        }
        // quantum_up(16384 + 12288) = 28672: need 7224000 ≤ floor(11460768 × 2 / 3) = 7640512
        assert_eq!(per_conn_default(16384, 12288, 4096), 28672);
        assert_eq!(need_units(860000, 28672, Dec4(12000), 4096), 7224000);
        // the current pressure holds it; high is capped at the budget (the margin warning too)
        assert_eq!(value(&out), "6179424 8239232 11460768");
        assert_eq!(
            severities(&out),
            [Severity::Warning, Severity::Warning, Severity::Info]
        );
        assert!(message(&out, Severity::Info).contains("shrunk to fit"));

        // a lower current tcp_mem is sized to the shrunk need, with the full margin
        let low = with(proxy_host(), KEY, Some("2000000 3000000 4000000"));
        let out = eval(&low, &p);
        assert_eq!(out.shrink, Some(fitted));
        assert_eq!(value(&out), "5418000 7224000 10836000");
        assert_eq!(severities(&out), [Severity::Warning, Severity::Info]);
        assert_eq!(
            out.settings[0].reason,
            "pressure 11.4 GiB is below the 27.6 GiB 860 000 connections need"
        );
    }

    /// Revision 2, item 11: with one default named, only that one is shrunk.
    #[test]
    fn shrink_with_one_default_named_keeps_the_hosts_other_one() {
        let p = profile(
            "headroom = 1.2\n[connections]\nconcurrent = 260000\nrmem_default = \"43KiB\"\n\
             reserved_memory = \"30GiB\"\nshrink_buffers_to_fit = true\n",
        );
        let facts = with(proxy_host(), KEY, Some("1000000 2000000 3000000"));
        let out = eval(&facts, &p);
        // fit_per_conn 71142; rmem_fit = floor((71142 − quantum_up(65536)) / 4096) × 4096
        assert_eq!(
            out.shrink,
            Some(Shrink {
                rmem: 4096,
                wmem: 65536
            })
        );
        has_steps(
            &out,
            &[
                "per_conn_default = quantum_up(tcp_rmem[1] (profile) + tcp_wmem[1] (current)) = quantum_up(44032 + \
                 65536) = 110592 B (108 KiB)",
                "budget = floor(33294778368 / 4096) = 8128608 pages",
                "rmem_fit = floor((71142 − quantum_up(65536)) / 4096) × 4096 = 4096 B (4 KiB)",
            ],
        );
        assert_eq!(value(&out), "3978000 5304000 7956000");
    }

    #[test]
    fn shrink_off_gives_an_error_and_no_shrink() {
        let p = profile(&format!("{WORST_CASE}shrink_buffers_to_fit = false\n"));
        let out = eval(&proxy_host(), &p);
        assert_eq!(out.shrink, None);
        assert_eq!(severities(&out), [Severity::Error, Severity::Info]);
    }

    #[test]
    fn shrink_that_would_go_below_4k_is_refused() {
        // 10 million connections: their control blocks alone take 38 GiB
        let p = profile(
            "headroom = 1.2\n[connections]\nconcurrent = 10000000\nrmem_default = \"43KiB\"\nwmem_default = \"32KiB\"\n\
             shrink_buffers_to_fit = true\n",
        );
        let out = eval(&proxy_host(), &p);
        assert_eq!(out.shrink, None);
        let m = message(&out, Severity::Error);
        assert!(m.contains("they would be 0 B and 0 B, below 4096 B."), "{m}");
        assert!(!m.contains("shrink_buffers_to_fit = true"), "{m}");
        assert_eq!(value(&out), "3126463 4168618 6252928");
    }

    #[test]
    fn average_memory_does_not_shrink_buffers() {
        // 5 million connections at 10 KiB (12 KiB charged) do not fit; smaller buffers would
        // not help
        let p = profile(
            &CLI_EXAMPLE
                .replace("860000", "5000000")
                .replace("\n[connections]", "\n[connections]\nshrink_buffers_to_fit = true"),
        );
        let out = eval(&proxy_host(), &p);
        assert_eq!(out.shrink, None);
        let m = message(&out, Severity::Error);
        assert!(!m.contains("default buffers"), "{m}");
        assert!(m.contains("at 12288 B (12 KiB) each"), "{m}");
        assert!(m.contains("holds 2 440 256 connections"), "{m}");
    }

    #[test]
    fn lowering_reserved_memory_is_named_when_it_alone_fits() {
        // 2 million at 12 KiB × 1.2 = 27.5 GiB; budget 62 − 50 − 2 000 000 × 4 KiB = 4.4 GiB
        let p = profile(
            "headroom = 1.2\n[connections]\nconcurrent = 2000000\naverage_memory = \"10KiB\"\n\
             reserved_memory = \"50GiB\"\n",
        );
        let out = eval(&proxy_host(), &p);
        assert_eq!(severities(&out), [Severity::Error]);
        let m = &out.findings[0].message;
        assert!(
            m.contains("(62 GiB less 50 GiB reserved and 7.6 GiB of control blocks)"),
            "{m}"
        );
        assert!(
            m.contains("reserved_memory of at most 26.9 GiB (now 50 GiB)"),
            "{m}"
        );
        assert!(!m.contains("more than the host"), "{m}");
        assert_eq!(value(&out), "572863 763818 1145728");
    }

    #[test]
    fn step_3_sizes_a_low_pressure_to_the_need() {
        let facts = with(proxy_host(), KEY, Some("288459 384612 576918"));
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        // pressure' = need, high' = 3/2 of it, low' = 3/4 of it: the kernel's own ratios
        assert_eq!(value(&out), "2322000 3096000 4644000");
        assert_eq!(
            out.settings[0].reason,
            "pressure 1.5 GiB is below the 11.8 GiB 860 000 connections need"
        );
        assert_eq!(severities(&out), [Severity::Info]);
    }

    #[test]
    fn step_2_keeps_a_fitting_value_and_still_manages_it() {
        let facts = with(proxy_host(), KEY, Some("3000000 4000000 6000000"));
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "3000000 4000000 6000000");
        assert_eq!(
            out.settings[0].reason,
            "pressure 15.3 GiB already holds the 11.8 GiB needed, within the budget"
        );
        assert_eq!(severities(&out), [Severity::Info]);
        // a high that holds the need but a pressure that does not is not enough (rev. 2)
        let facts = with(proxy_host(), KEY, Some("1000000 2000000 6000000"));
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "2322000 3096000 6000000");
    }

    #[test]
    fn step_3_rederives_low_out_of_order() {
        let facts = with(proxy_host(), KEY, Some("5000000 4000000 6000000"));
        let out = eval(&facts, &profile(CLI_EXAMPLE));
        assert_eq!(value(&out), "3000000 4000000 6000000");
        assert!(out.settings[0].reason.contains("out of order"));
    }

    #[test]
    fn without_input_a_high_above_the_budget_is_capped_and_managed() {
        // share 0.75, no reserve, no connections: 46.5 GiB = 12189696 pages < 12358848;
        // pressure and low scaled by 12189696 / 12358848
        let out = eval(&proxy_host(), &profile(""));
        assert_eq!(value(&out), "6094848 8126464 12189696");
        assert_eq!(
            out.settings[0].reason,
            "high 47.1 GiB exceeds the TCP budget 46.5 GiB (75% of 62 GiB)"
        );
        assert!(out.findings.is_empty());
        // once applied it stays managed (the drop-in keeps it)
        let applied = with(proxy_host(), KEY, Some("6094848 8126464 12189696"));
        let out = eval(&applied, &profile(""));
        assert_eq!(value(&out), "6094848 8126464 12189696");
        assert!(out.settings[0].reason.contains("as sysctune set it"));
        // scaling keeps the order: a pressure above high is capped at high'
        let odd = with(proxy_host(), KEY, Some("100 13000000 12358848"));
        assert_eq!(value(&eval(&odd, &profile(""))), "98 12189696 12189696");
    }

    #[test]
    fn without_input_a_fine_value_is_left_alone() {
        let facts = with(proxy_host(), KEY, Some("288459 384612 576918"));
        assert_eq!(eval(&facts, &profile("")), Outcome::default());
        // out-of-order low/pressure: still not the rule's business without input
        let facts = with(proxy_host(), KEY, Some("500000 384612 576918"));
        assert_eq!(eval(&facts, &profile("")), Outcome::default());
    }

    /// Revision 2, item 1, on a 64 KiB-page host: 5.4 charges 4 KiB quanta (tcp_mem in 4 KiB
    /// units), 6.x whole pages; the same profile gets each kernel's own figures.
    #[test]
    fn sixty_four_kib_pages_on_5_4_count_4_kib_units() {
        let p = profile("headroom = 1.2\n[connections]\nconcurrent = 100000\naverage_memory = \"10KiB\"\n");
        let out = eval(&host_64k("5.4.0-150-generic", "10000 20000 30000"), &p);
        // need = ceil(100000 × 12288 × 1.2 / 4096) = 360000 units of 4 KiB (1.4 GiB)
        assert_eq!(value(&out), "270000 360000 540000");
        assert_eq!(
            out.settings[0].reason,
            "pressure 78.1 MiB is below the 1.4 GiB 100 000 connections need"
        );
        has_steps(
            &out,
            &[
                "quantum = 4096 B: kernel 5.4.0-150-generic with 65536 B pages charges SK_MEM_QUANTUM = 4096",
                "per_conn_default = quantum_up(tcp_rmem[1] (current) + tcp_wmem[1] (current)) = quantum_up(131072 + \
                 16384) = 147456 B (144 KiB)",
                "per_conn_expected = quantum_up(average_memory 10240) = 12288 B (12 KiB)",
                "need = ceil(100000 × 12288 B × 1.2 / 4096) = 360000 × 4 KiB = 1.4 GiB",
                "budget = floor(51539607552 / 4096) = 12582912 × 4 KiB = 48 GiB",
                "max_connections_worst (recommended) = floor(540000 × 4096 / 147456) = 15000",
                "pressure_connections_worst (recommended) = floor(360000 × 4096 / 147456) = 10000",
                "max_connections_expected (recommended) = floor(540000 × 4096 / 12288) = 180000",
            ],
        );
    }

    #[test]
    fn sixty_four_kib_pages_on_6_x_charge_whole_pages() {
        let p = profile("headroom = 1.2\n[connections]\nconcurrent = 100000\naverage_memory = \"10KiB\"\n");
        let out = eval(&host_64k("6.8.0-1012-aws", "10000 20000 30000"), &p);
        // a 10 KiB connection costs a 64 KiB page: need 120000 pages = 7.3 GiB, five times 5.4's
        assert_eq!(value(&out), "90000 120000 180000");
        has_steps(
            &out,
            &[
                "quantum = the page = 65536 B",
                "quantum_up(131072 + 16384) = 196608 B (192 KiB)",
                "per_conn_expected = quantum_up(average_memory 10240) = 65536 B (64 KiB)",
                "need = ceil(100000 × 65536 B × 1.2 / 65536) = 120000 pages = 7.3 GiB",
                "budget = floor(51539607552 / 65536) = 786432 pages = 48 GiB",
                "max_connections_worst (recommended) = floor(180000 × 65536 / 196608) = 60000",
                "pressure_connections_worst (recommended) = floor(120000 × 65536 / 196608) = 40000",
                "max_connections_expected (recommended) = floor(180000 × 65536 / 65536) = 180000",
            ],
        );
        // proportional shrinking rounds each buffer down to a whole 64 KiB page: too coarse
        let p = profile(
            "headroom = 1.2\n[connections]\nconcurrent = 300000\nrmem_default = \"128KiB\"\n\
             wmem_default = \"64KiB\"\nshrink_buffers_to_fit = true\n",
        );
        let out = eval(&host_64k("6.8.0", "10000 20000 30000"), &p);
        assert_eq!(out.shrink, None);
        assert!(message(&out, Severity::Error).contains("they would be 0 B and 0 B"));
        assert_eq!(value(&out), "393216 524288 786432");
    }

    #[test]
    fn hugetlb_is_not_ram_tcp_can_use() {
        let p = profile(
            "headroom = 1.2\n[connections]\nconcurrent = 500000\naverage_memory = \"16KiB\"\n\
             reserved_memory = \"8GiB\"\n",
        );
        // usable 48 GiB: budget min(36 GiB, 48 − 8 − 1.9 GiB) = 36 GiB = 9437184 pages
        let out = eval(&hugetlb_host("6000000 8000000 12000000"), &p);
        assert_eq!(value(&out), "6000000 8000000 9437184");
        assert_eq!(
            out.settings[0].reason,
            "high 45.8 GiB exceeds the TCP budget 36 GiB (75% of the 48 GiB outside hugetlb)"
        );
        has_steps(
            &out,
            &["usable = MemTotal − Hugetlb = 68719476736 − 17179869184 = 51539607552 B (48 GiB)"],
        );
        let out = eval(&hugetlb_host("1500000 2000000 3000000"), &p);
        assert_eq!(value(&out), "1800000 2400000 3600000");

        // a share of RAM is of MemTotal, not of MemTotal − hugetlb: 50% of 64 GiB = 32 GiB
        let half = profile(
            "headroom = 1.2\n[connections]\nconcurrent = 500000\naverage_memory = \"16KiB\"\n\
             reserved_memory = \"50%\"\n",
        );
        let out = eval(&hugetlb_host("6000000 8000000 12000000"), &half);
        // budget = (48 GiB − 32 GiB − 500 000 × 4 KiB) / 4096 = 3694304 pages
        assert_eq!(value(&out), "2770728 3694304 3694304");
        assert_eq!(
            out.settings[0].reason,
            "high 45.8 GiB exceeds the TCP budget 14.1 GiB (the 48 GiB outside hugetlb less 32 GiB reserved and \
             1.9 GiB of control blocks)"
        );

        // 3 million do not fit; the RAM that would counts the huge pages back in
        let p = profile(
            "headroom = 1.2\n[connections]\nconcurrent = 3000000\naverage_memory = \"16KiB\"\n\
             reserved_memory = \"8GiB\"\n",
        );
        let out = eval(&hugetlb_host("1500000 2000000 3000000"), &p);
        let m = message(&out, Severity::Error);
        for s in [
            "14400000 pages = 54.9 GiB",
            "more than the 48 GiB of RAM outside hugetlb",
            "holds 1 871 440 connections",
            "at least 90.4 GiB of RAM",
        ] {
            assert!(m.contains(s), "missing {s:?} in {m}");
        }
        assert_eq!(value(&out), "3742879 4990506 7485760");
    }

    #[test]
    fn a_budget_below_one_quantum_is_a_validation_error() {
        let facts = proxy_host();
        let ok = profile(CLI_EXAMPLE);
        assert_eq!(budget_error(&facts, &ok), None);
        for (body, needle) in [
            (
                "[connections]\nreserved_memory = \"62GiB\"\n",
                "reserved_memory = 62 GiB",
            ),
            (
                "[connections]\nconcurrent = 20000000\n",
                "20 000 000 connections × control_block 4 KiB = 76.3 GiB",
            ),
        ] {
            let e = budget_error(&facts, &profile(body)).expect(body);
            assert!(e.contains(needle), "{e}");
            assert!(
                e.contains("usable = MemTotal 62 GiB − Hugetlb 0 B = 62 GiB"),
                "{e}"
            );
        }
        let mut all_huge = proxy_host();
        all_huge.mem.hugetlb = all_huge.mem.mem_total;
        let e = budget_error(&all_huge, &profile("")).unwrap();
        assert!(e.contains("Hugetlb 62 GiB = 0 B"), "{e}");
        // a profile's [host] ram: the plan's effective facts, and the message names the field
        let p = profile("[host]\nram = \"8GiB\"\n[connections]\nreserved_memory = \"9GiB\"\n");
        let e = budget_error(&crate::plan::effective_facts(&facts, &p), &p).unwrap();
        assert!(e.contains("usable = host.ram 8 GiB − Hugetlb 0 B = 8 GiB"), "{e}");
        assert!(e.contains("reserved_memory = 9 GiB"), "{e}");
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
        assert_eq!(value(&out), "6179424 8239232 11460768");
        assert_eq!(severities(&out), [Severity::Warning]);
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
            "headroom = 10\n[connections]\nconcurrent = 18446744073709551615\ncontrol_block = 18446744073709551615\n\
             average_memory = 18446744073709551615\n[outbound]\nconcurrent = 18446744073709551615\n",
        );
        let mut huge = proxy_host();
        huge.mem.mem_total = u64::MAX;
        huge.page_size = 1;
        let mut zero_page = proxy_host();
        zero_page.page_size = 0;
        let mut no_ram = proxy_host();
        no_ram.mem.mem_total = 0;
        let mut all_huge = proxy_host();
        all_huge.mem.hugetlb = u64::MAX;
        let mut big_pages = host_64k("5.10.0", "1 2 3");
        big_pages.page_size = u64::MAX;
        for facts in [
            huge,
            zero_page,
            no_ram,
            all_huge,
            big_pages,
            with(proxy_host(), KEY, Some("-1 2 3")),
            with(proxy_host(), KEY, Some("0 0 0")),
            with(
                proxy_host(),
                KEY,
                Some("18446744073709551615 18446744073709551615 18446744073709551615"),
            ),
            with(proxy_host(), "net.ipv4.tcp_rmem", Some("0 0 0")),
            with(proxy_host(), "net.ipv4.tcp_wmem", Some("0 0 0")),
        ] {
            for p in [
                profile(""),
                profile(CLI_EXAMPLE),
                profile(WORST_CASE),
                profile(&format!("{WORST_CASE}shrink_buffers_to_fit = true\n")),
                big.clone(),
            ] {
                let _ = eval(&facts, &p);
                let _ = budget_error(&facts, &p);
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
                big_pages in any::<bool>(),
                kernel in prop_oneof![Just("5.4.0"), Just("6.8.0"), Just("3.10.0")],
                hugetlb_gib in 0u64..20,
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
                let mut facts = with(proxy_host(), KEY, Some(&format!("{} {} {}", cur[0], cur[1], cur[2])));
                facts.kernel = kernel.into();
                facts.page_size = if big_pages { 65536 } else { 4096 };
                facts.mem.hugetlb = hugetlb_gib << 30;
                let q = quantum(kernel, facts.page_size);
                let out = eval(&facts, &p);
                let budget = Budget::new(&facts, &p, q);
                if conns > 0 {
                    prop_assert_eq!(out.settings.len(), 1);
                }
                for s in &out.settings {
                    let v: Vec<u128> = s.value.split(' ').map(|x| x.parse().unwrap()).collect();
                    prop_assert!(v[2] <= budget.units.max(cur[2] as u128));
                    if conns > 0 {
                        prop_assert!(v[2] <= budget.units);
                    }
                }
                if let Some(s) = out.shrink {
                    prop_assert!(s.rmem >= 4096 && s.wmem >= 4096 && s.rmem <= rmem && s.wmem <= wmem);
                    prop_assert!(s.rmem % q == 0 && s.wmem % q == 0);
                    // fits at pressure = 2/3 of the quantum-aligned budget, by construction
                    let need = need_units(conns as u128, per_conn_default(s.rmem, s.wmem, q), Dec4(headroom), q);
                    prop_assert!(need <= budget.units * 2 / 3);
                    let v: Vec<u128> = out.settings[0].value.split(' ').map(|x| x.parse().unwrap()).collect();
                    prop_assert!(v[1] >= need);
                }
            }
        }
    }

    #[test]
    fn breaks_at_a_zero_or_a_high_at_or_below_the_use() {
        let mut facts = proxy_host();
        // without sockstat only a zero is known to break
        assert!(breaks("1 2 3", &facts).is_none());
        assert!(breaks("0 2 3", &facts).unwrap().contains("has a zero"));
        facts.sockstat = Some(crate::host::Sockstat {
            sockets_used: 0,
            tcp_inuse: 0,
            tcp_orphan: 0,
            tcp_tw: 0,
            tcp_alloc: 0,
            tcp_mem: 900,
        });
        assert!(breaks("100 200 901", &facts).is_none());
        assert_eq!(
            breaks("100 200 900", &facts).unwrap(),
            "net.ipv4.tcp_mem high 900 is at or below the 900 pages TCP uses now (sockstat mem): every socket \
             would be refused memory at once"
        );
        assert!(breaks("100 200 300", &facts).is_some());
    }
}
