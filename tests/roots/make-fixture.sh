#!/usr/bin/env bash
# Writes a fixture root: tests/roots/make-fixture.sh DIR KEY=VALUE... (keys dotted)
# plus meminfo and sockstat from the environment (MEMTOTAL_KB etc.). Used once to create
# the committed fixtures; kept so a new scenario is one command.
set -euo pipefail
dir=$1; shift
mkdir -p "$dir/proc/sys" "$dir/proc/net"
for kv in "$@"; do
  key=${kv%%=*}; value=${kv#*=}
  path="$dir/proc/sys/$(printf '%s' "$key" | tr . /)"
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$value" | sed 's/ /\t/g' > "$path"
done
cat > "$dir/proc/meminfo" <<M
MemTotal:       ${MEMTOTAL_KB} kB
MemFree:        ${MEMFREE_KB:-1000000} kB
MemAvailable:   ${MEMAVAIL_KB:-2000000} kB
Buffers:          102400 kB
Cached:          2048000 kB
SwapCached:            0 kB
SwapTotal:      ${SWAP_KB:-0} kB
SwapFree:       ${SWAP_KB:-0} kB
HugePages_Total:       0
Hugepagesize:       2048 kB
Hugetlb:        ${HUGETLB_KB:-0} kB
CommitLimit:    ${COMMITLIMIT_KB} kB
Committed_AS:   ${COMMITTED_KB} kB
M
printf 'sockets: used %s\nTCP: inuse %s orphan %s tw %s alloc %s mem %s\nUDP: inuse 3 mem 2\n' \
  "${SOCK_USED:-300}" "${TCP_INUSE:-120}" "${TCP_ORPHAN:-0}" "${TCP_TW:-40}" "${TCP_ALLOC:-130}" "${TCP_MEM:-50}" \
  > "$dir/proc/net/sockstat"
