//! Rule `tcp-buffers`: sizes `net.ipv4.tcp_rmem` and `net.ipv4.tcp_wmem` (min default max,
//! in bytes) from the profile's default buffers and the bandwidth-delay product. See [`DOC`].

use super::{Code, Context, Outcome, Rule, Severity};
use crate::host::Facts;
use crate::keys;
use crate::units::{human_bytes, sized};

pub const DOC: &str = "\
What it does
  Sets the default receive and send buffer of every TCP socket (tcp_rmem[1],
  tcp_wmem[1]) and the maximum autotuning may grow them to (tcp_rmem[2], tcp_wmem[2]).
  tcp_rmem is managed when connections.rmem_default is given, tcp_wmem when
  connections.wmem_default is given, both when connections.bandwidth and rtt are given,
  and both when rule tcp-memory shrank the default buffers to fit its budget or may
  shrink them (connections.shrink_buffers_to_fit = true with connections and no
  average_memory: once shrunk they stay managed, so the drop-in keeps them).

Why
  The default buffer is what every connection costs up front: the article's proxy ran
  out of socket memory at ~700 000 connections with the old 85/64 KiB defaults and held
  860 000 after halving them to 43/32 KiB. Autotuning still grows a busy connection up
  to the maximum, and a fast long path needs about twice its bandwidth-delay product
  (BDP) in flight to keep the pipe full.

Arithmetic (exact integers)
  default' = the shrunk size from tcp-memory, else connections.rmem_default /
             wmem_default (>= 4096), else the current default
  bdp      = ceil(bandwidth_bits_per_s * rtt_ns / (8 * 10^9))                 bytes
  target   = 2 * bdp, rounded up to a multiple of the page size
  max'     = min(max(current max, target), 2147483647)  with bandwidth and rtt,
             else the current max; raised to default' if below it
  min'     = the current min if <= default', else 4096
  So min' <= default' <= max' always.
  Example: 10 Gbit/s, 20 ms: bdp = 25000000 B, target = round_up(50000000, 4096) =
  50003968 B (47.7 MiB).

  An info finding when the rule raises max' above net.core.rmem_max (wmem_max): sockets
  that set SO_RCVBUF (SO_SNDBUF) themselves are capped at net.core.rmem_max and lose
  autotuning; net.core.*_max is host-wide (read-only inside a network namespace).

Choices
  - The shrunk size wins over the profile's rmem_default/wmem_default: it is the
    profile's size made to fit the TCP memory budget (a warning of tcp-memory says so).
  - max' is never lowered: a current max above 2 * BDP is kept.
  - When the current min is above default', min' = 4096 (or default' if that is
    smaller, so the triple stays ascending).
  - 'Raised' means max' > current max; the info finding is not given when the current
    max was already above net.core.rmem_max, nor when net.core.rmem_max is absent.
  - tcp_rmem/tcp_wmem absent or unreadable: not managed, with an info finding.
  - A default above 2147483647 (the kernel's limit) is not written; an error finding
    names it.

References
  net/ipv4/tcp.c: tcp_init_sock() (a new socket's sk_rcvbuf and sk_sndbuf are tcp_rmem[1]
  and tcp_wmem[1]); net/ipv4/tcp_input.c: tcp_rcv_space_adjust() (receive autotuning up
  to tcp_rmem[2]), tcp_sndbuf_expand() (send buffers up to tcp_wmem[2]); net/core/sock.c:
  sk_setsockopt() (SO_RCVBUF, SO_SNDBUF capped at rmem_max, wmem_max);
  Documentation/networking/ip-sysctl.rst (tcp_rmem, tcp_wmem, tcp_moderate_rcvbuf);
  Documentation/admin-guide/sysctl/net.rst (rmem_max, wmem_max); socket(7) (SO_RCVBUF);
  the article 'OOM killer under high concurrency' (2018): defaults halved to 43/32 KiB.
";

const ID: Code = Code::TcpBuffers;
/// The kernel's limit for each value of tcp_rmem / tcp_wmem (INT_MAX).
const MAX_BUFFER: u128 = 2147483647;
/// min' when the current min is above default'.
const MIN_BUFFER: u128 = 4096;

pub struct TcpBuffers;

impl Rule for TcpBuffers {
    fn code(&self) -> Code {
        Code::TcpBuffers
    }

    fn keys(&self) -> &'static [&'static str] {
        &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, ctx: &Context) -> Outcome {
        let mut out = Outcome::default();
        let c = &ctx.profile.connections;
        let link = c.bandwidth.zip(c.rtt);
        for dir in [RECEIVE, SEND] {
            let (given, shrunk) = match dir.key {
                "net.ipv4.tcp_rmem" => (c.rmem_default, ctx.shrink.map(|s| s.rmem)),
                _ => (c.wmem_default, ctx.shrink.map(|s| s.wmem)),
            };
            let default = match (shrunk, given) {
                (Some(s), _) => Some((s, Source::Shrunk)),
                (None, Some(g)) => Some((g, Source::Profile)),
                (None, None) => None,
            };
            // With shrink_buffers_to_fit the profile hands both defaults to sysctune: they stay
            // managed once shrunk, even when the next run finds they already fit (otherwise
            // the drop-in would lose them and the next boot would bring back the old ones).
            let shrink_input =
                c.shrink_buffers_to_fit && ctx.profile.conns() > 0 && c.average_memory.is_none();
            if default.is_some() || link.is_some() || shrink_input {
                size(ctx, &mut out, dir, default, link);
            }
        }
        out
    }
}

/// Bandwidth-delay product in bytes: ceil(bits_per_s × rtt_ns / (8 × 10⁹)).
pub fn bdp_bytes(bandwidth_bits_per_s: u64, rtt_ns: u64) -> u128 {
    (bandwidth_bits_per_s as u128 * rtt_ns as u128).div_ceil(8_000_000_000)
}

/// 2 × bdp rounded up to a multiple of `page` (not capped).
pub fn max_target(bdp: u128, page: u64) -> u128 {
    let two = bdp.saturating_mul(2);
    match page {
        0 => two,
        p => two.div_ceil(p as u128).saturating_mul(p as u128),
    }
}

/// One direction: receive (tcp_rmem) or send (tcp_wmem).
#[derive(Clone, Copy)]
struct Direction {
    key: &'static str,
    core_max: &'static str,
    sockopt: &'static str,
}

const RECEIVE: Direction = Direction {
    key: "net.ipv4.tcp_rmem",
    core_max: "net.core.rmem_max",
    sockopt: "SO_RCVBUF",
};

const SEND: Direction = Direction {
    key: "net.ipv4.tcp_wmem",
    core_max: "net.core.wmem_max",
    sockopt: "SO_SNDBUF",
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Shrunk,
    Profile,
}

fn short(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// `10 Gbit/s` when whole, else bits per second.
fn rate(bits: u64) -> String {
    for (unit, name) in [
        (1_000_000_000_000, "Tbit/s"),
        (1_000_000_000, "Gbit/s"),
        (1_000_000, "Mbit/s"),
        (1_000, "Kbit/s"),
    ] {
        if bits >= unit && bits.is_multiple_of(unit) {
            return format!("{} {name}", bits / unit);
        }
    }
    format!("{bits} bit/s")
}

/// `20 ms` when whole, else nanoseconds.
fn duration(ns: u64) -> String {
    for (unit, name) in [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")] {
        if ns >= unit && ns.is_multiple_of(unit) {
            return format!("{} {name}", ns / unit);
        }
    }
    format!("{ns} ns")
}

fn size(
    ctx: &Context,
    out: &mut Outcome,
    dir: Direction,
    default: Option<(u64, Source)>,
    link: Option<(u64, u64)>,
) {
    let facts = ctx.facts;
    let name = short(dir.key);
    let Some([cur_min, cur_default, cur_max]) = facts.triple(dir.key) else {
        let what = match facts.value(dir.key) {
            None => "is absent on this kernel",
            Some(_) => "cannot be read as three byte counts (min default max)",
        };
        out.finding(
            Severity::Info,
            ID,
            format!("{} {what}; it is not managed.", dir.key),
        );
        return;
    };
    let (cur_min, cur_default, cur_max) = (cur_min as u128, cur_default as u128, cur_max as u128);
    let mut reasons = Vec::new();
    let new_default = new_default(name, default, cur_default, &mut reasons, out);
    let mut new_max = match link {
        Some(link) => max_for_link(facts, name, cur_max, link, &mut reasons, out),
        None => cur_max,
    };
    if new_max < new_default {
        out.step(format!(
            "{name} max' {new_max} < default' {new_default} → max' = {new_default}"
        ));
        new_max = new_default;
        reasons.push("max raised to the default".to_string());
    }
    let new_min = if cur_min <= new_default {
        cur_min
    } else {
        let m = MIN_BUFFER.min(new_default);
        out.step(format!(
            "{name} min {cur_min} > default' {new_default} → min' = {m}"
        ));
        reasons.push(format!("min {m}: it was above the default"));
        m
    };

    let text = format!("{new_min} {new_default} {new_max}");
    out.step(format!("{name}' = {text}"));
    match keys::validate(dir.key, &text, &facts.kernel) {
        Ok(value) => {
            let reason = if reasons.is_empty() {
                "kept".to_string()
            } else {
                reasons.join("; ")
            };
            out.set(dir.key, value, reason);
        }
        Err(e) => {
            out.finding(
                Severity::Error,
                ID,
                format!(
                    "{} {text} is not a value the kernel accepts ({e}); it is not managed. Each value must be \
                     1..=2147483647 bytes: check connections.rmem_default / wmem_default.",
                    dir.key
                ),
            );
            return;
        }
    }
    if new_max > cur_max {
        above_core_max(facts, dir, new_max, out);
    }
}

/// The default buffer: the profile's or the one tcp-memory shrank to, else the current.
fn new_default(
    name: &str,
    default: Option<(u64, Source)>,
    cur_default: u128,
    reasons: &mut Vec<String>,
    out: &mut Outcome,
) -> u128 {
    match default {
        Some((d, source)) => {
            let (label, why) = match source {
                Source::Shrunk => ("shrunk by tcp-memory", "shrunk to fit the TCP budget"),
                Source::Profile => ("from the profile", "from the profile"),
            };
            out.step(format!("{name} default' = {} ({label})", sized(d as u128)));
            if d as u128 != cur_default {
                reasons.push(format!("default {} {why}", human_bytes(d as u128)));
            } else {
                reasons.push(format!("default {} as profiled", human_bytes(d as u128)));
            }
            d as u128
        }
        None => {
            out.step(format!("{name} default' = {} (current)", sized(cur_default)));
            cur_default
        }
    }
}

/// The maximum for a link (bandwidth in bit/s, rtt in ns): 2 × the bandwidth-delay
/// product in whole pages, never below the current maximum, at most the kernel's limit.
fn max_for_link(
    facts: &Facts,
    name: &str,
    cur_max: u128,
    (bandwidth, rtt): (u64, u64),
    reasons: &mut Vec<String>,
    out: &mut Outcome,
) -> u128 {
    let bdp = bdp_bytes(bandwidth, rtt);
    let target = max_target(bdp, facts.page_size);
    let new_max = cur_max.max(target).min(MAX_BUFFER);
    out.step(format!(
        "bdp = ceil({bandwidth} bit/s × {rtt} ns / (8 × 10^9)) = {}",
        sized(bdp)
    ));
    out.step(format!(
        "target = round_up(2 × {bdp}, {}) = {}",
        facts.page_size,
        sized(target)
    ));
    out.step(format!(
        "{name} max' = min(max({cur_max}, {target}), {MAX_BUFFER}) = {}",
        sized(new_max)
    ));
    let link_text = format!("{} × {}", rate(bandwidth), duration(rtt));
    reasons.push(if target > MAX_BUFFER && new_max == MAX_BUFFER {
        format!(
            "max capped at the kernel limit (2 × BDP is {})",
            human_bytes(target)
        )
    } else if new_max == target && target > cur_max {
        format!("max {} = 2 × BDP ({link_text})", human_bytes(new_max))
    } else {
        format!("max {} covers 2 × BDP ({link_text})", human_bytes(new_max))
    });
    new_max
}

/// A maximum raised above net.core.{r,w}mem_max: what sockets that set their own buffers
/// lose (they are capped there and not autotuned).
fn above_core_max(facts: &Facts, dir: Direction, new_max: u128, out: &mut Outcome) {
    let name = short(dir.key);
    if let Some(core_max) = facts.u64(dir.core_max)
        && new_max > core_max as u128
    {
        out.finding(
            Severity::Info,
            ID,
            format!(
                "{name} max {} is above {} = {}: autotuned sockets can grow to it, but sockets that set {} \
                 themselves are capped at {} and lose autotuning; {} is host-wide (read-only in a network \
                 namespace), so raise it on the host if such applications need larger buffers.",
                sized(new_max),
                dir.core_max,
                sized(core_max as u128),
                dir.sockopt,
                dir.core_max,
                dir.core_max
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Severity, Shrink};
    use super::*;
    use crate::host::Facts;
    use crate::profile::Profile;

    fn eval_with(facts: &Facts, profile: &Profile, shrink: Option<Shrink>) -> Outcome {
        let out = evaluate_checked(&TcpBuffers, facts, profile, shrink);
        for s in &out.settings {
            let v: Vec<u128> = s.value.split(' ').map(|x| x.parse().unwrap()).collect();
            assert!(v[0] <= v[1] && v[1] <= v[2], "{}", s.value);
        }
        out
    }

    fn eval(facts: &Facts, profile: &Profile) -> Outcome {
        eval_with(facts, profile, None)
    }

    fn get<'a>(out: &'a Outcome, key: &str) -> Option<&'a str> {
        out.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    fn reason<'a>(out: &'a Outcome, key: &str) -> &'a str {
        &out.settings.iter().find(|s| s.key == key).unwrap().reason
    }

    const RMEM: &str = "net.ipv4.tcp_rmem";
    const WMEM: &str = "net.ipv4.tcp_wmem";

    #[test]
    fn bdp_of_10gbit_20ms() {
        assert_eq!(bdp_bytes(10_000_000_000, 20_000_000), 25_000_000);
        assert_eq!(max_target(25_000_000, 4096), 50_003_968);
        assert_eq!(max_target(25_000_000, 0), 50_000_000);
        // ceil: 1 bit/s over 1 ns is a fraction of a byte
        assert_eq!(bdp_bytes(1, 1), 1);
        assert_eq!(bdp_bytes(0, 20_000_000), 0);
        assert_eq!(
            bdp_bytes(u64::MAX, u64::MAX),
            (u64::MAX as u128 * u64::MAX as u128).div_ceil(8_000_000_000)
        );
    }

    #[test]
    fn bandwidth_and_rtt_raise_both_maxima() {
        let p = profile("[connections]\nbandwidth = \"10Gbit\"\nrtt = \"20ms\"\n");
        let out = eval(&proxy_host(), &p);
        assert_eq!(get(&out, RMEM), Some("4096 87380 50003968"));
        assert_eq!(get(&out, WMEM), Some("4096 65536 50003968"));
        assert_eq!(reason(&out, RMEM), "max 47.7 MiB = 2 × BDP (10 Gbit/s × 20 ms)");
        let steps = out.steps.join("\n");
        assert!(
            steps
                .contains("bdp = ceil(10000000000 bit/s × 20000000 ns / (8 × 10^9)) = 25000000 B (23.8 MiB)")
        );
        assert!(steps.contains("target = round_up(2 × 25000000, 4096) = 50003968 B (47.7 MiB)"));
        // raised above net.core.rmem_max / wmem_max (212992): one info each
        assert_eq!(out.findings.len(), 2);
        assert!(out.findings.iter().all(|f| f.severity == Severity::Info));
        let m = &out.findings[0].message;
        for s in [
            "net.core.rmem_max = 212992 B (208 KiB)",
            "SO_RCVBUF",
            "lose autotuning",
            "host-wide",
        ] {
            assert!(m.contains(s), "missing {s:?} in {m}");
        }
        assert!(out.findings[1].message.contains("SO_SNDBUF"));
    }

    #[test]
    fn a_larger_current_max_is_kept() {
        // 1 Gbit/s × 10 ms: bdp 1250000, target 2502656 < 16777216
        let p = profile("[connections]\nbandwidth = \"1Gbit\"\nrtt = \"10ms\"\n");
        let out = eval(&proxy_host(), &p);
        assert_eq!(get(&out, RMEM), Some("4096 87380 16777216"));
        assert_eq!(reason(&out, RMEM), "max 16 MiB covers 2 × BDP (1 Gbit/s × 10 ms)");
        assert!(out.findings.is_empty(), "not raised: no finding");
    }

    #[test]
    fn max_is_capped_at_int_max() {
        let p = profile("[connections]\nbandwidth = \"100Tbit\"\nrtt = \"1s\"\n");
        let out = eval(&proxy_host(), &p);
        assert_eq!(get(&out, RMEM), Some("4096 87380 2147483647"));
        assert_eq!(get(&out, WMEM), Some("4096 65536 2147483647"));
        assert!(reason(&out, RMEM).contains("capped at the kernel limit"));
    }

    #[test]
    fn profile_defaults_manage_each_key_separately() {
        let out = eval(
            &proxy_host(),
            &profile("[connections]\nrmem_default = \"43KiB\"\n"),
        );
        assert_eq!(get(&out, RMEM), Some("4096 44032 16777216"));
        assert_eq!(get(&out, WMEM), None);
        assert_eq!(reason(&out, RMEM), "default 43 KiB from the profile");

        let out = eval(
            &proxy_host(),
            &profile("[connections]\nwmem_default = \"32KiB\"\n"),
        );
        assert_eq!(get(&out, RMEM), None);
        assert_eq!(get(&out, WMEM), Some("4096 32768 16777216"));
        assert!(out.findings.is_empty());
    }

    #[test]
    fn min_above_the_default_drops_to_4096() {
        let facts = with(proxy_host(), RMEM, Some("65536 87380 16777216"));
        let out = eval(&facts, &profile("[connections]\nrmem_default = \"43KiB\"\n"));
        assert_eq!(get(&out, RMEM), Some("4096 44032 16777216"));
        assert!(reason(&out, RMEM).contains("min 4096: it was above the default"));
        // also when the current triple itself has min > default (the kernel accepts it)
        let facts = with(proxy_host(), RMEM, Some("100000 87380 16777216"));
        let out = eval(
            &facts,
            &profile("[connections]\nbandwidth = \"1Gbit\"\nrtt = \"10ms\"\n"),
        );
        assert_eq!(get(&out, RMEM), Some("4096 87380 16777216"));
    }

    #[test]
    fn max_below_the_default_is_raised_to_it() {
        let facts = with(proxy_host(), RMEM, Some("4096 87380 100000"));
        let out = eval(&facts, &profile("[connections]\nrmem_default = \"200000\"\n"));
        assert_eq!(get(&out, RMEM), Some("4096 200000 200000"));
        assert!(reason(&out, RMEM).contains("max raised to the default"));
        assert!(out.findings.is_empty(), "200000 is below rmem_max 212992");
        // raised above net.core.rmem_max: info
        let out = eval(&facts, &profile("[connections]\nrmem_default = \"300000\"\n"));
        assert_eq!(get(&out, RMEM), Some("4096 300000 300000"));
        assert_eq!(out.findings.len(), 1);
    }

    #[test]
    fn a_shrink_manages_both_and_wins_over_the_profile() {
        let s = Some(Shrink {
            rmem: 26624,
            wmem: 19456,
        });
        let out = eval_with(&proxy_host(), &profile(""), s);
        assert_eq!(get(&out, RMEM), Some("4096 26624 16777216"));
        assert_eq!(get(&out, WMEM), Some("4096 19456 16777216"));
        assert_eq!(reason(&out, RMEM), "default 26 KiB shrunk to fit the TCP budget");
        let p = profile("[connections]\nrmem_default = \"43KiB\"\nwmem_default = \"32KiB\"\n");
        let out = eval_with(&proxy_host(), &p, s);
        assert_eq!(get(&out, RMEM), Some("4096 26624 16777216"));
        assert_eq!(get(&out, WMEM), Some("4096 19456 16777216"));
    }

    #[test]
    fn the_cli_example_sets_defaults_and_maxima() {
        let p = profile(
            "[connections]\nrmem_default = \"43KiB\"\nwmem_default = \"32KiB\"\nbandwidth = \"10Gbit\"\nrtt = \"20ms\"\n",
        );
        let out = eval(&proxy_host(), &p);
        assert_eq!(get(&out, RMEM), Some("4096 44032 50003968"));
        assert_eq!(get(&out, WMEM), Some("4096 32768 50003968"));
        assert_eq!(
            reason(&out, RMEM),
            "default 43 KiB from the profile; max 47.7 MiB = 2 × BDP (10 Gbit/s × 20 ms)"
        );
    }

    #[test]
    fn absent_keys_are_not_managed() {
        let facts = with(with(proxy_host(), RMEM, None), WMEM, None);
        let p = profile("[connections]\nrmem_default = \"43KiB\"\nbandwidth = \"10Gbit\"\nrtt = \"20ms\"\n");
        let out = eval(&facts, &p);
        assert!(out.settings.is_empty());
        assert_eq!(out.findings.len(), 2);
        assert!(
            out.findings
                .iter()
                .all(|f| f.severity == Severity::Info && f.message.contains("absent"))
        );
        // a missing net.core.rmem_max: no finding about it
        let facts = with(proxy_host(), "net.core.rmem_max", None);
        let out = eval(
            &facts,
            &profile("[connections]\nbandwidth = \"10Gbit\"\nrtt = \"20ms\"\n"),
        );
        assert_eq!(out.findings.len(), 1);
        assert!(out.findings[0].message.contains("SO_SNDBUF"));
    }

    #[test]
    fn no_input_no_output() {
        let out = eval(&proxy_host(), &profile("[connections]\nconcurrent = 860000\n"));
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn odd_values_never_panic() {
        let mut p = profile("[connections]\nbandwidth = \"10Gbit\"\nrtt = \"20ms\"\n");
        p.connections.bandwidth = Some(u64::MAX);
        p.connections.rtt = Some(u64::MAX);
        p.connections.rmem_default = Some(u64::MAX);
        let mut zero_page = proxy_host();
        zero_page.page_size = 0;
        for facts in [
            proxy_host(),
            zero_page,
            with(proxy_host(), RMEM, Some("0 0 0")),
            with(proxy_host(), RMEM, Some("-1 5 3")),
            with(proxy_host(), RMEM, Some("1 2")),
            with(proxy_host(), "net.core.rmem_max", Some("-5")),
        ] {
            let out = eval(&facts, &p);
            // rmem_default above INT_MAX is refused with an error, never written
            assert!(get(&out, RMEM).is_none());
            let _ = eval_with(
                &facts,
                &profile(""),
                Some(Shrink {
                    rmem: 0,
                    wmem: u64::MAX,
                }),
            );
        }
        let out = eval(&proxy_host(), &p);
        assert!(out.findings.iter().any(|f| f.severity == Severity::Error));
    }
}
