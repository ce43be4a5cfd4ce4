//! Properties of the whole planner, for any valid profile and host:
//! - every recommendation passes the kernel's validation (and ranges, ordering, parity
//!   rules the kernel enforces across keys);
//! - tcp_mem `low ≤ pressure ≤ high`, tcp_rmem/wmem `min ≤ default ≤ max`;
//! - planning again on a host that already has the recommended values (and the drop-in)
//!   changes nothing.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sysctune::host::{Facts, MemInfo};
use sysctune::{keys, plan, profile};

fn facts_strategy() -> impl Strategy<Value = Facts> {
    (
        (
            1u64..=1024,
            0u64..=64,
            0u64..=4,
            prop_oneof!["6.18.4", "5.4.0", "3.10.0"],
            // 64 KiB pages: tcp_mem in 4 KiB units on 4.10-5.19, in pages otherwise
            prop_oneof![Just(4096u64), Just(65536)],
        ),
        (
            prop::option::of((1u64..=4, 1u64..=200)),
            1024u32..=40000,
            0u32..=30000,
            prop_oneof![Just(0u32), Just(1024), Just(500)],
        ),
        (
            prop_oneof![Just(87380u64), Just(131072), Just(16384)],
            prop_oneof![Just(6291456u64), Just(33554432), Just(16777216)],
        ),
        (
            0u32..=2,
            0i64..=150,
            prop_oneof![Just(0u64), Just(4194304), Just(1u64 << 30)],
            0u64..=200,
            0u32..=100,
        ),
        (
            0u32..=2,
            prop_oneof![Just(0i64), Just(10)],
            0u64..=10_000_000,
            prop::option::of((8080u32..9000, 0u32..2000)),
        ),
        (
            prop_oneof![Just(-1i64), Just(50), Just(262144)],
            0u32..=1,
            0u32..=2,
            prop::option::of(prop_oneof![Just(100u64), Just(250), Just(300), Just(1000)]),
        ),
    )
        .prop_map(
            |(
                (ram_gib, swap_gib, huge_gib, kernel, page),
                (tcp_mem, lo, span, unpriv),
                (rdef, rmax),
                (mode, ratio, kbytes, committed_pct, swappiness),
                (panic_on_oom, panic, file_max, reserved),
                (tw_buckets, timestamps, tw_reuse, hz),
            )| {
                let mem_total = ram_gib << 30;
                let hugetlb = (huge_gib << 30).min(mem_total / 2);
                let swap = swap_gib << 30;
                let committed = mem_total / 100 * committed_pct;
                let limit = (mem_total / page / 16).max(128);
                let tcp_mem = match tcp_mem {
                    None => format!("{} {} {}", limit / 4 * 3, limit, limit / 4 * 3 * 2),
                    Some((num, den)) => {
                        let high = mem_total / page * num / den.max(num);
                        format!("{} {} {}", high / 2, high * 2 / 3, high)
                    }
                };
                let hi = (lo + span).min(65535);
                let unpriv = unpriv.min(lo);
                let reserved = reserved
                    .map(|(a, n)| format!("{a}-{}", (a + n).min(65535)))
                    .unwrap_or_default();
                let ratio_pages = (mem_total / page - hugetlb / page) as i64 * ratio / 100;
                let commit_limit = if kbytes > 0 {
                    kbytes * 1024 / page * page
                } else {
                    ratio_pages.max(0) as u64 * page
                } + swap / page * page;
                let mut sysctl = BTreeMap::new();
                for (k, v) in [
                    ("net.ipv4.tcp_mem", tcp_mem),
                    ("net.ipv4.tcp_rmem", format!("4096 {rdef} {rmax}")),
                    ("net.ipv4.tcp_wmem", format!("4096 16384 {}", rmax / 2)),
                    ("net.core.rmem_max", "212992".into()),
                    ("net.core.wmem_max", "212992".into()),
                    ("net.ipv4.ip_unprivileged_port_start", unpriv.to_string()),
                    ("net.ipv4.ip_local_port_range", format!("{lo} {hi}")),
                    ("net.ipv4.ip_local_reserved_ports", reserved),
                    ("net.ipv4.tcp_tw_reuse", tw_reuse.to_string()),
                    ("net.ipv4.tcp_max_tw_buckets", tw_buckets.to_string()),
                    ("net.ipv4.tcp_timestamps", timestamps.to_string()),
                    ("net.ipv4.tcp_max_orphans", "65536".into()),
                    ("net.core.somaxconn", "4096".into()),
                    ("vm.overcommit_memory", mode.to_string()),
                    (
                        "vm.overcommit_ratio",
                        if kbytes > 0 { "0".into() } else { ratio.to_string() },
                    ),
                    ("vm.overcommit_kbytes", kbytes.to_string()),
                    ("vm.swappiness", swappiness.to_string()),
                    ("vm.panic_on_oom", panic_on_oom.to_string()),
                    ("kernel.panic", panic.to_string()),
                    ("fs.file-max", file_max.max(1).to_string()),
                    ("fs.nr_open", "1048576".into()),
                    ("fs.file-nr", "2048 0 1000000".into()),
                ] {
                    sysctl.insert(k.to_string(), Some(v));
                }
                Facts {
                    hostname: Some("prop".into()),
                    kernel: kernel.to_string(),
                    page_size: page,
                    mem: MemInfo {
                        mem_total,
                        swap_total: swap,
                        hugetlb,
                        commit_limit,
                        committed_as: committed,
                        mem_available: Some(mem_total / 2),
                    },
                    sysctl,
                    sockstat: None,
                    hz,
                    warnings: vec![],
                }
            },
        )
}

fn profile_strategy() -> impl Strategy<Value = String> {
    (
        (prop::option::of(0u64..=2_000_000), prop::option::of(4u64..=256), prop::option::of(4u64..=256), prop::option::of(1u64..=64)),
        (prop::option::of(1u64..=100), prop::option::of(0u64..=16), any::<bool>(), prop::option::of((1u64..=40, 1u64..=300)), 1u64..=64),
        (prop::option::of(0u64..=3000), prop::option::of(0u64..=5000), prop_oneof![Just("1"), Just("1.2"), Just("1.5"), Just("2.25")]),
        (prop::option::of(prop_oneof![Just("heuristic"), Just("strict"), Just("always")]), prop::option::of(1u64..=64), prop::option::of(0u32..=100), prop::option::of(prop_oneof![Just("kill"), Just("panic")])),
        (prop::option::of(1u64..=5), prop::option::of(any::<bool>())),
    )
        .prop_map(|((conns, rmem, wmem, avg), (share, reserved, shrink, bw, procs), (rate, out_conc, headroom), (mode, target, swappiness, oom), (destinations, loopback))| {
            let mut t = format!("name = \"prop\"\nheadroom = {headroom}\n[connections]\nprocesses = {procs}\nshrink_buffers_to_fit = {shrink}\n");
            if let Some(c) = conns { t += &format!("concurrent = {c}\n"); }
            if let Some(r) = rmem { t += &format!("rmem_default = \"{r}KiB\"\n"); }
            if let Some(w) = wmem { t += &format!("wmem_default = \"{w}KiB\"\n"); }
            if let Some(a) = avg { t += &format!("average_memory = \"{a}KiB\"\n"); }
            if let Some(s) = share { t += &format!("tcp_memory_share = {}\n", s as f64 / 100.0); }
            if let Some(r) = reserved { t += &format!("reserved_memory = \"{r}MiB\"\n"); }
            if let Some((g, ms)) = bw { t += &format!("bandwidth = \"{g}Gbit\"\nrtt = \"{ms}ms\"\n"); }
            t += "[outbound]\n";
            if let Some(r) = rate { t += &format!("new_per_second = {r}\n"); }
            if let Some(c) = out_conc { t += &format!("concurrent = {c}\n"); }
            if let Some(d) = destinations { t += &format!("destinations = {d}\n"); }
            if let Some(l) = loopback { t += &format!("loopback = {l}\n"); }
            t += "[memory]\n";
            if let Some(m) = mode { t += &format!("overcommit = \"{m}\"\n"); }
            // a size, or (odd values) a share of RAM with decimals
            if let Some(g) = target {
                if g % 2 == 0 { t += &format!("commit_target = \"{g}GiB\"\n"); } else { t += &format!("commit_target = \"{g}.5%\"\n"); }
            }
            if let Some(s) = swappiness { t += &format!("swappiness = {s}\n"); }
            if let Some(o) = oom { t += &format!("on_oom = \"{o}\"\n"); }
            t
        })
}

fn check_values(facts: &Facts, p: &plan::Plan) -> Result<(), TestCaseError> {
    let mut final_values: BTreeMap<String, String> = facts
        .sysctl
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    for s in &p.settings {
        let v = keys::validate(&s.key, &s.recommended, &facts.kernel);
        prop_assert_eq!(
            v.as_deref(),
            Ok(s.recommended.as_str()),
            "{} = {:?}",
            s.key,
            s.recommended
        );
        final_values.insert(s.key.clone(), s.recommended.clone());
    }
    let ints = |k: &str| -> Vec<u64> { final_values[k].split(' ').map(|x| x.parse().unwrap()).collect() };
    let tcp_mem = ints("net.ipv4.tcp_mem");
    prop_assert!(
        tcp_mem[0] <= tcp_mem[1] && tcp_mem[1] <= tcp_mem[2],
        "tcp_mem {:?}",
        tcp_mem
    );
    for k in ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"] {
        let v = ints(k);
        prop_assert!(v[0] <= v[1] && v[1] <= v[2], "{} {:?}", k, v);
        // A default sysctune sets is at least one page (the kernel's minimum is 4096 B of
        // tcp_rmem[0]); one it leaves is the host's, whatever it was.
        if p.settings.iter().any(|s| s.key == k && s.change) {
            prop_assert!(v[1] >= 4096, "{} {:?}", k, v);
        }
    }
    let range = ints("net.ipv4.ip_local_port_range");
    let unpriv = ints("net.ipv4.ip_unprivileged_port_start")[0];
    prop_assert!(
        range[0] >= 1 && range[0] <= range[1] && range[1] <= 65535,
        "range {:?}",
        range
    );
    prop_assert!(
        range[0] >= unpriv,
        "range {:?} below unprivileged start {}",
        range,
        unpriv
    );
    prop_assert!(
        !(p.settings.iter().any(|s| s.key == "vm.overcommit_ratio")
            && p.settings.iter().any(|s| s.key == "vm.overcommit_kbytes")),
        "both overcommit_ratio and overcommit_kbytes"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn recommendations_are_valid_and_converge(facts in facts_strategy(), text in profile_strategy()) {
        let profile = profile::parse_text("prop.toml", &text).unwrap();
        let req = plan::Request { facts: &facts, profile: &profile, only: &[], dropin_path: plan::DEFAULT_DROPIN, dropin_current: None, sysctl_d: &Default::default(), set_before: &Default::default() };
        let first = match plan::plan(&req) {
            Ok(p) => p,
            // reserved_memory ≥ RAM and similar are validation errors, not plans
            Err(e) => { prop_assert!(e.to_string().contains("reserved_memory"), "{}", e); return Ok(()); }
        };
        check_values(&facts, &first)?;

        // The host after apply: every recommended value live, the drop-in written.
        let mut applied = facts.clone();
        for s in &first.settings {
            applied.sysctl.insert(s.key.clone(), Some(s.recommended.clone()));
        }
        if first.settings.iter().any(|s| s.key == "vm.overcommit_ratio") {
            applied.sysctl.insert("vm.overcommit_kbytes".into(), Some("0".into()));
        }
        if first.settings.iter().any(|s| s.key.starts_with("vm.overcommit_")) {
            applied.mem.commit_limit = first.capacity.get("commit_limit").recommended.unwrap();
        }
        let req2 = plan::Request { facts: &applied, profile: &profile, only: &[], dropin_path: plan::DEFAULT_DROPIN, dropin_current: Some(&first.dropin.content), sysctl_d: &Default::default(), set_before: &Default::default() };
        let second = plan::plan(&req2).unwrap();
        for s in &second.settings {
            prop_assert!(!s.change, "{} changes again: {:?} -> {:?} ({})", s.key, s.current, s.recommended, s.reason);
        }
        prop_assert!(!second.dropin.changed, "drop-in changes again:\n{}", second.dropin.diff);
        prop_assert!(!second.changed);
        let keys1: Vec<&str> = first.settings.iter().map(|s| s.key.as_str()).collect();
        let keys2: Vec<&str> = second.settings.iter().map(|s| s.key.as_str()).collect();
        prop_assert_eq!(keys1, keys2);
    }
}
