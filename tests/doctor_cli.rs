//! `sysctune doctor` on fixture roots (tests/roots/make-doctor-fixtures.sh): text and
//! JSON snapshots, exit codes 0/1/2, and the figures read back from the JSON.

mod common;

use common::{copy_root, root, scrub, sysctune};
use std::process::Command;

use serde_json::Value;

fn doctor(root_dir: &str, extra: &[&str]) -> common::Run {
    let mut args = vec!["--root", root_dir, "--color", "never", "doctor"];
    args.extend_from_slice(extra);
    sysctune(&args)
}

fn json(root_dir: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let run = doctor(root_dir, &args);
    assert!(run.code < 2, "{}", run.stderr);
    (run.code, serde_json::from_str(&run.stdout).expect("valid JSON"))
}

fn fixture(name: &str) -> String {
    root(name).display().to_string()
}

fn findings<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

#[test]
fn snapshots_text_and_exit_codes() {
    for (name, code) in [("doctor-healthy", 0), ("doctor-ports", 1), ("doctor-memory", 1)] {
        let run = doctor(&fixture(name), &[]);
        assert_eq!(run.code, code, "{name}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "{}", run.stderr);
        insta::assert_snapshot!(format!("text-{name}"), scrub(&run.stdout));
    }
}

#[test]
fn snapshots_json() {
    for name in ["doctor-healthy", "doctor-ports", "doctor-memory"] {
        let (_, mut report) = json(&fixture(name), &[]);
        assert!(report["time"].as_u64().unwrap() > 1_700_000_000);
        report["time"] = Value::from(0); // the clock
        insta::assert_json_snapshot!(format!("json-{name}"), report);
    }
}

#[test]
fn healthy_has_only_info() {
    let (code, r) = json(&fixture("doctor-healthy"), &[]);
    assert_eq!(code, 0);
    assert_eq!(r["schema"], "sysctune/doctor/v1");
    assert_eq!(r["status"], "healthy");
    for f in r["findings"].as_array().unwrap() {
        assert_eq!(f["severity"], "info", "{f}");
    }
    let rules: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "ports",
            "time-wait",
            "orphans",
            "tcp-memory",
            "commit",
            "oom",
            "file-descriptors",
            "processes",
            "counters"
        ]
    );
    let p = &r["facts"]["ports"];
    assert_eq!(p["usable"], 28232);
    // the IPv4-mapped TIME_WAIT sockets of tcp6 joined 10.0.0.7:8080
    let dest = p["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == "10.0.0.7:8080")
        .unwrap();
    assert_eq!(dest["time_wait"], 14);
    assert!(
        p["top"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["destination"] == "[2001:db8::9]:443")
    );
    assert_eq!(p["inbound"], 5);
}

#[test]
fn ports_near_exhaustion() {
    let (code, r) = json(&fixture("doctor-ports"), &[]);
    assert_eq!(code, 1);
    assert_eq!(r["status"], "error");
    let ports = findings(&r, "ports");
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(ports[0]["severity"], "error");
    let m = ports[0]["message"].as_str().unwrap();
    // the listener on 40005 inside the range is skipped by connect(): 89 usable, not 90
    assert!(
        m.starts_with("10.0.0.5:8080 from 10.0.0.1: 85 of the 89 usable"),
        "{m}"
    );
    assert!(m.contains("ip_local_port_range 40000 40099"), "{m}");
    assert!(m.contains("Cannot assign requested address"), "{m}");
    assert_eq!(ports[1]["severity"], "warning");
    assert!(
        ports[1]["message"]
            .as_str()
            .unwrap()
            .starts_with("[2001:db8::5]:443 from 2001:db8::1: 46 of")
    );
    let p = &r["facts"]["ports"];
    assert_eq!(p["range"], serde_json::json!([40000, 40099]));
    assert_eq!(p["reserved"], 10);
    assert_eq!(p["usable"], 89);
    assert_eq!(p["listening_in_range"], 1);
    assert_eq!(p["inbound"], 1);
    let top = p["top"].as_array().unwrap();
    assert_eq!(top[0]["destination"], "10.0.0.5:8080");
    assert_eq!(top[0]["total"], 85);
    assert_eq!(top[0]["time_wait"], 50);
    assert_eq!(top[0]["established"], 30);
    assert_eq!(top[0]["syn_sent"], 3);
    assert_eq!(top[0]["other"], 2);
    assert_eq!(top[0]["percent"], 95.5);
    assert_eq!(top[0]["source"], "10.0.0.1");
    // busiest first
    let totals: Vec<u64> = top.iter().map(|d| d["total"].as_u64().unwrap()).collect();
    assert_eq!(totals, [85, 46, 30, 2]);
    // --top limits the list, not the findings
    let (_, r) = json(&fixture("doctor-ports"), &["--top", "1"]);
    assert_eq!(r["facts"]["ports"]["top"].as_array().unwrap().len(), 1);
    assert_eq!(r["facts"]["ports"]["destinations"], 4);
    assert_eq!(findings(&r, "ports").len(), 2);
}

#[test]
fn a_huge_top_is_every_destination() {
    // --top is a count to show, not a size to allocate: these panicked (capacity overflow,
    // exit 101) and aborted (out of memory, exit 134).
    let (_, mut all) = json(&fixture("doctor-ports"), &["--top", "4"]);
    all["time"] = Value::from(0); // the clock
    for top in ["18446744073709551615", "18446744073709551614", "100000000000"] {
        let (code, mut r) = json(&fixture("doctor-ports"), &["--top", top]);
        r["time"] = Value::from(0);
        assert_eq!(code, 1, "--top {top}");
        assert_eq!(r, all, "--top {top}");
        let text = doctor(&fixture("doctor-ports"), &["--top", top]);
        assert_eq!(text.code, 1, "--top {top}: {}", text.stderr);
    }
}

#[test]
fn memory_figures() {
    let (code, r) = json(&fixture("doctor-memory"), &[]);
    assert_eq!(code, 1);
    let sev = |rule: &str| findings(&r, rule)[0]["severity"].as_str().unwrap().to_string();
    assert_eq!(sev("tcp-memory"), "error");
    assert_eq!(sev("commit"), "error");
    assert_eq!(sev("file-descriptors"), "error");
    assert_eq!(sev("orphans"), "warning");
    assert_eq!(sev("oom"), "warning");
    assert_eq!(sev("ports"), "info");
    let tcp = findings(&r, "tcp-memory")[0]["message"].as_str().unwrap();
    assert!(tcp.contains("800000 pages = 3.1 GiB"), "{tcp}");
    assert!(tcp.contains("762402 pages = 2.9 GiB"), "{tcp}");
    // errors first
    assert_eq!(r["findings"][0]["severity"], "error");
    let f = &r["facts"];
    assert_eq!(f["sockstat"]["tcp_mem"], 800000);
    assert_eq!(f["tcp_mem"], serde_json::json!([381201, 508271, 762402]));
    assert_eq!(f["memory"]["commit_limit"], 517584u64 * 1024);
    assert_eq!(f["memory"]["committed_as"], 3306488u64 * 1024);
    assert_eq!(f["memory"]["overcommit_memory"], 2);
    assert_eq!(
        f["files"],
        serde_json::json!({"allocated": 1560000, "max": 1620000})
    );
}

#[test]
fn child_namespace_without_global_keys_skips_with_info() {
    let dir = copy_root("doctor-memory");
    for key in ["net/ipv4/tcp_mem", "net/ipv4/tcp_max_orphans"] {
        std::fs::remove_file(dir.path().join("proc/sys").join(key)).unwrap();
    }
    let (_, r) = json(&dir.path().display().to_string(), &[]);
    for rule in ["tcp-memory", "orphans"] {
        let f = findings(&r, rule);
        assert_eq!(f[0]["severity"], "info", "{rule}");
        assert!(f[0]["message"].as_str().unwrap().contains("absent"), "{rule}");
    }
    assert_eq!(r["facts"]["tcp_mem"], Value::Null);
}

#[test]
fn missing_tables_and_sockstat_are_info() {
    let dir = copy_root("doctor-healthy");
    for f in ["tcp", "tcp6", "sockstat"] {
        std::fs::remove_file(dir.path().join("proc/net").join(f)).unwrap();
    }
    let (code, r) = json(&dir.path().display().to_string(), &[]);
    assert_eq!(code, 0);
    let ports = findings(&r, "ports");
    assert!(ports[0]["message"].as_str().unwrap().contains("not checked"));
    assert!(
        findings(&r, "tcp-memory")[0]["message"]
            .as_str()
            .unwrap()
            .contains("sockstat")
    );
    // tcp6 alone missing (IPv6 disabled) is no finding, only a fact
    let dir = copy_root("doctor-healthy");
    std::fs::remove_file(dir.path().join("proc/net/tcp6")).unwrap();
    let (code, r) = json(&dir.path().display().to_string(), &[]);
    assert_eq!(code, 0);
    assert_eq!(r["facts"]["ports"]["tables"][1]["lines"], Value::Null);
}

#[test]
fn garbled_input_exits_2_naming_file_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "garbled-tcp",
            "proc/net/tcp",
            "   3: 0100007F:9C40 0100007F:1F90 0Z 00000000:00000000\n",
        ),
        ("garbled-tcp6", "proc/net/tcp6", "   9: ::1:443 ::1:80 01\n"),
        ("garbled-sockstat", "proc/net/sockstat", "TCP: inuse lots\n"),
    ];
    for (name, file, junk) in cases {
        let dir = copy_root("doctor-ports");
        let path = dir.path().join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        if file.contains("tcp") {
            text.push_str(junk); // after the good lines
        } else {
            text = junk.to_string();
        }
        std::fs::write(&path, text).unwrap();
        let r = dir.path().display().to_string();
        let run = doctor(&r, &[]);
        assert_eq!(run.code, 2, "{name}: {}", run.stdout);
        assert!(run.stdout.is_empty());
        insta::assert_snapshot!(format!("bad-{name}"), run.stderr.replace(&r, "[ROOT]"));
    }
}

#[test]
fn prometheus_exposition_is_well_formed() {
    let run = doctor(&fixture("doctor-memory"), &["--format", "prometheus"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let mut typed = std::collections::BTreeSet::new();
    for line in run.stdout.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            assert!(name.starts_with("sysctune_"), "{line}");
            assert!(kind != "counter" || name.ends_with("_total"), "{line}");
            assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
        } else if !line.starts_with("# HELP ") {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(typed.contains(name), "sample before its TYPE: {line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    for sample in [
        "sysctune_doctor_status 2",
        "sysctune_tcp_memory_bytes 3276800000",
        "sysctune_tcp_mem_limit_bytes{level=\"high\"} 3122798592",
        "sysctune_netstat_tcp_abort_on_memory_total 4127",
        "sysctune_netstat_tcp_memory_pressures_seconds_total 93.120",
        "sysctune_local_ports_held_ports{source=\"10.0.0.1\",destination=\"10.0.0.5\",port=\"5432\"} 4",
        "sysctune_local_ports_held_ports{source=\"other\",destination=\"other\",port=\"other\"} 0",
        "sysctune_doctor_check_severity{check=\"tcp-memory\"} 2",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == sample),
            "{sample} not in\n{}",
            run.stdout
        );
    }
    // the processes, bounded by --top, flagged first
    let run = doctor(
        &fixture("doctor-ports"),
        &["--format", "prometheus", "--top", "2"],
    );
    let series: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("sysctune_process_open_fds{"))
        .collect();
    assert_eq!(
        series,
        [
            "sysctune_process_open_fds{pid=\"812\",comm=\"fetcher\"} 41",
            "sysctune_process_open_fds{pid=\"700\",comm=\"api\"} 6"
        ]
    );
    for sample in [
        "sysctune_process_max_fds{pid=\"812\",comm=\"fetcher\"} 48",
        "sysctune_process_tcp_sockets{pid=\"812\",comm=\"fetcher\"} 37",
        "sysctune_processes_read 4",
        "sysctune_processes_scan_capped 0",
        "sysctune_doctor_check_severity{check=\"processes\"} 1",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == sample),
            "{sample} not in\n{}",
            run.stdout
        );
    }
    // only doctor writes metrics
    let plan = sysctune(&[
        "--root",
        &fixture("doctor-memory"),
        "--format",
        "prometheus",
        "show",
    ]);
    assert_eq!(plan.code, 2);
    assert!(
        plan.stderr.contains("only `sysctune doctor` writes metrics"),
        "{}",
        plan.stderr
    );
}

#[test]
fn since_a_previous_document_gives_deltas() {
    let dir = copy_root("doctor-memory");
    let r = dir.path().display().to_string();
    let (_, mut before) = json(&r, &[]);
    before["time"] = Value::from(before["time"].as_u64().unwrap() - 100);
    before["facts"]["counters"]["TCPAbortOnMemory"] = Value::from(4027);
    let prev = dir.path().join("before.json");
    std::fs::write(&prev, before.to_string()).unwrap();
    let (_, after) = json(&r, &["--since", &prev.display().to_string()]);
    let c = findings(&after, "counters");
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["severity"], "warning");
    let m = c[0]["message"].as_str().unwrap();
    assert!(
        m.starts_with("TCPAbortOnMemory went up by 100 in the last 10"),
        "{m}"
    );
    assert_eq!(c[0]["value"], 100);
    assert!(after["since"]["seconds"].as_u64().unwrap() >= 100);
    // untrusted input: a plan document is refused, naming the file
    std::fs::write(&prev, r#"{"schema": "sysctune/plan/v1"}"#).unwrap();
    let run = doctor(&r, &["--since", &prev.display().to_string()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("before.json: \"schema\" is"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_fixture_root_reads_its_tables_and_refuses_netlink() {
    // auto and proc read ROOT/proc/net/tcp: a root is never the running kernel's sockets
    for sockets in [&[][..], &["--sockets", "auto"], &["--sockets", "proc"]] {
        let (_, r) = json(&fixture("doctor-ports"), sockets);
        assert_eq!(r["facts"]["ports"]["source"], "proc", "{sockets:?}");
        assert_eq!(r["notes"], Value::Array(vec![]), "{sockets:?}");
    }
    let run = doctor(&fixture("doctor-ports"), &["--sockets", "netlink"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("--sockets netlink reads the running kernel's sockets, not those of --root"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn plan_drift_in_facts_and_metrics() {
    let dir = copy_root("article-batch");
    let r = dir.path().display().to_string();
    let metrics = |r: &str| doctor(r, &["--format", "prometheus"]).stdout;
    let has = |m: &str, line: &str| assert!(m.lines().any(|l| l == line), "{line} not in\n{m}");
    // nothing applied: in sync, no profile
    let m = metrics(&r);
    has(&m, "sysctune_status_readable 1");
    has(&m, "sysctune_in_sync 1");
    has(&m, "sysctune_drift_keys 0");
    assert!(!m.contains("sysctune_applied_info"), "{m}");

    let apply = sysctune(&["--root", &r, "apply", "--profile", "batch-client"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let m = metrics(&r);
    has(&m, "sysctune_in_sync 1");
    has(&m, "sysctune_drift_keys 0");
    has(&m, "sysctune_dropin_current 1");
    has(&m, "sysctune_applied_info{profile=\"batch-client\"} 1");
    let stamp: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("sysctune_applied_timestamp_seconds "))
        .expect("applied timestamp")
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(stamp <= now && now - stamp < 600, "{stamp} vs {now}");

    // a live value changed behind sysctune's back: one key drifts
    let range = dir.path().join("proc/sys/net/ipv4/ip_local_port_range");
    std::fs::write(&range, "32768\t60999\n").unwrap();
    let m = metrics(&r);
    has(&m, "sysctune_in_sync 0");
    has(&m, "sysctune_drift_keys 1");
    let (_, j) = json(&r, &[]);
    let d = &j["facts"]["drift"];
    assert_eq!(d["profile"], "batch-client");
    assert_eq!(
        d["drifting_keys"],
        serde_json::json!(["net.ipv4.ip_local_port_range"])
    );
    assert_eq!(d["in_sync"], false);
    let text = doctor(&r, &[])
        .stdout
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("applied profile batch-client applied ")
            && text.contains(": 1 of 8 keys out of sync (net.ipv4.ip_local_port_range)"),
        "{text}"
    );

    // a garbled record: doctor still runs, and says the status is unknown
    let record = dir.path().join("var/lib/sysctune/applied.conf");
    std::fs::write(&record, "garbage\n").unwrap();
    let run = doctor(&r, &["--format", "prometheus"]);
    assert!(run.code < 2, "{}", run.stderr);
    has(&run.stdout, "sysctune_status_readable 0");
    assert!(!run.stdout.contains("sysctune_in_sync"), "{}", run.stdout);
    let (_, j) = json(&r, &[]);
    let e = j["facts"]["drift"]["error"].as_str().unwrap();
    assert!(e.contains("applied.conf"), "{e}");
}

#[test]
fn processes_named_with_their_sockets_and_limits() {
    let (code, j) = json(&fixture("doctor-ports"), &[]);
    assert_eq!(code, 1);
    let p = &j["facts"]["processes"];
    assert_eq!((p["found"].as_u64(), p["read"].as_u64()), (Some(4), Some(4)));
    let top: Vec<(u64, &str)> = p["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["pid"].as_u64().unwrap(), t["comm"].as_str().unwrap()))
        .collect();
    assert_eq!(
        top,
        [(812, "fetcher"), (700, "api"), (1, "systemd"), (640, "sshd")]
    );
    let fetcher = &p["top"][0];
    assert_eq!(fetcher["fds"], 41);
    assert_eq!(fetcher["sockets"], 37);
    assert_eq!(fetcher["tcp"], 37);
    assert_eq!(fetcher["ephemeral"], 37);
    assert_eq!(fetcher["nofile_soft"], 48);
    assert_eq!(fetcher["percent"], 85.4);
    assert_eq!(fetcher["cmdline"], "/usr/bin/fetcher --serve");
    let api = &p["top"][1];
    assert_eq!(api["listening"], serde_json::json!([40050]));
    assert_eq!(
        api["ephemeral"], 0,
        "the connection api accepted holds no port of its own"
    );
    let f = findings(&j, "processes");
    assert_eq!(f[0]["severity"], "warning");
    assert_eq!(
        (f[0]["value"].as_u64(), f[0]["threshold"].as_u64()),
        (Some(41), Some(48))
    );
    let m = f[0]["message"].as_str().unwrap();
    assert!(
        m.starts_with("PID 812 fetcher holds 41 open descriptors of soft NOFILE 48 (85.4%"),
        "{m}"
    );
}

#[test]
fn hostile_process_entries_are_skipped_with_a_note() {
    use std::os::unix::fs::symlink;
    let dir = copy_root("doctor-ports");
    let proc_dir = dir.path().join("proc");
    let good = proc_dir.join("640");
    let make = |pid: &str| {
        let p = proc_dir.join(pid);
        common::copy_dir(&good, &p);
        p
    };
    // a PID directory that is a FIFO, one that is a symlink loop, one pointing out of the root
    nix::unistd::mkfifo(
        &proc_dir.join("900"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    symlink("901", proc_dir.join("901")).unwrap();
    symlink("/", proc_dir.join("902")).unwrap();
    // limits malformed, a FIFO, a symlink out of the root
    std::fs::write(make("903").join("limits"), "Limit  Soft Limit\nMax open files\n").unwrap();
    let fifo = make("904").join("limits");
    std::fs::remove_file(&fifo).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let out = make("905").join("limits");
    std::fs::remove_file(&out).unwrap();
    symlink("/proc/self/limits", &out).unwrap();
    // fd/ a symlink loop; an fd entry that is a regular file; 20 000 descriptors
    let fd = make("906").join("fd");
    std::fs::remove_dir_all(&fd).unwrap();
    symlink("fd", &fd).unwrap();
    std::fs::write(make("907").join("fd/9"), "not a link").unwrap();
    let many = make("908").join("fd");
    for i in 10..20_010 {
        symlink(format!("socket:[{}]", 500_000 + i), many.join(i.to_string())).unwrap();
    }
    // a PID directory without limits
    std::fs::remove_file(make("909").join("limits")).unwrap();

    let r = dir.path().display().to_string();
    // bounded: a hang would be a failure, not a stuck CI
    let run = Command::new("timeout")
        .args([
            "60",
            env!("CARGO_BIN_EXE_sysctune"),
            "--root",
            &r,
            "--format",
            "json",
            "doctor",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let j: Value = serde_json::from_slice(&run.stdout).unwrap();
    let p = &j["facts"]["processes"];
    assert_eq!(p["found"], 14);
    // 4 good ones, 908 with its 20 004 descriptors, 902 (/ inside the root) has no limits
    assert_eq!(p["read"], 5, "{p}");
    assert_eq!(p["malformed"], 9, "{p}");
    let notes: Vec<&str> = p["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let joined = notes.join("\n");
    for want in [
        "PID 900 skipped: ",
        "proc/900: is a FIFO (named pipe), not a directory",
        "PID 901 skipped: ",
        "too many levels of symbolic links",
        "PID 903 skipped: ",
        "proc/903/limits: line 2: expected \"Max NAME SOFT HARD UNITS\", found \"Max open files\"",
        "proc/904/limits: is a FIFO (named pipe), not a regular file",
        "proc/905/limits: is a symlink",
        "proc/906/fd: is a symlink, not a directory",
    ] {
        assert!(joined.contains(want), "{want} not in\n{joined}");
    }
    assert_eq!(notes.len(), 8, "notes are bounded");
    let busiest = &p["top"][0];
    assert_eq!(
        (busiest["pid"].as_u64(), busiest["fds"].as_u64()),
        (Some(908), Some(20_004))
    );
    let text = doctor(&r, &[]).stdout;
    assert!(
        text.contains("of 14 processes, 9 skipped: PID 900 skipped:"),
        "{text}"
    );
}
