#!/usr/bin/env bash
# Live doctor on real sockets: netlink (the default on --root /) against `ss` with the same
# kernel filter and against the /proc/net/tcp path, on 20 000 to 120 000 loopback sockets
# made in a private network namespace, half of them inbound.
#
#   bench/sockets.sh                      # 20000 60000 120000 sockets, 7 runs each
#   RUNS=11 bench/sockets.sh 40000 120000
#
# Builds --release, then re-runs itself under `unshare -m -n` (root): a new network
# namespace (loopback only; ip_local_port_range is the namespace's own, 32768 60999) and a
# private mount namespace with a tmpfs over /run/lock and /var/lib, so nothing is left on
# the machine. There bench/make-sockets.py holds SOCKETS/2 connections to listeners on
# 127.0.0.1:5001 and up, both ends held (by worker processes within the open-file hard
# limit; the soft limit is raised to it for them only): the client ends hold ports of the
# range (outbound), the accepted ends sit on the listeners' ports (inbound, which the
# kernel's filter leaves out). Then, in turn, RUNS times after one warm-up:
#   ss              ss -tan '( sport >= :32768 and sport <= :60999 )' > /dev/null
#   doctor netlink  sysctune --root / doctor --sockets netlink > /dev/null
#   doctor proc     sysctune --root / doctor --sockets proc > /dev/null
# and prints each one's wall time (min / median / max, seconds) and median peak RSS (GNU
# time, package `time`), and the median of the per-round ratios. Targets: doctor netlink
# within 1.2x of ss, at least 2x faster than doctor proc. The machine is shared: read the
# medians and ratios, and the spread. A benchmark is this script, never a timed test.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-7}
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(20000 60000 120000)

if [ "${SYSCTUNE_BENCH_INSIDE:-}" != 1 ]; then
  cd "$here"
  cargo build --release --quiet
  echo "doctor on live sockets: $runs runs after 1 warm-up, $(nproc) CPUs ($(uname -r)), a new namespace per count"
  /usr/bin/time -f %M true 2> /dev/null || echo "(no GNU time: peak RSS not measured; apt-get install time)"
  printf '%8s %-15s %7s %7s %7s %9s\n' sockets command "min s" "med s" "max s" "RSS MiB"
  for count in "${counts[@]}"; do
    SYSCTUNE_BENCH_INSIDE=1 RUNS="$runs" unshare -m -n bash "$0" "$count"
  done
  exit
fi

# Inside the namespaces from here on.
if [ "$(readlink /proc/self/ns/net)" = "$(readlink /proc/1/ns/net)" ]; then
  echo "refusing to run: not in a new network namespace" >&2
  exit 1
fi
mount -t tmpfs sysctune-bench /run/lock
mount -t tmpfs sysctune-bench /var/lib
ip link set lo up
bin="$here/target/release/sysctune"
read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range
time_bin=/usr/bin/time
[ -x "$time_bin" ] && "$time_bin" -f %M true 2> /dev/null || time_bin=

tmp=$(mktemp -d)
holder=
cleanup() {
  if [ -n "$holder" ]; then kill "$holder" 2> /dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# One run of command $2.. : appends "NANOSECONDS KIB" to file $1. Exit 1 is doctor's
# "a warning was found"; 2 and up is a failure.
measure() {
  local file=$1 start end rss=0 code=0
  shift
  start=$(date +%s%N)
  if [ -n "$time_bin" ]; then
    "$time_bin" -o "$tmp/rss" -f %M "$@" > /dev/null || code=$?
    rss=$(tail -n 1 "$tmp/rss")
  else
    "$@" > /dev/null || code=$?
  fi
  end=$(date +%s%N)
  [ "$code" -lt 2 ] || { echo "$* failed (exit $code)" >&2; exit 1; }
  echo "$(( end - start )) $rss" >> "$file"
}

summary() { # file -> "min median max" in seconds, and the median RSS in MiB
  python3 - "$1" << 'PY'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
t = sorted(r[0] / 1e9 for r in rows)
rss = statistics.median(r[1] for r in rows) / 1024
print("%7.3f %7.3f %7.3f %9.1f" % (t[0], statistics.median(t), t[-1], rss))
PY
}

ratio() { # per-round ratio a/b: "min median max"
  python3 - "$1" "$2" << 'PY'
import statistics, sys
a = [int(l.split()[0]) for l in open(sys.argv[1])]
b = [int(l.split()[0]) for l in open(sys.argv[2])]
r = sorted(x / y for x, y in zip(a, b))
print("%.2f %.2f %.2f" % (r[0], statistics.median(r), r[-1]))
PY
}

for count in "${counts[@]}"; do
  conns=$(( count / 2 ))
  rm -f "$tmp/ready"
  python3 "$here/bench/make-sockets.py" "$conns" "$tmp/ready" &
  holder=$!
  for _ in $(seq 1200); do
    [ -s "$tmp/ready" ] && break
    kill -0 "$holder" 2> /dev/null || { echo "make-sockets.py failed" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$tmp/ready" ] || { echo "make-sockets.py: not ready in 120 s" >&2; exit 1; }
  inuse=$(awk '/^TCP:/ { print $3 }' /proc/net/sockstat)
  in_range=$(ss -tanH "( sport >= :$lo and sport <= :$hi )" | wc -l)

  ss_cmd=(ss -tan "( sport >= :$lo and sport <= :$hi )")
  nl_cmd=("$bin" --root / doctor --sockets netlink)
  proc_cmd=("$bin" --root / doctor --sockets proc)
  : > "$tmp/ss"; : > "$tmp/nl"; : > "$tmp/proc"
  measure "$tmp/warm" "${ss_cmd[@]}"
  measure "$tmp/warm" "${nl_cmd[@]}"
  measure "$tmp/warm" "${proc_cmd[@]}"
  for _ in $(seq "$runs"); do
    measure "$tmp/ss" "${ss_cmd[@]}"
    measure "$tmp/nl" "${nl_cmd[@]}"
    measure "$tmp/proc" "${proc_cmd[@]}"
  done
  printf '%8s %-15s %s\n' "$count" "ss" "$(summary "$tmp/ss")"
  printf '%8s %-15s %s\n' "" "doctor netlink" "$(summary "$tmp/nl")"
  printf '%8s %-15s %s\n' "" "doctor proc" "$(summary "$tmp/proc")"
  read -r _ nl_ss _ <<< "$(ratio "$tmp/nl" "$tmp/ss")"
  read -r _ proc_nl _ <<< "$(ratio "$tmp/proc" "$tmp/nl")"
  verdict=$(awk -v a="$nl_ss" -v b="$proc_nl" 'BEGIN { print (a <= 1.2 && b >= 2) ? "met" : "MISSED" }')
  printf '%8s sockstat inuse %s, %s in the range %s-%s; median per-round ratio: netlink/ss %s (target <= 1.2), proc/netlink %s (target >= 2): %s\n' \
    "" "$inuse" "$in_range" "$lo" "$hi" "$nl_ss" "$proc_nl" "$verdict"
  kill "$holder"
  wait "$holder" 2> /dev/null || true
  holder=
done
