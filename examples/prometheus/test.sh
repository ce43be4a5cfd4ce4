#!/usr/bin/env bash
# The Prometheus example, for real (run by .ci/run; a missing tool fails, it never skips):
# - `promtool check metrics` on doctor's output on every fixture root, and on the live
#   kernel inside a private network namespace, with loopback connections and a process
#   holding sockets under a low `ulimit -n`;
# - the service's own ExecStart (taken from sysctune-textfile.service) writing the textfile
#   there, atomically (a failing doctor leaves the old file and no temporary file);
# - prometheus-node-exporter started on 127.0.0.1 on a free port with only the textfile
#   collector, serving that file: the scrape has the sysctune_ series, the process by its
#   pid, and no textfile error; the scrape itself passes `promtool check metrics`;
# - `promtool check rules` and `promtool test rules` (every alert fires in a test and is
#   expected silent in another), and every sysctune_ name the rules use is one doctor writes;
# - `systemd-analyze verify` of the service and the timer.
# Usage: examples/prometheus/test.sh path/to/sysctune
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$(realpath "${1:?usage: test.sh path/to/sysctune}")
tmp=$(mktemp -d)
exporter=""
cleanup() {
  if [ -n "$exporter" ]; then kill "$exporter" 2>/dev/null || true; wait "$exporter" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0
fail() { echo "prometheus test FAILED: $*"; echo "$passed passed, 1 failed"; exit 1; }
ok() { echo "ok: $*"; passed=$((passed + 1)); }

for tool in promtool prometheus-node-exporter systemd-analyze unshare ip python3 timeout; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (.ci/run installs prometheus, prometheus-node-exporter, systemd, util-linux, iproute2)"
done

# 1. doctor's output on every fixture root that has a /proc/meminfo.
mkdir -p "$tmp/fixtures"
for root in "$repo"/tests/roots/*/; do
  name=$(basename "$root")
  [ -f "$root/proc/meminfo" ] || continue
  out="$tmp/fixtures/$name.prom"
  rc=0
  "$bin" --root "$root" doctor --format prometheus > "$out" || rc=$?
  [ "$rc" -le 1 ] || fail "doctor on $name exited $rc"
  promtool check metrics < "$out" > "$tmp/lint" 2>&1 || { cat "$tmp/lint"; fail "promtool check metrics on $name"; }
  [ -s "$tmp/lint" ] && { cat "$tmp/lint"; fail "promtool check metrics on $name: lint problems"; }
  ok "promtool check metrics: doctor on tests/roots/$name"
done

# 2. The live kernel in a private network namespace (and a private mount namespace with a
# tmpfs over /var/lib, so the host's apply record is neither read nor touched), running the
# service's ExecStart as systemd would: $$ is $, TEXTFILE_DIR and SYSCTUNE from the
# environment.
exec_start=$(sed -n 's/^ExecStart=//p' "$here/sysctune-textfile.service" | sed 's/\$\$/$/g')
[ -n "$exec_start" ] || fail "no ExecStart in sysctune-textfile.service"
textfile="$tmp/textfile"
mkdir -p "$textfile"
cat > "$tmp/holder.py" <<'EOF'
# Holds N loopback connections to one listener, then waits to be killed (at most 60 s).
import os, socket, sys, time
n = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(n + 8)
port = srv.getsockname()[1]
held = []
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    held.append(c)
    held.append(srv.accept()[0])
with open(sys.argv[2], "w") as f:
    f.write("%d %d\n" % (os.getpid(), port))
time.sleep(60)
EOF
cat > "$tmp/inside.sh" <<'EOF'
set -eu
mount -t tmpfs tmpfs /var/lib
ip link set lo up
# 28 connections = 56 sockets, a listener, stdin/out/err: 60 of a soft limit of 64.
( ulimit -S -n 64; exec python3 "$TMPD/holder.py" 28 "$TMPD/holder.pid" ) &
holder=$!
for _ in $(seq 100); do [ -s "$TMPD/holder.pid" ] && break; sleep 0.1; done
[ -s "$TMPD/holder.pid" ] || { echo "the socket holder did not start"; exit 1; }
rc=0
"$SYSCTUNE" doctor --top 100 > "$TMPD/doctor.txt" || rc=$?
"$SYSCTUNE" doctor --format prometheus > "$TMPD/live.prom" || true
TEXTFILE_DIR="$TEXTFILE_DIR" SYSCTUNE="$SYSCTUNE" sh -c "$EXEC_START"
# A doctor that fails (exit 2) must leave the old file as it was and no temporary file.
printf '#!/bin/sh\necho "sysctune_partial 1"\nexit 2\n' > "$TMPD/broken"
chmod +x "$TMPD/broken"
if TEXTFILE_DIR="$TEXTFILE_DIR" SYSCTUNE="$TMPD/broken" sh -c "$EXEC_START"; then
  echo "the service's command succeeded with a failing doctor"; exit 1
fi
kill "$holder"
wait "$holder" 2>/dev/null || true
echo "doctor exit $rc"
EOF
TMPD="$tmp" TEXTFILE_DIR="$textfile" SYSCTUNE="$bin" EXEC_START="$exec_start" \
  timeout 60 unshare -m -n --propagation private sh "$tmp/inside.sh" > "$tmp/inside.log" 2>&1 \
  || { cat "$tmp/inside.log"; fail "the live run in a network namespace"; }
read -r holder_pid holder_port < "$tmp/holder.pid"
promtool check metrics < "$tmp/live.prom" > "$tmp/lint" 2>&1 || { cat "$tmp/lint"; fail "promtool check metrics on the live namespace"; }
[ -s "$tmp/lint" ] && { cat "$tmp/lint"; fail "promtool check metrics on the live namespace: lint problems"; }
ok "promtool check metrics: doctor on the live kernel in a network namespace"
grep -q "destination=\"127.0.0.1\",port=\"$holder_port\"" "$tmp/live.prom" \
  || fail "the live metrics do not name 127.0.0.1:$holder_port"
grep -q "^sysctune_process_open_fds{pid=\"$holder_pid\",comm=\"python3\"} " "$tmp/live.prom" \
  || fail "the live metrics do not name PID $holder_pid python3"
grep -q -E "PID $holder_pid python3 holds|^  $holder_pid +python3 " "$tmp/doctor.txt" || { cat "$tmp/doctor.txt"; fail "doctor does not name PID $holder_pid"; }
ok "the live metrics name the destination 127.0.0.1:$holder_port and PID $holder_pid python3"
[ "$(ls "$textfile")" = "sysctune.prom" ] || fail "the textfile directory holds $(ls "$textfile" | tr '\n' ' ')"
grep -q '^sysctune_partial' "$textfile/sysctune.prom" && fail "a failed doctor replaced the file"
cmp -s <(grep '^# TYPE' "$tmp/live.prom") <(grep '^# TYPE' "$textfile/sysctune.prom") \
  || fail "the service's file has other families than doctor --format prometheus"
ok "the service's command wrote sysctune.prom atomically (a failing doctor left it and no temporary file)"

# 3. node_exporter serving it.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
prometheus-node-exporter --web.listen-address="127.0.0.1:$port" --collector.disable-defaults \
  --collector.textfile --collector.textfile.directory="$textfile" --web.disable-exporter-metrics \
  > "$tmp/exporter.log" 2>&1 &
exporter=$!
cat > "$tmp/scrape.py" <<'EOF'
import sys, time, urllib.request
url = sys.argv[1]
for _ in range(100):
    try:
        body = urllib.request.urlopen(url, timeout=2).read().decode()
        sys.stdout.write(body)
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("no answer from " + url)
EOF
timeout 30 python3 "$tmp/scrape.py" "http://127.0.0.1:$port/metrics" > "$tmp/scrape.txt" \
  || { cat "$tmp/exporter.log"; fail "node_exporter did not answer on 127.0.0.1:$port"; }
grep -q '^node_textfile_scrape_error 0$' "$tmp/scrape.txt" || { cat "$tmp/scrape.txt"; fail "node_exporter reports a textfile error"; }
for want in '^sysctune_doctor_status ' '^sysctune_local_ports_usable_ports ' "^sysctune_local_ports_held_ports{destination=\"127.0.0.1\",port=\"$holder_port\"" \
    '^sysctune_netstat_tcp_abort_on_memory_total ' '^sysctune_in_sync 1$' '^sysctune_drift_keys 0$' \
    "^sysctune_process_max_fds{comm=\"python3\",pid=\"$holder_pid\"} 64$" \
    "^sysctune_process_tcp_sockets{comm=\"python3\",pid=\"$holder_pid\"} 57$"; do
  grep -q "$want" "$tmp/scrape.txt" || { grep sysctune_ "$tmp/scrape.txt" | head -50; fail "the scrape has no $want"; }
done
promtool check metrics < "$tmp/scrape.txt" > "$tmp/lint" 2>&1 || { cat "$tmp/lint"; fail "promtool check metrics on the scrape"; }
ok "node_exporter on 127.0.0.1:$port serves $(grep -c '^sysctune_' "$tmp/scrape.txt") sysctune_ samples from the service's file"
kill "$exporter"; wait "$exporter" 2>/dev/null || true; exporter=""

# 4. The rules.
promtool check rules "$here/sysctune.rules.yml" > "$tmp/rules.log" 2>&1 || { cat "$tmp/rules.log"; fail "promtool check rules"; }
(cd "$here" && promtool test rules sysctune.rules.test.yml) > "$tmp/rules.log" 2>&1 || { cat "$tmp/rules.log"; fail "promtool test rules"; }
python3 - "$here/sysctune.rules.yml" "$here/sysctune.rules.test.yml" <<'EOF' || fail "the alerts' tests"
import sys, yaml
rules = [r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"] if "alert" in r]
tests = yaml.safe_load(open(sys.argv[2]))["tests"]
fires, silent = set(), set()
for t in tests:
    for a in t.get("alert_rule_test", []):
        (fires if a.get("exp_alerts") else silent).add(a["alertname"])
        # every firing test also has an instance that stays silent
        if a.get("exp_alerts") and not all(e["exp_labels"].get("instance") for e in a["exp_alerts"]):
            sys.exit("%s: an expected alert without an instance" % a["alertname"])
missing = [r for r in rules if r not in fires or r not in silent]
if missing:
    sys.exit("alerts without a firing and a silent test: %s" % ", ".join(missing))
print("%d alerts, each tested firing and silent" % len(rules))
EOF
ok "promtool test rules: $(grep -c -- '- alert:' "$here/sysctune.rules.yml") alerts"
cat "$tmp"/fixtures/*.prom "$tmp/live.prom" | grep -oE '^sysctune_[a-z_]+' | sort -u > "$tmp/written"
grep -oE 'sysctune_[a-z_]+' "$here/sysctune.rules.yml" | sort -u > "$tmp/used"
unknown=$(comm -23 "$tmp/used" "$tmp/written")
[ -z "$unknown" ] || fail "the rules use metrics doctor never wrote here: $unknown"
ok "every metric the rules use ($(wc -l < "$tmp/used")) is in doctor's output"

# 5. The units.
systemd-analyze verify "$here/sysctune-textfile.service" "$here/sysctune-textfile.timer" > "$tmp/verify.log" 2>&1 \
  || { cat "$tmp/verify.log"; fail "systemd-analyze verify"; }
[ -s "$tmp/verify.log" ] && { cat "$tmp/verify.log"; fail "systemd-analyze verify printed warnings"; }
ok "systemd-analyze verify: sysctune-textfile.service and .timer"

echo "$passed passed, 0 failed"
