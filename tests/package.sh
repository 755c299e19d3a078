#!/usr/bin/env bash
# Builds the Debian package realtime-gateway_<version>_<arch>.deb from this tree with Debian's own
# tools (dpkg-buildpackage -b -us -uc, debhelper with meson), then runs lintian on it.
#   tests/package.sh [OUT_DIR]      (default: build-deb/)
# The build runs in a copy of the tree's files (tracked and untracked, not ignored) under
# OUT_DIR/src, so the source tree gains no debian/ build products and dpkg-buildpackage writes
# its results into OUT_DIR/src instead of the tree's parent folder. Prints the .deb's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$(realpath -m "${1:-build-deb}")
tests/install-deps.sh --package

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
work="$out/src/realtime-gateway-$version"
rm -rf "$out/src"
mkdir -p "$work"
git -C "$root" ls-files -z --cached --others --exclude-standard |
  (cd "$root" && tar --null -T - -cf -) | tar -xf - -C "$work"
(cd "$work" && dpkg-buildpackage -b -us -uc -j"$(nproc)") >"$out/build.log" 2>&1 || {
  tail -n 60 "$out/build.log"
  echo "package.sh: dpkg-buildpackage failed (log: $out/build.log)" >&2
  exit 1
}
arch=$(dpkg --print-architecture)
deb="$out/realtime-gateway_${version}_${arch}.deb"
mv -f "$out/src/realtime-gateway_${version}_${arch}.deb" "$deb"
mv -f "$out/src/"*.buildinfo "$out/src/"*.changes "$out/" 2>/dev/null || true
# lintian fails the build on any error or warning (there are no overrides: fix what it finds).
lintian --fail-on error,warning "$deb" 2>/dev/null | tee "$out/lintian.txt"
echo "$deb"
