#!/usr/bin/env bash
# Wall time of the release binary on big inputs: a profile pinning 20 000 keys on a tree
# root (whose drop-in already holds them), and a snapshot listing 100 000 sysctl.d files.
# Both were quadratic once (minutes); tests/scale.rs checks they finish, this prints how
# fast. Usage: bench/scale.sh [RUNS]   (from the repository root; builds --release)
set -euo pipefail
runs=${1:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/sysctune
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 20 000 pins: one proc/sys file linked for every key (faster than 20 000 new files).
cp -a tests/roots/modern "$work/root"
printf '0\n' > "$work/zero"
if command -v perl > /dev/null; then
  perl -e 'for (0 .. 19999) { link $ARGV[0], "$ARGV[1]/sysctune_test_$_" or die "link: $!" }' \
    "$work/zero" "$work/root/proc/sys/kernel"
else
  for i in $(seq 0 19999); do ln "$work/zero" "$work/root/proc/sys/kernel/sysctune_test_$i"; done
fi
{
  printf 'name = "many-pins"\n[sysctl]\n'
  for i in $(seq 0 19999); do printf '"kernel.sysctune_test_%d" = "%d"\n' "$i" "$i"; done
} > "$work/pins.toml"
# Write the drop-in (not the proc/sys files: they are one linked file), so the timed plan
# also looks every key up in it.
"$bin" --root "$work/root" apply --no-live --profile "$work/pins.toml" > /dev/null
"$bin" --root "$work/root" plan --profile "$work/pins.toml" | grep -q '(up to date)' \
  || { echo "bench/scale.sh: the drop-in written is not the planned one" >&2; exit 1; }

# 100 000 sysctl.d files in a snapshot of the modern fixture (which has none of its own).
"$bin" --root tests/roots/modern snapshot > "$work/base.json"
awk '
  /^    "files": \[\],$/ {
    print "    \"files\": ["
    for (i = 0; i < 100000; i++) {
      printf "      {\"path\": \"/etc/sysctl.d/95-%06d.conf\", \"kind\": \"file\", \"content\": \"# file %d\\nvm.swappiness = %d\\n\"}%s\n", i, i, i % 100, (i < 99999 ? "," : "")
    }
    print "    ],"
    next
  }
  { print }
' "$work/base.json" > "$work/big.json"
grep -q '95-099999.conf' "$work/big.json" || { echo "bench/scale.sh: building the snapshot failed" >&2; exit 1; }

# Median of RUNS wall times, in seconds.
time_it() {
  local label=$1; shift
  local times=()
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s.%N)
    "$@" > /dev/null
    end=$(date +%s.%N)
    times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')")
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  printf '%-44s median %6.3f s of %d runs (%s)\n' "$label" "$median" "$runs" "${times[*]}"
}

time_it "plan, 20 000 pins (drop-in holds them)" "$bin" --root "$work/root" plan --profile "$work/pins.toml"
time_it "plan --snapshot, 100 000 sysctl.d files" "$bin" plan --profile web-server --snapshot "$work/big.json"
