#!/usr/bin/env bash
# Installs everything, builds, and runs the whole test suite — the README's test command and
# what CI (.ci/run) runs on a clean clone.
#
# Two builds, both with -Werror:
#   build-asan   AddressSanitizer + UndefinedBehaviorSanitizer: every test (unit + integration)
#   build        the optimized build (-O2 -g, the default buildtype) that the README runs and the
#                benchmarks use: unit tests, every serial integration test (RSS, fd and thread
#                figures mean most here) and the real-client files (RTGW_PARALLEL_FILES below).
#                `meson test -C build` by hand still runs everything.
# Then the libFuzzer targets, 20 s each (tests/fuzz/run.sh; clang, build-fuzz): a crash fails.
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
  if [[ "$dir" == build ]]; then
    export RTGW_PARALLEL_FILES="test_interop.py test_audio_relay.py test_calls.py test_peers_selfcheck.py"
  fi
  meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
done

# One line per fuzz target: "target NAME execs N crashes M" (counted in the summary below).
mkdir -p build-fuzz
tests/fuzz/run.sh 20 | tee build-fuzz/fuzz-results.txt || status=1

# One closing line over both builds: GoogleTest cases and pytest cases, from their reports, and
# one case per fuzz target (passed when it did not crash).
/usr/bin/python3 - <<'PY'
import glob, json, xml.etree.ElementTree as ET
passed = failed = 0
for log in glob.glob("build*/meson-logs/testlog.json"):
    for line in open(log):
        t = json.loads(line)
        if t.get("name", "").split(" / ")[-1] == "integration":
            continue  # counted case by case from its JUnit report below
        if t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
            passed += 1
        else:
            failed += 1
for report in glob.glob("build*/tests/integration*-junit.xml"):
    for case in ET.parse(report).iter("testcase"):
        bad = [c for c in case if c.tag in ("failure", "error")]
        failed += bool(bad)
        passed += not bad and not [c for c in case if c.tag == "skipped"]
try:
    for line in open("build-fuzz/fuzz-results.txt"):
        f = line.split()
        if len(f) == 6 and f[0] == "target":
            passed += f[5] == "0"
            failed += f[5] != "0"
except FileNotFoundError:
    failed += 1  # the fuzz build did not run
print(f"summary: {passed} passed, {failed} failed")
PY
exit $status
