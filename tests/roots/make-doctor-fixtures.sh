#!/usr/bin/env bash
# Writes the fixture roots of the doctor tests (tests/doctor_cli.rs):
#   doctor-healthy  everything far from its limit (exit 0)
#   doctor-ports    two destinations near port exhaustion (exit 1)
#   doctor-memory   TCP memory over tcp_mem high, orphans at 58%, strict commit over the
#                   limit (the article's figures), MemAvailable 8% without swap, file-nr
#                   at 96% of file-max (exit 1)
# Sockets come from sockets/NAME.txt through bench/gen-tcp-table.py --spec.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
gen="$here/../../bench/gen-tcp-table.py"

common=(kernel.hostname=doctor kernel.osrelease=6.1.0
  net.ipv4.tcp_mem="381201 508271 762402" net.ipv4.tcp_max_orphans=262144
  net.ipv4.ip_local_port_range="32768 60999" net.ipv4.ip_local_reserved_ports=
  vm.overcommit_memory=0 vm.overcommit_ratio=50 vm.overcommit_kbytes=0
  fs.file-max=1620000 fs.file-nr="3456 0 1620000" net.ipv4.tcp_max_tw_buckets=262144
  net.ipv4.tcp_tw_reuse=2 net.ipv4.tcp_timestamps=1)

# /proc/net/netstat and snmp as the kernel writes them (a shortened TcpExt): NAME and the
# values of TCPAbortOnMemory TCPMemoryPressures TCPMemoryPressuresChrono ListenOverflows
# ListenDrops TCPTimeWaitOverflow TCPAbortFailed.
counters() {
  local dir=$1; shift
  printf 'TcpExt: SyncookiesSent TW TCPAbortOnMemory TCPMemoryPressures TCPMemoryPressuresChrono ListenOverflows ListenDrops TCPTimeWaitOverflow TCPAbortFailed\nTcpExt: 0 120 %s %s %s %s %s %s %s\nIpExt: InNoRoutes InOctets\nIpExt: 0 123456\n' "$@" \
    > "$dir/proc/net/netstat"
  printf 'Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens\nTcp: 1 200 120000 -1 4242\n' \
    > "$dir/proc/net/snmp"
}

make() {
  local name=$1; shift
  rm -rf "${here:?}/$name"
  "$here/make-fixture.sh" "$here/$name" "${common[@]}" "$@"
  python3 "$gen" "$here/$name" --spec "$here/sockets/$name.txt"
}

MEMTOTAL_KB=16265236 MEMAVAIL_KB=9000000 COMMITLIMIT_KB=8132616 COMMITTED_KB=3306488 \
  TCP_INUSE=40 TCP_ORPHAN=2 TCP_TW=17 TCP_ALLOC=45 TCP_MEM=30 \
  make doctor-healthy
counters "$here/doctor-healthy" 0 0 0 0 0 0 0

# /proc/PID of a process as the kernel shows it: comm, stat, cmdline, limits (soft and hard
# "Max open files"), and fd/0, fd/1, ... as symlinks to the targets given (socket:[INODE]
# for a socket; the inodes are those bench/gen-tcp-table.py gives the spec's lines, from
# 20001 in order).
process() {
  local root=$1 pid=$2 comm=$3 soft=$4 hard=$5; shift 5
  local dir="$root/proc/$pid" fd=0 target
  mkdir -p "$dir/fd"
  printf '%s\n' "$comm" > "$dir/comm"
  printf '%s (%s) S 1 %s %s 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 18446744073709551615\n' "$pid" "$comm" "$pid" "$pid" > "$dir/stat"
  printf '/usr/bin/%s\0--serve\0' "$comm" > "$dir/cmdline"
  {
    printf '%-26s%-21s%-21s%-10s\n' Limit "Soft Limit" "Hard Limit" Units
    printf '%-26s%-21s%-21s%-10s\n' "Max cpu time" unlimited unlimited seconds "Max file size" unlimited unlimited bytes \
      "Max data size" unlimited unlimited bytes "Max stack size" 8388608 unlimited bytes \
      "Max core file size" 0 unlimited bytes "Max resident set" unlimited unlimited bytes \
      "Max processes" 63354 63354 processes "Max open files" "$soft" "$hard" files \
      "Max locked memory" 8388608 8388608 bytes "Max address space" unlimited unlimited bytes \
      "Max file locks" unlimited unlimited locks "Max pending signals" 63354 63354 signals \
      "Max msgqueue size" 819200 819200 bytes
    printf '%-26s%-21s%-21s\n' "Max nice priority" 0 0 "Max realtime priority" 0 0
    printf '%-26s%-21s%-21s%-10s\n' "Max realtime timeout" unlimited unlimited us
  } > "$dir/limits"
  for target in "$@"; do
    ln -s "$target" "$dir/fd/$fd"
    fd=$((fd + 1))
  done
}
sockets() { local from=$1 to=$2 i; for ((i = from; i <= to; i++)); do printf 'socket:[%d] ' "$i"; done; }

MEMTOTAL_KB=16265236 MEMAVAIL_KB=9000000 COMMITLIMIT_KB=8132616 COMMITTED_KB=3306488 \
  TCP_INUSE=120 TCP_ORPHAN=0 TCP_TW=126 TCP_ALLOC=130 TCP_MEM=60 \
  make doctor-ports kernel.hostname=batch-a net.ipv4.ip_local_port_range="40000 40099" \
  net.ipv4.ip_local_reserved_ports=8080,40090-40099
counters "$here/doctor-ports" 0 0 0 0 0 0 0
# Processes of doctor-ports: sshd on 22; api on 40050 with the connection it accepted;
# fetcher with the 35 connections to 10.0.0.5:8080 and the 2 to 127.0.0.1:9000 (TIME_WAIT
# sockets have no owner), 41 descriptors of a soft NOFILE of 48: 85.4%, a warning; systemd
# with a unix socket (not in /proc/net/tcp).
stdio=(/dev/null /dev/null /dev/null)
# shellcheck disable=SC2046
{
  process "$here/doctor-ports" 1 systemd 1024 524288 "${stdio[@]}" 'socket:[9001]' 'anon_inode:[eventpoll]'
  process "$here/doctor-ports" 640 sshd 1024 524288 "${stdio[@]}" 'socket:[20001]'
  process "$here/doctor-ports" 700 api 65536 65536 "${stdio[@]}" 'socket:[20002]' 'socket:[20003]' 'anon_inode:[eventpoll]'
  process "$here/doctor-ports" 812 fetcher 48 4096 /dev/pts/0 /dev/pts/0 /dev/pts/0 'anon_inode:[eventpoll]' \
    $(sockets 20054 20088) $(sockets 20165 20166)
}

MEMTOTAL_KB=16265236 MEMAVAIL_KB=1300000 COMMITLIMIT_KB=517584 COMMITTED_KB=3306488 \
  TCP_INUSE=820000 TCP_ORPHAN=1200 TCP_TW=300 TCP_ALLOC=821000 TCP_MEM=800000 \
  make doctor-memory kernel.hostname=proxy-a net.ipv4.tcp_max_orphans=2048 \
  vm.overcommit_memory=2 fs.file-nr="1560000 0 1620000"
counters "$here/doctor-memory" 4127 88 93120 0 0 0 3
