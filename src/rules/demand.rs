//! What a profile leaves to the host, decided from it once before the rules run:
//! `average_memory = "observed"` (sockstat), default buffers stated as ceilings
//! (`defaults_at_most`) and `concurrent = "fit"` (the TCP budget and the file-descriptor
//! limits). The arithmetic is the rules' (tcp-memory, file-descriptors): it lives beside
//! them, and the profile module only parses.

use crate::error::{Error, Result};
use crate::profile::*;
use crate::units::{self, Dec4};

/// Fewest TCP sockets in use for `average_memory = "observed"`: below it an average says
/// more about one process than about the workload.
pub const OBSERVED_MIN_SOCKETS: u64 = 1000;

/// Resolve what the profile leaves to the host, before the rules run (`facts` are the
/// effective facts), in this order: `average_memory = "observed"` from sockstat, default
/// buffers stated as ceilings (`defaults_at_most`), then `concurrent = "fit"` from the
/// TCP budget. Returns the concrete profile and one line per figure decided, saying
/// where it came from.
pub fn resolve(profile: &Profile, facts: &crate::host::Facts) -> Result<(Profile, Vec<String>)> {
    let mut p = profile.clone();
    let mut notes = Vec::new();
    let q = crate::rules::tcp_memory::quantum(&facts.kernel, facts.page_size).max(1);
    if p.connections.average_observed {
        let (avg, note) = observed(facts, q)?;
        notes.push(note);
        p.connections.average_memory = Some(avg);
        p.connections.average_observed = false;
    }
    if p.connections.defaults_at_most {
        notes.extend(ceilings(&mut p.connections, facts));
        p.connections.defaults_at_most = false;
    }
    if p.connections.concurrent_fit {
        let (n, note) = fit(&p, facts, q)?;
        notes.push(note);
        p.connections.concurrent = n;
        p.connections.concurrent_fit = false;
    }
    Ok((p, notes))
}

/// `average_memory = "observed"`: sockstat's `mem × quantum / inuse`, stepped up
/// ([`observed_step_up`]), and the note that says where it came from.
fn observed(facts: &crate::host::Facts, q: u64) -> Result<(u64, String)> {
    let Some(ss) = facts.sockstat.as_ref() else {
        return Err(Error::input(
            "connections.average_memory = \"observed\" needs /proc/net/sockstat, which could not be read; \
             give a size instead, e.g. average_memory = \"10KiB\""
                .to_string(),
        ));
    };
    if ss.tcp_inuse < OBSERVED_MIN_SOCKETS {
        return Err(Error::input(format!(
            "connections.average_memory = \"observed\": this host has {} TCP sockets in use \
             (/proc/net/sockstat \"TCP: inuse\"), fewer than the {} an average needs; run it under \
             the real load, or give a size, e.g. average_memory = \"10KiB\"",
            units::grouped(ss.tcp_inuse as u128),
            units::grouped(OBSERVED_MIN_SOCKETS as u128)
        )));
    }
    let bytes = ss.tcp_mem as u128 * q as u128;
    let measured = u64::try_from(bytes.div_ceil(ss.tcp_inuse as u128))
        .unwrap_or(u64::MAX)
        .max(1);
    let avg = observed_step_up(measured, q);
    let note = format!(
        "connections.average_memory = \"observed\": {} per connection, from /proc/net/sockstat: \
         mem {} × {q} B / inuse {} = {} B, rounded up to {} (whole {q} B units of tcp_mem, and above 4 \
         of them a quarter of the power of two below, at most 25% more) so that a plan does not change \
         with every second's traffic; for a plan that never changes, give it: \
         --set connections.average_memory={}",
        units::human_bytes(avg as u128),
        units::grouped(ss.tcp_mem as u128),
        units::grouped(ss.tcp_inuse as u128),
        units::grouped(measured as u128),
        units::human_bytes(avg as u128),
        avg,
    );
    Ok((avg, note))
}

/// `defaults_at_most`: a default buffer the host already has at or below the profile's
/// is left as it is (the profile's figure is a ceiling), with a note for each.
fn ceilings(c: &mut Connections, facts: &crate::host::Facts) -> Vec<String> {
    let mut notes = Vec::new();
    for (key, field, given) in [
        ("net.ipv4.tcp_rmem", "rmem_default", &mut c.rmem_default),
        ("net.ipv4.tcp_wmem", "wmem_default", &mut c.wmem_default),
    ] {
        let current = facts.triple(key).map(|t| t[1]);
        if let (Some(g), Some(cur)) = (*given, current)
            && cur <= g
        {
            notes.push(format!(
                "connections.{field} {} is a ceiling (defaults_at_most): {key}[1] = {cur} B ({}) is \
                 already at or below it and is left as it is",
                units::human_bytes(g as u128),
                units::human_bytes(cur as u128)
            ));
            *given = None;
        }
    }
    notes
}

/// `concurrent = "fit"`: the connections the RAM left (after reserved_memory and what is
/// committed) and the file-descriptor limits hold, and the note that says which limit.
fn fit(p: &Profile, facts: &crate::host::Facts, q: u64) -> Result<(u64, String)> {
    use crate::rules::tcp_memory;
    let c = &p.connections;
    let rmem = c.rmem_default.or(facts.triple("net.ipv4.tcp_rmem").map(|t| t[1]));
    let wmem = c.wmem_default.or(facts.triple("net.ipv4.tcp_wmem").map(|t| t[1]));
    let (per_conn, what) = match (c.average_memory, rmem, wmem) {
        (Some(a), _, _) => (tcp_memory::quantum_up(a, q), "average_memory"),
        (None, Some(r), Some(w)) => (tcp_memory::per_conn_default(r, w, q), "default buffers"),
        _ => {
            return Err(Error::input(
                "connections.concurrent = \"fit\" needs a size per connection: give connections.average_memory, \
                 or rmem_default and wmem_default (tcp_rmem/tcp_wmem are not readable here)"
                    .to_string(),
            ));
        }
    };
    // Memory already promised to processes is not TCP's. A [host] RAM plans another
    // machine, whose commitments this host's Committed_AS does not describe.
    let committed = if p.host.ram.is_some() {
        0
    } else {
        facts.mem.committed_as
    };
    let by_ram = tcp_memory::connections_that_fit(facts, p, per_conn, committed);
    let by_fds = fds_allow(p);
    let n = by_ram.min(by_fds);
    let ram = facts.mem.mem_total;
    let usable = ram.saturating_sub(facts.mem.hugetlb);
    let taken = c.reserved_memory(ram).saturating_add(committed);
    if n == 0 {
        return Err(Error::input(format!(
            "connections.concurrent = \"fit\": no connection fits: of the {} of RAM outside hugetlb, \
             reserved_memory {} and the {} committed to processes now (Committed_AS) leave {}; \
             give a number (--set connections.concurrent=N) or less reserved_memory",
            units::human_bytes(usable as u128),
            c.reserved_memory.describe(ram),
            units::human_bytes(committed as u128),
            units::human_bytes(usable.saturating_sub(taken) as u128),
        )));
    }
    let committed_text = if p.host.ram.is_some() {
        "nothing for Committed_AS (host.ram plans another machine)".to_string()
    } else {
        format!(
            "{} committed to processes now (Committed_AS)",
            units::human_bytes(committed as u128)
        )
    };
    let fds_text = format!(
        "file descriptors allow {} (fs.nr_open is at most {} per process, the kernel's limit, less 1 024 \
         other files, × {} process{}, with headroom)",
        units::grouped(by_fds as u128),
        units::grouped(crate::rules::file_descriptors::NR_OPEN_MAX),
        units::grouped(p.connections.processes as u128),
        if p.connections.processes == 1 { "" } else { "es" }
    );
    let (limit, ram_holds) = if by_fds < by_ram {
        (
            "file descriptors",
            format!(" The RAM would hold {}.", units::grouped(by_ram as u128)),
        )
    } else {
        ("the RAM", String::new())
    };
    let note = format!(
        "connections.concurrent = \"fit\": {} connections; the limit is {limit}. Of the {} of RAM outside \
         hugetlb, reserved_memory {} and {committed_text} leave {}: enough for their control blocks ({} each, \
         {}) and a tcp_mem whose pressure holds their need at {} × headroom {} with the kernel's 50% margin \
         to high. {}.{ram_holds} Give a number to plan a fixed load",
        units::grouped(n as u128),
        units::human_bytes(usable as u128),
        c.reserved_memory.describe(ram),
        units::human_bytes(usable.saturating_sub(taken) as u128),
        units::human_bytes(c.control_block as u128),
        units::human_bytes(n as u128 * c.control_block as u128),
        format_args!("{} each ({what})", units::human_bytes(per_conn as u128)),
        p.headroom,
        capitalised(&fds_text),
    );
    Ok((n, note))
}

/// `text` with its first letter in capitals.
fn capitalised(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `average_memory = "observed"` as planned: the measured average rounded up to a step
/// that a second's traffic rarely crosses: whole quanta (what the kernel charges), and
/// above 4 quanta a quarter of the power of two at or below it (12.5-25 % steps: 80 KiB
/// for anything above 64 KiB up to 80 KiB). Never below the measure, at most 25 % above.
pub fn observed_step_up(measured: u64, quantum: u64) -> u64 {
    let q = quantum.max(1);
    let octave = 1u64 << (63 - measured.max(1).leading_zeros());
    let step = (octave / 4).max(q);
    measured.div_ceil(step).saturating_mul(step)
}

/// The most inbound connections the file-descriptor limits allow (besides
/// `outbound.concurrent`): rule file-descriptors needs 1 024 descriptors per process
/// besides ceil(conns × headroom / processes), and fs.nr_open (what RLIMIT_NOFILE may
/// reach) is at most 2147483584 (sysctl_nr_open_max in fs/file.c). The largest conns
/// with conns × headroom ≤ processes × (2147483584 − 1024).
fn fds_allow(p: &Profile) -> u64 {
    use crate::rules::file_descriptors::NR_OPEN_MAX;
    let per_process = NR_OPEN_MAX - 1024;
    let total = (p.connections.processes as u128).saturating_mul(per_process);
    let conns = total.saturating_mul(Dec4::SCALE) / p.headroom.0.max(1) as u128;
    u64::try_from(conns.saturating_sub(p.outbound.concurrent as u128)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_is_rounded_to_steps_a_second_of_traffic_rarely_crosses() {
        let q = 4096;
        // whole quanta up to 4 of them
        assert_eq!(observed_step_up(1, q), 4096);
        assert_eq!(observed_step_up(2458, q), 4096);
        assert_eq!(observed_step_up(10_547, q), 12_288);
        assert_eq!(observed_step_up(16_384, q), 16_384);
        // above: a quarter of the power of two at or below it
        assert_eq!(observed_step_up(16_385, q), 20_480);
        assert_eq!(observed_step_up(70_656, q), 81_920);
        assert_eq!(observed_step_up(65_536, q), 65_536);
        // 64 KiB pages: whole pages
        assert_eq!(observed_step_up(10_240, 65_536), 65_536);
        assert_eq!(observed_step_up(u64::MAX, q), u64::MAX);
        // never below the measure, at most 25 % above it (beyond one quantum)
        for m in (1..2_000_000u64).step_by(997) {
            let r = observed_step_up(m, q);
            assert!(r >= m && r.is_multiple_of(q), "{m} → {r}");
            assert!(r <= (m + q).max(m + m / 4), "{m} → {r}");
        }
        // two readings 1 % apart a second apart (69 KiB on 4 KiB pages): the same figure,
        // where whole pages alone (17 and 18 pages) would differ
        assert_eq!(observed_step_up(69_000, q), observed_step_up(69_690, q));
        assert_ne!(69_000u64.div_ceil(q), 69_690u64.div_ceil(q));
    }

    #[test]
    fn file_descriptors_cap_fit() {
        let mut p = parse_for_tests("name = \"x\"\n");
        // 1 process, headroom 1.2: (2147483584 − 1024) / 1.2
        assert_eq!(fds_allow(&p), 1_789_568_800);
        p.connections.processes = 4;
        p.outbound.concurrent = 100;
        assert_eq!(fds_allow(&p), 4 * 2_147_482_560 * 10 / 12 - 100);
        // what rule file-descriptors then needs per process is within the kernel's limit
        let conns = fds_allow(&p) as u128 + 100;
        let per = (conns * 12).div_ceil(10).div_ceil(4) + 1024;
        assert!(per <= crate::rules::file_descriptors::NR_OPEN_MAX, "{per}");
    }
}
