#!/usr/bin/env bash
# doctor's process scan (which process holds the sockets) against `ss -tanp`, on real
# sockets: in a private network namespace, python3 processes hold N loopback connections
# (2N sockets and a listener each; as many processes as the hard NOFILE limit needs, the
# soft one raised to it), then `sysctune --root / doctor --format json` and `ss -tanp` are timed, 5
# runs each, medians printed. The host's other processes are scanned too (their sockets
# are in other namespaces: read, not matched). A benchmark prints figures; nothing is
# asserted. Bounded: the holder exits after 120 s at most.
# Usage: bench/procs.sh [N...]   (default 10000 20000; release build: cargo build --release)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${SYSCTUNE:-$repo/target/release/sysctune}
[ -x "$bin" ] || { echo "build first: cargo build --release (or SYSCTUNE=path)"; exit 2; }
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 20000)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/holder.py" <<'EOF'
import socket, sys, time
n = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4096)
held = []
for _ in range(n):
    held.append(socket.create_connection(("127.0.0.1", srv.getsockname()[1])))
    held.append(srv.accept()[0])
open(sys.argv[2], "w").write("ready\n")
time.sleep(120)
EOF
cat > "$tmp/inside.sh" <<'EOF'
set -eu
n=$1; bin=$2; tmp=$3
ip link set lo up
echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range
hard=$(ulimit -H -n)
per=$(( (hard - 64) / 2 ))
holders=""; left=$n; k=0
while [ "$left" -gt 0 ]; do
  take=$(( left < per ? left : per ))
  ( ulimit -S -n "$hard"; exec python3 "$tmp/holder.py" "$take" "$tmp/ready.$k" ) &
  holders="$holders $!"; left=$((left - take)); k=$((k + 1))
done
for i in $(seq 0 $((k - 1))); do
  for _ in $(seq 600); do [ -s "$tmp/ready.$i" ] && break; sleep 0.1; done
  [ -s "$tmp/ready.$i" ] || { echo "holder $i did not start"; kill $holders; exit 1; }
done
med() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
run() {  # label, command...: median wall seconds and peak RSS of 5 runs
  local label=$1; shift
  for _ in 1 2 3 4 5; do /usr/bin/time -f "%e %M" -o "$tmp/t" "$@" > /dev/null 2>&1 || true; tail -n 1 "$tmp/t"; done > "$tmp/runs"
  printf '  %-32s %6s s %8s KiB\n' "$label" "$(cut -d' ' -f1 < "$tmp/runs" | med)" "$(cut -d' ' -f2 < "$tmp/runs" | med)"
}
echo "$((2 * n + k)) sockets held by $k process(es), $(ls /proc | grep -c '^[0-9]') processes on the host:"
run "sysctune doctor --format json" "$bin" --root / --format json doctor --state-dir "$tmp/state"
run "ss -tanp" ss -tanp
run "ss -tan (no process)" ss -tan
"$bin" --root / --format json doctor --state-dir "$tmp/state" > "$tmp/out.json" || true
python3 -c "
import json, sys
p = json.load(open(sys.argv[1]))['facts']['processes']
pids = [int(x) for x in sys.argv[2].split()]
top = [t for t in p['top'] if t['pid'] in pids]
print('  doctor: %d processes read, %d descriptors; the holders: %s' % (p['read'], p['fds_read'],
      ', '.join('PID %d %d sockets (%d TCP)' % (t['pid'], t['sockets'], t['tcp']) for t in top) or 'not found'))
" "$tmp/out.json" "$holders"
kill $holders; wait 2>/dev/null || true
EOF
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (Debian package time)"; exit 2; }
for n in "${sizes[@]}"; do
  rm -f "$tmp"/ready.*
  timeout 300 unshare -n sh "$tmp/inside.sh" "$n" "$bin" "$tmp"
done
