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

MEMTOTAL_KB=16265236 MEMAVAIL_KB=9000000 COMMITLIMIT_KB=8132616 COMMITTED_KB=3306488 \
  TCP_INUSE=120 TCP_ORPHAN=0 TCP_TW=126 TCP_ALLOC=130 TCP_MEM=60 \
  make doctor-ports kernel.hostname=batch-a net.ipv4.ip_local_port_range="40000 40099" \
  net.ipv4.ip_local_reserved_ports=8080,40090-40099
counters "$here/doctor-ports" 0 0 0 0 0 0 0

MEMTOTAL_KB=16265236 MEMAVAIL_KB=1300000 COMMITLIMIT_KB=517584 COMMITTED_KB=3306488 \
  TCP_INUSE=820000 TCP_ORPHAN=1200 TCP_TW=300 TCP_ALLOC=821000 TCP_MEM=800000 \
  make doctor-memory kernel.hostname=proxy-a net.ipv4.tcp_max_orphans=2048 \
  vm.overcommit_memory=2 fs.file-nr="1560000 0 1620000"
counters "$here/doctor-memory" 4127 88 93120 0 0 0 3
