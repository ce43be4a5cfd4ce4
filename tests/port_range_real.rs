//! port-range's predictions against the real kernel: for each case sysctune plans inside a
//! private network namespace (`unshare -n`, as a child process: a namespace belongs to a
//! thread) and a python3 loopback client (tests/port_range_real/client.py) checks what the
//! plan's capacity says against what connect() does.
//!
//! Only per-namespace keys are written, inside the namespace: ip_local_port_range,
//! ip_local_reserved_ports, tcp_tw_reuse, tcp_rfc1337, tcp_timestamps,
//! tcp_max_tw_buckets. Every case sets `tcp_rfc1337 = 1` and closes gracefully (the client
//! first, waiting for the server's FIN), so no RST shortens TIME_WAIT, and uses ranges with
//! an even number of ports: with an odd number, __inet_hash_connect() scans one port fewer
//! (see `a_range_of_odd_length_may_leave_one_port_unused`).
//!
//! TIME_WAIT is per namespace, so the cases run side by side, each in its own. Three of
//! them must outlast TIME_WAIT (about 62 s) and take 55-80 s; run one after the other they
//! would take minutes. So the first case to run starts every selected case at once (each
//! `unshare -n` child is independent of the test threads), and each test waits for its own:
//! the whole file takes as long as its slowest case, whatever `--test-threads`.
//!
//! Where `unshare` is refused (not root) the tests print why and pass, unless `CI` is set.
mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CLIENT: &str = include_str!("port_range_real/client.py");

/// Runs in the new namespace: `sh ns.sh BIN DIR HOST_NS TEST_PID MODE SECONDS`.
const SCRIPT: &str = r#"
set -eu
bin=$1; dir=$2; host_ns=$3; test_pid=$4; mode=$5; seconds=$6
if [ "$(readlink /proc/self/ns/net)" = "$host_ns" ]; then
  echo "refusing to run: not in a new network namespace" >&2
  exit 99
fi
ip link set lo up
while read -r key value; do
  printf '%s\n' "$value" > "/proc/sys/net/ipv4/$key"
done < "$dir/keys"
# what the assertions need to know of the namespace's own values
cat /proc/sys/net/ipv4/tcp_tw_reuse_delay > "$dir/tcp_tw_reuse_delay" 2>/dev/null || echo 1000 > "$dir/tcp_tw_reuse_delay"
for p in "$dir"/*.toml; do
  "$bin" --root / --format json plan --profile "$p" > "${p%.toml}.json"
done
timeout "$seconds" python3 "$dir/client.py" "$mode" "$dir" "$test_pid"
"#;

/// The keys a case may write: each is per network namespace (`net->ipv4.sysctl_*`), so
/// writing it inside `unshare -n` leaves the host alone.
const NETNS_KEYS: &[&str] = &[
    "ip_local_port_range",
    "ip_local_reserved_ports",
    "tcp_tw_reuse",
    "tcp_rfc1337",
    "tcp_timestamps",
    "tcp_max_tw_buckets",
];

/// 120 usable ports: 130 (an even number) less 10 reserved.
const RANGE_120: [(&str, &str); 2] = [
    ("ip_local_port_range", "40000 40129"),
    ("ip_local_reserved_ports", "40060-40069"),
];

/// 132 usable ports: 142 less 10 reserved. floor(132 / tw_seconds) = 2 per second at every
/// common HZ (tw_seconds 61.7-65.12 s), and 132 / 2 = 66 s is more than TIME_WAIT really
/// lasts (60-62.05 s at HZ 250, up to 65.12 s at HZ 100), so the predicted rate recycles
/// ports with some seconds to spare, and 1.25 times it runs out before any port is free.
const RANGE_132: [(&str, &str); 2] = [
    ("ip_local_port_range", "40000 40141"),
    ("ip_local_reserved_ports", "40050-40059"),
];

struct Case {
    /// The test that asserts it.
    test: &'static str,
    mode: &'static str,
    keys: Vec<(&'static str, &'static str)>,
    /// name → profile body; each is planned into `name.json`; "plan" is the client's.
    profiles: Vec<(&'static str, String)>,
    params: Value,
    /// Bound on the client (timeout).
    seconds: u64,
}

/// A profile with an outbound rate, so port-range plans; the figures are the point.
fn outbound_profile(new_per_second: u64, extra: &str) -> String {
    format!("name = \"real\"\nheadroom = 1\n[outbound]\nnew_per_second = {new_per_second}\n{extra}")
}

fn cases() -> Vec<Case> {
    let base = |range: [(&'static str, &'static str); 2], reuse: &'static str| {
        let mut keys = vec![("tcp_rfc1337", "1"), ("tcp_tw_reuse", reuse)];
        keys.extend(range);
        keys
    };
    vec![
        Case {
            test: "connect_gets_exactly_the_predicted_ports_per_destination",
            mode: "exhaust",
            keys: base(RANGE_120, "0"),
            profiles: vec![("plan", outbound_profile(1, ""))],
            params: json!({
                "listen": [["0.0.0.0", 8080], ["0.0.0.0", 8081], ["::1", 8080]],
                "destinations": [["127.0.0.1", 8080], ["127.0.0.2", 8080], ["127.0.0.1", 8081], ["::1", 8080]],
                "limit": 130,
            }),
            seconds: 30,
        },
        // Sustaining a rate for more connections than ports means outlasting TIME_WAIT;
        // at r = 0.8 × ports / tw_seconds the (ports + 1)-th connection comes only at
        // tw_seconds / 0.8 = 81 s, whatever the range, over the budget of about 80 s
        // per case. So the predicted rate itself is run, for 75 s (150 connections over
        // 132 ports, each port reused from 66 s on), which is the stronger claim, and
        // 1.25 times it, which must fail at connection ports + 1 (at 53 s, before any
        // port can be free).
        Case {
            test: "the_predicted_rate_does_not_fail_for_75_s",
            mode: "rate",
            keys: base(RANGE_132, "0"),
            profiles: vec![("plan", outbound_profile(1, ""))],
            params: json!({
                "listen": [["0.0.0.0", 8080]],
                "dest": ["127.0.0.1", 8080],
                "phases": [{"rate_of": "max_new_per_second_per_destination", "factor": 1.0,
                            "seconds": 75, "stop_on_failure": true}],
            }),
            seconds: 100,
        },
        Case {
            test: "a_quarter_above_the_predicted_rate_fails_at_ports_plus_one",
            mode: "rate",
            keys: base(RANGE_132, "0"),
            profiles: vec![("plan", outbound_profile(1, ""))],
            params: json!({
                "listen": [["0.0.0.0", 8080]],
                "dest": ["127.0.0.1", 8080],
                "phases": [{"rate_of": "max_new_per_second_per_destination", "factor": 1.25,
                            "ports_plus": 1, "stop_on_failure": true}],
            }),
            seconds: 90,
        },
        Case {
            test: "tw_reuse_2_on_loopback_sustains_the_reuse_figure",
            mode: "rate",
            keys: {
                let mut k = base(RANGE_120, "2");
                k.push(("tcp_timestamps", "1"));
                k
            },
            profiles: vec![
                ("plan", outbound_profile(1, "loopback = true\n")),
                ("remote", outbound_profile(1, "")),
            ],
            params: json!({
                "listen": [["0.0.0.0", 8080]],
                "dest": ["127.0.0.1", 8080],
                "phases": [
                    {"rate_of": "max_new_per_second_with_reuse", "factor": 0.8,
                     "ports_plus": 240, "stop_on_failure": true},
                    {"pause": 2.5, "rate_of": "max_new_per_second_with_reuse", "factor": 1.25,
                     "ports_plus": 1, "stop_on_failure": true},
                ],
            }),
            seconds: 30,
        },
        Case {
            test: "time_wait_lasts_between_60_s_and_tw_seconds",
            mode: "twtime",
            keys: base(RANGE_120, "0"),
            profiles: vec![("plan", outbound_profile(1, ""))],
            params: json!({
                "listen": [["0.0.0.0", 8080]],
                "dest": ["127.0.0.1", 8080],
                "connections": 20,
            }),
            seconds: 90,
        },
        Case {
            test: "bind_before_connect_makes_the_range_one_pool",
            mode: "bind",
            keys: base(RANGE_120, "0"),
            profiles: vec![("plan", outbound_profile(1, ""))],
            params: json!({
                "listen": [["0.0.0.0", 8080], ["0.0.0.0", 8081]],
                "dest": ["127.0.0.1", 8080],
                "others": [["127.0.0.1", 8081], ["127.0.0.2", 8080]],
                "limit": 130,
            }),
            seconds: 30,
        },
        Case {
            test: "past_tcp_max_tw_buckets_time_wait_is_dropped_not_ports",
            mode: "buckets",
            keys: {
                let mut k = base(RANGE_120, "0");
                k.push(("tcp_max_tw_buckets", "50"));
                k
            },
            profiles: vec![("plan", outbound_profile(2, ""))],
            params: json!({
                "listen": [["0.0.0.0", 8080]],
                "dest": ["127.0.0.1", 8080],
                "attempts": 360,
            }),
            seconds: 30,
        },
        Case {
            test: "a_range_of_odd_length_may_leave_one_port_unused",
            mode: "exhaust",
            keys: vec![
                ("tcp_rfc1337", "1"),
                ("tcp_tw_reuse", "0"),
                ("ip_local_port_range", "40000 40008"),
                ("ip_local_reserved_ports", ""),
            ],
            profiles: vec![("plan", outbound_profile(1, ""))],
            params: json!({
                "listen": (0..20).map(|i| json!(["0.0.0.0", 8100 + i])).collect::<Vec<_>>(),
                "destinations": (0..20).map(|i| json!(["127.0.0.1", 8100 + i])).collect::<Vec<_>>(),
                "limit": 12,
            }),
            seconds: 30,
        },
    ]
}

/// What a case left: its directory (plan.json, out.json, ...) and how long it took.
struct Ran {
    dir: tempfile::TempDir,
    wall: Duration,
}

impl Ran {
    fn json(&self, name: &str) -> Value {
        let path = self.dir.path().join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
    fn out(&self) -> Value {
        self.json("out.json")
    }
    fn plan(&self) -> Value {
        self.json("plan.json")
    }
}

type Started = Mutex<HashMap<&'static str, JoinHandle<Ran>>>;
static STARTED: OnceLock<Option<Started>> = OnceLock::new();

/// Whether the test harness will run `test`: the name filters and `--skip`s of the
/// command line, as libtest reads them. Cases of tests that will not run are not started
/// (they would outlive the test binary).
fn selected(test: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let matches = |f: &str| if exact { test == f } else { test.contains(f) };
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip" => skips.extend(it.next().cloned()),
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" | "--shuffle-seed" => {
                it.next();
            }
            a if a.starts_with('-') => {}
            a => filters.push(a.to_string()),
        }
    }
    (filters.is_empty() || filters.iter().any(|f| matches(f)))
        && !skips.iter().any(|s| test.contains(s.as_str()))
}

fn start(case: Case) -> JoinHandle<Ran> {
    for (k, v) in &case.keys {
        assert!(NETNS_KEYS.contains(k), "{k} is not a per-namespace key");
        assert!(!v.contains('\n'), "{k}");
    }
    std::thread::spawn(move || {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ns.sh"), SCRIPT).unwrap();
        std::fs::write(d.join("client.py"), CLIENT).unwrap();
        std::fs::write(d.join("params.json"), case.params.to_string()).unwrap();
        let keys: String = case.keys.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        std::fs::write(d.join("keys"), keys).unwrap();
        for (name, body) in &case.profiles {
            std::fs::write(d.join(format!("{name}.toml")), body).unwrap();
        }
        let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
        let begun = Instant::now();
        let out = Command::new("unshare")
            .arg("-n")
            .arg("sh")
            .arg(d.join("ns.sh"))
            .arg(env!("CARGO_BIN_EXE_sysctune"))
            .arg(d)
            .arg(&host_ns)
            .arg(std::process::id().to_string())
            .arg(case.mode)
            .arg(case.seconds.to_string())
            .output()
            .unwrap();
        let wall = begun.elapsed();
        eprintln!("{}: {:.1} s in its namespace", case.test, wall.as_secs_f64());
        assert!(
            out.status.success(),
            "{}: the namespace script failed ({}): {}",
            case.test,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ran { dir, wall }
    })
}

/// Start every selected case (once), then wait for `test`'s. `None`: skipped here.
fn run(test: &str) -> Option<Ran> {
    let started = STARTED.get_or_init(|| {
        if !common::namespaces(&["-n"], true, "the real-kernel port-range tests") {
            return None;
        }
        let all = cases();
        Some(Mutex::new(
            all.into_iter()
                .filter(|c| selected(c.test))
                .map(|c| (c.test, start(c)))
                .collect(),
        ))
    });
    let handle = started
        .as_ref()?
        .lock()
        .unwrap()
        .remove(test)
        .unwrap_or_else(|| panic!("{test}: no such case, or run twice"));
    Some(handle.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
}

fn capacity(plan: &Value, figure: &str) -> Value {
    plan["capacity"][figure]["current"].clone()
}

fn u64_of(plan: &Value, figure: &str) -> u64 {
    capacity(plan, figure)
        .as_u64()
        .unwrap_or_else(|| panic!("capacity.{figure} is {}", plan["capacity"][figure]))
}

/// The attempts of one paced phase: (start time, error) each.
fn attempts(phase: &Value) -> Vec<(f64, Option<String>)> {
    phase["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["at"].as_f64().unwrap(), r["error"].as_str().map(str::to_string)))
        .collect()
}

fn first_failure(phase: &Value) -> Option<(usize, f64, String)> {
    attempts(phase)
        .into_iter()
        .enumerate()
        .find_map(|(i, (at, e))| e.map(|e| (i + 1, at, e)))
}

/// (a) A plain connect() to one destination gets exactly `ports_available` ports, then
/// EADDRNOTAVAIL; another address, another port and IPv6 each get as many again.
#[test]
fn connect_gets_exactly_the_predicted_ports_per_destination() {
    let Some(r) = run("connect_gets_exactly_the_predicted_ports_per_destination") else {
        return;
    };
    let ports = u64_of(&r.plan(), "ports_available");
    assert_eq!(ports, 120);
    let out = r.out();
    for d in out["destinations"].as_array().unwrap() {
        assert_eq!(d["ok"], ports, "{}", d["dest"]);
        assert_eq!(d["error"], "EADDRNOTAVAIL", "{}", d["dest"]);
        let used: std::collections::BTreeSet<u64> = d["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect();
        assert_eq!(used.len() as u64, ports, "distinct ports for {}", d["dest"]);
        assert!(
            used.iter()
                .all(|p| (40000..=40129).contains(p) && !(40060..=40069).contains(p)),
            "a port outside the range or reserved: {used:?}"
        );
    }
    // all of them sit in TIME_WAIT: 4 destinations × 120
    assert_eq!(out["tw"], 4 * ports);
}

/// (b) At the predicted sustainable rate, for 75 s: more connections than ports, none
/// refused.
#[test]
fn the_predicted_rate_does_not_fail_for_75_s() {
    let Some(r) = run("the_predicted_rate_does_not_fail_for_75_s") else {
        return;
    };
    let plan = r.plan();
    let ports = u64_of(&plan, "ports_available");
    let rate = u64_of(&plan, "max_new_per_second_per_destination");
    assert_eq!((ports, rate), (132, 2), "see RANGE_132");
    let phase = &r.out()["phases"][0];
    let made = attempts(phase);
    assert!(
        made.len() as u64 > ports,
        "only {} connections: the client fell behind (late up to {} s)",
        made.len(),
        phase["max_late"]
    );
    assert_eq!(
        first_failure(phase),
        None,
        "at {rate}/s (late up to {} s)",
        phase["max_late"]
    );
    assert!(r.wall < Duration::from_secs(90), "{:?}", r.wall);
}

/// (b) At 1.25 times the predicted rate the ports run out before TIME_WAIT frees any: the
/// first failure is connection ports + 1.
#[test]
fn a_quarter_above_the_predicted_rate_fails_at_ports_plus_one() {
    let Some(r) = run("a_quarter_above_the_predicted_rate_fails_at_ports_plus_one") else {
        return;
    };
    let ports = u64_of(&r.plan(), "ports_available") as usize;
    let phase = &r.out()["phases"][0];
    let (n, at, error) = first_failure(phase).expect("no connect() failed");
    assert_eq!((n, error.as_str()), (ports + 1, "EADDRNOTAVAIL"), "at {at} s");
    assert!(
        at < 60.0,
        "the failing connect() came at {at} s, when ports may be free"
    );
}

/// (c) With tcp_tw_reuse = 2 and the destination on loopback, the plan gives the reuse
/// figure (null for a profile whose backends are elsewhere), and the kernel holds it:
/// 0.8 times it for three times as many connections as ports, no failure. 1.25 times it
/// fails at ports + 1, while every TIME_WAIT is younger than tcp_tw_reuse_delay.
#[test]
fn tw_reuse_2_on_loopback_sustains_the_reuse_figure() {
    let Some(r) = run("tw_reuse_2_on_loopback_sustains_the_reuse_figure") else {
        return;
    };
    let plan = r.plan();
    let ports = u64_of(&plan, "ports_available");
    let reuse = u64_of(&plan, "max_new_per_second_with_reuse");
    let delay = std::fs::read_to_string(r.dir.path().join("tcp_tw_reuse_delay")).unwrap();
    let delay_ms: u64 = delay.trim().parse().unwrap();
    assert_eq!(reuse, ports * 1000 / delay_ms);
    assert!(capacity(&r.json("remote.json"), "max_new_per_second_with_reuse").is_null());
    let out = r.out();
    let steady = &out["phases"][0];
    assert_eq!(attempts(steady).len() as u64, ports + 240);
    assert_eq!(first_failure(steady), None, "at 0.8 × {reuse}/s");
    let over = &out["phases"][1];
    let made = attempts(over);
    let window = made.get(ports as usize).map(|(at, _)| *at);
    match window {
        // the (ports + 1)-th came while every port's TIME_WAIT was younger than the delay
        Some(at) if at * 1000.0 < delay_ms as f64 * 0.9 => {
            let (n, _, e) = first_failure(over).expect("1.25 × the reuse figure did not fail");
            assert_eq!((n, e.as_str()), (ports as usize + 1, "EADDRNOTAVAIL"));
            eprintln!("1.25 × {reuse}/s: connection {n} refused at {at} s, as predicted");
        }
        _ => eprintln!("1.25 × {reuse}/s: the client was too slow to check the failure"),
    }
}

/// (d) TIME_WAIT lasts at least 60 s and at most the plan's tw_seconds, per socket.
#[test]
fn time_wait_lasts_between_60_s_and_tw_seconds() {
    let Some(r) = run("time_wait_lasts_between_60_s_and_tw_seconds") else {
        return;
    };
    let tw = capacity(&r.plan(), "tw_seconds").as_f64().unwrap();
    let out = r.out();
    let sockets = out["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 20);
    assert_eq!(
        out["in_time_wait_at_start"], 20,
        "the client's ports are not in TIME_WAIT"
    );
    let mut lows = Vec::new();
    for s in sockets {
        // the true length lies in [low, high]: the kernel's must overlap [60, tw]
        let low = s["low"].as_f64().unwrap();
        let high = s["high"]
            .as_f64()
            .unwrap_or_else(|| panic!("port {} still in TIME_WAIT after {tw} s + 5 s", s["port"]));
        assert!(
            high >= 60.0,
            "port {}: TIME_WAIT ended before 60 s ({high} s)",
            s["port"]
        );
        assert!(
            low <= tw,
            "port {}: TIME_WAIT outlasted tw_seconds {tw} ({low} s)",
            s["port"]
        );
        assert!(
            high - low < 0.5,
            "port {}: measured too loosely: {low}..{high}",
            s["port"]
        );
        lows.push(low);
    }
    lows.sort_by(f64::total_cmp);
    eprintln!(
        "TIME_WAIT per socket: {:.3}..{:.3} s (tw_seconds {tw})",
        lows[0],
        lows[lows.len() - 1]
    );
}

/// bind() before connect() takes each port for every destination: after the range is
/// bound to one destination, a plain connect() to any other fails at once.
#[test]
fn bind_before_connect_makes_the_range_one_pool() {
    let Some(r) = run("bind_before_connect_makes_the_range_one_pool") else {
        return;
    };
    let plan = r.plan();
    let ports = u64_of(&plan, "ports_available");
    let said = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["message"].as_str().unwrap().contains("bind() before connect()"));
    assert!(said, "the plan does not say what bind() before connect() does");
    let out = r.out();
    assert_eq!(out["bound"]["ok"], ports);
    assert_eq!(out["bound"]["error"], "EADDRINUSE");
    for p in out["plain"].as_array().unwrap() {
        assert_eq!(p["error"], "EADDRNOTAVAIL", "{}", p["dest"]);
    }
}

/// Past tcp_max_tw_buckets the kernel destroys TIME_WAIT sockets at once: ports never run
/// out, but TIME_WAIT stays at the cap, counted in TCPTimeWaitOverflow. The plan raises
/// the cap to what the rate keeps in TIME_WAIT.
#[test]
fn past_tcp_max_tw_buckets_time_wait_is_dropped_not_ports() {
    let Some(r) = run("past_tcp_max_tw_buckets_time_wait_is_dropped_not_ports") else {
        return;
    };
    let plan = r.plan();
    let tw = capacity(&plan, "tw_seconds").as_f64().unwrap();
    let setting = plan["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "net.ipv4.tcp_max_tw_buckets")
        .expect("tcp_max_tw_buckets is not managed");
    assert_eq!(setting["current"], "50");
    // new_per_second 2, headroom 1: ceil(2 × tw_seconds)
    assert_eq!(setting["recommended"], ((2.0 * tw).ceil() as u64).to_string());
    let out = r.out();
    assert_eq!(out["attempts"], 360);
    assert_eq!(out["errors"], 0);
    assert_eq!(out["tw"], 50);
    assert_eq!(out["overflow"], 310);
}

/// A range whose ends have the same parity has an odd number of ports, and
/// __inet_hash_connect() scans `(hi - lo + 1) & ~1` of them from an offset that moves
/// after each connect: which of lo and hi it misses varies, so a destination gets either
/// all 9 ports of 40000-40008 or 8. The rule never recommends such a range where it can
/// help it (step 2's parity).
#[test]
fn a_range_of_odd_length_may_leave_one_port_unused() {
    let Some(r) = run("a_range_of_odd_length_may_leave_one_port_unused") else {
        return;
    };
    assert_eq!(u64_of(&r.plan(), "ports_available"), 9);
    let out = r.out();
    let got: Vec<u64> = out["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["ok"].as_u64().unwrap())
        .collect();
    assert!(got.iter().all(|n| *n == 8 || *n == 9), "{got:?}");
    eprintln!("odd-length range: ports per destination {got:?}");
}
