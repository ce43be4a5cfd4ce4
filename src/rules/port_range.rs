//! Rule `port-range`: size the ephemeral port range for the outbound connection rate. See [`DOC`].

use super::{Context, Outcome, Rule, Severity};
use crate::units::{Dec4, grouped};

pub const DOC: &str = "\
# port-range: net.ipv4.ip_local_port_range, net.ipv4.tcp_tw_reuse

## What it does
Sizes the ephemeral port range (`ip_local_port_range`) for the connections this host opens
to one backend address:port (`[outbound] new_per_second` and `concurrent`). It widens the
range only as far as needed, never gives up low ports the range already has, and when even
the widest range cannot hold the demand it enables `tcp_tw_reuse = 1` and reports an error
with the real fix.

## Why
A connection the host opens takes a local port per (destination address, destination
port). When the host closes first, that port sits in TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN,
fixed in the kernel; no sysctl changes it). So a host sustains at most ports / 60 new short
connections per second to one destination before connect() fails with EADDRNOTAVAIL
(\"Cannot assign requested address\"): the first failure of the article's batch system.
The default range 32768 60999 has 28232 ports, 470 new connections per second; the widest
1024 65535 has 64512, 1075 per second. Beyond that only persistent connections help.

## Arithmetic
    ports_needed          = ceil((new_per_second × 60 + outbound.concurrent) × headroom)
    available(lo, hi)     = hi − lo + 1 − |ip_local_reserved_ports ∩ [lo, hi]|
    max_new_per_second(r) = floor(available(r) / 60)     per destination address:port
    floor_lo              = max(1024, ip_unprivileged_port_start)
1. ports_needed ≤ available(current) → keep the current range.
2. else, if available(floor_lo, 65535) ≥ ports_needed: hi' = 65535;
   fit = the largest lo ≥ floor_lo with available(fit, 65535) ≥ ports_needed;
   lo' = min(current lo, fit); if lo' is odd and lo' − 1 ≥ floor_lo, lo' = lo' − 1 (the
   kernel prefers a start and end of different parity; 65535 is odd).
3. else infeasible: lo' = floor_lo, hi' = 65535, tcp_tw_reuse = 1, and an error finding
   with the ports needed, the ports available and the fix.

## Choices
- The range is managed whenever an outbound input is given, even when it is kept.
  tcp_tw_reuse is managed only in the infeasible case, and then always, even when it is
  already 1: \"managed only when changed\" would drop it from the drop-in once applied,
  and the next boot would undo it.
- Reserved ports are counted once each, whatever the order or overlap of the list.
- ip_unprivileged_port_start absent (kernels before 4.11): floor_lo = 1024 and no lower
  bound other than 1.
- A current lo below floor_lo (possible when ip_unprivileged_port_start < 1024) is kept:
  steps 2 and 3 start from min(floor_lo, current lo), so a widened range never gives up
  those ports, and parity never moves lo below floor_lo. No range starts below
  ip_unprivileged_port_start: the kernel would refuse it with EINVAL.
- A current range the kernel would not accept (lo > hi, lo below
  ip_unprivileged_port_start, out of 1..65535) is never kept; it is replaced as in step 2.
- tcp_tw_reuse is not counted in the capacity figures, which assume the full 60 s: it
  helps outgoing connections only, and only with TCP timestamps on both ends.
- An info finding gives the new capacity whenever the range changes.

## References
- Documentation/networking/ip-sysctl.rst: ip_local_port_range, ip_local_reserved_ports,
  ip_unprivileged_port_start, tcp_tw_reuse.
- include/net/tcp.h: TCP_TIMEWAIT_LEN (60 s).
- The article (a 2018 post-mortem): the batch system's \"Cannot assign requested address\",
  fixed with HTTP keep-alive and a connection pool.
";

/// How long a closed connection's local port stays in TIME_WAIT (`TCP_TIMEWAIT_LEN`).
pub const TIME_WAIT_SECONDS: u64 = 60;

const RANGE: &str = "net.ipv4.ip_local_port_range";
const TW_REUSE: &str = "net.ipv4.tcp_tw_reuse";
const UNPRIV: &str = "net.ipv4.ip_unprivileged_port_start";
const PORT_MAX: u32 = 65535;
const FLOOR: u32 = 1024;

pub struct PortRange;

impl Rule for PortRange {
    fn id(&self) -> &'static str {
        "port-range"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[RANGE, TW_REUSE]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, ctx: &Context) -> Outcome {
        let mut out = Outcome::default();
        let id = self.id();
        let facts = ctx.facts;
        let outbound = &ctx.profile.outbound;
        if outbound.new_per_second == 0 && outbound.concurrent == 0 {
            return out;
        }

        let needed = ports_needed(outbound.new_per_second, outbound.concurrent, ctx.profile.headroom);
        out.step(format!(
            "ports_needed = ceil((new_per_second × {TIME_WAIT_SECONDS} s + concurrent) × headroom) \
             = ceil(({} × {TIME_WAIT_SECONDS} + {}) × {}) = {} ports",
            outbound.new_per_second, outbound.concurrent, ctx.profile.headroom, needed
        ));

        if facts.value(RANGE).is_none() {
            out.finding(
                Severity::Info,
                id,
                format!("{RANGE} is absent on this kernel and is not managed."),
            );
            return out;
        }
        let Some((cur_lo, cur_hi)) = facts.port_range() else {
            out.finding(
                Severity::Warning,
                id,
                format!(
                    "{RANGE} is {:?}, not two ports; it is not managed.",
                    facts.value(RANGE).unwrap_or_default()
                ),
            );
            return out;
        };

        let reserved = facts.reserved_ports();
        // The kernel refuses a range starting below ip_unprivileged_port_start (EINVAL).
        let unpriv = facts.u64(UNPRIV).map(|p| p.min(PORT_MAX as u64) as u32);
        let lower_bound = unpriv.unwrap_or(1).max(1);
        let floor_lo = FLOOR.max(unpriv.unwrap_or(FLOOR));
        out.step(format!(
            "floor_lo = max(1024, ip_unprivileged_port_start {}) = {floor_lo}",
            unpriv.map_or("absent".to_string(), |p| p.to_string())
        ));

        let cur_valid = cur_lo >= lower_bound && cur_lo <= cur_hi && cur_hi <= PORT_MAX;
        let cur_avail = available(cur_lo, cur_hi, &reserved);
        let cur_reserved = range_len(cur_lo, cur_hi) - cur_avail;
        out.step(format!(
            "available({cur_lo} {cur_hi}) = {cur_hi} − {cur_lo} + 1 − {cur_reserved} reserved \
             = {cur_avail} ports → {} new/s per destination ({cur_avail} / {TIME_WAIT_SECONDS} s)",
            max_new_per_second(cur_avail)
        ));
        if !cur_valid {
            out.finding(
                Severity::Warning,
                id,
                format!(
                    "{RANGE} is \"{cur_lo} {cur_hi}\", a range the kernel would not accept \
                     (ports 1..65535, low ≤ high, low ≥ ip_unprivileged_port_start {lower_bound}); \
                     it is replaced."
                ),
            );
        }

        // Step 1: the current range already holds the demand.
        if cur_valid && needed <= cur_avail as u128 {
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
            return out;
        }

        // Where widening may start: floor_lo, or lower when the range already goes lower.
        let start = if cur_valid { floor_lo.min(cur_lo) } else { floor_lo };
        let widest = available(start, PORT_MAX, &reserved);
        out.step(format!(
            "available({start} {PORT_MAX}) = {widest} ports (the widest range)"
        ));

        let (lo, hi) = match fit_lo(start, needed, &reserved) {
            Some(fit) => {
                // Step 2: widen up to 65535, down to the fit.
                let mut lo = if cur_valid { cur_lo.min(fit) } else { fit };
                out.step(format!(
                    "fit = largest lo ≥ {start} with available(lo, {PORT_MAX}) ≥ {needed} = {fit}; \
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
                         as 65535 costs only a kernel log line)"
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
            None => {
                // Step 3: infeasible.
                let lo = start.max(lower_bound);
                out.step(format!(
                    "{widest} < {needed} → infeasible: lo' = {lo}, hi' = {PORT_MAX}, tcp_tw_reuse = 1"
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
                match facts.value(TW_REUSE) {
                    None => out.finding(
                        Severity::Info,
                        id,
                        format!("{TW_REUSE} is absent on this kernel and is not managed."),
                    ),
                    Some(v) => {
                        out.step(format!("tcp_tw_reuse {v} → 1"));
                        // Managed whenever the demand does not fit, even when it is already 1:
                        // otherwise the drop-in would lose it once applied and the next boot
                        // would undo it.
                        out.set(
                            TW_REUSE,
                            "1",
                            "ports run out even at the widest range; reuse TIME_WAIT ports",
                        );
                    }
                }
                out.finding(
                    Severity::Error,
                    id,
                    format!(
                        "The outbound connections need {} local ports per destination \
                         ((new_per_second {} × {TIME_WAIT_SECONDS} s in TIME_WAIT + concurrent {}) × \
                         headroom {}) but the widest range {lo} {PORT_MAX} has only {} ({} new \
                         connections per second), so connect() will fail with EADDRNOTAVAIL \
                         (\"Cannot assign requested address\"); tcp_tw_reuse = 1 helps only \
                         outgoing connections and needs TCP timestamps on both ends; the fix \
                         the article used is persistent connections (HTTP keep-alive) and a \
                         connection pool, or else spread the calls over more destination \
                         addresses or ports.",
                        grouped(needed),
                        outbound.new_per_second,
                        outbound.concurrent,
                        ctx.profile.headroom,
                        grouped(widest as u128),
                        max_new_per_second(widest)
                    ),
                );
                (lo, PORT_MAX)
            }
        };

        if (lo, hi) != (cur_lo, cur_hi) {
            let avail = available(lo, hi, &reserved);
            out.step(format!(
                "available({lo} {hi}) = {avail} ports → {} new/s per destination",
                max_new_per_second(avail)
            ));
            out.finding(
                Severity::Info,
                id,
                format!(
                    "{RANGE} {cur_lo} {cur_hi} → {lo} {hi}: {} ports available (was {}), at most \
                     {} new connections per second per destination address:port (was {}); each \
                     closed port stays in TIME_WAIT for {TIME_WAIT_SECONDS} s, fixed in the kernel.",
                    grouped(avail as u128),
                    grouped(cur_avail as u128),
                    max_new_per_second(avail),
                    max_new_per_second(cur_avail)
                ),
            );
        }
        out
    }
}

/// `ceil((new_per_second × 60 + concurrent) × headroom)`, saturating.
pub fn ports_needed(new_per_second: u64, concurrent: u64, headroom: Dec4) -> u128 {
    let demand = new_per_second as u128 * TIME_WAIT_SECONDS as u128 + concurrent as u128;
    demand
        .checked_mul(headroom.0 as u128)
        .map_or(u128::MAX, |p| p.div_ceil(Dec4::SCALE))
}

/// Ports in `lo..=hi` that connect() may use: the range minus the reserved ports in it
/// (each counted once, however the reserved list overlaps). 0 when `lo > hi`.
pub fn available(lo: u32, hi: u32, reserved: &[(u32, u32)]) -> u64 {
    range_len(lo, hi) - reserved_in(lo, hi, reserved)
}

/// New short connections per second to one destination address:port that `available`
/// ports sustain while each closed one waits [`TIME_WAIT_SECONDS`].
pub fn max_new_per_second(available: u64) -> u64 {
    available / TIME_WAIT_SECONDS
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

    fn outbound(new_per_second: u64, concurrent: u64, headroom: &str) -> String {
        format!(
            "headroom = {headroom}\n[outbound]\nnew_per_second = {new_per_second}\nconcurrent = {concurrent}\n"
        )
    }

    fn severities(out: &Outcome) -> Vec<Severity> {
        out.findings.iter().map(|f| f.severity).collect()
    }

    #[test]
    fn article_capacity_figures() {
        assert_eq!(available(32768, 60999, &[]), 28232);
        assert_eq!(max_new_per_second(28232), 470);
        assert_eq!(available(1024, 65535, &[]), 64512);
        assert_eq!(max_new_per_second(64512), 1075);
        assert_eq!(TIME_WAIT_SECONDS, 60);
        assert_eq!(available(40000, 40009, &[]), 10);
        assert_eq!(available(5, 4, &[]), 0);
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
        // (300 × 60 + 100) × 1.2 = 21720 ≤ 28232
        let out = run(&proxy_host(), &outbound(300, 100, "1.2"));
        assert_eq!(value(&out, RANGE), Some("32768 60999"));
        assert_eq!(value(&out, TW_REUSE), None);
        assert!(out.findings.is_empty());
        assert!(out.steps.iter().any(|s| s.contains("= 21720 ports")));
        // concurrent alone is an input
        let out = run(&proxy_host(), "[outbound]\nconcurrent = 5\n");
        assert_eq!(value(&out, RANGE), Some("32768 60999"));
    }

    #[test]
    fn batch_client_widens_to_65535_keeping_low_ports() {
        // (400 × 60 + 200) × 1.2 = 29040 > 28232; fit = 36496; lo' = min(32768, 36496)
        assert_eq!(ports_needed(400, 200, Dec4(12000)), 29040);
        let out = run(&proxy_host(), &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, RANGE), Some("32768 65535"));
        assert_eq!(value(&out, TW_REUSE), None);
        assert_eq!(severities(&out), [Severity::Info]);
        let msg = &out.findings[0].message;
        assert!(msg.contains("32 768 ports available"), "{msg}");
        assert!(
            msg.contains("546 new connections per second per destination"),
            "{msg}"
        );
        assert!(msg.contains("TIME_WAIT for 60 s"), "{msg}");
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
        // fit = 65536 − 29040 = 36496 (even) below the current lo 40000
        let facts = with(proxy_host(), RANGE, Some("40000 60999"));
        let out = run(&facts, &outbound(400, 200, "1.2"));
        assert_eq!(value(&out, RANGE), Some("36496 65535"));
        // needed 24201 → fit 41335 (odd) → 41334
        let facts = with(proxy_host(), RANGE, Some("50000 60999"));
        let out = run(&facts, &outbound(400, 201, "1"));
        assert_eq!(value(&out, RANGE), Some("41334 65535"));
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
            with(proxy_host(), RANGE, Some("36000 60999")),
            "net.ipv4.ip_local_reserved_ports",
            Some("40000-40999,50000-50099"),
        );
        let out = run(&facts, &outbound(400, 200, "1.2"));
        // without the reserved ports the fit 36496 is above 36000 and 36000 would stay
        assert_eq!(value(&out, RANGE), Some("35396 65535"));
        assert_eq!(available(35396, 65535, &facts.reserved_ports()), 29040);
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
        let out = run(&facts, &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, RANGE), Some("500 65535"));
        assert!(severities(&out).contains(&Severity::Error));
    }

    #[test]
    fn infeasible_rate_sets_tw_reuse_and_errors() {
        // 2000 × 60 × 1.2 = 144000 > 64512
        let out = run(&proxy_host(), &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, RANGE), Some("1024 65535"));
        assert_eq!(value(&out, TW_REUSE), Some("1"));
        let err = out
            .findings
            .iter()
            .find(|f| f.severity == Severity::Error)
            .unwrap();
        for part in [
            "144 000",
            "64 512",
            "1075 new",
            "keep-alive",
            "connection pool",
            "destination addresses or ports",
            "outgoing",
            "timestamps",
        ] {
            assert!(err.message.contains(part), "{part:?} missing: {}", err.message);
        }
        assert!(severities(&out).contains(&Severity::Info));
        // already 1: still managed, so the drop-in keeps it across reboots
        let facts = with(proxy_host(), TW_REUSE, Some("1"));
        let out = run(&facts, &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, RANGE), Some("1024 65535"));
        assert_eq!(value(&out, TW_REUSE), Some("1"));
        // absent: info, not managed
        let facts = with(proxy_host(), TW_REUSE, None);
        let out = run(&facts, &outbound(2000, 0, "1.2"));
        assert_eq!(value(&out, TW_REUSE), None);
        assert!(
            out.findings
                .iter()
                .any(|f| f.severity == Severity::Info && f.message.contains("tcp_tw_reuse is absent"))
        );
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
        for k in [RANGE, TW_REUSE, UNPRIV, "net.ipv4.ip_local_reserved_ports"] {
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
            ] {
                run_any(&facts, &toml);
            }
        }
        let facts = with(proxy_host(), "net.ipv4.ip_local_reserved_ports", Some("0-65535"));
        let out = run(&facts, &outbound(1, 0, "1"));
        assert_eq!(value(&out, RANGE), Some("1024 65535"));
        assert_eq!(ports_needed(u64::MAX, u64::MAX, Dec4(u64::MAX)), u128::MAX);
    }
}
