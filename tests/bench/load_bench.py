#!/usr/bin/python3
"""Load benchmark: N concurrent native libwebrtc callers through the gateway vs the same callers
straight to the upstream, in one run. Prints figures (no verdict).

For each N (default 10): one phase "direct" (the callers against the aiortc fake upstream) and one
phase per gateway variant (a fresh gateway each, one warm-up call first). In every phase
load_wrtc.mjs places N calls one after the other (50 Opus packets/s each way, 10 test.echo
pings/s per call), then the figures are taken over a steady window of --hold seconds.

  /usr/bin/python3 tests/bench/load_bench.py [--calls 10[,30,60]] [--hold 20] [--warm 3]
      [--variant LABEL[:ENV=VALUE,...]] [--json F] [--keep]

A variant is a gateway started with extra environment (e.g. RTGW_PIPELINE_FILE=... or
RTGW_BINARY=... for another build): two variants in one run compare two builds side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from peers.common import http_request  # noqa: E402

LOAD_WRTC = os.path.join(bl.BENCH_DIR, "load_wrtc.mjs")
FLOOR_RELAY = os.path.join(bl.BENCH_DIR, "floor_relay.py")
NODE = os.environ.get("RTGW_NODE") or shutil.which("node") or "/usr/bin/node"
PEERS_DIR = os.path.join(bl.INTEGRATION_DIR, "peers")


class Callers:
    """One load_wrtc.mjs process with N calls; its stdin/stdout protocol (see its header)."""

    def __init__(self, procs: bl.Processes, workdir: str, label: str, base_url: str, key: str,
                 n: int, gap_ms: int, pings: int, max_s: int) -> None:
        self.procs = procs
        self.log = os.path.join(workdir, f"callers-{label}-{n}.log")
        with open(self.log, "wb") as err:
            self.proc = procs.add(subprocess.Popen(
                [NODE, LOAD_WRTC, base_url, key, bl.MODEL, str(n), "--gap-ms", str(gap_ms),
                 "--pings", str(pings), "--max-s", str(max_s)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, bufsize=0))

    def expect(self, tag: str, timeout: float) -> Dict[str, Any]:
        line = bl.read_line_with_prefix(self.proc, tag + " ", timeout)
        if line is None:
            raise RuntimeError(f"callers: no {tag} line within {timeout} s:\n"
                               f"{bl.tail_file(self.log, 3000)}")
        return json.loads(line[len(tag) + 1:])

    def send(self, cmd: str) -> None:
        self.proc.stdin.write((cmd + "\n").encode())
        self.proc.stdin.flush()

    def quit(self) -> None:
        try:
            self.send("quit")
            self.expect("DONE", 30)
        except (OSError, RuntimeError):
            pass
        self.procs.stop(self.proc)


def sample_peak(pid: int, seconds: float, every: float = 0.5) -> Dict[str, int]:
    """Peak RSS (KiB) and threads of ``pid`` while sleeping ``seconds``."""
    rss = threads = 0
    deadline = time.monotonic() + seconds
    while True:
        try:
            rss = max(rss, bl.proc_rss_kib(pid))
            threads = max(threads, bl.proc_threads(pid))
        except OSError:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            return {"rss_kib": rss, "threads": threads}
        time.sleep(min(every, left))


def thread_census(pid: int) -> Dict[str, int]:
    """{thread name: count} from /proc/PID/task/*/comm."""
    names: Dict[str, int] = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            name = re.sub(r"\d+", "", name)  # nicesrc12:src -> nicesrc:src
            names[name] = names.get(name, 0) + 1
    except OSError:
        pass
    return names


def answered_overhead(gw: bl.Gateway, after_ids: set) -> List[float]:
    """gateway 'answered in X ms (upstream answer Y ms)': X - Y for the calls not in after_ids."""
    return [v["total_ms"] - v["upstream_ms"]
            for cid, v in bl.parse_answered(gw.stderr()).items() if cid not in after_ids]


def run_phase(args, procs: bl.Processes, workdir: str, label: str, n: int, base_url: str,
              key: str, upstreams: List[bl.Upstream], gw: Optional[bl.Gateway],
              perf_out: Optional[str] = None) -> Dict[str, Any]:
    res: Dict[str, Any] = {"label": label, "n": n}
    if gw:
        time.sleep(1.0)
        res["idle"] = {"rss_kib": bl.proc_rss_kib(gw.pid), "threads": bl.proc_threads(gw.pid)}
        res["idle_census"] = thread_census(gw.pid)
        warm_ids = set(bl.parse_answered(gw.stderr()))
    callers = Callers(procs, workdir, label, base_url, key, n, args.gap_ms, args.pings,
                      int(args.hold + args.warm + n * 12 + 180))
    try:
        up = callers.expect("UP", 60 + n * 10)  # each set-up may take seconds under load
        res["up"], res["failed"] = up["up"], up["failed"]
        res["post_ms"] = [c["post_ms"] for c in up["calls"] if c["post_ms"] is not None]
        res["setup_ms"] = [c["setup_ms"] for c in up["calls"] if c["setup_ms"] is not None]
        res["errors"] = [c["error"] for c in up["calls"] if c["error"]][:5]
        time.sleep(args.warm)
        pids = {"callers": [callers.proc.pid], "upstream": [u.proc.pid for u in upstreams]}
        if gw:
            pids["gateway"] = [gw.pid]
        cpu = bl.CpuWindow(pids)
        callers.send("start")
        callers.expect("STARTED", 30)
        cpu.start()
        perf = None
        if perf_out and gw:  # perf record inside the steady window only
            perf = procs.add(subprocess.Popen(
                ["perf", "record", "-g", "-F", "499", "-p", str(gw.pid), "-o", perf_out, "--",
                 "sleep", str(min(args.perf, args.hold))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        peak = sample_peak(gw.pid if gw else upstreams[0].proc.pid, args.hold)
        cpu.stop()
        if perf:
            try:
                perf.wait(30)
            except subprocess.TimeoutExpired:
                pass
            procs.stop(perf)
            res["perf_data"] = perf_out
        callers.send("stop")
        win = callers.expect("WINDOW", 60)
        res["cpu"] = cpu.result
        res["peak"] = peak
        if gw:
            res["census"] = thread_census(gw.pid)
            res["gw_overhead_ms"] = answered_overhead(gw, warm_ids)
        res["window"] = {k: win[k] for k in ("seconds", "pings_sent", "echoes")}
        res["rtt_ms"] = win["rtt_ms"]
        calls = win["calls"]
        rx = sum(c["rx"] for c in calls)
        lost = sum(max(0, c["lost"]) for c in calls)
        res["rx_pps_per_call"] = rx / win["seconds"] / max(1, len(calls))
        res["tx_pps_per_call"] = sum(c["tx"] for c in calls) / win["seconds"] / max(1, len(calls))
        res["loss_pct"] = 100.0 * lost / (rx + lost) if rx + lost else float("nan")
        res["jitter_ms"] = [c["jitter_ms"] for c in calls]
    finally:
        callers.quit()
    return res


def parse_variant(text: str) -> Dict[str, Any]:
    label, _, envs = text.partition(":")
    env = dict(kv.split("=", 1) for kv in envs.split(",") if kv)
    binary = env.pop("RTGW_BINARY", None)
    return {"label": label, "env": env, "binary": binary}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", default="10", help="N, or a list: 10,30,60")
    ap.add_argument("--hold", type=float, default=20.0, help="measured window, s")
    ap.add_argument("--warm", type=float, default=3.0,
                    help="s between the last call up and the window")
    ap.add_argument("--gap-ms", type=int, default=50, help="between two call set-ups")
    ap.add_argument("--pings", type=int, default=10, help="test.echo per second per call")
    ap.add_argument("--variant", action="append", default=[],
                    help="LABEL[:ENV=VALUE,...] gateway variant (repeatable; default: 'gateway')")
    ap.add_argument("--no-direct", action="store_true", help="skip the direct phase")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the floor phase (floor_relay.py: a bare webrtcbin pair per call)")
    ap.add_argument("--floor-latency", type=int, default=20,
                    help="webrtcbin latency of the floor relay (the gateway's default: 20)")
    ap.add_argument("--floor-variant", action="append", default=[],
                    help="LABEL:ARG,ARG extra floor phase with floor_relay.py options, e.g. "
                    "floor-nosync:--no-clocksync or floor-lat0:--latency=0 (repeatable)")
    ap.add_argument("--calls-per-upstream", type=int, default=10,
                    help="fake upstream processes: ceil(largest N / this) (one aiortc process "
                    "cannot carry more than ~10-15 calls on this machine)")
    ap.add_argument("--upstreams", type=int, default=0, help="fake upstream processes (overrides)")
    ap.add_argument("--perf", metavar="SECONDS", type=float, default=0.0,
                    help="perf record -g each gateway for SECONDS inside the window")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    ns = [int(x) for x in args.calls.split(",")]
    variants = [parse_variant(v) for v in args.variant] or [parse_variant("gateway")]
    if not os.path.isdir(os.path.join(PEERS_DIR, "node_modules", "@roamhq", "wrtc")):
        print(f"@roamhq/wrtc missing: cd {PEERS_DIR} && npm ci --no-audit --no-fund")
        return 2

    workdir = tempfile.mkdtemp(prefix="rtgw-load-")
    print(f"work dir: {workdir}")
    results: List[Dict[str, Any]] = []
    with bl.Processes() as procs:
        k = args.upstreams or max(1, -(-max(ns) // args.calls_per_upstream))
        per = -(-max(ns) // k)
        upstreams = [bl.start_fake_upstream(procs, workdir, name=f"fake-upstream-{i}",
                                            extra_args=["--max-live-calls", str(per + 8)])
                     for i in range(k)]
        urls = ",".join(u.url for u in upstreams)
        print(f"{k} fake upstream process(es): {urls}", flush=True)
        # aiortc's first imports and first call, in every upstream process, before any phase
        warm_up(procs, workdir, "upstreams", urls, bl.UPSTREAM_KEY, calls=k)

        def reset():
            for u in upstreams:
                http_request("POST", u.url + "/_test/reset", timeout=10)

        for n in ns:
            if not args.no_direct:
                print(f"[N={n}] direct ...", flush=True)
                warm_up(procs, workdir, "direct", urls, bl.UPSTREAM_KEY)
                results.append(run_phase(args, procs, workdir, "direct", n, urls,
                                         bl.UPSTREAM_KEY, upstreams, None))
                reset()
            relays = [] if args.no_floor else [("floor", None)]
            for fv in args.floor_variant:
                flabel, _, fargs = fv.partition(":")
                relays.append((flabel, {"floor_args": [a for a in fargs.split(",") if a]}))
            relays += [(v["label"], v) for v in variants]
            for label, v in relays:
                print(f"[N={n}] {label} ...", flush=True)
                if v is None or "floor_args" in v:
                    gw = start_floor(procs, workdir, upstreams, f"{label}-{n}", args.floor_latency,
                                     v["floor_args"] if v else [])
                else:
                    gw = bl.start_gateway(procs, workdir,
                                          bl.gateway_config([u.port for u in upstreams]),
                                          env=v["env"], binary=v["binary"], name=f"{label}-{n}")
                try:
                    warm_up(procs, workdir, label, gw.url, bl.GATEWAY_KEY)
                    if args.perf > 0:
                        res = run_phase_with_perf(args, procs, workdir, label, n, gw, upstreams)
                    else:
                        res = run_phase(args, procs, workdir, label, n, gw.url, bl.GATEWAY_KEY,
                                        upstreams, gw)
                    results.append(res)
                except RuntimeError as e:  # a phase that cannot be measured: say so, go on
                    print(f"[N={n}] {label}: not measured: {str(e)[:300]}", flush=True)
                procs.stop(gw.proc)
                reset()
            report(results, [n])  # each N as soon as it is measured
            if args.json:
                bl.write_json(args.json, {"host": bl.host_info(), "args": vars(args),
                                          "results": results})
            sys.stdout.flush()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def start_floor(procs: bl.Processes, workdir: str, upstreams: List[bl.Upstream], name: str,
                latency: int, extra: List[str]) -> bl.Gateway:
    """floor_relay.py (a bare webrtcbin pair per call) in front of the same upstreams."""
    stderr_path = os.path.join(workdir, f"{name}.stderr.log")
    with open(stderr_path, "wb") as err:
        proc = procs.add(subprocess.Popen(
            [bl.PYTHON, FLOOR_RELAY, "--port", "0", "--upstream",
             ",".join(u.url for u in upstreams), "--upstream-key", bl.UPSTREAM_KEY,
             "--model", bl.MODEL, "--latency", str(latency), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err))
    line = bl.read_line_with_prefix(proc, "LISTENING ", 30)
    if line is None:
        procs.stop(proc)
        raise RuntimeError(f"floor relay did not start:\n{bl.tail_file(stderr_path, 4000)}")
    return bl.Gateway(proc, int(line.split()[1]), stderr_path, "")


def warm_up(procs, workdir, label, base_url, key, calls: int = 1) -> None:
    """One short call first, so one-time costs (plugin loading, the first pipeline, aiortc's
    first imports) are charged to no measured call, on either side."""
    warm = Callers(procs, workdir, label + "-warm", base_url, key, calls, 0, 1, 60 + 10 * calls)
    try:
        warm.expect("UP", 30 + 10 * calls)
        time.sleep(1.0)
    finally:
        warm.quit()


def run_phase_with_perf(args, procs, workdir, label, n, gw, upstreams):
    """run_phase with `perf record -g` attached to the relay during the window."""
    out = os.path.join(workdir, f"perf-{label}-{n}.data")
    res = run_phase(args, procs, workdir, label, n, gw.url, bl.GATEWAY_KEY, upstreams, gw,
                    perf_out=out)
    print(f"perf data: {out} (perf report -i {out} --no-children --sort comm,dso -g none)")
    res["perf_summary"] = perf_summary(out)
    return res


def perf_summary(data: str, top: int = 12) -> Dict[str, List[str]]:
    """The top lines of `perf report` by thread (digits folded by hand later), DSO and symbol."""
    out: Dict[str, List[str]] = {}
    for key in ("comm", "dso", "sym"):
        try:
            text = subprocess.run(
                ["perf", "report", "-i", data, "--no-children", "--sort", key, "-g", "none",
                 "--stdio", "--percent-limit", "0.5"],
                capture_output=True, text=True, timeout=120).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            out[key] = [f"perf report failed: {e}"]
            continue
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        if key == "comm":  # fold digits: nicesrc12:src -> nicesrc:src
            folded: Dict[str, float] = {}
            for ln in lines:
                m = re.match(r"([0-9.]+)%\s+(.*)", ln)
                if m:
                    name = re.sub(r"\d+", "", m.group(2).strip())
                    folded[name] = folded.get(name, 0.0) + float(m.group(1))
            lines = [f"{v:5.1f}%  {k}" for k, v in sorted(folded.items(), key=lambda kv: -kv[1])]
        out[key] = lines[:top]
    return out


def per_call(r: Dict[str, Any], n: int) -> Dict[str, float]:
    """A relay phase's per-call figures: CPU %core, us CPU per packet, dRSS MiB, dthreads, and
    the relay's own set-up addition (X - Y p50 of its log)."""
    pct = r["cpu"].get("gateway_pct", float("nan"))
    pps = (r["rx_pps_per_call"] + r["tx_pps_per_call"]) * n
    return {"cpu": pct / n, "us_pkt": pct / 100.0 / pps * 1e6 if pps else float("nan"),
            "rss": (r["peak"]["rss_kib"] - r["idle"]["rss_kib"]) / 1024 / n,
            "threads": (r["peak"]["threads"] - r["idle"]["threads"]) / n,
            "xy": bl.summary(r.get("gw_overhead_ms", []), (50,))["p50"]}


def report(results: List[Dict[str, Any]], ns: List[int]) -> None:
    S = bl.summary
    for n in ns:
        rows = [r for r in results if r["n"] == n]
        direct = next((r for r in rows if r["label"] == "direct"), None)
        print(f"\n=== N = {n} concurrent calls (figures over the steady window) ===")
        head = ["phase", "up", "CPU %core/call", "us CPU/pkt", "dRSS MiB/call", "dthreads/call",
                "rx pkt/s/call", "tx pkt/s/call", "loss %", "jitter ms p50/max",
                "echo p50 ms", "echo p95 ms", "POST p50 ms", "machine %"]
        table = []
        for r in rows:
            gw = r["label"] != "direct"
            cpu = r["cpu"].get("gateway_pct", float("nan")) / n if gw else float("nan")
            drss = (r["peak"]["rss_kib"] - r["idle"]["rss_kib"]) / 1024 / n if gw else float("nan")
            dthr = (r["peak"]["threads"] - r["idle"]["threads"]) / n if gw else float("nan")
            rtt, jit = S(r["rtt_ms"], (50, 95)), S(r["jitter_ms"], (50,))
            # gateway CPU per relayed RTP packet (both directions; events and timers included)
            pps = (r["rx_pps_per_call"] + r["tx_pps_per_call"]) * n
            us_pkt = r["cpu"].get("gateway_pct", float("nan")) / 100.0 / pps * 1e6 if gw and pps \
                else float("nan")
            table.append([r["label"], f"{r['up']}/{n}", cpu, us_pkt, drss, dthr,
                          r["rx_pps_per_call"],
                          r["tx_pps_per_call"], r["loss_pct"],
                          f"{bl.fmt(jit['p50'])}/{bl.fmt(jit['max'])}", rtt["p50"], rtt["p95"],
                          S(r["post_ms"], (50,))["p50"], r["cpu"]["machine_pct"]])
        bl.print_table(head, table, 2)
        if direct:
            print("\nadded by the gateway (phase - direct, same run):")
            d_rtt, d_post = S(direct["rtt_ms"], (50, 95)), S(direct["post_ms"], (50, 90))
            d_setup = S(direct["setup_ms"], (50,))
            add = []
            for r in rows:
                if r is direct:
                    continue
                rtt, post = S(r["rtt_ms"], (50, 95)), S(r["post_ms"], (50, 90))
                ov = S(r.get("gw_overhead_ms", []), (50, 90))
                add.append([r["label"], rtt["p50"] - d_rtt["p50"], rtt["p95"] - d_rtt["p95"],
                            post["p50"] - d_post["p50"], post["p90"] - d_post["p90"],
                            ov["p50"], ov["p90"], S(r["setup_ms"], (50,))["p50"] - d_setup["p50"]])
            bl.print_table(["phase", "echo +p50 ms", "echo +p95 ms", "POST +p50 ms",
                            "POST +p90 ms", "gw log X-Y p50", "gw log X-Y p90",
                            "offer->1st event +p50"], add, 2)
        print("\ncontext (% of one core over the window; 'relay' = the gateway or the floor):")
        bl.print_table(["phase", "relay", "callers (node)", "upstream (aiortc)", "rest",
                        "irq", "pings sent", "echoes"],
                       [[r["label"], r["cpu"].get("gateway_pct", float("nan")),
                         r["cpu"]["callers_pct"], r["cpu"]["upstream_pct"], r["cpu"]["rest_pct"],
                         r["cpu"]["irq_pct"], r["window"]["pings_sent"], r["window"]["echoes"]]
                        for r in rows], 1)
        for r in rows:
            if r.get("census"):
                idle = r["idle_census"]
                delta = {k: v - idle.get(k, 0) for k, v in r["census"].items()
                         if v != idle.get(k, 0)}
                top = sorted(delta.items(), key=lambda kv: -kv[1])
                print(f"\nthread census {r['label']} (threads added by {n} calls, per call): " +
                      ", ".join(f"{k} {v / n:.2f}" for k, v in top))
            if r.get("errors"):
                print(f"{r['label']} errors: {r['errors']}")
        floor = next((r for r in rows if r["label"] == "floor"), None)
        if floor:
            print("\nrelay / floor (same run; 1.00 = the relay costs what a bare webrtcbin pair "
                  "costs):")
            ratios = []
            f = per_call(floor, n)
            for r in rows:
                if r["label"] in ("direct", "floor"):
                    continue
                g = per_call(r, n)
                ratios.append([r["label"]] + [g[k] / f[k] if f[k] else float("nan")
                                              for k in ("cpu", "us_pkt", "rss", "threads",
                                                        "xy")] + [g["xy"] - f["xy"]])
            bl.print_table(["phase", "CPU/call", "us CPU/pkt", "dRSS/call", "dthreads/call",
                            "set-up added (X-Y p50)", "X-Y: relay - floor ms"], ratios, 2)
        for r in rows:
            for key, lines in (r.get("perf_summary") or {}).items():
                print(f"\nperf {r['label']} by {key} (top, % of the relay's samples):")
                for ln in lines:
                    print("   " + ln[:150])
        busy = max(r["cpu"]["machine_pct"] for r in rows)
        if busy > 85:
            print(f"\nnote: the machine was {busy:.0f} % busy: the figures are pessimistic "
                  "(threads waited for a core)")


if __name__ == "__main__":
    sys.exit(main())
