#!/usr/bin/python3
"""Scheduling cost of each thread hop in a running gateway (issue 28, the event path's hops).

Run beside `load_bench.py` (inside the same `flock`, as a second command, or while it runs): it
waits for a gateway process whose executable is `--exe` (and, with `--env NAME=VALUE`, whose
environment holds that, e.g. one load_bench variant of the same binary) to reach `--threads`
threads (the calls are up), records `perf sched` on it for `--seconds`, and prints, per thread
kind (digits folded: `sctpenc3:src` and `sctpenc7:src` are one kind), how often such threads were
switched in, their average and worst wake-up delay (runnable to running: what a hand-off to that
thread waits, beyond the work), and their run time.

    flock /tmp/bench.lock sh -c 'load_bench.py ... & sleep 5; sched_hops.py --exe $PWD/build/src/realtime-gateway; wait'
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict


def find_pid(exe: str, env: str | None, without: str | None, threads: int,
             timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/exe") != exe:
                    continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
                if env and env.encode() not in environ:
                    continue
                if without and [e for e in environ if e.startswith(without.encode() + b"=")]:
                    continue
                if len(os.listdir(f"/proc/{pid}/task")) >= threads:
                    return int(pid)
            except OSError:
                continue
        time.sleep(0.2)
    return None


# `name:tid`, or `name:(count)` for threads perf folds by name; a thread without a name is
# another process's, woken by ours: left out.
LINE = re.compile(r"^\s*(?P<name>[^|]+?):(?P<tid>\d+|\(\d+\))\s*\|\s*(?P<run>[\d.]+) ms\s*\|\s*(?P<sw>\d+)\s*\|"
                  r"\s*avg:\s*(?P<avg>[\d.]+) ms\s*\|\s*max:\s*(?P<max>[\d.]+) ms")


def kind(name: str) -> str:
    return re.sub(r"\d+", "N", name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exe", required=True, help="absolute path of the gateway binary")
    ap.add_argument("--env", help="NAME=VALUE the process's environment must hold")
    ap.add_argument("--without-env", metavar="NAME", help="a variable it must not have")
    ap.add_argument("--threads", type=int, default=100, help="wait for this many threads")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=600.0, help="bound on the wait")
    ap.add_argument("--settle", type=float, default=10.0, help="after the threads appear")
    ap.add_argument("--out", default="/tmp/sched_hops.data")
    ap.add_argument("--report", metavar="DATA", help="only summarise an existing perf.data")
    args = ap.parse_args()
    if args.report:
        print(summary(args.report, args.seconds, 0))
        return 0
    pid = find_pid(os.path.realpath(args.exe), args.env, args.without_env, args.threads, args.timeout)
    if not pid:
        print("no such gateway process", file=sys.stderr)
        return 1
    time.sleep(args.settle)
    subprocess.run(["perf", "sched", "record", "-o", args.out, "-p", str(pid), "--", "sleep",
                    str(args.seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=args.seconds + 60, check=False)
    print(summary(args.out, args.seconds, pid))
    return 0


def summary(data: str, seconds: float, pid: int) -> str:
    out = subprocess.run(["perf", "sched", "latency", "-i", data], capture_output=True,
                         text=True, timeout=120, check=False).stdout
    agg = defaultdict(lambda: {"threads": 0, "switches": 0, "run": 0.0, "delay": 0.0, "max": 0.0})
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name = m["name"].strip()
        if not name or name.startswith(":"):
            continue
        a = agg[kind(name)]
        sw = int(m["sw"])
        a["threads"] += int(m["tid"].strip("()")) if m["tid"].startswith("(") else 1
        a["switches"] += sw
        a["run"] += float(m["run"])
        a["delay"] += float(m["avg"]) * sw
        a["max"] = max(a["max"], float(m["max"]))
    lines = [f"pid {pid}, {seconds:.0f} s of perf sched",
             "| thread kind | threads | switches/s | avg wake-up delay ms | max ms | run ms/s |",
             "|---|---|---|---|---|---|"]
    for name, a in sorted(agg.items(), key=lambda kv: -kv[1]["switches"]):
        avg = a["delay"] / a["switches"] if a["switches"] else 0.0
        lines.append(f"| {name} | {a['threads']} | {a['switches'] / seconds:.0f} | {avg:.3f} | "
                     f"{a['max']:.2f} | {a['run'] / seconds:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
