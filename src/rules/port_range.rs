//! Rule `port-range`: size the ephemeral port range for the outbound connection rate, with
//! TIME_WAIT as long as the kernel really keeps it. See [`DOC`].

use std::fmt;

use super::{Code, Context, Hazard, Measure, Outcome, Proposal, Rule, Severity, Unit, Values};
use crate::host::Facts;
use crate::keys;
use crate::units::{Dec4, grouped};

pub const DOC: &str = "\
What it does
  Sizes the ephemeral port range (ip_local_port_range) for the connections this host
  opens: [outbound] new_per_second and concurrent, to each of outbound.destinations
  backend address:port pairs. It widens the range only as far as needed and never gives
  up low ports the range already has. When even the widest range cannot hold the demand
  it sets tcp_tw_reuse = 1 and reports the real fix. It raises tcp_max_tw_buckets when
  the TIME_WAIT sockets of the rate would pass it.

Why
  A connection the host opens with a plain connect() takes a local port per (source
  address, destination address, destination port): __inet_hash_connect() in
  net/ipv4/inet_hashtables.c skips a port only while that 4-tuple is in use. When the
  host closes first, the port stays in TIME_WAIT: tcp_time_wait() in
  net/ipv4/tcp_minisocks.c arms a timer of TCP_TIMEWAIT_LEN = 60 s (include/net/tcp.h;
  no sysctl changes it) through inet_twsk_schedule(), and the timer wheel rounds that
  timer up to the granularity of the level holding it (calc_wheel_index() in
  kernel/time/timer.c): 512 jiffies at HZ 100-300, 4096 at HZ 1000. Measured on 6.18 at
  HZ=250: 60.05-62.03 s per socket. So a range of P usable ports sustains at most
  P / tw_seconds new short connections per second to one destination; faster, connect()
  fails with EADDRNOTAVAIL (\"Cannot assign requested address\"), the first failure of
  the article's batch system.

  The article's figure for the default range 32768 60999 (28 232 ports) is
  28232 / 60 = 470 per second, and at that rate connect() fails after 60 s on a real
  kernel. The kernel's figure: floor(28232 / 62.048) = 455 at HZ=250, 440 at HZ=1000,
  433 at HZ=100 (what is assumed when HZ is unknown). The widest range 1024 65535
  (64 512 ports): 1039, 1006 and 990 per second (the article's 1075). Beyond that only
  persistent connections, more destinations, or TIME_WAIT reuse help.

Arithmetic (exact: tw_seconds is the fraction (60 x HZ + slack) / HZ, never rounded)
    slack(HZ)          = granularity in jiffies of the timer-wheel level that holds a
                         60 x HZ timer (512 at HZ 100-300, 4096 at HZ 1000)
    tw_seconds         = 60 + slack(HZ) / HZ   (65.12 at HZ 100, 62.048 at 250,
                                                61.707 at 300, 64.096 at 1000)
    ports_needed       = ceil((new_per_second x tw_seconds + concurrent) x headroom)
    available(lo, hi)  = hi - lo + 1 - |ip_local_reserved_ports within [lo, hi]|
    max_new_per_second = floor(available / tw_seconds)   per destination address:port
    floor_lo           = min(current lo, max(1024, ip_unprivileged_port_start))
    tw_buckets_needed  = ceil(new_per_second x destinations x tw_seconds x headroom)
  1. ports_needed <= available(current range) -> keep it.
  2. else, if available(floor_lo, 65535) >= ports_needed: hi' = 65535;
     fit = the largest lo >= floor_lo with available(fit, 65535) >= ports_needed;
     lo' = min(current lo, fit); if lo' is odd and lo' - 1 >= floor_lo, lo' = lo' - 1
     (the kernel prefers a start and end of different parity, and 65535 is odd).
  3. else lo' = floor_lo, hi' = 65535, tcp_tw_reuse = 1, and a finding with the ports
     needed, the ports available and the fix. It is an error, unless reuse covers the
     rate; then it is a warning that the host depends on TIME_WAIT reuse. Reuse covers
     the rate when tcp_timestamps >= 1 and
       ceil((new_per_second x tcp_tw_reuse_delay / 1000 + concurrent) x headroom)
         <= available(floor_lo, 65535)
  4. tcp_max_tw_buckets' = max(current, tw_buckets_needed) when new_per_second > 0.

  Reuse. tcp_twsk_unique() in net/ipv4/tcp_ipv4.c lets connect() take a port whose
  TIME_WAIT is older than tcp_tw_reuse_delay ms (the key exists since 6.13; 1000 ms
  before), when the peer sent TCP timestamps: with tcp_tw_reuse = 1 for any destination,
  with 2 (the default) only for loopback. Where it applies, a destination sustains
    max_new_per_second_with_reuse = floor(available / (tcp_tw_reuse_delay / 1000))
  It applies to the profile's destinations when tcp_timestamps >= 1 and
  (tcp_tw_reuse = 1, or tcp_tw_reuse = 2 with outbound.loopback = true); else the
  capacity shows null. The recommended column uses the recommended tcp_tw_reuse.

  The TIME_WAIT cap. Past tcp_max_tw_buckets, inet_twsk_alloc()
  (net/ipv4/inet_timewait_sock.c) refuses the TIME_WAIT socket and the connection is
  closed at once, counted as TCPTimeWaitOverflow in /proc/net/netstat. Ports never run
  out that way, but TIME_WAIT's protection against stray segments of an old connection
  is silently lost. There is one cap per network namespace, shared by every destination.

  bind() before connect(). A socket bound to port 0 first (without
  IP_BIND_ADDRESS_NO_PORT) gets its port from inet_csk_get_port()
  (net/ipv4/inet_connection_sock.c) for every destination at once, and
  __inet_hash_connect() skips ports bound that way: the range is then one pool for the
  whole host, and the per-destination figures do not hold.

Choices
  - HZ is CONFIG_HZ in ROOT/boot/config-RELEASE (RELEASE = kernel.osrelease). Without
    that file or line HZ=100 is assumed: the largest slack of the common rates (5.12 s),
    so the sustainable rate is never overstated.
  - The range is managed whenever an outbound input is given, even when it is kept.
    tcp_tw_reuse is managed only in step 3, and then always, even when it is already 1:
    \"managed only when changed\" would drop it from the drop-in once applied, and the
    next boot would undo it.
  - tcp_max_tw_buckets is managed whenever new_per_second > 0. The kernel sizes it from
    RAM at boot, so kept unchanged it is not pinned in the drop-in (\"kept: the kernel
    sizes it at boot\"); raised, it is. A negative value (accepted by the kernel, which
    then keeps no TIME_WAIT socket at all) is raised like any other. Raising it needs no
    finding of its own.
  - Reserved ports are counted once each, whatever the order or overlap of the list.
  - ip_unprivileged_port_start absent (kernels before 4.11): 1024 as above and no lower
    bound other than 1. No range starts below ip_unprivileged_port_start: the kernel
    refuses it with EINVAL.
  - A current range the kernel would not accept (lo > hi, lo below
    ip_unprivileged_port_start, out of 1..65535) is never kept and keeps no low ports:
    floor_lo is then max(1024, ip_unprivileged_port_start) and the range is replaced as
    in step 2.
  - The figure without reuse is the safe one. The reuse figure is a ceiling: a port must
    have been in TIME_WAIT longer than the delay (strictly, by the millisecond clock),
    and only peers that send timestamps allow it.
  - A missing tcp_timestamps counts as 1, a missing tcp_tw_reuse_delay as 1000 ms; a
    missing tcp_tw_reuse means reuse does not apply.
  - A range whose ends have the same parity (an odd number of ports) is counted in full,
    as the arithmetic says, but __inet_hash_connect() scans (hi - lo + 1) & ~1 of its
    ports from an offset that moves after each connect, so one of lo and hi may stay
    unused (checked on 6.18: a destination got 8 or 9 ports of 40000 40008). Step 2's
    parity avoids such a range wherever floor_lo allows.
  - An info finding gives the new capacity whenever the range changes, and one says what
    bind() before connect() does whenever the range is managed.

References
  include/net/tcp.h (TCP_TIMEWAIT_LEN); net/ipv4/tcp_minisocks.c: tcp_time_wait();
  net/ipv4/inet_timewait_sock.c: inet_twsk_schedule(), inet_twsk_alloc();
  kernel/time/timer.c: calc_wheel_index() (LVL_CLK_SHIFT, LVL_BITS);
  net/ipv4/inet_hashtables.c: __inet_hash_connect(); net/ipv4/inet_connection_sock.c:
  inet_csk_get_port(); net/ipv4/tcp_ipv4.c: tcp_twsk_unique(); net/ipv4/sysctl_net_ipv4.c:
  ipv4_local_port_range();
  Documentation/networking/ip-sysctl.rst (ip_local_port_range, ip_local_reserved_ports,
  ip_unprivileged_port_start, tcp_tw_reuse, tcp_tw_reuse_delay, tcp_max_tw_buckets,
  tcp_timestamps); the article (a 2018 post-mortem): the batch system's \"Cannot assign
  requested address\", fixed with HTTP keep-alive and a connection pool.
";

/// `TCP_TIMEWAIT_LEN`: the TIME_WAIT the kernel asks for, in seconds (include/net/tcp.h).
pub const TIMEWAIT_LEN: u64 = 60;
/// The tick rate assumed when the kernel's configuration is unknown: of the common rates
/// (100, 250, 300, 1000) the one whose timer slack is the largest.
pub const HZ_ASSUMED: u64 = 100;
/// `tcp_tw_reuse_delay` when the key is absent (kernels before 6.13 reuse after 1 s).
pub const REUSE_DELAY_MS: u64 = 1000;

const ID: Code = Code::PortRange;
const RANGE: &str = "net.ipv4.ip_local_port_range";
const TW_REUSE: &str = "net.ipv4.tcp_tw_reuse";
const TW_BUCKETS: &str = "net.ipv4.tcp_max_tw_buckets";
const TIMESTAMPS: &str = "net.ipv4.tcp_timestamps";
const REUSE_DELAY: &str = "net.ipv4.tcp_tw_reuse_delay";
const UNPRIV: &str = "net.ipv4.ip_unprivileged_port_start";
const RESERVED: &str = "net.ipv4.ip_local_reserved_ports";
const PORT_MAX: u32 = 65535;
const FLOOR: u32 = 1024;
const TW_BUCKETS_MAX: u128 = i32::MAX as u128;

/// How long a closed connection's port stays in TIME_WAIT at most: `TCP_TIMEWAIT_LEN`
/// plus the timer wheel's slack, `(60 × HZ + slack) / HZ` seconds, exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWait {
    pub hz: u64,
    /// HZ came from the kernel's configuration (else [`HZ_ASSUMED`]).
    pub known: bool,
}

impl TimeWait {
    /// From the host's `CONFIG_HZ`, `None` when unknown.
    pub fn new(hz: Option<u64>) -> Self {
        match hz.filter(|&h| h > 0) {
            Some(hz) => TimeWait { hz, known: true },
            None => TimeWait {
                hz: HZ_ASSUMED,
                known: false,
            },
        }
    }

    /// The granularity, in jiffies, of the timer-wheel level that holds a timer
    /// `60 × HZ` jiffies away (kernel/time/timer.c: `LVL_CLK_SHIFT` 3, 64 buckets per
    /// level, level n holds delays below `63 << 3n`, `LVL_DEPTH` 9 above HZ 100, else 8).
    /// The timer fires at the next multiple of it, so at most this much late.
    pub fn slack_jiffies(self) -> u64 {
        let delay = TIMEWAIT_LEN as u128 * self.hz as u128;
        let depth = if self.hz > 100 { 9 } else { 8 };
        let level = (0..depth)
            .find(|&n| delay < 63u128 << (3 * n))
            .unwrap_or(depth - 1);
        1 << (3 * level)
    }

    /// `tw_seconds × HZ`: the numerator of the exact fraction.
    pub fn jiffies(self) -> u128 {
        TIMEWAIT_LEN as u128 * self.hz as u128 + self.slack_jiffies() as u128
    }

    /// `tw_seconds`, rounded to the millisecond (for output only).
    pub fn millis(self) -> Millis {
        let ms = (self.jiffies() * 1000 + self.hz as u128 / 2) / self.hz as u128;
        Millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// New connections per second that `available` ports sustain to one destination:
    /// `floor(available / tw_seconds)`.
    pub fn per_second(self, available: u64) -> u64 {
        let r = available as u128 * self.hz as u128 / self.jiffies();
        u64::try_from(r).unwrap_or(u64::MAX)
    }

    /// `ceil(x × tw_seconds)` for `x` connections per second, saturating.
    fn times(self, per_second: u128) -> Option<u128> {
        per_second.checked_mul(self.jiffies())
    }

    /// Where HZ came from, for steps and findings.
    pub fn source(self) -> String {
        if self.known {
            format!("HZ={} from the kernel's config", self.hz)
        } else {
            format!("HZ unknown: HZ={} assumed, the largest common slack", self.hz)
        }
    }
}

/// Seconds to the millisecond, for output: a JSON number (`62.048`), text `62.048 s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, ms) = (self.0 / 1000, self.0 % 1000);
        if ms == 0 {
            write!(f, "{s} s")
        } else {
            let frac = format!("{ms:03}");
            write!(f, "{s}.{} s", frac.trim_end_matches('0'))
        }
    }
}

impl serde::Serialize for Millis {
    /// A JSON number of seconds. The arithmetic is done: this only prints it.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0 as f64 / 1000.0)
    }
}

pub struct PortRange;

impl Rule for PortRange {
    fn code(&self) -> Code {
        Code::PortRange
    }

    fn keys(&self) -> &'static [&'static str] {
        &[RANGE, TW_REUSE, TW_BUCKETS]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, ctx: &Context) -> Outcome {
        let mut out = Outcome::default();
        let facts = ctx.facts;
        let outbound = &ctx.profile.outbound;
        let headroom = ctx.profile.headroom;
        if outbound.new_per_second == 0 && outbound.concurrent == 0 {
            return out;
        }

        let tw = TimeWait::new(facts.hz);
        out.step(format!(
            "tw_seconds = 60 + slack(HZ) / HZ = 60 + {} / {} = {} ({})",
            tw.slack_jiffies(),
            tw.hz,
            tw.millis(),
            tw.source()
        ));
        let needed = ports_needed(outbound.new_per_second, outbound.concurrent, headroom, tw);
        out.step(format!(
            "ports_needed = ceil((new_per_second × tw_seconds + concurrent) × headroom) \
             = ceil(({} × {} + {}) × {}) = {} ports",
            outbound.new_per_second,
            tw.millis(),
            outbound.concurrent,
            headroom,
            needed
        ));

        range(ctx, tw, needed, &mut out);
        tw_buckets(ctx, tw, &mut out);
        out
    }

    fn capacity(&self, ctx: &Context, v: &Values) -> Vec<(&'static Measure, Option<u64>)> {
        capacity(ctx, v)
    }

    fn hazards(&self, p: &Proposal) -> crate::error::Result<Vec<Hazard>> {
        narrows(p).map(|r| r.into_iter().collect())
    }
}

pub const PORTS: Measure = Measure::new(
    "ports_available",
    "local ports per destination",
    false,
    Unit::Count,
);
pub const PER_SECOND: Measure = Measure::new(
    "max_new_per_second_per_destination",
    "new connections/s per destination",
    false,
    Unit::Count,
);
pub const WITH_REUSE: Measure = Measure::new(
    "max_new_per_second_with_reuse",
    "with TIME_WAIT reuse",
    true,
    Unit::Count,
);
pub const TW_SECONDS: Measure =
    Measure::new("tw_seconds", "TIME_WAIT per closed port, max", true, Unit::Millis);

/// The host's local port range (`ip_local_port_range`), when it reads as two ports.
pub fn current_range(facts: &Facts) -> Option<(u32, u32)> {
    parse_range(facts.value(RANGE)?)
}

/// The host's reserved ports (`ip_local_reserved_ports`); none when it does not parse.
pub fn reserved(facts: &Facts) -> Vec<(u32, u32)> {
    facts
        .value(RESERVED)
        .and_then(|v| keys::parse_port_list(v).ok())
        .unwrap_or_default()
}

fn parse_range(v: &str) -> Option<(u32, u32)> {
    let w: Vec<u32> = v
        .split_whitespace()
        .map(|s| s.parse().ok())
        .collect::<Option<_>>()?;
    match w[..] {
        [a, b] => Some((a, b)),
        _ => None,
    }
}

/// The capacity figures from `v`: usable ports, the sustainable rate per destination
/// (`floor(available / tw_seconds)`), with reuse where it applies, and `tw_seconds`.
fn capacity(ctx: &Context, v: &Values) -> Vec<(&'static Measure, Option<u64>)> {
    let ports = (|| {
        let (lo, hi) = parse_range(&v(RANGE)?)?;
        let reserved = v(RESERVED)
            .and_then(|s| keys::parse_port_list(&s).ok())
            .unwrap_or_default();
        Some(available(lo, hi, &reserved))
    })();
    let tw = TimeWait::new(ctx.facts.hz);
    let int = |k: &str| v(k).and_then(|s| s.trim().parse::<u64>().ok());
    let with_reuse = reuse_applies(int(TW_REUSE), int(TIMESTAMPS), ctx.profile.outbound.loopback)
        .then_some(ports)
        .flatten()
        .map(|p| reuse_per_second(p, reuse_delay_ms(int(REUSE_DELAY))));
    vec![
        (&PORTS, ports),
        (&PER_SECOND, ports.map(|p| tw.per_second(p))),
        (&WITH_REUSE, with_reuse),
        (&TW_SECONDS, Some(tw.millis().0)),
    ]
}

/// A range that narrows below the ports one destination holds now: its next connections
/// would fail (EADDRNOTAVAIL).
fn narrows(p: &Proposal) -> crate::error::Result<Option<Hazard>> {
    let Some((value, true)) = (p.setting)(RANGE) else {
        return Ok(None);
    };
    let ports = p.capacity.get(PORTS.name);
    let (Some(now), Some(next), Some((lo, hi))) = (ports.current, ports.recommended, current_range(p.facts))
    else {
        return Ok(None);
    };
    if next >= now {
        return Ok(None);
    }
    let Some(held) = (p.ports_held)(lo, hi, &reserved(p.facts))? else {
        return Ok(None);
    };
    Ok((next < held).then(|| Hazard {
        key: RANGE,
        message: format!(
            "{RANGE} = {value} leaves {next} usable ports, fewer than the {held} one destination holds now: its \
             next connections would fail (EADDRNOTAVAIL)"
        ),
    }))
}

/// Steps 1-3: the range, and tcp_tw_reuse when even the widest range is too small.
fn range(ctx: &Context, tw: TimeWait, needed: u128, out: &mut Outcome) {
    let id = ID;
    let facts = ctx.facts;
    if facts.value(RANGE).is_none() {
        out.absent(id, RANGE);
        return;
    }
    let Some((cur_lo, cur_hi)) = current_range(facts) else {
        out.finding(
            Severity::Warning,
            id,
            format!(
                "{RANGE} is {:?}, not two ports; it is not managed.",
                facts.value(RANGE).unwrap_or_default()
            ),
        );
        return;
    };

    let reserved = reserved(facts);
    let f = Floor::of(facts, cur_lo, cur_hi, out);
    let cur_avail = available(cur_lo, cur_hi, &reserved);
    let cur_reserved = range_len(cur_lo, cur_hi) - cur_avail;
    out.step(format!(
        "available({cur_lo} {cur_hi}) = {cur_hi} − {cur_lo} + 1 − {cur_reserved} reserved \
         = {cur_avail} ports → floor({cur_avail} / {}) = {} new/s per destination",
        tw.millis(),
        tw.per_second(cur_avail)
    ));
    if !f.cur_valid {
        out.finding(
            Severity::Warning,
            id,
            format!(
                "{RANGE} is \"{cur_lo} {cur_hi}\", a range the kernel would not accept \
                 (ports 1..65535, low ≤ high, low ≥ ip_unprivileged_port_start {}); \
                 it is replaced.",
                f.lower_bound
            ),
        );
    }

    // Step 1: the current range already holds the demand.
    if f.cur_valid && needed <= cur_avail as u128 {
        out.step(format!("{cur_avail} ≥ {needed} → keep {cur_lo} {cur_hi}"));
        out.set(
            RANGE,
            format!("{cur_lo} {cur_hi}"),
            format!(
                "{} ports already cover the {} needed",
                grouped(cur_avail as u128),
                grouped(needed)
            ),
        );
        bind_first(ctx, tw, cur_avail, out);
        return;
    }

    let floor_lo = f.floor_lo;
    let widest = available(floor_lo, PORT_MAX, &reserved);
    out.step(format!(
        "available({floor_lo} {PORT_MAX}) = {widest} ports (the widest range)"
    ));
    let (lo, hi) = match fit_lo(floor_lo, needed, &reserved) {
        Some(fit) => widen(&f, (cur_lo, cur_hi), cur_avail, fit, needed, out),
        None => {
            let lo = floor_lo.max(f.lower_bound);
            infeasible(ctx, tw, needed, lo, widest, out);
            (lo, PORT_MAX)
        }
    };

    let avail = available(lo, hi, &reserved);
    if (lo, hi) != (cur_lo, cur_hi) {
        moved(tw, (cur_lo, cur_hi), cur_avail, (lo, hi), avail, out);
    }
    bind_first(ctx, tw, avail, out);
}

/// Where a range may start: `lower_bound`, the kernel's (ip_unprivileged_port_start, it
/// refuses a range below it with EINVAL), and `floor_lo`, sysctune's (1024 or the kernel's
/// if higher, and never above the low ports a valid range already has).
struct Floor {
    lower_bound: u32,
    floor_lo: u32,
    cur_valid: bool,
}

impl Floor {
    fn of(facts: &Facts, cur_lo: u32, cur_hi: u32, out: &mut Outcome) -> Floor {
        // The kernel refuses a range starting below ip_unprivileged_port_start (EINVAL).
        let unpriv = facts.u64(UNPRIV).map(|p| p.min(PORT_MAX as u64) as u32);
        let lower_bound = unpriv.unwrap_or(1).max(1);
        let cur_valid = cur_lo >= lower_bound && cur_lo <= cur_hi && cur_hi <= PORT_MAX;
        let base_floor = FLOOR.max(unpriv.unwrap_or(FLOOR));
        // Low ports a valid range already has are never given up.
        let floor_lo = if cur_valid {
            cur_lo.min(base_floor)
        } else {
            base_floor
        };
        out.step(format!(
            "floor_lo = min(current lo {}, max(1024, ip_unprivileged_port_start {})) = {floor_lo}",
            if cur_valid {
                cur_lo.to_string()
            } else {
                "(invalid range, not counted)".to_string()
            },
            unpriv.map_or("absent".to_string(), |p| p.to_string())
        ));
        Floor {
            lower_bound,
            floor_lo,
            cur_valid,
        }
    }
}

/// Step 2: widen up to 65535, down to the largest low port that holds the demand (`fit`),
/// keeping the low ports a valid range already has and, where the floor allows, a low port
/// of a parity other than 65535's.
fn widen(
    f: &Floor,
    cur: (u32, u32),
    cur_avail: u64,
    fit: u32,
    needed: u128,
    out: &mut Outcome,
) -> (u32, u32) {
    let (cur_lo, cur_hi) = cur;
    let (floor_lo, cur_valid, lower_bound) = (f.floor_lo, f.cur_valid, f.lower_bound);
    let mut lo = if cur_valid { cur_lo.min(fit) } else { fit };
    out.step(format!(
        "fit = largest lo ≥ {floor_lo} with available(lo, {PORT_MAX}) ≥ {needed} = {fit}; \
         lo' = {} = {lo}",
        if cur_valid {
            format!("min(current lo {cur_lo}, {fit})")
        } else {
            "fit (the current range is invalid)".to_string()
        }
    ));
    if lo % 2 == 1 && lo > floor_lo {
        out.step(format!(
            "lo' {lo} is odd and {} ≥ floor_lo {floor_lo} → lo' = {} (different \
             parity from 65535)",
            lo - 1,
            lo - 1
        ));
        lo -= 1;
    } else if lo.is_multiple_of(2) {
        out.step(format!("lo' {lo} is even: different parity from 65535"));
    } else {
        out.step(format!(
            "lo' {lo} is odd but {lo} − 1 < floor_lo {floor_lo} → kept (same parity \
             as 65535: a kernel log line, and connect() may leave lo or 65535 unused)"
        ));
    }
    let lo = lo.max(lower_bound);
    let reason = if cur_valid {
        format!(
            "{} ports needed; {cur_lo} {cur_hi} has only {}",
            grouped(needed),
            grouped(cur_avail as u128)
        )
    } else {
        format!("{} ports needed; current range invalid", grouped(needed))
    };
    out.set(RANGE, format!("{lo} {PORT_MAX}"), reason);
    (lo, PORT_MAX)
}

/// The info finding of a range that moves: its ports and rates before and after.
fn moved(tw: TimeWait, cur: (u32, u32), cur_avail: u64, new: (u32, u32), avail: u64, out: &mut Outcome) {
    let ((cur_lo, cur_hi), (lo, hi)) = (cur, new);
    let id = ID;
    out.step(format!(
        "available({lo} {hi}) = {avail} ports → {} new/s per destination",
        tw.per_second(avail)
    ));
    out.finding(
        Severity::Info,
        id,
        format!(
            "{RANGE} {cur_lo} {cur_hi} → {lo} {hi}: {} ports available (was {}), at most \
             {} new connections per second per destination address:port (was {}); each \
             closed port stays in TIME_WAIT for up to {}: 60 s and the kernel timer's \
             slack ({}).",
            grouped(avail as u128),
            grouped(cur_avail as u128),
            tw.per_second(avail),
            tw.per_second(cur_avail),
            tw.millis(),
            tw.source()
        ),
    );
}

/// Step 3: even the widest range does not hold the demand.
fn infeasible(ctx: &Context, tw: TimeWait, needed: u128, lo: u32, widest: u64, out: &mut Outcome) {
    let id = ID;
    let facts = ctx.facts;
    let outbound = &ctx.profile.outbound;
    let headroom = ctx.profile.headroom;
    out.step(format!(
        "{widest} < {needed} → infeasible without reuse: lo' = {lo}, hi' = {PORT_MAX}, tcp_tw_reuse = 1"
    ));
    out.set(
        RANGE,
        format!("{lo} {PORT_MAX}"),
        format!(
            "{} ports needed; even the widest range has only {}",
            grouped(needed),
            grouped(widest as u128)
        ),
    );
    let reuse_present = match facts.value(TW_REUSE) {
        None => {
            out.absent(id, TW_REUSE);
            false
        }
        Some(v) => {
            out.step(format!("tcp_tw_reuse {v} → 1"));
            // Managed whenever the demand does not fit, even when it is already 1:
            // otherwise the drop-in would lose it once applied and the next boot would
            // undo it.
            out.set(
                TW_REUSE,
                "1",
                "ports run out even at the widest range; reuse TIME_WAIT ports",
            );
            true
        }
    };
    let timestamps = timestamps(facts.u64(TIMESTAMPS));
    let delay = reuse_delay_ms(facts.u64(REUSE_DELAY));
    let reuse_needed = reuse_ports_needed(outbound.new_per_second, outbound.concurrent, headroom, delay);
    let covers = reuse_present && timestamps >= 1 && reuse_needed <= widest as u128;
    out.step(format!(
        "with reuse: ceil(({} × {delay} ms / 1000 + {}) × {headroom}) = {reuse_needed} ports; \
         tcp_timestamps {timestamps} → reuse {} the rate",
        outbound.new_per_second,
        outbound.concurrent,
        if covers { "covers" } else { "does not cover" }
    ));
    let demand = format!(
        "The outbound connections need {} local ports per destination ((new_per_second {} × {} in \
         TIME_WAIT + concurrent {}) × headroom {headroom}) but the widest range {lo} {PORT_MAX} has \
         only {} ({} new connections per second)",
        grouped(needed),
        outbound.new_per_second,
        tw.millis(),
        outbound.concurrent,
        grouped(widest as u128),
        tw.per_second(widest)
    );
    let fix = "the fix the article used is persistent connections (HTTP keep-alive) and a connection \
               pool, or else spread the calls over more destination addresses or ports";
    if covers {
        out.finding(
            Severity::Warning,
            id,
            format!(
                "{demand}, so the host depends on TIME_WAIT reuse: with tcp_tw_reuse = 1 connect() \
                 takes a port whose TIME_WAIT is older than tcp_tw_reuse_delay {delay} ms, {} new \
                 connections per second per destination, but only outgoing and only to peers that \
                 send TCP timestamps; {fix}.",
                reuse_per_second(widest, delay)
            ),
        );
    } else {
        let why = if !reuse_present {
            format!("{TW_REUSE} is absent on this kernel")
        } else if timestamps == 0 {
            "tcp_tw_reuse = 1 does not help: it needs TCP timestamps and tcp_timestamps is 0".to_string()
        } else {
            format!(
                "tcp_tw_reuse = 1 helps only outgoing connections to peers that send TCP timestamps, \
                 and even reusing each port after {delay} ms needs {} ports",
                grouped(reuse_needed)
            )
        };
        out.finding(
            Severity::Error,
            id,
            format!(
                "{demand}, so connect() will fail with EADDRNOTAVAIL (\"Cannot assign requested \
                 address\"); {why}; {fix}."
            ),
        );
    }
}

/// Step 4: TIME_WAIT's cap holds the TIME_WAIT sockets of the rate to every destination.
fn tw_buckets(ctx: &Context, tw: TimeWait, out: &mut Outcome) {
    let outbound = &ctx.profile.outbound;
    if outbound.new_per_second == 0 {
        return;
    }
    let needed = tw_buckets_needed(
        outbound.new_per_second,
        outbound.destinations,
        ctx.profile.headroom,
        tw,
    );
    out.step(format!(
        "tw_buckets_needed = ceil(new_per_second × destinations × tw_seconds × headroom) \
         = ceil({} × {} × {} × {}) = {needed}",
        outbound.new_per_second,
        outbound.destinations,
        tw.millis(),
        ctx.profile.headroom
    ));
    let Some(current) = ctx.facts.int(TW_BUCKETS) else {
        out.step(format!("{TW_BUCKETS} absent or unreadable: not managed"));
        return;
    };
    let per = if outbound.destinations == 1 {
        "1 destination".to_string()
    } else {
        format!("{} destinations", grouped(outbound.destinations as u128))
    };
    if current >= 0 && current as u128 >= needed {
        out.step(format!("tcp_max_tw_buckets {current} ≥ {needed} → keep"));
        out.set(
            TW_BUCKETS,
            current.to_string(),
            format!("holds the {} TIME_WAIT sockets needed", grouped(needed)),
        );
        return;
    }
    let target = needed.min(TW_BUCKETS_MAX);
    out.step(format!("tcp_max_tw_buckets {current} < {needed} → {target}"));
    out.set(
        TW_BUCKETS,
        target.to_string(),
        format!("{} TIME_WAIT sockets to {per} (was {current})", grouped(needed)),
    );
    if needed > TW_BUCKETS_MAX {
        out.finding(
            Severity::Warning,
            ID,
            format!(
                "The outbound rate keeps {} sockets in TIME_WAIT, more than {TW_BUCKETS} can hold \
                 ({TW_BUCKETS_MAX}): past it the kernel closes new ones at once and TIME_WAIT's \
                 protection against stray segments is lost; use persistent connections.",
                grouped(needed)
            ),
        );
    }
}

/// The bind()-before-connect() finding: the per-destination figures assume plain connect().
fn bind_first(ctx: &Context, tw: TimeWait, avail: u64, out: &mut Outcome) {
    let outbound = &ctx.profile.outbound;
    let pool = (outbound.new_per_second as u128)
        .checked_mul(outbound.destinations as u128)
        .and_then(|rate| {
            let concurrent = (outbound.concurrent as u128).checked_mul(outbound.destinations as u128)?;
            let rate = u64::try_from(rate).ok()?;
            let concurrent = u64::try_from(concurrent).ok()?;
            Some(ports_needed(rate, concurrent, ctx.profile.headroom, tw))
        })
        .unwrap_or(u128::MAX);
    let to = if outbound.destinations == 1 {
        "its destination".to_string()
    } else {
        format!("its {} destinations", grouped(outbound.destinations as u128))
    };
    out.finding(
        Severity::Info,
        ID,
        format!(
            "The figures above are per destination address:port and hold for a plain connect(). A \
             client that calls bind() before connect() (without IP_BIND_ADDRESS_NO_PORT) takes its \
             port for every destination at once, so the range is one pool for the whole host: {} \
             ports and at most {} new connections per second for all destinations together; the \
             profile's rate to {to} needs {} of them.",
            grouped(avail as u128),
            tw.per_second(avail),
            if pool == u128::MAX {
                "more than 2^128".to_string()
            } else {
                grouped(pool)
            }
        ),
    );
}

/// `ceil((new_per_second × tw_seconds + concurrent) × headroom)`, exact, saturating.
pub fn ports_needed(new_per_second: u64, concurrent: u64, headroom: Dec4, tw: TimeWait) -> u128 {
    let hz = tw.hz as u128;
    tw.times(new_per_second as u128)
        .and_then(|a| a.checked_add((concurrent as u128).checked_mul(hz)?))
        .and_then(|d| d.checked_mul(headroom.0 as u128))
        .map_or(u128::MAX, |p| p.div_ceil(hz * Dec4::SCALE))
}

/// `ceil(new_per_second × destinations × tw_seconds × headroom)`: the TIME_WAIT sockets
/// the rate keeps at once, over every destination. Saturating.
pub fn tw_buckets_needed(new_per_second: u64, destinations: u64, headroom: Dec4, tw: TimeWait) -> u128 {
    (new_per_second as u128)
        .checked_mul(destinations as u128)
        .and_then(|r| tw.times(r))
        .and_then(|j| j.checked_mul(headroom.0 as u128))
        .map_or(u128::MAX, |p| p.div_ceil(tw.hz as u128 * Dec4::SCALE))
}

/// `ceil((new_per_second × delay_ms / 1000 + concurrent) × headroom)`: the ports a
/// destination needs when each is reused `delay_ms` after it entered TIME_WAIT.
pub fn reuse_ports_needed(new_per_second: u64, concurrent: u64, headroom: Dec4, delay_ms: u64) -> u128 {
    (new_per_second as u128)
        .checked_mul(delay_ms as u128)
        .and_then(|a| a.checked_add((concurrent as u128).checked_mul(1000)?))
        .and_then(|d| d.checked_mul(headroom.0 as u128))
        .map_or(u128::MAX, |p| p.div_ceil(1000 * Dec4::SCALE))
}

/// `floor(available / (delay_ms / 1000))`: new connections per second a destination
/// sustains where TIME_WAIT reuse applies.
pub fn reuse_per_second(available: u64, delay_ms: u64) -> u64 {
    let r = available as u128 * 1000 / delay_ms.max(1) as u128;
    u64::try_from(r).unwrap_or(u64::MAX)
}

/// `tcp_timestamps`, a missing key counting as 1 (on).
pub fn timestamps(value: Option<u64>) -> u64 {
    value.unwrap_or(1)
}

/// `tcp_tw_reuse_delay` in ms, a missing key counting as 1000 (kernels before 6.13); the
/// kernel refuses 0, so a 0 read from a snapshot counts as 1.
pub fn reuse_delay_ms(value: Option<u64>) -> u64 {
    value.unwrap_or(REUSE_DELAY_MS).max(1)
}

/// Whether connect() may reuse TIME_WAIT ports to the profile's destinations:
/// timestamps on, and `tcp_tw_reuse = 1`, or `2` (loopback only) with `loopback`.
pub fn reuse_applies(tw_reuse: Option<u64>, timestamps_value: Option<u64>, loopback: bool) -> bool {
    timestamps(timestamps_value) >= 1 && matches!((tw_reuse, loopback), (Some(1), _) | (Some(2), true))
}

/// Ports in `lo..=hi` that connect() may use: the range minus the reserved ports in it
/// (each counted once, however the reserved list overlaps). 0 when `lo > hi`.
pub fn available(lo: u32, hi: u32, reserved: &[(u32, u32)]) -> u64 {
    range_len(lo, hi) - reserved_in(lo, hi, reserved)
}

fn range_len(lo: u32, hi: u32) -> u64 {
    if lo > hi { 0 } else { hi as u64 - lo as u64 + 1 }
}

/// Distinct reserved ports inside `lo..=hi`.
fn reserved_in(lo: u32, hi: u32, reserved: &[(u32, u32)]) -> u64 {
    if lo > hi {
        return 0;
    }
    let mut clipped: Vec<(u32, u32)> = reserved
        .iter()
        .map(|&(a, b)| (a.min(b).max(lo), a.max(b).min(hi)))
        .filter(|(a, b)| a <= b)
        .collect();
    clipped.sort_unstable();
    let mut count = 0u64;
    let mut next = lo as u64; // first port not yet counted
    for (a, b) in clipped {
        let a = (a as u64).max(next);
        if a <= b as u64 {
            count += b as u64 - a + 1;
            next = b as u64 + 1;
        }
    }
    count
}

/// The largest `lo ≥ start` with `available(lo, 65535) ≥ needed`, or `None` when even
/// `start` does not hold it. `available(x, 65535)` falls as `x` rises: a binary search.
fn fit_lo(start: u32, needed: u128, reserved: &[(u32, u32)]) -> Option<u32> {
    let holds = |x: u32| available(x, PORT_MAX, reserved) as u128 >= needed;
    if start > PORT_MAX || !holds(start) {
        return None;
    }
    let (mut good, mut bad) = (start, PORT_MAX + 1); // holds(good), !holds(bad) or past the end
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if holds(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(good)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::host::Facts;

    /// Evaluate, check every value and message, and reasons under 70 characters.
    fn run(facts: &Facts, toml: &str) -> Outcome {
        evaluate_short(&PortRange, facts, toml)
    }

    fn run_any(facts: &Facts, toml: &str) -> Outcome {
        evaluate_checked(&PortRange, facts, &profile(toml), None)
    }

    fn value<'a>(out: &'a Outcome, key: &str) -> Option<&'a str> {
        out.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    fn reason<'a>(out: &'a Outcome, key: &str) -> &'a str {
        out.settings
            .iter()
            .find(|s| s.key == key)
            .map_or("", |s| s.reason.as_str())
    }

    fn outbound(new_per_second: u64, concurrent: u64, headroom: &str) -> String {
        format!(
            "headroom = {headroom}\n[outbound]\nnew_per_second = {new_per_second}\nconcurrent = {concurrent}\n"
        )
    }

    fn severities(out: &Outcome) -> Vec<Severity> {
        out.findings.iter().map(|f| f.severity).collect()
    }

    fn hz(mut facts: Facts, hz: Option<u64>) -> Facts {
        facts.hz = hz;
        facts
    }

    fn message<'a>(out: &'a Outcome, severity: Severity, part: &str) -> &'a str {
        out.findings
            .iter()
            .find(|f| f.severity == severity && f.message.contains(part))
            .map(|f| f.message.as_str())
            .unwrap_or_else(|| panic!("no {severity:?} finding with {part:?}: {:#?}", out.findings))
    }

    const HZ_100: TimeWait = TimeWait { hz: 100, known: true };
    const HZ_250: TimeWait = TimeWait { hz: 250, known: true };
    const HZ_300: TimeWait = TimeWait { hz: 300, known: true };
    const HZ_1000: TimeWait = TimeWait {
        hz: 1000,
        known: true,
    };

    /// Revision 2, item 5 and "Readings": the slack and tw_seconds for each common HZ.
    #[test]
    fn tw_seconds_is_60_s_plus_the_timer_wheels_slack() {
        for (tw, slack, ms) in [
            (HZ_100, 512, 65120),
            (HZ_250, 512, 62048),
            (HZ_300, 512, 61707),
            (HZ_1000, 4096, 64096),
        ] {
            assert_eq!(tw.slack_jiffies(), slack, "HZ {}", tw.hz);
            assert_eq!(tw.millis(), Millis(ms), "HZ {}", tw.hz);
        }
        // exact fractions, not rounded to ms: 61.70666... s at HZ 300
        assert_eq!(HZ_300.jiffies(), 18512);
        assert_eq!(HZ_300.per_second(18512), 300);
        assert_eq!(HZ_300.per_second(18511), 299);
        // unknown HZ is the largest common slack, HZ=100
        assert_eq!(
            TimeWait::new(None),
            TimeWait {
                hz: 100,
                known: false
            }
        );
        assert_eq!(TimeWait::new(Some(0)).hz, 100);
        assert_eq!(TimeWait::new(Some(250)), HZ_250);
        // other tick rates land on their own level: 60 × 24 = 1440 jiffies, level 2
        assert_eq!(TimeWait::new(Some(24)).slack_jiffies(), 64);
        assert_eq!(TimeWait::new(Some(1200)).slack_jiffies(), 4096);
        assert_eq!(TimeWait::new(Some(HZ_MAX_TEST)).slack_jiffies(), 1 << 18);
        assert_eq!(Millis(65120).to_string(), "65.12 s");
        assert_eq!(Millis(62048).to_string(), "62.048 s");
        assert_eq!(Millis(60000).to_string(), "60 s");
        assert_eq!(serde_json::to_string(&Millis(62048)).unwrap(), "62.048");
        assert_eq!(serde_json::to_string(&Millis(65120)).unwrap(), "65.12");
    }

    const HZ_MAX_TEST: u64 = crate::host::HZ_MAX;

    /// The worked numbers of revision 2 for the article's batch host.
    #[test]
    fn article_capacity_figures() {
        assert_eq!(available(32768, 60999, &[]), 28232);
        // the textbook figure, 28232 / 60, fails after 60 s on a real kernel
        assert_eq!(28232 / TIMEWAIT_LEN, 470);
        // floor(28232 × 1000 / 62048) = 455 at HZ=250, 440 at HZ=1000, 433 at HZ=100
        assert_eq!(HZ_250.per_second(28232), 455);
        assert_eq!(28232 * 1000 / 62048, 455);
        assert_eq!(HZ_1000.per_second(28232), 440);
        assert_eq!(HZ_100.per_second(28232), 433);
        assert_eq!(TimeWait::new(None).per_second(28232), 433);
        // the widest range 1024 65535: 64512 ports, 1039, 1006, 990 (the article's 1075)
        assert_eq!(available(1024, 65535, &[]), 64512);
        assert_eq!(64512 / TIMEWAIT_LEN, 1075);
        assert_eq!(HZ_250.per_second(64512), 1039);
        assert_eq!(HZ_1000.per_second(64512), 1006);
        assert_eq!(HZ_100.per_second(64512), 990);
        // with tcp_tw_reuse a destination sustains floor(available / 1 s)
        assert_eq!(reuse_per_second(28232, 1000), 28232);
        assert_eq!(reuse_per_second(64512, 1000), 64512);
        assert_eq!(available(40000, 40009, &[]), 10);
        assert_eq!(available(5, 4, &[]), 0);
    }

    #[test]
    fn the_rule_reports_the_kernels_figures_not_the_articles() {
        let facts = with(proxy_host(), RANGE, Some("1024 65535"));
        for (hz_value, per_second, tw) in [
            (Some(250), 1039, "62.048 s"),
            (Some(1000), 1006, "64.096 s"),
            (None, 990, "65.12 s"),
        ] {
            let facts = hz(facts.clone(), hz_value);
            // (1039 × 62.048) × 1 = 64467.9 ≤ 64512: the widest range holds 1039/s at HZ 250
            let out = run(&facts, &outbound(per_second, 0, "1"));
            assert_eq!(value(&out, RANGE), Some("1024 65535"), "{hz_value:?}");
            assert!(
                !severities(&out).contains(&Severity::Warning),
                "{hz_value:?}: {out:?}"
            );
            assert!(out.steps[0].contains(&format!("= {tw}")), "{}", out.steps[0]);
            // one more per second does not fit
            let out = run(&facts, &outbound(per_second + 1, 0, "1"));
            let m = message(&out, Severity::Warning, "depends on TIME_WAIT reuse");
            assert!(
                m.contains(&format!("({per_second} new connections per second)")),
                "{m}"
            );
        }
        let out = run(&hz(facts, None), &outbound(1, 0, "1"));
        assert!(
            out.steps[0].contains("HZ unknown: HZ=100 assumed"),
            "{}",
            out.steps[0]
        );
    }

    #[test]
    fn reserved_ports_are_counted_once() {
        let r = [(40000, 40999), (50000, 50099)];
        assert_eq!(available(32768, 60999, &r), 28232 - 1100);
        // overlapping, unsorted, a single port inside another range, one outside
        let r = [(40500, 41500), (40000, 40999), (40999, 40999), (10, 20)];
        assert_eq!(available(32768, 60999, &r), 28232 - 1501);
        // clipped at the range's edges
        assert_eq!(available(40200, 40300, &r), 0);
        assert_eq!(available(39990, 40009, &r), 10);
        assert_eq!(available(0, 65535, &[(0, 65535)]), 0);
    }

    #[test]
    fn fit_is_the_largest_low_port_that_holds_the_demand() {
        assert_eq!(fit_lo(1024, 29040, &[]), Some(36496));
        assert_eq!(fit_lo(1024, 64512, &[]), Some(1024));
        assert_eq!(fit_lo(1024, 64513, &[]), None);
        assert_eq!(fit_lo(1024, 1, &[]), Some(65535));
        assert_eq!(fit_lo(1024, 0, &[]), Some(65535));
        // 1100 reserved ports above the fit move it down by 1100
        let r = [(40000, 40999), (50000, 50099)];
        assert_eq!(fit_lo(1024, 29040, &r), Some(35396));
        // agrees with a plain scan
        let r = [(30000, 30010), (36000, 36500), (36400, 37000), (65535, 65535)];
        for needed in [1u128, 2, 1000, 29040, 29500, 35000, 63000, 64000] {
            let scan = (1024..=65535u32)
                .rev()
                .find(|&x| available(x, 65535, &r) as u128 >= needed);
            assert_eq!(fit_lo(1024, needed, &r), scan, "needed {needed}");
        }
    }

    #[test]
    fn no_outbound_input_means_nothing() {
        let out = run(&proxy_host(), "");
        assert_eq!(out, Outcome::default());
        let out = run(&proxy_host(), "[connections]\nconcurrent = 1000\n");
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn default_range_that_fits_is_kept_and_managed() {
        // (300 × 65.12 + 100) × 1.2 = 23563.2 → 23564 ≤ 28232
        let out = run(&proxy_host(), &outbound(300, 100, "1.2"));
        assert_eq!(value(&out, RANGE), Some("32768 60999"));
        assert_eq!(value(&out, TW_REUSE), None);
        assert_eq!(severities(&out), [Severity::Info]);
        assert!(out.steps.iter().any(|s| s.contains("= 23564 ports")));
        // concurrent alone is an input
        let out = run(&proxy_host(), "[outbound]\nconcurrent = 5\n");
        assert_eq!(value(&out, RANGE), Some("32768 60999"));
    }

    #[test]
    fn batch_client_widens_to_65535_keeping_low_ports() {
        // (400 × 65.12 + 200) × 1.2 = 31497.6 → 31498 > 28232; fit = 34038; lo' = 32768
        let tw = TimeWait::new(None);
        assert_eq!(ports_needed(400, 200, Dec4(12000), tw), 31498);
        // at HZ 250: (400 × 62.048 + 200) × 1.2 = 30023.04 → 30024; the article's 29040
        assert_eq!(ports_needed(400, 200, Dec4(12000), HZ_250), 30024);
        assert_eq!(ports_needed(400, 200, Dec4(12000), HZ_1000), 31007);
        let out = run(&proxy_host(), &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, RANGE), Some("32768 65535"));
        assert_eq!(value(&out, TW_REUSE), None);
        assert_eq!(severities(&out), [Severity::Info, Severity::Info]);
        let msg = message(&out, Severity::Info, "→ 32768 65535");
        assert!(msg.contains("32 768 ports available"), "{msg}");
        // floor(32768 / 65.12) = 503, was floor(28232 / 65.12) = 433
        assert!(
            msg.contains("at most 503 new connections per second per destination address:port (was 433)"),
            "{msg}"
        );
        assert!(msg.contains("TIME_WAIT for up to 65.12 s"), "{msg}");
        assert!(msg.contains("HZ unknown"), "{msg}");
        // at a known HZ 250: floor(32768 / 62.048) = 528
        let out = run(&hz(proxy_host(), Some(250)), &outbound(400, 200, "1.2"));
        let msg = message(&out, Severity::Info, "→ 32768 65535");
        assert!(
            msg.contains("at most 528 new") && msg.contains("62.048 s"),
            "{msg}"
        );
        assert!(msg.contains("HZ=250 from the kernel's config"), "{msg}");
        // the built-in profile is the same case
        let builtin = crate::profile::BUILTIN
            .iter()
            .find(|(n, _)| *n == "batch-client")
            .unwrap()
            .1;
        let profile = crate::profile::parse_for_tests(builtin);
        let facts = proxy_host();
        let out = PortRange.evaluate(&Context {
            facts: &facts,
            profile: &profile,
            shrink: None,
        });
        assert_eq!(value(&out, RANGE), Some("32768 65535"));
    }

    #[test]
    fn parity_even_fit_odd_fit_and_floor() {
        // fit = 65536 − 31498 = 34038 (even) below the current lo 40000
        let facts = with(proxy_host(), RANGE, Some("40000 60999"));
        let out = run(&facts, &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, RANGE), Some("34038 65535"));
        // needed 400 × 65.12 + 201 = 26249 → fit 39287 (odd) → 39286
        let facts = with(proxy_host(), RANGE, Some("50000 60999"));
        let out = run(&facts, &outbound(400, 201, "1"));
        assert_eq!(value(&out, RANGE), Some("39286 65535"));
        // lo' = floor_lo = 20001, odd, and 20000 is below the floor → kept odd
        let facts = with(
            with(proxy_host(), UNPRIV, Some("20001")),
            RANGE,
            Some("30000 60999"),
        );
        let out = run(&facts, &outbound(0, 45535, "1"));
        assert_eq!(value(&out, RANGE), Some("20001 65535"));
        assert!(out.steps.iter().any(|s| s.contains("→ kept")));
    }

    #[test]
    fn reserved_ports_move_the_fit_down() {
        let facts = with(
            with(proxy_host(), RANGE, Some("33500 60999")),
            "net.ipv4.ip_local_reserved_ports",
            Some("40000-40999,50000-50099"),
        );
        let out = run(&facts, &outbound(400, 200, "1.2"));
        // without the reserved ports the fit 34038 is above 33500 and 33500 would stay
        assert_eq!(value(&out, RANGE), Some("32938 65535"));
        assert_eq!(available(32938, 65535, &reserved(&facts)), 31498);
        // reserved ports also shrink the current range: 28232 − 1100 < 28000
        let facts = with(
            proxy_host(),
            "net.ipv4.ip_local_reserved_ports",
            Some("40000-40999,50000-50099"),
        );
        let out = run(&facts, "[outbound]\nconcurrent = 28000\n");
        // 28000 × 1.2 = 33600 → fit 65536 − 33600 − 1100 = 30836
        assert_eq!(value(&out, RANGE), Some("30836 65535"));
    }

    #[test]
    fn unprivileged_port_start_raises_the_floor() {
        let facts = with(proxy_host(), UNPRIV, Some("20000"));
        // 40000 needed: fit = 25536, below the current 32768
        let out = run(&facts, "headroom = 1\n[outbound]\nconcurrent = 40000\n");
        assert_eq!(value(&out, RANGE), Some("25536 65535"));
        // 50000 needed: 20000..65535 has 45536 → infeasible at floor 20000
        let out = run(&facts, "headroom = 1\n[outbound]\nconcurrent = 50000\n");
        assert_eq!(value(&out, RANGE), Some("20000 65535"));
        assert_eq!(value(&out, TW_REUSE), Some("1"));
        // absent: floor 1024
        let facts = with(proxy_host(), UNPRIV, None);
        let out = run(&facts, "headroom = 1\n[outbound]\nconcurrent = 64512\n");
        assert_eq!(value(&out, RANGE), Some("1024 65535"));
    }

    /// Revision 2, item 10: floor_lo = min(current lo, max(1024, ip_unprivileged_port_start)).
    #[test]
    fn low_ports_already_in_the_range_are_kept() {
        let facts = with(proxy_host(), RANGE, Some("10000 20000"));
        let out = run(&facts, &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, RANGE), Some("10000 65535"));
        // an odd current lo gains one port for the parity
        let facts = with(proxy_host(), RANGE, Some("10001 20000"));
        let out = run(&facts, &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, RANGE), Some("10000 65535"));
        // a range below 1024 (ip_unprivileged_port_start 0) is not given up
        let facts = with(with(proxy_host(), UNPRIV, Some("0")), RANGE, Some("500 20000"));
        let out = run(&facts, &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, RANGE), Some("500 65535"));
        assert!(
            out.steps.iter().any(|s| s.starts_with(
                "floor_lo = min(current lo 500, max(1024, ip_unprivileged_port_start 0)) = 500"
            )),
            "{:?}",
            out.steps
        );
        // infeasible: lo' = floor_lo = 500, not 1024
        let out = run(&facts, &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, RANGE), Some("500 65535"));
        assert_eq!(value(&out, TW_REUSE), Some("1"));
        message(&out, Severity::Warning, "500 65535 has only 65 036");
        // odd and below 1024: no port below the current lo is added for the parity
        let facts = with(with(proxy_host(), UNPRIV, Some("0")), RANGE, Some("501 20000"));
        let out = run(&facts, &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, RANGE), Some("501 65535"));
        // an invalid current range keeps nothing: floor_lo is max(1024, unpriv)
        let facts = with(with(proxy_host(), UNPRIV, Some("600")), RANGE, Some("500 20000"));
        let out = run_any(&facts, &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, RANGE), Some("1024 65535"));
    }

    #[test]
    fn infeasible_rate_with_reuse_covering_it_is_a_warning() {
        // 2000 × 65.12 × 1.2 = 156288 > 64512; with reuse 2000 × 1 s × 1.2 = 2400 ≤ 64512
        assert_eq!(ports_needed(2000, 0, Dec4(12000), TimeWait::new(None)), 156288);
        assert_eq!(reuse_ports_needed(2000, 0, Dec4(12000), 1000), 2400);
        let out = run(&proxy_host(), &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, RANGE), Some("1024 65535"));
        assert_eq!(value(&out, TW_REUSE), Some("1"));
        assert!(!severities(&out).contains(&Severity::Error), "{:?}", out.findings);
        let m = message(&out, Severity::Warning, "depends on TIME_WAIT reuse");
        for part in [
            "156 288",
            "64 512",
            "990 new",
            "65.12 s in TIME_WAIT",
            "tcp_tw_reuse_delay 1000 ms, 64512 new connections per second",
            "keep-alive",
            "connection pool",
            "destination addresses or ports",
            "outgoing",
            "timestamps",
        ] {
            assert!(m.contains(part), "{part:?} missing: {m}");
        }
        // a shorter delay (6.13+) is used when the kernel has it
        let facts = with(proxy_host(), REUSE_DELAY, Some("250"));
        let out = run(&facts, &outbound(2000, 0, "1.2"));
        message(&out, Severity::Warning, "tcp_tw_reuse_delay 250 ms, 258048 new");
        // already 1: still managed, so the drop-in keeps it across reboots
        let facts = with(proxy_host(), TW_REUSE, Some("1"));
        let out = run(&facts, &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, RANGE), Some("1024 65535"));
        assert_eq!(value(&out, TW_REUSE), Some("1"));
    }

    #[test]
    fn infeasible_rate_reuse_cannot_cover_is_an_error() {
        // timestamps off: reuse never happens
        let facts = with(proxy_host(), TIMESTAMPS, Some("0"));
        let out = run(&facts, &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, TW_REUSE), Some("1"));
        let m = message(&out, Severity::Error, "EADDRNOTAVAIL");
        assert!(m.contains("tcp_timestamps is 0"), "{m}");
        assert!(
            m.contains("Cannot assign requested address") && m.contains("keep-alive"),
            "{m}"
        );
        // even reusing each port after 1 s: 60000 × 1.2 = 72000 > 64512
        let out = run(&proxy_host(), &outbound(60000, 0, "1.2"));
        let m = message(&out, Severity::Error, "EADDRNOTAVAIL");
        assert!(m.contains("after 1000 ms needs 72 000 ports"), "{m}");
        assert!(m.contains("outgoing") && m.contains("timestamps"), "{m}");
        // absent: info, not managed, and an error
        let facts = with(proxy_host(), TW_REUSE, None);
        let out = run(&facts, &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, TW_REUSE), None);
        message(&out, Severity::Info, "tcp_tw_reuse is absent");
        let m = message(&out, Severity::Error, "EADDRNOTAVAIL");
        assert!(
            m.contains("net.ipv4.tcp_tw_reuse is absent on this kernel"),
            "{m}"
        );
    }

    #[test]
    fn reuse_applies_only_where_the_kernel_reuses() {
        // tcp_twsk_unique: 1 for every destination, 2 for loopback, timestamps needed
        assert!(reuse_applies(Some(1), Some(1), false));
        assert!(
            reuse_applies(Some(1), None, false),
            "missing timestamps count as 1"
        );
        assert!(reuse_applies(Some(2), Some(1), true));
        assert!(!reuse_applies(Some(2), Some(1), false));
        assert!(!reuse_applies(Some(1), Some(0), true));
        assert!(!reuse_applies(Some(0), Some(1), true));
        assert!(!reuse_applies(None, Some(1), true));
        assert!(
            reuse_applies(Some(1), Some(2), false),
            "2: timestamps without random offsets"
        );
        assert_eq!(reuse_per_second(120, 1000), 120);
        assert_eq!(reuse_per_second(120, 500), 240);
        assert_eq!(reuse_per_second(120, 60000), 2);
        assert_eq!(reuse_delay_ms(None), 1000);
        assert_eq!(reuse_delay_ms(Some(0)), 1);
        assert_eq!(reuse_per_second(u64::MAX, 1), u64::MAX);
        assert_eq!(timestamps(None), 1);
    }

    #[test]
    fn tw_buckets_hold_the_rate_to_every_destination() {
        let facts = with(proxy_host(), TW_BUCKETS, Some("262144"));
        // 400 × 1 × 65.12 × 1.2 = 31257.6 → 31258 ≤ 262144: kept, and managed
        assert_eq!(tw_buckets_needed(400, 1, Dec4(12000), TimeWait::new(None)), 31258);
        let out = run(&facts, &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, TW_BUCKETS), Some("262144"));
        assert_eq!(
            reason(&out, TW_BUCKETS),
            "holds the 31 258 TIME_WAIT sockets needed"
        );
        // below it: raised, with no finding of its own
        let small = with(proxy_host(), TW_BUCKETS, Some("5000"));
        let out = run(&small, &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, TW_BUCKETS), Some("31258"));
        assert_eq!(
            reason(&out, TW_BUCKETS),
            "31 258 TIME_WAIT sockets to 1 destination (was 5000)"
        );
        assert!(out.findings.iter().all(|f| !f.message.contains("tw_buckets")));
        // three destinations share the cap: 1200 × 65.12 × 1.2 = 93772.8 → 93773
        let out = run(
            &small,
            &format!("{}destinations = 3\n", outbound(400, 200, "1.2")),
        );
        assert_eq!(value(&out, TW_BUCKETS), Some("93773"));
        assert!(reason(&out, TW_BUCKETS).contains("to 3 destinations"));
        // the ports are per destination: 3 destinations need no more of them
        assert_eq!(value(&out, RANGE), Some("32768 65535"));
        // at HZ 250: 400 × 62.048 × 1.2 = 29783.04 → 29784
        let out = run(&hz(small.clone(), Some(250)), &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, TW_BUCKETS), Some("29784"));
        // a negative cap keeps no TIME_WAIT at all: raised
        let out = run(&with(proxy_host(), TW_BUCKETS, Some("-1")), &outbound(1, 0, "1"));
        assert_eq!(value(&out, TW_BUCKETS), Some("66"));
        // concurrent alone keeps nothing in TIME_WAIT: not managed
        let out = run(&facts, "[outbound]\nconcurrent = 100\n");
        assert_eq!(value(&out, TW_BUCKETS), None);
        // absent: not managed, no finding
        let out = run(&proxy_host(), &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, TW_BUCKETS), None);
        // beyond what the kernel's int holds: the maximum, and a warning
        let out = run_any(
            &small,
            &format!("{}destinations = 1000000\n", outbound(100000, 0, "1")),
        );
        assert_eq!(value(&out, TW_BUCKETS), Some("2147483647"));
        message(
            &out,
            Severity::Warning,
            "more than net.ipv4.tcp_max_tw_buckets can hold",
        );
    }

    #[test]
    fn bind_before_connect_is_said_whenever_the_range_is_managed() {
        for toml in [
            outbound(300, 100, "1.2"),
            outbound(400, 200, "1.2"),
            outbound(2000, 0, "1.2"),
        ] {
            let out = run(&proxy_host(), &toml);
            let m = message(&out, Severity::Info, "bind() before connect()");
            assert!(
                m.contains("IP_BIND_ADDRESS_NO_PORT") && m.contains("one pool"),
                "{m}"
            );
            assert!(m.contains("to its destination needs"), "{m}");
        }
        // with 3 destinations the pool needs ceil((1200 × 65.12 + 600) × 1.2) = 94493 ports
        let out = run(
            &proxy_host(),
            &format!("{}destinations = 3\n", outbound(400, 200, "1.2")),
        );
        let m = message(&out, Severity::Info, "bind() before connect()");
        assert!(
            m.contains(
                "32 768 ports and at most 503 new connections per second for all destinations together"
            ),
            "{m}"
        );
        assert!(m.contains("to its 3 destinations needs 94 493 of them"), "{m}");
        // not managed, not said
        let out = run(&with(proxy_host(), RANGE, None), &outbound(400, 200, "1.2"));
        assert!(out.findings.iter().all(|f| !f.message.contains("bind()")));
    }

    #[test]
    fn absent_or_odd_keys_do_not_panic() {
        let facts = with(proxy_host(), RANGE, None);
        let out = run(&facts, &outbound(400, 200, "1.2"));
        assert!(out.settings.is_empty());
        assert_eq!(severities(&out), [Severity::Info]);
        assert!(out.findings[0].message.contains("absent"));
        // every port key absent
        let mut facts = proxy_host();
        for k in [
            RANGE,
            TW_REUSE,
            UNPRIV,
            TW_BUCKETS,
            TIMESTAMPS,
            REUSE_DELAY,
            "net.ipv4.ip_local_reserved_ports",
        ] {
            facts = with(facts, k, None);
        }
        run(&facts, &outbound(2000, 0, "1.2"));
        // ranges the kernel would not hold are replaced with valid ones
        for (range, unpriv) in [
            ("60999 32768", "1024"),
            ("0 100", "0"),
            ("1000 70000", "1024"),
            ("-5 100", "1024"),
            ("100 200", "5000"),
            ("65535 65535", "65535"),
            ("1 1", "999999"),
            ("garbage", "1024"),
        ] {
            let facts = with(with(proxy_host(), RANGE, Some(range)), UNPRIV, Some(unpriv));
            for toml in [
                outbound(1, 0, "1"),
                outbound(400, 200, "1.2"),
                outbound(i64::MAX as u64, i64::MAX as u64, "10"),
                format!(
                    "{}destinations = {}\n",
                    outbound(i64::MAX as u64, 1, "10"),
                    i64::MAX
                ),
            ] {
                for extra in [
                    (TW_BUCKETS, "-2147483648"),
                    (TW_BUCKETS, "garbage"),
                    (TIMESTAMPS, "255"),
                    (REUSE_DELAY, "0"),
                    (REUSE_DELAY, "-1"),
                ] {
                    let facts = with(facts.clone(), extra.0, Some(extra.1));
                    for h in [None, Some(1), Some(24), Some(HZ_MAX_TEST), Some(u64::MAX)] {
                        run_any(&hz(facts.clone(), h), &toml);
                    }
                }
            }
        }
        let facts = with(proxy_host(), "net.ipv4.ip_local_reserved_ports", Some("0-65535"));
        let out = run(&facts, &outbound(1, 0, "1"));
        assert_eq!(value(&out, RANGE), Some("1024 65535"));
        let tw = TimeWait::new(None);
        assert_eq!(ports_needed(u64::MAX, u64::MAX, Dec4(u64::MAX), tw), u128::MAX);
        assert_eq!(
            tw_buckets_needed(u64::MAX, u64::MAX, Dec4(u64::MAX), tw),
            u128::MAX
        );
        assert_eq!(
            reuse_ports_needed(u64::MAX, u64::MAX, Dec4(u64::MAX), u64::MAX),
            u128::MAX
        );
        assert!(TimeWait::new(Some(u64::MAX)).per_second(u64::MAX) < u64::MAX / 60);
    }

    #[test]
    fn doc_has_the_revision_2_arithmetic() {
        // Its format (sections, width, plain text) is checked for every rule in
        // tests/conventions.rs.
        for s in [
            "28232 / 60 = 470",
            "455 at HZ=250, 440 at HZ=1000",
            "433 at HZ=100",
            "1039, 1006 and 990",
            "tw_seconds         = 60 + slack(HZ) / HZ",
            "floor_lo           = min(current lo, max(1024, ip_unprivileged_port_start))",
            "tw_buckets_needed",
            "max_new_per_second_with_reuse",
            "tcp_time_wait() in\n  net/ipv4/tcp_minisocks.c",
            "inet_twsk_schedule",
            "TCP_TIMEWAIT_LEN",
            "__inet_hash_connect",
            "net/ipv4/inet_hashtables.c",
            "tcp_twsk_unique() in net/ipv4/tcp_ipv4.c",
            "calc_wheel_index",
            "IP_BIND_ADDRESS_NO_PORT",
            "TCPTimeWaitOverflow",
        ] {
            assert!(DOC.contains(s), "{s:?} not in the DOC");
        }
        assert!(
            !DOC.contains("../"),
            "the DOC cites the kernel, not files outside the repository"
        );
    }
}
