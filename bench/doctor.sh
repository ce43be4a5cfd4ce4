#!/usr/bin/env bash
# Benchmark `sysctune doctor` on a 1 000 000-socket /proc/net/tcp.
#
#   bench/doctor.sh [MIX...]      MIX: realistic (default) and/or distinct; see
#                                 bench/gen-tcp-table.py for what they hold
#   RUNS=5 LINES=1000000 bench/doctor.sh realistic distinct
#
# Builds --release, writes a fixture root in a temporary directory (make-fixture.sh for
# /proc/sys, meminfo and sockstat; gen-tcp-table.py for the tables), runs doctor RUNS
# times per mix and prints the median wall time and the median peak RSS.
# Peak RSS comes from GNU time (`/usr/bin/time`, Debian package `time`); without it, from
# getrusage() of a python3 wrapper (also with TIME_BIN=none): an upper bound, since the
# kernel counts the forked python's own pages before exec. Targets: < 1 s and < 50 MiB.
# A benchmark is this script, never a timed test.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-5}
time_bin=${TIME_BIN:-/usr/bin/time} # TIME_BIN=none: use the python3 fallback
lines=${LINES:-1000000}
mixes=("$@")
[ ${#mixes[@]} -gt 0 ] || mixes=(realistic)

cd "$here"
cargo build --release --quiet
bin="$here/target/release/sysctune"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
MEMTOTAL_KB=16265236 MEMAVAIL_KB=9000000 COMMITLIMIT_KB=8132616 COMMITTED_KB=3306488 \
  TCP_INUSE=600020 TCP_TW=280000 TCP_ALLOC=600100 TCP_MEM=90000 \
  tests/roots/make-fixture.sh "$root" \
  kernel.hostname=bench kernel.osrelease=6.18.0 \
  net.ipv4.ip_local_port_range="32768 60999" net.ipv4.ip_local_reserved_ports= \
  net.ipv4.tcp_mem="381201 508271 762402" net.ipv4.tcp_max_orphans=262144 \
  vm.overcommit_memory=0 fs.file-max=1620000 fs.file-nr="700000 0 1620000"

# One run: prints "SECONDS KIB".
measure() {
  if [ -x "$time_bin" ] && "$time_bin" -f %M true 2>/dev/null; then
    local start end rss code=0
    start=$(date +%s%N)
    "$time_bin" -o "$tmp/time" -f %M "$bin" --root "$root" doctor >/dev/null || code=$?
    end=$(date +%s%N)
    if [ "$code" -ge 2 ]; then echo "doctor failed (exit $code)" >&2; exit 1; fi
    rss=$(tail -n 1 "$tmp/time")
    awk -v ns=$((end - start)) -v rss="$rss" 'BEGIN { printf "%.3f %d\n", ns / 1e9, rss }'
  else
    python3 - "$bin" "$root" <<'PY'
import resource, subprocess, sys, time
t = time.perf_counter()
code = subprocess.run([sys.argv[1], "--root", sys.argv[2], "doctor"], stdout=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t
if code >= 2:
    sys.exit("doctor failed (exit %d)" % code)
print("%.3f %d" % (wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
PY
  fi
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%s\n' "sysctune doctor, $lines socket lines, median of $runs runs ($(nproc) CPUs)"
if ! { [ -x "$time_bin" ] && "$time_bin" -f %M true 2>/dev/null; }; then
  echo "(no GNU time: peak RSS from python3 getrusage, an upper bound; apt-get install time)"
fi
printf '%-10s %10s %8s %10s %12s %10s\n' mix "tcp size" lines "wall (s)" "peak RSS" "targets"
for mix in "${mixes[@]}"; do
  python3 bench/gen-tcp-table.py "$root" --lines "$lines" --mix "$mix"
  size=$(du -m "$root/proc/net/tcp" | cut -f1)
  n=$(wc -l <"$root/proc/net/tcp")
  cat "$root/proc/net/tcp" "$root/proc/net/tcp6" >/dev/null # warm the page cache
  : >"$tmp/runs"
  for _ in $(seq "$runs"); do measure >>"$tmp/runs"; done
  wall=$(cut -d' ' -f1 "$tmp/runs" | median)
  rss=$(cut -d' ' -f2 "$tmp/runs" | median)
  ok=$(awk -v w="$wall" -v r="$rss" 'BEGIN { print (w < 1 && r < 50 * 1024) ? "met" : "MISSED" }')
  printf '%-10s %7s MB %8s %10s %8.1f MiB %10s\n' "$mix" "$size" "$n" "$wall" "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" "$ok"
done
