#!/usr/bin/python3
"""Call benchmark: set-up overhead and per-call cost of the gateway. Prints figures (no verdict).

Targets (from the issue): set-up overhead <= 20 ms over the upstream's own answer time;
<= 1 % of a core and <= 2 MiB RSS per relayed call.

  a) set-up: K sequential aiortc calls through the gateway, alternating with K calls placed
     with the same client code directly against the fake upstream. Per call: the POST
     /v1/realtime/calls round trip at the client, and the gateway's own log line
     "answered in X ms (upstream answer Y ms)".
  b) load: for each N, a fresh gateway, N concurrent calls from separate client processes
     (load_client.py) with audio both ways and one test.echo event per call every 100 ms,
     held T s. The gateway process alone is measured from /proc over a steady window.

  /usr/bin/python3 tests/bench/call_bench.py [--calls K] [--load 1,5,10] [--hold T] [--json F]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

import peers.aiortc_client as aiortc_client  # noqa: E402
from peers.aiortc_client import AiortcCall, run_call  # noqa: E402

LOAD_CLIENT = os.path.join(bl.BENCH_DIR, "load_client.py")

# --------------------------------------------------------------------------- a) set-up time

# AiortcCall.connect() gathers ICE candidates, then POSTs the offer in a thread through the
# module-level `post_offer`. Wrapping that name times the HTTP round trip alone (calls are
# sequential here, so "the last POST" is unambiguous).
_post_times_ms: List[float] = []
_real_post_offer = aiortc_client.post_offer


def _timed_post_offer(*args, **kwargs):
    t0 = time.perf_counter()
    try:
        return _real_post_offer(*args, **kwargs)
    finally:
        _post_times_ms.append((time.perf_counter() - t0) * 1000.0)


aiortc_client.post_offer = _timed_post_offer


async def one_setup_call(base_url: str, key: str) -> Dict[str, Any]:
    """Place one call, wait until its data channel delivered session.created, hang up."""
    call = AiortcCall(base_url, key, bl.MODEL)
    t0 = time.perf_counter()
    try:
        await call.connect()
        post_ms = _post_times_ms[-1] if _post_times_ms else math.nan
        ready = call.connected and await call.wait_for(
            lambda r: r.channel_opened and r.events_of("session.created"), 10.0)
        ready_ms = (time.perf_counter() - t0) * 1000.0 if ready else math.nan
    finally:
        await call.close("close")
    r = call.result
    return {"status": r.status, "call_id": r.call_id, "post_ms": post_ms, "ready": bool(ready),
            "offer_to_session_created_ms": ready_ms,
            "error": r.error or (r.error_body if r.status != 201 else None)}


async def setup_bench(gw_url: str, up_url: str, calls: int, warmup: int) -> Dict[str, Any]:
    runs: Dict[str, List[Dict[str, Any]]] = {"gateway": [], "direct": []}
    for i in range(warmup + calls):
        # alternate gateway / direct so drift (caches, CPU frequency) hits both alike
        for name, url, key in (("gateway", gw_url, bl.GATEWAY_KEY),
                               ("direct", up_url, bl.UPSTREAM_KEY)):
            result = await one_setup_call(url, key)
            result["warmup"] = i < warmup
            runs[name].append(result)
            await asyncio.sleep(0.3)          # let the previous call's teardown finish
    return runs


def report_setup(runs: Dict[str, List[Dict[str, Any]]], gateway_log: str) -> Dict[str, Any]:
    logged = bl.parse_answered(gateway_log)
    gw = [r for r in runs["gateway"] if not r["warmup"]]
    direct = [r for r in runs["direct"] if not r["warmup"]]
    gw_ok = [r for r in gw if r["status"] == 201]
    direct_ok = [r for r in direct if r["status"] == 201]
    totals, upstreams, overheads = [], [], []
    for r in gw_ok:
        entry = logged.get(r["call_id"] or "")
        if entry:
            totals.append(entry["total_ms"])
            upstreams.append(entry["upstream_ms"])
            overheads.append(entry["total_ms"] - entry["upstream_ms"])
    # Where the gateway's own time goes (the steps each call logs, ms since the request).
    steps: Dict[str, List[float]] = {}
    for r in gw_ok:
        for name, ms in logged.get(r["call_id"] or "", {}).items():
            if name.startswith("step: ") and ms >= 0:
                steps.setdefault("gateway log: " + name[len("step: "):] + " at", []).append(ms)
    series = {
        "client POST round trip, via gateway": [r["post_ms"] for r in gw_ok],
        "client POST round trip, direct to upstream": [r["post_ms"] for r in direct_ok],
        "gateway log: answered in (total)": totals,
        "gateway log: upstream answer": upstreams,
        "overhead = gateway total - upstream": overheads,
        **steps,
        "client: offer -> session.created, via gateway":
            [r["offer_to_session_created_ms"] for r in gw_ok if r["ready"]],
        "client: offer -> session.created, direct":
            [r["offer_to_session_created_ms"] for r in direct_ok if r["ready"]],
    }
    stats = {name: bl.summary(values, (50, 90)) for name, values in series.items()}
    print(f"\n== a) call set-up time, ms ({len(gw)} calls each way, after "
          f"{len(runs['gateway']) - len(gw)} warm-up call(s) each way)")
    bl.print_table(["figure", "n", "p50", "p90", "max"],
                   [[name, s["n"], s["p50"], s["p90"], s["max"]] for name, s in stats.items()])
    client_overhead = [g - d for g, d in zip(series["client POST round trip, via gateway"],
                                             series["client POST round trip, direct to upstream"])]
    print(f"client-side overhead (gateway POST - direct POST, paired): "
          f"p50 {bl.fmt(bl.percentile(client_overhead, 50))} ms, "
          f"p90 {bl.fmt(bl.percentile(client_overhead, 90))} ms   [target: <= 20 ms]")
    failures = [r for r in runs["gateway"] + runs["direct"]
                if r["status"] != 201 or not r["ready"]]
    missing = len(gw_ok) - len(totals)
    if failures:
        print(f"!! {len(failures)} call(s) failed or never delivered session.created:")
        for r in failures[:10]:
            print(f"   status={r['status']} ready={r['ready']} error={r['error']}")
    if missing:
        print(f"!! {missing} gateway call(s) had no 'answered in' log line")
    return {"stats": stats, "client_overhead_ms": bl.summary(client_overhead, (50, 90)),
            "failures": failures, "runs": runs}


# --------------------------------------------------------------------------- b) load

def start_clients(procs: bl.Processes, gw_url: str, n: int, nprocs: int,
                  workdir: str) -> List[subprocess.Popen]:
    """Spread n calls over nprocs load_client.py processes."""
    clients = []
    for i in range(nprocs):
        count = n // nprocs + (1 if i < n % nprocs else 0)
        if count == 0:
            continue
        log = open(os.path.join(workdir, f"client-{n}-{i}.log"), "wb")
        clients.append(procs.add(subprocess.Popen(
            [bl.PYTHON, LOAD_CLIENT, "--base-url", gw_url, "--calls", str(count),
             "--max-seconds", "900"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)))
        log.close()
    return clients


def tell(proc: subprocess.Popen, command: str) -> None:
    try:
        proc.stdin.write((command + "\n").encode())
        proc.stdin.flush()
    except (BrokenPipeError, OSError):
        pass


def load_run(procs: bl.Processes, workdir: str, upstream: bl.Upstream, n: int, hold: float,
             warm: float, nprocs: int) -> Dict[str, Any]:
    """One load level on a fresh gateway; returns its figures."""
    run_dir = os.path.join(workdir, f"load-{n}")
    os.makedirs(run_dir, exist_ok=True)
    gw = bl.start_gateway(procs, run_dir, bl.gateway_config(upstream.port))
    pid = gw.pid
    rss_cold = bl.proc_rss_kib(pid)
    # One short call first, so one-time costs (plugin loading, first pipeline, TLS/DTLS
    # certificate) are not charged to the measured calls.
    warm_call = asyncio.run(run_call(gw.url, bl.GATEWAY_KEY, bl.MODEL, duration=1.0))
    time.sleep(2.0)                                  # let that call's pipeline go away
    idle = bl.CpuWindow({"gateway": [pid]})
    idle.start()
    time.sleep(2.0)
    idle_cpu = idle.stop()["gateway_pct"]
    rss_idle, threads_idle = bl.proc_rss_kib(pid), bl.proc_threads(pid)

    clients = start_clients(procs, gw.url, n, min(nprocs, n), run_dir)
    connected, failed = 0, []
    for c in clients:
        line = bl.read_line_with_prefix(c, "READY ", 30.0 + 10.0 * n)
        if line is None:
            failed.append({"error": "client process gave no READY"})
            continue
        info = json.loads(line.split(" ", 1)[1])
        connected += info["connected"]
        failed += info["failed"]
    time.sleep(warm)                                 # warm-up after all calls are up
    for c in clients:
        tell(c, "MARK")
    for c in clients:
        bl.read_line_with_prefix(c, "MARKED", 10.0)

    client_pids = [c.pid for c in clients]
    window = bl.CpuWindow({"gateway": [pid], "clients": client_pids,
                           "upstream": [upstream.proc.pid], "bench": [os.getpid()]})
    window.start()
    rss_samples, thread_samples = [], []
    end = time.monotonic() + hold
    while time.monotonic() < end:                    # sample RSS and threads twice a second
        rss_samples.append(bl.proc_rss_kib(pid))
        thread_samples.append(bl.proc_threads(pid))
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
    cpu = window.stop()

    for c in clients:
        tell(c, "STOP")
    per_call: List[Dict[str, Any]] = []
    for c in clients:
        line = bl.read_line_with_prefix(c, "RESULT ", 60.0)
        if line is None:
            failed.append({"error": "client process gave no RESULT"})
            continue
        res = json.loads(line.split(" ", 1)[1])
        per_call += res["calls"]
    for c in clients:
        procs.stop(c, 15.0)
    time.sleep(3.0)                                  # calls torn down: does memory come back?
    rss_after, threads_after = bl.proc_rss_kib(pid), bl.proc_threads(pid)
    gateway_alive = gw.proc.poll() is None
    procs.stop(gw.proc, 15.0)

    live = max(1, connected)
    rss_during = max(rss_samples) if rss_samples else 0
    threads_during = max(thread_samples) if thread_samples else 0
    rtts = [x for c in per_call for x in c["echo_rtt_ms"]]
    frames_rx = sum(c["frames_received_per_s"] for c in per_call)
    frames_tx = sum(c["frames_sent_per_s"] for c in per_call)
    ev_sent = sum(c["events_sent_window"] for c in per_call)
    ev_echoed = sum(c["events_echoed_window"] for c in per_call)
    return {
        "n": n, "connected": connected, "failed": failed, "client_processes": len(clients),
        "warm_call_ok": warm_call.status == 201 and not warm_call.error,
        "window_s": cpu["seconds"],
        "gateway_cpu_pct": cpu["gateway_pct"], "gateway_cpu_pct_per_call": cpu["gateway_pct"] / live,
        "gateway_idle_cpu_pct": idle_cpu,
        "clients_cpu_pct": cpu["clients_pct"], "upstream_cpu_pct": cpu["upstream_pct"],
        "machine_cpu_pct": cpu["machine_pct"],
        "irq_cpu_pct": cpu["irq_pct"],                 # kernel: loopback packet delivery
        # machine-wide busy time (in % of one core) not spent by the processes started here
        "rest_of_machine_cpu_pct": cpu["rest_pct"],
        "rss_cold_mib": rss_cold / 1024, "rss_idle_mib": rss_idle / 1024,
        "rss_during_mib": rss_during / 1024, "rss_after_mib": rss_after / 1024,
        "rss_delta_mib": (rss_during - rss_idle) / 1024,
        "rss_delta_mib_per_call": (rss_during - rss_idle) / 1024 / live,
        "threads_idle": threads_idle, "threads_during": threads_during,
        "threads_after": threads_after,
        "threads_per_call": (threads_during - threads_idle) / live,
        "audio_frames_rx_per_s_per_call": frames_rx / live,
        "audio_frames_tx_per_s_per_call": frames_tx / live,
        "events_sent": ev_sent, "events_echoed": ev_echoed,
        "echo_rtt_ms": bl.summary(rtts, (50, 90, 99)),
        "remote_closed_calls": sum(1 for c in per_call if c["remote_closed"]),
        "gateway_alive_at_end": gateway_alive,
    }


def report_load(results: List[Dict[str, Any]]) -> None:
    print("\n== b) load: the gateway process under N concurrent relayed calls "
          "(audio both ways + 10 events/s per call)")
    bl.print_table(
        ["N", "up", "CPU %core", "per call", "RSS idle MiB", "RSS during", "dRSS MiB",
         "per call", "threads", "per call", "audio rx fr/s/call", "events sent", "echoed"],
        [[r["n"], r["connected"], r["gateway_cpu_pct"], r["gateway_cpu_pct_per_call"],
          r["rss_idle_mib"], r["rss_during_mib"], r["rss_delta_mib"],
          r["rss_delta_mib_per_call"], r["threads_during"], r["threads_per_call"],
          r["audio_frames_rx_per_s_per_call"], r["events_sent"], r["events_echoed"]]
         for r in results], digits=2)
    print("targets: <= 1 % of a core and <= 2 MiB RSS per relayed call "
          "(aiortc frames are 20 ms: 50 fr/s = all audio arrived)")
    print("\ncontext (same window):")
    bl.print_table(
        ["N", "window s", "gw idle CPU %", "clients CPU %", "upstream CPU %", "irq CPU %",
         "rest CPU %",
         "machine CPU %",
         "RSS cold", "RSS after hang-up", "threads idle/after", "echo RTT p50/p99 ms",
         "audio tx fr/s/call"],
        [[r["n"], r["window_s"], r["gateway_idle_cpu_pct"], r["clients_cpu_pct"],
          r["upstream_cpu_pct"], r["irq_cpu_pct"], r["rest_of_machine_cpu_pct"],
          r["machine_cpu_pct"],
          r["rss_cold_mib"], r["rss_after_mib"],
          f"{r['threads_idle']}/{r['threads_after']}",
          f"{bl.fmt(r['echo_rtt_ms']['p50'])}/{bl.fmt(r['echo_rtt_ms']['p99'])}",
          r["audio_frames_tx_per_s_per_call"]] for r in results], digits=1)
    cpus = os.cpu_count() or 1
    for r in results:
        notes = []
        if r["failed"]:
            notes.append(f"{len(r['failed'])} call(s) failed: {r['failed'][:3]}")
        if r["rest_of_machine_cpu_pct"] > 20:
            notes.append(f"processes not started by this benchmark used "
                         f"{r['rest_of_machine_cpu_pct']:.0f} % of a core in the window: "
                         "the figures are disturbed")
        if r["machine_cpu_pct"] > 85:
            notes.append(f"machine CPU {r['machine_cpu_pct']:.0f} % of {cpus} cores: saturated, "
                         "the gateway's threads wait for a core (figures are pessimistic)")
        if r["audio_frames_rx_per_s_per_call"] < 45:
            notes.append("clients received < 45 audio frames/s per call (audio lost or late)")
        if r["events_sent"] and r["events_echoed"] < 0.95 * r["events_sent"]:
            notes.append("fewer than 95 % of the events came back within the window")
        if r["remote_closed_calls"]:
            notes.append(f"{r['remote_closed_calls']} call(s) were closed by the gateway")
        if not r["gateway_alive_at_end"]:
            notes.append("the gateway died during the run")
        for note in notes:
            print(f"!! N={r['n']}: {note}")


# --------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--calls", type=int, default=20, help="K sequential set-up calls per side")
    ap.add_argument("--warmup-calls", type=int, default=1,
                    help="set-up calls per side placed first and left out of the figures")
    ap.add_argument("--load", default="1,5,10", help="comma list of concurrent call counts N")
    ap.add_argument("--hold", type=float, default=20.0, help="measuring window T, seconds")
    ap.add_argument("--warm", type=float, default=2.0,
                    help="seconds between all calls connected and the window")
    ap.add_argument("--client-procs", type=int, default=2,
                    help="load client processes (calls are spread over them)")
    ap.add_argument("--skip-setup", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = ap.parse_args()
    levels = [int(x) for x in args.load.split(",") if x.strip()]
    if any(n < 1 or n > 30 for n in levels):       # the fake upstream takes 32 live calls
        ap.error("--load values must be within 1..30")

    workdir = tempfile.mkdtemp(prefix="rtgw-call-bench-")
    out: Dict[str, Any] = {"host": bl.host_info(), "args": vars(args)}
    print(f"gateway {bl.gateway_binary()}  ({out['host']['cpus']} CPUs, "
          f"{out['host']['cpu_model']}); logs in {workdir}")
    with bl.Processes() as procs:
        upstream = bl.start_fake_upstream(procs, workdir)
        if not args.skip_setup:
            setup_dir = os.path.join(workdir, "setup")
            os.makedirs(setup_dir)
            gw = bl.start_gateway(procs, setup_dir, bl.gateway_config(upstream.port))
            runs = asyncio.run(setup_bench(gw.url, upstream.url, args.calls, args.warmup_calls))
            time.sleep(0.5)                                  # last log lines
            out["setup"] = report_setup(runs, gw.stderr())
            procs.stop(gw.proc)
        if not args.skip_load:
            results = []
            for n in levels:
                print(f"\n.. load N={n}: connecting, then {args.warm:g} s warm-up and "
                      f"{args.hold:g} s window", flush=True)
                results.append(load_run(procs, workdir, upstream, n, args.hold, args.warm,
                                        args.client_procs))
            report_load(results)
            out["load"] = results
    if args.json:
        bl.write_json(args.json, out)
    if not args.keep:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
