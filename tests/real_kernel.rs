//! apply on the real kernel, inside private network namespaces (`unshare -n`), and the
//! drop-in it writes applied by the real clients: procps `sysctl -p` and
//! `systemd-sysctl`. Only per-namespace keys are written; the host never changes.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const KEYS: &[&str] = &[
    "ip_local_port_range",
    "tcp_rmem",
    "tcp_wmem",
    "tcp_tw_reuse",
    "tcp_syn_retries",
    "tcp_max_tw_buckets",
];

/// Can we make network namespaces? In CI we must.
fn netns_available() -> bool {
    common::namespaces(&["-n"], false, "the real-kernel tests")
}

/// Run a shell script in a new network namespace; `$BIN` is sysctune.
fn in_netns(script: &str) -> (i32, String, String) {
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .env("BIN", env!("CARGO_BIN_EXE_sysctune"))
        .output()
        .expect("unshare");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `KEY=value` lines printed by [`DUMP`].
const DUMP: &str = "for k in ip_local_port_range tcp_rmem tcp_wmem tcp_tw_reuse tcp_syn_retries tcp_max_tw_buckets; do printf '%s=' $k; tr '\\t' ' ' < /proc/sys/net/ipv4/$k; done";

fn parse_dump(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| KEYS.contains(k))
        .map(|(k, v)| {
            (
                format!("net.ipv4.{k}"),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

fn host_values() -> Vec<String> {
    KEYS.iter()
        .map(|k| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{k}")).unwrap())
        .collect()
}

fn profile(name: &str) -> String {
    common::profile(name)
}

#[test]
fn apply_in_a_network_namespace_changes_only_its_keys() {
    if !netns_available() {
        return;
    }
    let host_before = host_values();
    let tmp = tempfile::tempdir().unwrap();
    let dropin = tmp.path().join("90-sysctune.conf");
    let state = tmp.path().join("state");
    let script = format!(
        "set -e\n$BIN --root / --color never apply --profile {p} --only 'net.ipv4.*' --dropin {d} --allow-any-dropin-path --state-dir {s} --format json > {t}/apply.json\n{DUMP}\n$BIN --root / apply --profile {p} --only 'net.ipv4.*' --dropin {d} --allow-any-dropin-path --state-dir {s} --format json > {t}/again.json\n$BIN --root / rollback --state-dir {s} --allow-any-dropin-path --format json > {t}/rollback.json\necho ---\n{DUMP}",
        p = profile("netns.toml"),
        d = dropin.display(),
        s = state.display(),
        t = tmp.path().display()
    );
    let (code, out, err) = in_netns(&script);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let (applied, restored) = out.split_once("---\n").expect("two dumps");
    let applied = parse_dump(applied);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("apply.json")).unwrap()).unwrap();
    assert_eq!(report["changed"], true);
    let live = report["live"].as_array().unwrap();
    let mut changed: Vec<&str> = live.iter().map(|c| c["key"].as_str().unwrap()).collect();
    changed.sort();
    assert_eq!(
        changed,
        [
            "net.ipv4.ip_local_port_range",
            "net.ipv4.tcp_rmem",
            "net.ipv4.tcp_tw_reuse",
            "net.ipv4.tcp_wmem"
        ]
    );
    // Every value the kernel holds now is the one apply reported.
    for c in live {
        let key = c["key"].as_str().unwrap();
        let now = applied.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(now, c["to"].as_str(), "{key}");
    }
    let get = |k: &str| applied.iter().find(|(key, _)| key == k).unwrap().1.clone();
    // 600/s × tw_seconds: 36 000 ports at a bare 60 s, 39 072 at 65.12 s (HZ=100's slack,
    // assumed without /boot/config-RELEASE); the low port is even.
    let range = get("net.ipv4.ip_local_port_range");
    let lo: u32 = range.strip_suffix(" 65535").unwrap().parse().unwrap();
    assert!(lo.is_multiple_of(2) && (26464..=29536).contains(&lo), "{range}");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    if !Path::new(&format!("/boot/config-{}", release.trim())).exists() {
        assert_eq!(range, "26464 65535");
    }
    assert_eq!(get("net.ipv4.tcp_rmem").split(' ').nth(1), Some("65536"));
    assert_eq!(get("net.ipv4.tcp_wmem").split(' ').nth(1), Some("49152"));
    assert_eq!(get("net.ipv4.tcp_tw_reuse"), "0");
    // Idempotent on the real kernel too.
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("again.json")).unwrap()).unwrap();
    assert_eq!(again["changed"], false);
    // Rollback put the namespace's own values back.
    let rollback: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("rollback.json")).unwrap()).unwrap();
    assert_eq!(rollback["changed"], true);
    for c in live {
        let key = c["key"].as_str().unwrap();
        let now = parse_dump(restored)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v);
        assert_eq!(now.as_deref(), c["from"].as_str(), "{key} after rollback");
    }
    assert!(!dropin.exists(), "rollback removes the drop-in it created");
    assert_eq!(host_values(), host_before, "the host's values changed");
}

#[test]
fn a_value_the_kernel_rejects_mid_apply_restores_the_earlier_keys() {
    if !netns_available() {
        return;
    }
    let host_before = host_values();
    let tmp = tempfile::tempdir().unwrap();
    // tcp_syn_retries is checked against 1..127 by the kernel, not by sysctune (it is not a
    // key sysctune knows), and is written last: after the range, rmem, wmem and tw_reuse.
    let bad = tmp.path().join("bad.toml");
    let base = std::fs::read_to_string(profile("netns.toml")).unwrap();
    std::fs::write(&bad, format!("{base}\"net.ipv4.tcp_syn_retries\" = \"1000\"\n")).unwrap();
    let dropin = tmp.path().join("90-sysctune.conf");
    let state = tmp.path().join("state");
    let script = format!(
        "{DUMP}\necho ---\n$BIN --root / apply --profile {p} --only 'net.ipv4.*' --dropin {d} --allow-any-dropin-path --state-dir {s} 2> {t}/err; echo rc=$?\necho ---\n{DUMP}",
        p = bad.display(),
        d = dropin.display(),
        s = state.display(),
        t = tmp.path().display()
    );
    let (code, out, err) = in_netns(&script);
    assert_eq!(code, 0, "{out}\n{err}");
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert!(parts[1].contains("rc=2"), "{out}");
    let stderr = std::fs::read_to_string(tmp.path().join("err")).unwrap();
    assert!(
        stderr.contains("writing net.ipv4.tcp_syn_retries = \"1000\" failed: Invalid argument (EINVAL)"),
        "{stderr}"
    );
    assert!(stderr.contains("restored net.ipv4.tcp_tw_reuse"), "{stderr}");
    assert!(stderr.contains("net.ipv4.ip_local_port_range"), "{stderr}");
    assert_eq!(
        parse_dump(parts[0]),
        parse_dump(parts[2]),
        "the namespace's values changed"
    );
    assert!(!dropin.exists(), "the drop-in was written");
    assert!(
        !state.join("rollback.conf").exists(),
        "a rollback record was left behind"
    );
    assert_eq!(host_values(), host_before);
}

#[test]
fn a_range_below_ip_unprivileged_port_start_is_refused_before_any_write() {
    if !netns_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.toml");
    let base = std::fs::read_to_string(profile("netns.toml")).unwrap();
    std::fs::write(
        &p,
        format!("{base}\"net.ipv4.ip_local_port_range\" = \"30000 65535\"\n"),
    )
    .unwrap();
    let script = format!(
        "set -e\necho 40000 60999 > /proc/sys/net/ipv4/ip_local_port_range\necho 40000 > /proc/sys/net/ipv4/ip_unprivileged_port_start\nset +e\n{DUMP}\necho ---\n$BIN --root / apply --profile {p} --only 'net.ipv4.*' --no-file --state-dir {s}/state 2> {s}/err; echo rc=$?\necho ---\n{DUMP}",
        p = p.display(),
        s = tmp.path().display()
    );
    let (code, out, err) = in_netns(&script);
    assert_eq!(code, 0, "{out}\n{err}");
    let parts: Vec<&str> = out.split("---\n").collect();
    assert!(parts[1].contains("rc=2"), "{out}");
    let stderr = std::fs::read_to_string(tmp.path().join("err")).unwrap();
    assert!(
        stderr.contains("below net.ipv4.ip_unprivileged_port_start = 40000"),
        "{stderr}"
    );
    assert_eq!(parse_dump(parts[0]), parse_dump(parts[2]));
}

/// The drop-in sysctune writes, and the values it recommends, planned inside a namespace.
fn planned_dropin(dir: &Path) -> (std::path::PathBuf, Vec<(String, String)>) {
    let script = format!(
        "$BIN --root / plan --profile {} --only 'net.ipv4.*' --format json",
        profile("netns.toml")
    );
    let (code, out, err) = in_netns(&script);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    let file = dir.join("90-sysctune.conf");
    std::fs::write(&file, plan["dropin"]["content"].as_str().unwrap()).unwrap();
    let want = plan["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_string(),
                s["recommended"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (file, want)
}

fn check_client(client: &str) {
    if !netns_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (file, want) = planned_dropin(tmp.path());
    // the range, rmem, wmem, tw_reuse and tcp_max_tw_buckets (kept, not in the drop-in)
    assert_eq!(want.len(), 5, "{want:?}");
    let script = format!(
        "{client} {} 2> {}/err; echo rc=$?\n{DUMP}",
        file.display(),
        tmp.path().display()
    );
    let (code, out, err) = in_netns(&script);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("rc=0\n") || out.contains("\nrc=0\n"),
        "{client}: {out}"
    );
    let stderr = std::fs::read_to_string(tmp.path().join("err")).unwrap();
    assert_eq!(stderr, "", "{client} complained");
    let got = parse_dump(&out);
    for (key, value) in &want {
        let now = got.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        assert_eq!(now, Some(value), "{client}: {key}");
    }
}

#[test]
fn procps_sysctl_applies_the_dropin_cleanly() {
    check_client("sysctl -q -p");
}

#[test]
fn systemd_sysctl_applies_the_dropin_cleanly() {
    check_client("/lib/systemd/systemd-sysctl");
}

/// The table of what a new network namespace gets (`keys::new_netns`), against the kernel:
/// inside a namespace whose keys were changed, a nested one starts at the kernel's default
/// for each key, and copies the initial namespace's tcp_rmem/tcp_wmem.
#[test]
fn a_new_network_namespace_gets_what_the_key_table_says() {
    if !netns_available() {
        return;
    }
    use sysctune::keys::{NewNetns, new_netns};
    let keys = [
        ("net.ipv4.ip_local_port_range", "40000 50000"),
        ("net.ipv4.ip_unprivileged_port_start", "2048"),
        ("net.ipv4.tcp_tw_reuse", "0"),
        ("net.ipv4.tcp_fin_timeout", "30"),
        ("net.ipv4.tcp_timestamps", "0"),
        ("net.core.somaxconn", "1000"),
        ("net.ipv4.tcp_rmem", "4096 100000 200000"),
        ("net.ipv4.tcp_wmem", "4096 20000 300000"),
    ];
    let path = |k: &str| format!("/proc/sys/{}", k.replace('.', "/"));
    let mut script = String::from("set -e\n");
    for (k, v) in keys {
        script.push_str(&format!("echo '{v}' > {}\n", path(k)));
    }
    script.push_str("unshare -n sh -c '");
    for (k, _) in keys {
        script.push_str(&format!("printf \"%s=\" {k}; tr \"\\t\" \" \" < {}; ", path(k)));
    }
    script.push('\'');
    let (code, out, err) = in_netns(&script);
    assert_eq!(code, 0, "{err}");
    let host = |k: &str| {
        std::fs::read_to_string(path(k))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (k, _) in keys {
        let got = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} not read: {out}"))
            .trim()
            .to_string();
        match new_netns(k) {
            NewNetns::CopiesInitial { .. } => assert_eq!(got, host(k), "{k} is the initial namespace's"),
            NewNetns::KernelDefault(v) => assert_eq!(got, v, "{k} starts at the kernel's default"),
            NewNetns::Unknown => panic!("{k} is not in the table"),
        }
    }
}

/// On the live host the port check reads the sockets as doctor does (netlink, filtered to
/// the range): with 60 connections to one destination holding ports of 40000 40099, a
/// range of 10 ports is refused, the plan names it, and nothing is written.
#[test]
fn apply_refuses_a_range_narrower_than_the_ports_held_now() {
    if !netns_available() || !common::namespaces(&["-n"], true, "the real-kernel port check") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let dropin = tmp.path().join("90-sysctune.conf");
    let client = r#"
import socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 9000)); srv.listen(200)
held = []
for _ in range(60):
    c = socket.create_connection(("127.0.0.1", 9000)); held.append(c); held.append(srv.accept()[0])
open(sys.argv[1], "w").write("ready")
time.sleep(60)
"#;
    std::fs::write(tmp.path().join("hold.py"), client).unwrap();
    let script = format!(
        "ip link set lo up\necho '40000 40099' > /proc/sys/net/ipv4/ip_local_port_range\n\
         python3 {t}/hold.py {t}/ready & pid=$!\n\
         for i in $(seq 100); do [ -e {t}/ready ] && break; sleep 0.1; done\n\
         set -- --root / --color never\n\
         $BIN \"$@\" plan --profile batch-client --only net.ipv4.ip_local_port_range --set 'sysctl.net.ipv4.ip_local_port_range=\"40000 40009\"' --dropin {d} --state-dir {s} --format json > {t}/plan.json; echo $? > {t}/plan.code\n\
         $BIN \"$@\" apply --profile batch-client --only net.ipv4.ip_local_port_range --set 'sysctl.net.ipv4.ip_local_port_range=\"40000 40009\"' --dropin {d} --allow-any-dropin-path --state-dir {s} 2> {t}/apply.err; echo $? > {t}/apply.code\n\
         tr '\\t' ' ' < /proc/sys/net/ipv4/ip_local_port_range > {t}/range\n\
         kill $pid",
        t = tmp.path().display(),
        d = dropin.display(),
        s = state.display(),
    );
    let (code, _, stderr) = in_netns(&format!("timeout 60 sh -c '{}'", script.replace('\'', "'\\''")));
    assert_eq!(code, 0, "{stderr}");
    let read = |n: &str| std::fs::read_to_string(tmp.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    let plan: Value = serde_json::from_str(&read("plan.json")).unwrap();
    let held = "leaves 10 usable ports, fewer than the 60 one destination holds now";
    assert!(
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "guard"
                && f["severity"] == "error"
                && f["message"].as_str().unwrap().contains(held)),
        "{}",
        plan["findings"]
    );
    assert_eq!(read("apply.code").trim(), "2");
    assert!(read("apply.err").contains(held), "{}", read("apply.err"));
    assert_eq!(read("range").trim(), "40000 40099", "nothing written");
    assert!(!dropin.exists(), "no drop-in written");
}
