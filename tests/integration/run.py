"""The integration suite as meson runs it: two passes, so that the suite's wall time is about half
its test time on a 2-core machine without making timing- or resource-sensitive tests share it.

  pass 1  every test not marked `serial`, on RTGW_TEST_WORKERS pytest-xdist workers (default 2;
          whole files per worker, --dist loadfile, so a file's gateways and fake upstreams are
          never shared across processes)
  pass 2  the `serial` tests (conftest.SERIAL_TESTS: RSS, fd and thread figures, floods, timeouts
          measured in seconds, host-wide network set-up), one at a time, nothing beside them

RTGW_PARALLEL_FILES (space-separated test files) narrows pass 1 to those files; pass 2 still runs
every serial test. CI's second build uses it (tests/run-all.sh): the sanitized build has already
run every test, and what the optimized build adds is its resource figures and real clients.

Usage: run.py JUNIT_DIR [pytest args...] [test files...]. Writes JUNIT_DIR/integration-junit.xml and
JUNIT_DIR/integration-serial-junit.xml; exits non-zero when either pass failed. Without
pytest-xdist (or with RTGW_TEST_WORKERS=1) pass 1 runs in this process's pytest, one at a time."""
from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"


def have_xdist() -> bool:
    try:
        import xdist  # noqa: F401
        return True
    except ImportError:
        return False


def main() -> int:
    junit_dir, extra = sys.argv[1], sys.argv[2:]
    os.makedirs(junit_dir, exist_ok=True)
    workers = int(os.environ.get("RTGW_TEST_WORKERS", "2"))
    base = [PYTHON, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-o", "junit_family=xunit2"]
    parallel = base + ["-m", "not serial",
                       "--junitxml=" + os.path.join(junit_dir, "integration-junit.xml")]
    if workers > 1 and have_xdist():
        parallel += ["-n", str(workers), "--dist", "loadfile"]
    serial = base + ["-m", "serial",
                     "--junitxml=" + os.path.join(junit_dir, "integration-serial-junit.xml")]
    status = 0
    # Test files or node ids among the arguments replace the default (every file here).
    paths = [] if any(a.endswith(".py") or "::" in a for a in extra) else [HERE]
    # RTGW_PARALLEL_FILES narrows pass 1 unless test files were named on the command line.
    narrowed = os.environ.get("RTGW_PARALLEL_FILES", "").split()
    parallel_paths = narrowed if paths and narrowed else paths
    for cmd, where in ((parallel, parallel_paths), (serial, paths)):
        rc = subprocess.call(cmd + extra + where, cwd=HERE)
        # 5: nothing collected (e.g. a -k filter that selects only the other pass's tests)
        if rc not in (0, 5):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
