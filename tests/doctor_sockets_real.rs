//! Netlink and `/proc/net/tcp` give the same findings on the same sockets (issue 11,
//! item 1), on the real kernel.
//!
//! One child process under `unshare -m -n` (a private network namespace, and a private
//! mount namespace with a tmpfs over /run/lock and /var/lib, so nothing doctor could
//! write reaches the machine; the script checks afterwards that nothing was written):
//! `ip_local_port_range = 40000 40099`, `tcp_tw_reuse = 0` (per-namespace keys), then a
//! python3 script makes on loopback
//! - 45 connections to 127.0.0.1:8081 and 20 to 127.0.0.2:8082 (outbound, in the range),
//!   10 more to 127.0.0.1:8081 closed by the client (TIME_WAIT), 5 to [::1]:8083 where
//!   the namespace has IPv6;
//! - a listener on 40050, inside the range, with 3 connections accepted on it;
//! - 30 inbound connections to a listener on 9000, from clients bound to ports
//!   20000-20029 of 127.0.0.3: both sides outside the range, like the server sides of
//!   the connections above, the sockets the kernel's filter leaves out;
//!
//! and runs `sysctune --root / --format json doctor` with `--sockets netlink`,
//! `--sockets proc` and the default. Every step is bounded (`timeout`, socket timeouts):
//! the whole test takes a few seconds. Where namespaces cannot be made it prints why and
//! passes, unless `CI` is set.
mod common;

use std::path::Path;

use serde_json::Value;

const SCRIPT: &str = r#"
set -eu
bin=$1; dir=$2; host_ns=$3
if [ "$(readlink /proc/self/ns/net)" = "$host_ns" ]; then
  echo "refusing to run: not in a new network namespace" >&2
  exit 99
fi
mount -t tmpfs sysctune-test /run/lock
mount -t tmpfs sysctune-test /var/lib
ip link set lo up
echo "40000 40099" > /proc/sys/net/ipv4/ip_local_port_range
echo 0 > /proc/sys/net/ipv4/tcp_tw_reuse
timeout 60 python3 "$dir/sockets.py" "$bin" "$dir"
find /run/lock /var/lib -mindepth 1 > "$dir/written"
"#;

const CLIENT: &str = r#"
import socket, subprocess, sys, threading, time

bin, out = sys.argv[1], sys.argv[2]
socket.setdefaulttimeout(5)

def listener(family, addr, port, close_on_fin):
    srv = socket.socket(family)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(128)
    held = []
    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            if close_on_fin:
                threading.Thread(target=drain, args=(conn,), daemon=True).start()
            else:
                held.append(conn)
    threading.Thread(target=serve, daemon=True).start()
    return srv, held

def drain(conn):
    try:
        while conn.recv(4096):  # until the client's FIN: the client gets the TIME_WAIT
            pass
    except OSError:
        pass
    conn.close()

keep = []
keep.append(listener(socket.AF_INET, "127.0.0.1", 8081, True))
keep.append(listener(socket.AF_INET, "127.0.0.2", 8082, True))
keep.append(listener(socket.AF_INET, "0.0.0.0", 40050, True))  # inside the range
keep.append(listener(socket.AF_INET, "127.0.0.1", 9000, True))

def connect(addr, port, family=socket.AF_INET, bind=None):
    c = socket.socket(family)
    if bind:
        c.bind(bind)
    c.connect((addr, port))
    return c

open_ = [connect("127.0.0.1", 8081) for _ in range(45)]
open_ += [connect("127.0.0.2", 8082) for _ in range(20)]
open_ += [connect("127.0.0.1", 40050) for _ in range(3)]
open_ += [connect("127.0.0.1", 9000, bind=("127.0.0.3", 20000 + i)) for i in range(30)]
try:
    keep.append(listener(socket.AF_INET6, "::1", 8083, True))
    open_ += [connect("::1", 8083, socket.AF_INET6) for _ in range(5)]
    ipv6 = "yes"
except OSError as e:
    ipv6 = "no: %s" % e
for _ in range(10):
    connect("127.0.0.1", 8081).close()

def time_wait():
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            if line.split()[3] == "06":
                n += 1
    return n

deadline = time.time() + 5
while time_wait() < 10 and time.time() < deadline:
    time.sleep(0.02)
with open(out + "/setup", "w") as f:
    f.write("time_wait %d ipv6 %s\n" % (time_wait(), ipv6))

for name, args in [("netlink", ["--sockets", "netlink"]), ("proc", ["--sockets", "proc"]), ("auto", [])]:
    with open("%s/%s.json" % (out, name), "w") as f:
        code = subprocess.run([bin, "--root", "/", "--format", "json", "doctor"] + args,
                              stdout=f, timeout=20).returncode
    with open("%s/%s.code" % (out, name), "w") as f:
        f.write(str(code))
"#;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn report(dir: &Path, name: &str) -> Value {
    let code = read(dir, &format!("{name}.code"));
    assert!(code == "0" || code == "1", "{name}: exit {code}");
    serde_json::from_str(&read(dir, &format!("{name}.json"))).unwrap()
}

/// Findings from the host's memory and file figures and its processes (shared with every
/// other process on the machine, so they move between two runs): compared by rule and
/// severity only.
const HOST_WIDE: [&str; 4] = ["oom", "commit", "file-descriptors", "processes"];

fn findings(r: &Value) -> Vec<Value> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            if HOST_WIDE.contains(&f["rule"].as_str().unwrap()) {
                serde_json::json!([f["rule"], f["severity"]])
            } else {
                f.clone()
            }
        })
        .collect()
}

#[test]
fn netlink_and_proc_net_tcp_give_the_same_findings() {
    if !common::namespaces(&["-m", "-n"], true, "the netlink-against-proc doctor test") {
        return;
    }
    let tmp = common::namespace_script(
        &["-m", "-n"],
        90,
        &[("ns.sh", SCRIPT), ("sockets.py", CLIENT)],
        &[],
    );
    let dir = tmp.path();
    let setup = read(dir, "setup");
    assert!(setup.starts_with("time_wait 10 "), "{setup}");
    assert_eq!(
        read(dir, "written"),
        "",
        "doctor wrote under /run/lock or /var/lib"
    );

    let netlink = report(dir, "netlink");
    let proc = report(dir, "proc");
    let auto = report(dir, "auto");
    let (n, p) = (&netlink["facts"]["ports"], &proc["facts"]["ports"]);
    assert_eq!(n["source"], "netlink");
    assert_eq!(p["source"], "proc");
    assert_eq!(auto["facts"]["ports"]["source"], "netlink", "auto on a live root");
    assert_eq!(netlink["notes"], Value::Array(vec![]));
    assert_eq!(read(dir, "netlink.code"), read(dir, "proc.code"));

    // the same findings, word for word
    assert_eq!(findings(&netlink), findings(&proc));
    assert_eq!(findings(&auto), findings(&proc));
    // and the same figures behind them
    for key in [
        "range",
        "reserved",
        "usable",
        "pool_held",
        "listening_in_range",
        "outbound",
        "destinations",
        "top",
        "held_other",
        "max_new_per_second_per_destination",
    ] {
        assert_eq!(n[key], p[key], "facts.ports.{key}");
    }

    // what the filter is for: the kernel never sent the sockets on ports outside the
    // range: the server sides on 8081, 8082, 8083 and 9000, the clients bound to
    // 20000-20029, the listeners there
    let v6 = if setup.contains("ipv6 yes") { 5 } else { 0 };
    assert_eq!(p["outbound"], 45 + 20 + 10 + 3 + v6, "{setup}");
    assert_eq!(n["inbound"], 3, "accepted on 40050");
    assert_eq!(p["inbound"], 45 + 20 + v6 + 30 + 3);
    assert_eq!(n["not_ephemeral"], 0);
    assert_eq!(p["not_ephemeral"], 30, "the clients bound to 20000-20029");
    let listeners_out = if v6 > 0 { 4 } else { 3 };
    assert_eq!(
        p["sockets"].as_u64().unwrap() - n["sockets"].as_u64().unwrap(),
        45 + 20 + v6 + 30 + 30 + listeners_out,
        "{n}\n{p}"
    );
    assert_eq!(n["states"]["LISTEN"], 1);
    assert_eq!(n["states"]["TIME_WAIT"], 10);
    assert_eq!(n["tables"][0]["path"], "netlink:tcp");

    // the pairs the findings name: 127.0.0.1:8081 holds 55 of the 99 usable ports
    assert_eq!(n["usable"], 99, "100 ports less the listener on 40050");
    let ports: Vec<&Value> = netlink["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "ports")
        .collect();
    assert!(
        ports.iter().any(|f| f["severity"] == "warning"
            && f["message"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:8081 from 127.0.0.1: 55 of the 99 usable")),
        "{ports:#?}"
    );
}
