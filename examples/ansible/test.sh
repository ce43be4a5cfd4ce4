#!/usr/bin/env bash
# Runs the playbook for real against localhost (connection: local) with --root pointed at
# a copy of a fixture host: --check --diff changes nothing and shows the diff, the first
# apply reports changed=1, the second changed=0. Installs ansible-core with pip into a
# temporary virtual environment. Usage: examples/ansible/test.sh path/to/sysctune
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$(realpath "${1:?usage: test.sh path/to/sysctune}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check ansible-core
cp -r "$repo/tests/roots/article-batch" "$tmp/root"
cat > "$tmp/inventory" <<INV
localhost ansible_connection=local ansible_python_interpreter=$tmp/venv/bin/python
INV
export ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
play() { "$tmp/venv/bin/ansible-playbook" -i "$tmp/inventory" "$here/playbook.yml" \
  -e "sysctune_bin=$bin" -e "sysctune_root=$tmp/root" -e sysctune_profile=batch-client "$@"; }
recap() { grep -E '^localhost +:' "$1" | grep -oE 'changed=[0-9]+'; }
fail() { echo "ansible test FAILED: $*"; exit 1; }

snapshot() { (cd "$tmp/root" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
snapshot > "$tmp/before"
play --check --diff > "$tmp/check.log" || { cat "$tmp/check.log"; fail "check run"; }
[ "$(recap "$tmp/check.log")" = "changed=1" ] || { cat "$tmp/check.log"; fail "check run should predict changed=1"; }
grep -q '+net.ipv4.ip_local_port_range = 32768 65535' "$tmp/check.log" || { cat "$tmp/check.log"; fail "check run shows no diff"; }
snapshot | diff -q - "$tmp/before" >/dev/null || fail "--check changed the tree"

play > "$tmp/first.log" || { cat "$tmp/first.log"; fail "first run"; }
[ "$(recap "$tmp/first.log")" = "changed=1" ] || { cat "$tmp/first.log"; fail "first run should be changed=1"; }
grep -q 'net.ipv4.ip_local_port_range' "$tmp/first.log" || fail "first run does not report the changed keys"
[ "$(tr '\t' ' ' < "$tmp/root/proc/sys/net/ipv4/ip_local_port_range")" = "32768 65535" ] || fail "value not applied"

play > "$tmp/second.log" || { cat "$tmp/second.log"; fail "second run"; }
[ "$(recap "$tmp/second.log")" = "changed=0" ] || { cat "$tmp/second.log"; fail "second run should be changed=0"; }

play --check --diff > "$tmp/check2.log" || fail "second check run"
[ "$(recap "$tmp/check2.log")" = "changed=0" ] || { cat "$tmp/check2.log"; fail "converged check run should be changed=0"; }
echo "ansible: check predicts changed=1 with the diff and writes nothing; apply changed=1, then changed=0"
echo "4 passed, 0 failed"
