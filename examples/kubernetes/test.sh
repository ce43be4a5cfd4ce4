#!/usr/bin/env bash
# `sysctune plan --format kubernetes` validated for real: kubernetes-validate (PyPI, in a
# temporary virtualenv, strict: no unknown fields) on the YAML of fixture hosts, for the
# Kubernetes version each output claims ("Kubernetes 1.32 or later"; 1.25 when it claims
# older, the oldest schema kubernetes-validate ships) and for the newest it knows.
# Usage: examples/kubernetes/test.sh path/to/sysctune
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(realpath "${1:?usage: test.sh path/to/sysctune}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "kubernetes test FAILED: $*"; exit 1; }

python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate
newest=$("$tmp/venv/bin/kubernetes-validate" --help | grep -oE 'Defaults to [0-9.]+' | grep -oE '[0-9.]+$')
passed=0
for case in "article-batch web-server" "article-proxy reverse-proxy" "modern $repo/tests/profiles/netns.toml" "modern database"; do
  read -r root profile <<< "$case"
  out="$tmp/$root-$(basename "$profile" .toml).yaml"
  "$bin" --root "$repo/tests/roots/$root" plan --profile "$profile" --format kubernetes --image registry.example/sysctune:test > "$out"
  claimed=$(grep -oE 'Kubernetes [0-9]+\.[0-9]+ or later' "$out" | head -1 | grep -oE '[0-9]+\.[0-9]+' || echo 1.25)
  [ "$(printf '%s\n' "$claimed" 1.25 | sort -V | head -1)" = "$claimed" ] && claimed=1.25
  for v in "$claimed.0" "$newest"; do
    "$tmp/venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$out" || { cat "$out"; fail "$root $profile against $v"; }
  done
  grep -q 'kind: ' "$out" || fail "$root $profile: no manifest"
  passed=$((passed + 1))
  echo "ok: $root $(basename "$profile"): valid for Kubernetes $claimed and $newest"
done
echo "$passed passed, 0 failed"
