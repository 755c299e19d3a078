#!/usr/bin/env bash
# Installs everything, builds, and runs the whole test suite — the README's test command and
# what CI (.ci/run) runs on a clean clone.
#
# Two builds, both with -Werror:
#   build-asan   AddressSanitizer + UndefinedBehaviorSanitizer: every test (unit + integration)
#   build        the optimized build (-O2 -g, the default buildtype) that the README runs:
#                every test again; the benchmarks use its binary
set -euo pipefail
cd "$(dirname "$0")/.."
tests/install-deps.sh --test

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

status=0
for spec in "build-asan -Db_sanitize=address,undefined -Db_lundef=false" "build"; do
  read -r dir opts <<<"$spec"
  [[ -d "$dir" ]] || meson setup "$dir" -Dwerror=true $opts
  ninja -C "$dir"
  meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
done
exit $status
