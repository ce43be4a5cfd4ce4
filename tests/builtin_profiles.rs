//! Every built-in profile on every fixture host: exit 0, no error finding, no default
//! buffer raised above the kernel's, apply takes the plan, and a reviewed snapshot of
//! each plan (text).
//! A profile is a statement about a workload; it must plan a 2 GiB VM and a 1 TiB host,
//! a 3.10 kernel and a 6.x one, 4 KiB and 64 KiB pages, without editing.

mod common;

use common::{copy_root, root, scrub, sysctune};
use serde_json::Value;

/// Healthy fixture hosts, with extra arguments (none needed: the 64 KiB-page host's page
/// size comes from its kernel release, `+64k`).
const HOSTS: &[(&str, &[&str])] = &[
    ("article-batch", &[]),
    ("article-proxy", &[]),
    ("modern", &[]),
    ("hugetlb-3.10", &[]),
    ("vm-2g", &[]),
    ("aarch64-64k", &[]),
    ("big-1t", &[]),
];

const PROFILES: &[&str] = &["reverse-proxy", "batch-client", "web-server", "database"];

fn run(host: &str, profile: &str, extra: &[&str], format: &str) -> common::Run {
    let r = root(host).display().to_string();
    let mut args = vec![
        "--root",
        &r,
        "--color",
        "never",
        "--format",
        format,
        "plan",
        "--profile",
        profile,
    ];
    args.extend_from_slice(extra);
    sysctune(&args)
}

fn default_of(value: &Value) -> Option<u64> {
    value.as_str()?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn every_builtin_plans_every_fixture_host() {
    for (host, extra) in HOSTS {
        for profile in PROFILES {
            let what = format!("{profile} on {host}");
            let j = run(host, profile, extra, "json");
            assert_eq!(j.code, 0, "{what}: {}", j.stderr);
            let plan: Value = serde_json::from_str(&j.stdout).expect("valid JSON");
            for f in plan["findings"].as_array().unwrap() {
                assert_ne!(f["severity"], "error", "{what}: {f}");
            }
            for s in plan["settings"].as_array().unwrap() {
                if s["key"] == "net.ipv4.tcp_rmem" || s["key"] == "net.ipv4.tcp_wmem" {
                    let (cur, rec) = (default_of(&s["current"]), default_of(&s["recommended"]));
                    assert!(
                        rec <= cur,
                        "{what}: {} default raised {cur:?} → {rec:?}",
                        s["key"]
                    );
                }
            }
            let t = run(host, profile, extra, "text");
            assert_eq!(t.code, 0, "{what}: {}", t.stderr);
            insta::assert_snapshot!(format!("plan-{profile}-on-{host}"), scrub(&t.stdout));
            // plan and apply agree: what plans without an error finding, apply takes (on a
            // copy of the fixture; a [host] page size is another machine, so not there)
            if extra.is_empty() {
                let copy = copy_root(host);
                let c = copy.path().display().to_string();
                let a = sysctune(&["--root", &c, "apply", "--profile", profile, "--no-live"]);
                assert_eq!(a.code, 0, "{what}: apply: {}", a.stderr);
            }
        }
    }
}

/// The figures the reverse-proxy profile derives from the host are shown, with where
/// they came from, and the gap against default buffers is one line.
#[test]
fn reverse_proxy_says_where_its_figures_came_from() {
    let t = run("vm-2g", "reverse-proxy", &[], "text");
    assert_eq!(t.code, 0, "{}", t.stderr);
    let out = t.stdout.replace('\n', " ");
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    // 1.9 GiB less 25 % reserved and 1.1 GiB committed leave 303.3 MiB
    assert!(
        out.contains("connections.concurrent = \"fit\": 12 131 connections; the limit is the RAM."),
        "{out}"
    );
    assert!(
        out.contains("reserved_memory 25% of RAM = 491.7 MiB and 1.1 GiB committed to processes now (Committed_AS) leave 303.3 MiB"),
        "{out}"
    );
    assert!(out.contains("wmem_default 32 KiB is a ceiling"), "{out}");
    assert!(
        out.contains("gap: the profile asks for 12 131 connections, tcp_mem holds"),
        "{out}"
    );
}

/// "fit" on the 1 TiB host (300 GiB committed): a figure whose tcp_mem high, with the
/// reserve, the committed memory and the control blocks, stays within the RAM; the cap
/// and where it came from are in the plan.
#[test]
fn fit_stays_within_the_ram_the_host_has_left() {
    let j = run("big-1t", "reverse-proxy", &[], "json");
    assert_eq!(j.code, 0, "{}", j.stderr);
    let plan: Value = serde_json::from_str(&j.stdout).unwrap();
    let n = plan["demand"]["connections"].as_u64().unwrap();
    assert_eq!(n, 18_663_519);
    let tcp_mem = plan["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "net.ipv4.tcp_mem")
        .unwrap();
    let high: u64 = tcp_mem["recommended"]
        .as_str()
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let ram = plan["host"]["mem_total"].as_u64().unwrap();
    let committed = plan["host"]["committed_as"].as_u64().unwrap();
    let taken = high * 4096 + ram / 4 + committed + n * 4096;
    assert!(taken <= ram, "{taken} > {ram}");
    // and not far below it: the figure is the most that fits
    assert!(taken > ram - ram / 1000, "{taken} ≪ {ram}");
    let fit = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["message"].as_str())
        .find(|m| m.starts_with("connections.concurrent = \"fit\""))
        .unwrap();
    for s in [
        "18 663 519 connections; the limit is the RAM",
        "300 GiB committed to processes now (Committed_AS)",
        "File descriptors allow 1 789 568 800",
    ] {
        assert!(fit.contains(s), "{s:?} in {fit}");
    }
    // file descriptors cap it when the RAM would hold more (100 TiB planned, 16 B each)
    let j = run(
        "big-1t",
        "reverse-proxy",
        &[
            "--set",
            "host.ram=100TiB",
            "--set",
            "connections.average_memory=16",
            "--set",
            "connections.control_block=0",
        ],
        "json",
    );
    assert_eq!(j.code, 0, "{}", j.stderr);
    let plan: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(plan["demand"]["connections"], 1_789_568_800u64);
    let fds = plan["findings"].to_string();
    assert!(fds.contains("the limit is file descriptors"), "{fds}");
    assert!(fds.contains("The RAM would hold 11 184 810 666"), "{fds}");
    // nothing left: an error that says what took the RAM
    let r = run("strict-over-limit", "reverse-proxy", &[], "text");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no connection fits")
            && r.stderr.contains("committed to processes now (Committed_AS)"),
        "{}",
        r.stderr
    );
}

#[test]
fn observed_average_memory_comes_from_sockstat() {
    let j = run(
        "vm-2g",
        "reverse-proxy",
        &["--set", "connections.average_memory=observed"],
        "json",
    );
    assert_eq!(j.code, 0, "{}", j.stderr);
    let plan: Value = serde_json::from_str(&j.stdout).unwrap();
    // sockstat: mem 900 pages × 4096 / inuse 1500 = 2457.6 → 2458 B, charged as one page
    assert_eq!(plan["capacity"]["per_connection_expected"]["recommended"], 4096);
    let msgs: Vec<&str> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["message"].as_str())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("\"observed\": 4 KiB per connection")
                && m.contains("mem 900 × 4096 B / inuse 1 500 = 2 458 B, rounded up to 4 KiB")
                && m.contains("--set connections.average_memory=4096")),
        "{msgs:?}"
    );
    // A second later, a few sockets more or less: the same plan (only the measure moves).
    let later = copy_root("vm-2g");
    std::fs::write(
        later.path().join("proc/net/sockstat"),
        "sockets: used 1530\nTCP: inuse 1490 orphan 0 tw 225 alloc 1510 mem 905\nUDP: inuse 2 mem 1\n",
    )
    .unwrap();
    let l = run(
        &later.path().display().to_string(),
        "reverse-proxy",
        &["--set", "connections.average_memory=observed"],
        "json",
    );
    let lp: Value = serde_json::from_str(&l.stdout).unwrap();
    assert_eq!(lp["settings"], plan["settings"]);
    assert_eq!(lp["dropin"], plan["dropin"]);
    // 120 sockets in use: refused, saying why and what would be valid
    let r = run(
        "modern",
        "reverse-proxy",
        &["--set", "connections.average_memory=observed"],
        "text",
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("120 TCP sockets in use"), "{}", r.stderr);
    assert!(r.stderr.contains("fewer than the 1 000"), "{}", r.stderr);
    assert!(r.stderr.contains("average_memory = \"10KiB\""), "{}", r.stderr);
}

#[test]
fn extends_merges_and_resolved_prints_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let child = dir.path().join("edge.toml");
    std::fs::write(
        &child,
        "name = \"edge\"\nextends = \"web-server\"\n[connections]\nconcurrent = 30000\n[sysctl]\n\"net.core.somaxconn\" = 8192\n",
    )
    .unwrap();
    let grandchild = dir.path().join("edge2.toml");
    std::fs::write(
        &grandchild,
        "name = \"edge2\"\nextends = \"edge.toml\"\n[memory]\nswappiness = 1\n",
    )
    .unwrap();
    let c = grandchild.display().to_string();
    let r = sysctune(&["profiles", "show", &c, "--resolved"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t: toml::Table = toml::from_str(&r.stdout).unwrap();
    assert_eq!(t["name"].as_str(), Some("edge2"));
    assert_eq!(t["connections"]["concurrent"].as_integer(), Some(30000));
    // not given: the parent's
    assert_eq!(t["connections"]["average_memory"].as_str(), Some("16KiB"));
    assert_eq!(t["memory"]["swappiness"].as_integer(), Some(1));
    assert_eq!(t["memory"]["on_oom"].as_str(), Some("kill"));
    assert_eq!(t["sysctl"]["net.core.somaxconn"].as_integer(), Some(8192));
    assert!(t.get("extends").is_none());
    assert!(r.stdout.contains("edge2.toml →") && r.stdout.contains("built-in profile web-server"));
    // plans with the merged fields
    let p = run("vm-2g", &c, &[], "json");
    assert_eq!(p.code, 0, "{}", p.stderr);
    let plan: Value = serde_json::from_str(&p.stdout).unwrap();
    assert_eq!(plan["profile"], "edge2");

    // a cycle names the chain
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, "name = \"a\"\nextends = \"b.toml\"\n").unwrap();
    std::fs::write(&b, "name = \"b\"\nextends = \"./a.toml\"\n").unwrap();
    let r = sysctune(&["profiles", "show", &a.display().to_string(), "--resolved"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("a cycle"), "{}", r.stderr);
    assert!(
        r.stderr.contains("a.toml → ") && r.stderr.contains("b.toml"),
        "{}",
        r.stderr
    );

    // an error in a parent keeps its line and column
    std::fs::write(&b, "name = \"b\"\n[connections]\nconcurent = 1\n").unwrap();
    let r = sysctune(&["profiles", "show", &a.display().to_string(), "--resolved"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("b.toml:3:1"), "{}", r.stderr);

    // a chain longer than 8 profiles names it
    for i in 0..9 {
        std::fs::write(
            dir.path().join(format!("d{i}.toml")),
            format!("name = \"d{i}\"\nextends = \"d{}.toml\"\n", i + 1),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("d9.toml"), "name = \"d9\"\n").unwrap();
    let d0 = dir.path().join("d0.toml").display().to_string();
    let r = sysctune(&["profiles", "show", &d0, "--resolved"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("longer than 8 profiles"), "{}", r.stderr);
    assert!(
        r.stderr.contains("d0.toml → ") && r.stderr.contains("d8.toml"),
        "{}",
        r.stderr
    );

    // an unknown parent
    std::fs::write(&b, "name = \"b\"\nextends = \"no-such\"\n").unwrap();
    let r = sysctune(&["profiles", "show", &a.display().to_string(), "--resolved"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown profile \"no-such\""), "{}", r.stderr);
}

#[test]
fn recommend_names_the_profile_the_workload_fits() {
    let r = root("doctor-ports").display().to_string();
    let t = sysctune(&["--root", &r, "recommend"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    insta::assert_snapshot!("recommend-doctor-ports", t.stdout);
    let j = sysctune(&["--root", &r, "--format", "json", "recommend"]);
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["profile"], "batch-client");
    assert_eq!(v["evidence"]["busiest"]["destination"], "10.0.0.5:8080");
    // its command plans
    let cmd = v["command"].as_str().unwrap();
    let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    let p = sysctune(&[&["--root", r.as_str()][..], &args].concat());
    assert_eq!(p.code, 0, "{cmd}: {}", p.stderr);
}
