#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) and runs each for
# SECONDS on its committed corpus. Prints exactly one line per target on stdout:
#   target NAME execs N crashes M
# and exits non-zero if any target crashed (a sanitizer report, a broken invariant, a timeout or
# running out of memory). Crash inputs are kept in build-fuzz/fuzz-crashes/NAME/ (their paths
# and the fuzzer's log go to stderr). See tests/fuzz/README.md.
#
#   tests/fuzz/run.sh SECONDS [TARGET...]     default: every target
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_MAX_CRASHES (per target, default 5),
# FUZZ_LEAKS=1 (also count reproducible LeakSanitizer reports), FUZZ_NICE (niceness).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

seconds=${1:?usage: tests/fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
((${#targets[@]})) || targets=(sdp multipart call_request event token config websocket beta http_headers json_strict
  json_differential fingerprint websocket_frames key_admin traceparent)
build=${FUZZ_BUILD_DIR:-build-fuzz}
max_crashes=${FUZZ_MAX_CRASHES:-5}

# The build: its output goes to a log, shown only when it fails.
mkdir -p "$build"
log="$build/fuzz-build.log"
{
  if [[ ! -f "$build/build.ninja" ]]; then
    CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true -Dtests=false -Dwerror=true \
      -Db_sanitize=address,undefined -Db_lundef=false
  fi
  ninja -C "$build"
} >"$log" 2>&1 || {
  cat "$log" >&2
  echo "fuzz build failed (log: $log)" >&2
  exit 2
}

# Leak checks are off unless FUZZ_LEAKS=1: LeakSanitizer's per-input check blames inputs for
# json-glib trees that no single input leaks when run again (GLib's global state), which would
# make CI flaky. With FUZZ_LEAKS=1 a leak counts only if its input leaks again on its own.
leaks=${FUZZ_LEAKS:-0}
export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=0:allocator_may_return_null=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export G_SLICE=always-malloc
export G_DEBUG=""

dict_of() {
  case "$1" in
    sdp) echo sdp ;;
    multipart | call_request) echo multipart ;;
    http_headers) echo host ;;
    fingerprint) echo fingerprint ;;
    *) echo json ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  if [[ ! -x "$bin" ]]; then
    echo "no fuzz target $t" >&2
    exit 2
  fi
  seeds="tests/fuzz/corpus/$t"
  work="$build/fuzz-corpus/$t"      # what this machine's runs found (not committed)
  crashes_dir="$build/fuzz-crashes/$t"
  mkdir -p "$work" "$crashes_dir"
  execs=0
  crashes=0
  deadline=$((SECONDS + seconds))
  # After a crash libFuzzer stops: start it again on the remaining time (bounded), so one
  # shallow bug does not hide the rest of the run.
  while :; do
    remaining=$((deadline - SECONDS))
    ((remaining > 0)) || break
    runlog="$crashes_dir/last-run.log"
    nice -n "${FUZZ_NICE:-0}" "$bin" -max_total_time="$remaining" -timeout=10 -rss_limit_mb=2048 \
      -detect_leaks="$leaks" -print_final_stats=1 -dict="tests/fuzz/dict/$(dict_of "$t").dict" \
      -artifact_prefix="$crashes_dir/" "$work" "$seeds" >"$runlog" 2>&1
    rc=$?
    n=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$runlog" | tail -1)
    execs=$((execs + ${n:-0}))
    if ((rc != 0)) && grep -q 'ERROR: LeakSanitizer' "$runlog"; then
      # LeakSanitizer sometimes blames an input for memory GLib and json-glib keep in global
      # state between inputs; a leak counts only if its input leaks again when run on its own.
      leak=$(sed -n "s/.*Test unit written to \(.*leak-[0-9a-f]*\).*/\1/p" "$runlog" | tail -1)
      if [[ -n "$leak" ]] && "$bin" -runs=3 "$leak" >"$runlog.recheck" 2>&1; then
        echo "== fuzz target $t: leak report not reproducible alone, not counted ($leak)" >&2
        mv "$leak" "$leak.unreproduced"
        continue
      fi
    fi
    if ((rc != 0)); then
      crashes=$((crashes + 1))
      status=1
      saved="$crashes_dir/log-$crashes-$(date +%s).txt"
      cp "$runlog" "$saved"
      {
        echo "== fuzz target $t crashed (exit $rc); log: $saved"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz invariant|.*runtime error|Test unit written|artifact_prefix|ALARM|==[0-9]+== ERROR)' "$runlog" | head -20
      } >&2
      ((crashes < max_crashes)) || break
    else
      break
    fi
  done
  echo "target $t execs $execs crashes $crashes"
done
exit $status
