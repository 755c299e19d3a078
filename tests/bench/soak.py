#!/usr/bin/python3
"""Soak: many calls through the built-in echo worker; does anything grow?

Runs (1) --sequential calls (default 1000) one after another, then (2) --concurrent-calls
(default 100) through --callers (default 10) concurrent callers. Each call: offer, answer, data
channel, one turn (response.create -> response.done, metered), close. Before, between and after
the phases (each after --settle seconds) it prints the gateway's open fds, threads and RSS (from
/proc) and glibc's view of its heap (`rtgw_malloc_heap_bytes` in /metrics: mallinfo2).

    /usr/bin/python3 tests/bench/soak.py [--sequential 1000] [--concurrent-calls 100]
        [--callers 10] [--settle 5] [--json FILE] [--keep]

Takes about 10-15 min on a 2-core machine with the defaults (aiortc in-process is the client;
most of the time is its own set-up and DTLS).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time

import benchlib as bl
from peers.common import http_request
from peers.turn_calls import run_calls


def heap(url: str) -> dict:
    text = http_request("GET", url + "/metrics").body
    out = {}
    for kind, value in re.findall(r'^rtgw_malloc_heap_bytes\{kind="([a-z_]+)"\} ([0-9.e+]+)$',
                                  text, re.M):
        out[kind] = int(float(value))
    return out


def sample(gw: bl.Gateway, settle: float) -> dict:
    time.sleep(settle)
    pid = gw.pid
    h = heap(gw.url)
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": bl.proc_threads(pid),
            "rss_kib": bl.proc_rss_kib(pid), "heap_in_use_kib": h.get("in_use", 0) // 1024,
            "heap_free_kib": h.get("free", 0) // 1024, "heap_arena_kib": h.get("arena", 0) // 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequential", type=int, default=1000)
    ap.add_argument("--concurrent-calls", type=int, default=100)
    ap.add_argument("--callers", type=int, default=10)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="rtgw-soak-")
    print(f"workdir: {workdir}")
    config = {"auth": {"keys": [{"name": "bench", "key": bl.GATEWAY_KEY, "models": ["*"]}]},
              "models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
              "usage": {"log": os.path.join(workdir, "usage.jsonl")}}
    rows, results = [], {}
    with bl.Processes() as procs:
        gw = bl.start_gateway(procs, workdir, config)

        def progress(done: int) -> None:
            if done % 100 == 0:
                print(f"  {done} calls", flush=True)

        # one warm-up call: pools that live as long as the process start here
        asyncio.run(run_calls(gw.url, bl.GATEWAY_KEY, "echo", 1))
        snapshots = [("before", sample(gw, args.settle))]
        for name, calls, callers in (("sequential", args.sequential, 1),
                                     ("concurrent", args.concurrent_calls, args.callers)):
            if calls <= 0:
                continue
            print(f"{name}: {calls} calls through {callers} caller(s)", flush=True)
            stats = asyncio.run(run_calls(gw.url, bl.GATEWAY_KEY, "echo", calls, callers,
                                          progress))
            results[name] = {k: v for k, v in stats.items() if k != "setup_ms"}
            results[name]["setup_ms"] = bl.summary(stats["setup_ms"]) if stats["setup_ms"] else {}
            print(f"  ok {stats['ok']}, failed {stats['failed']} {stats['errors']}, "
                  f"{stats['seconds']:.0f} s, set-up ms {results[name]['setup_ms']}")
            snapshots.append((f"after {name}", sample(gw, args.settle)))
        keys = ["fds", "threads", "rss_kib", "heap_in_use_kib", "heap_free_kib", "heap_arena_kib"]
        for name, snap in snapshots:
            rows.append([name] + [snap[k] for k in keys])
        bl.print_table(["moment"] + keys, rows, 0)
        results["snapshots"] = dict(snapshots)
        results["gateway_running"] = gw.proc.poll() is None
    if args.json:
        bl.write_json(args.json, results)
    if not args.keep:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if results.get("gateway_running") else 1)


if __name__ == "__main__":
    main()
