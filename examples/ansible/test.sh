#!/usr/bin/env bash
# The sysctune.sysctune collection for real, with ansible-core from PyPI in a temporary
# virtual environment (no Docker):
#   1. `ansible-test sanity --local` on the collection: every test that runs offline (the
#      ones needing their own pip-installed virtualenv fetch pip's bootstrap script from
#      ci-files.testing.ansible.com, unreachable from CI: see SKIP below), and ansible-doc
#      on each module (its DOCUMENTATION, EXAMPLES and RETURN parse);
#   2. `ansible-galaxy collection build`, then install of the built tarball;
#   3. examples/ansible/playbook.yml against localhost (connection: local) with root:
#      pointed at a copy of a fixture host: --check --diff predicts changed=1, prints the
#      drop-in's unified diff through Ansible's diff callback and writes nothing; the first
#      apply is changed=1, the second changed=0; a bad profile fails the task with
#      sysctune's message.
# Usage: examples/ansible/test.sh path/to/sysctune
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$(realpath "${1:?usage: test.sh path/to/sysctune}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "ansible test FAILED: $*"; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }

python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check ansible-core
export PATH="$tmp/venv/bin:$PATH"

# 1. Sanity, on a copy: ansible-test wants the ansible_collections/NS/NAME layout as its
# working directory and writes tests/output there.
coll="$tmp/src/ansible_collections/sysctune/sysctune"
mkdir -p "$(dirname "$coll")"
cp -r "$repo/ansible/ansible_collections/sysctune/sysctune" "$coll"
SKIP=(ansible-doc import pep8 pylint runtime-metadata validate-modules yamllint)
skips=(); for t in "${SKIP[@]}"; do skips+=(--skip-test "$t"); done
pyver=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
(cd "$coll" && HOME="$tmp/home" ansible-test sanity --local --python "$pyver" "${skips[@]}" > "$tmp/sanity.log" 2>&1) \
  || { cat "$tmp/sanity.log"; fail "ansible-test sanity"; }
ok "ansible-test sanity --local ($(grep -c '^Running sanity test' "$tmp/sanity.log") tests; skipped: ${SKIP[*]})"

# 2. Build and install the collection the way a user does.
ansible-galaxy collection build "$coll" --output-path "$tmp/dist" > /dev/null
export ANSIBLE_COLLECTIONS_PATH="$tmp/collections"
ansible-galaxy collection install "$tmp"/dist/sysctune-sysctune-*.tar.gz -p "$tmp/collections" > /dev/null
for m in sysctune sysctune_info; do
  ansible-doc -t module "sysctune.sysctune.$m" > "$tmp/doc-$m.txt" 2>&1 || { cat "$tmp/doc-$m.txt"; fail "ansible-doc $m"; }
  grep -q 'RETURN VALUES' "$tmp/doc-$m.txt" || fail "ansible-doc $m shows no RETURN"
done
ok "ansible-galaxy collection build + install; ansible-doc of both modules"

# 3. The playbook, for real, on a fixture tree.
cp -r "$repo/tests/roots/article-batch" "$tmp/root"
cat > "$tmp/inventory" <<INV
localhost ansible_connection=local ansible_python_interpreter=$tmp/venv/bin/python
INV
export ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
play() { ansible-playbook -i "$tmp/inventory" "$@" -e "sysctune_bin=$bin" -e "sysctune_root=$tmp/root"; }
recap() { grep -E '^localhost +:' "$1" | grep -oE 'changed=[0-9]+'; }
snapshot() { (cd "$tmp/root" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

snapshot > "$tmp/before"
play "$here/playbook.yml" --check --diff > "$tmp/check.log" || { cat "$tmp/check.log"; fail "check run"; }
[ -z "${SHOW_LOG:-}" ] || cat "$tmp/check.log"
[ "$(recap "$tmp/check.log")" = "changed=1" ] || { cat "$tmp/check.log"; fail "check run should predict changed=1"; }
# Ansible's own diff callback: the drop-in (absent before) and the live values.
grep -q -- '--- before: /etc/sysctl.d/90-sysctune.conf' "$tmp/check.log" || { cat "$tmp/check.log"; fail "no drop-in diff header"; }
grep -q '^+net.ipv4.ip_local_port_range = 32768 65535' "$tmp/check.log" || { cat "$tmp/check.log"; fail "check run shows no drop-in diff"; }
grep -q '^-vm.swappiness = 60' "$tmp/check.log" || { cat "$tmp/check.log"; fail "check run shows no live diff"; }
snapshot | diff -q - "$tmp/before" >/dev/null || fail "--check changed the tree"
ok "--check --diff: changed=1, the drop-in's and the live values' diffs, nothing written"

play "$here/playbook.yml" --diff > "$tmp/first.log" || { cat "$tmp/first.log"; fail "first run"; }
[ "$(recap "$tmp/first.log")" = "changed=1" ] || { cat "$tmp/first.log"; fail "first run should be changed=1"; }
grep -q '^+vm.swappiness = 10' "$tmp/first.log" || { cat "$tmp/first.log"; fail "first run shows no diff"; }
[ "$(tr '\t' ' ' < "$tmp/root/proc/sys/net/ipv4/ip_local_port_range")" = "32768 65535" ] || fail "value not applied"
grep -q '^net.ipv4.ip_local_port_range = 32768 65535' "$tmp/root/etc/sysctl.d/90-sysctune.conf" || fail "drop-in not written"
ok "apply: changed=1, the values and the drop-in written, status in sync"

play "$here/playbook.yml" > "$tmp/second.log" || { cat "$tmp/second.log"; fail "second run"; }
[ "$(recap "$tmp/second.log")" = "changed=0" ] || { cat "$tmp/second.log"; fail "second run should be changed=0"; }
play "$here/playbook.yml" --check --diff > "$tmp/check2.log" || fail "second check run"
[ "$(recap "$tmp/check2.log")" = "changed=0" ] || { cat "$tmp/check2.log"; fail "converged check run should be changed=0"; }
ok "converged: apply and --check both changed=0"

if play "$here/bad-profile.yml" > "$tmp/bad.log"; then cat "$tmp/bad.log"; fail "a bad profile should fail the play"; fi
grep -q 'unknown profile \\"no-such-profile\\"' "$tmp/bad.log" || { cat "$tmp/bad.log"; fail "the failure does not carry sysctune's message"; }
grep -qE '^localhost +:.*failed=1' "$tmp/bad.log" || { cat "$tmp/bad.log"; fail "bad profile: failed=1 expected"; }
ok "a bad profile fails the task with sysctune's message"

echo "$passed passed, 0 failed"
