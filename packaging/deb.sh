#!/usr/bin/env bash
# Builds dist/sysctune_VERSION_ARCH.deb from a staged tree with dpkg-deb --build: the
# binary, the man page (`sysctune man`), bash/zsh/fish completions in their system
# directories and the README. dpkg-deb rather than cargo-deb: `cargo install cargo-deb`
# compiles for minutes on every fresh CI clone, and the package is a handful of files.
# Usage: packaging/deb.sh [path/to/sysctune]   (default: target/release/sysctune)
#        packaging/deb.sh --check dist/sysctune_*.deb   (extract into a temp dir and run it)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = "--check" ]; then
  deb=$(realpath "${2:?usage: deb.sh --check FILE.deb}")
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  fail() { echo "deb check FAILED: $*"; exit 1; }
  dpkg-deb --info "$deb" | grep -q 'Package: sysctune' || fail "no Package field"
  dpkg-deb -x "$deb" "$tmp/root"
  for f in usr/bin/sysctune usr/share/man/man8/sysctune.8.gz \
           usr/share/bash-completion/completions/sysctune usr/share/zsh/vendor-completions/_sysctune \
           usr/share/fish/vendor_completions.d/sysctune.fish usr/share/doc/sysctune/README.md \
           usr/share/doc/sysctune/copyright; do
    [ -s "$tmp/root/$f" ] || fail "missing $f"
  done
  "$tmp/root/usr/bin/sysctune" --version | grep -q "^sysctune " || fail "the installed binary does not run"
  "$tmp/root/usr/bin/sysctune" --root "$repo/tests/roots/article-batch" plan --profile batch-client --format json \
    | grep -q '"schema": "sysctune/plan/v1"' || fail "the installed binary does not plan"
  zcat "$tmp/root/usr/share/man/man8/sysctune.8.gz" | grep -q '^\.TH' || fail "man page is not roff"
  bash -n "$tmp/root/usr/share/bash-completion/completions/sysctune" || fail "bash completion does not parse"
  echo "deb: $(basename "$deb") has the binary, man page, completions and README; the binary runs"
  exit 0
fi

bin=$(realpath "${1:-$repo/target/release/sysctune}")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
st="$tmp/sysctune_${version}_$arch"
install -D -m 0755 "$bin" "$st/usr/bin/sysctune"
mkdir -p "$st/usr/share/man/man8"
"$bin" man | gzip -9n > "$st/usr/share/man/man8/sysctune.8.gz"
install -d "$st/usr/share/bash-completion/completions" "$st/usr/share/zsh/vendor-completions" "$st/usr/share/fish/vendor_completions.d"
"$bin" completions bash > "$st/usr/share/bash-completion/completions/sysctune"
"$bin" completions zsh > "$st/usr/share/zsh/vendor-completions/_sysctune"
"$bin" completions fish > "$st/usr/share/fish/vendor_completions.d/sysctune.fish"
install -D -m 0644 "$repo/README.md" "$st/usr/share/doc/sysctune/README.md"
printf 'sysctune %s\nSee README.md for the project and its terms.\n' "$version" > "$st/usr/share/doc/sysctune/copyright"
mkdir -p "$st/DEBIAN"
cat > "$st/DEBIAN/control" <<CONTROL
Package: sysctune
Version: $version
Architecture: $arch
Maintainer: sysctune maintainers <maintainers@users.noreply.example>
Section: admin
Priority: optional
Installed-Size: $(du -sk "$st/usr" | cut -f1)
Depends: libc6
Description: Linux sysctl tuning advisor and applier
 Sizes tcp_mem, buffers, port range, overcommit and fd limits from a workload
 profile, explains every number, and applies them all or nothing with rollback.
CONTROL
mkdir -p "$repo/dist"
dpkg-deb --root-owner-group --build "$st" "$repo/dist/" >/dev/null
echo "$repo/dist/sysctune_${version}_$arch.deb"
