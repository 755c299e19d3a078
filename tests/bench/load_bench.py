#!/usr/bin/python3
"""Load benchmark: N concurrent native libwebrtc callers through the gateway, through a pion
relay and through a bare webrtcbin pair, against the same callers straight to the upstream, in one
run. Prints figures, ratios to pion and the per-call targets (issue 28); no pass/fail exit code.

For each N (default 10): one phase "direct" (the callers against the aiortc fake upstream), the
floor (floor_relay.py, a bare webrtcbin pair per call), then --rounds rounds (default 2) of one
phase per gateway variant and one "pion" phase (../shared/bench-peers/pion_relay): direct, floor,
gateway, pion, gateway, pion, so drift over the run falls on both alike. Each relay phase starts
a fresh relay and places one warm-up call first. In every phase load_wrtc.mjs places N calls one
after the other (50 Opus packets/s each way, 10 test.echo pings/s per call), then the figures are
taken over a steady window of --hold seconds. The upstream echoes each call's audio back, so the
callers time the audio round trip too (a 200 ms gap in their tone every 2 s).

  /usr/bin/python3 tests/bench/load_bench.py [--calls 10[,30,60]] [--hold 20] [--warm 3]
      [--rounds 2] [--variant LABEL[:ENV=VALUE,...]] [--pion BINARY | --no-pion] [--json F]

A variant is a gateway started with extra environment (e.g. RTGW_PIPELINE_FILE=... or
RTGW_BINARY=... for another build): two variants in one run compare two builds side by side.

Larger N on several machines (this 2-core VM cannot drive 30-60 calls with callers and upstreams
on it): run the parts apart.
  upstream host:  load_bench.py --upstreams-only --upstreams 6 --host 0.0.0.0 --public-host UP
                  (prints the upstream URLs and a "workers" config block; runs until Ctrl-C)
  relay host:     the gateway with those workers; the pion relay with -upstream UP_URL
  caller host:    load_bench.py --callers-only --calls 60 --direct UP_URL[,UP_URL...]
                      --relay gateway=http://RELAY:8080,key=sk-...,pid=PID
                      --relay pion=http://RELAY:8090,key=upstream-secret
A --relay's key defaults to the bench gateway's; the pion relay passes the caller's key on to the
upstream, so give it the upstreams' (upstream-secret). A --relay's CPU, RSS and threads are
measured only with pid= (a relay on this machine); run pidstat or the relay's /metrics on its own
host otherwise.
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
from peers.common import free_port, http_request  # noqa: E402

LOAD_WRTC = os.path.join(bl.BENCH_DIR, "load_wrtc.mjs")
FLOOR_RELAY = os.path.join(bl.BENCH_DIR, "floor_relay.py")
NODE = os.environ.get("RTGW_NODE") or shutil.which("node") or "/usr/bin/node"
PEERS_DIR = os.path.join(bl.INTEGRATION_DIR, "peers")


class Callers:
    """One load_wrtc.mjs process with N calls; its stdin/stdout protocol (see its header)."""

    def __init__(self, procs: bl.Processes, workdir: str, label: str, base_url: str, key: str,
                 n: int, gap_ms: int, pings: int, max_s: int, audio_rtt: bool = False) -> None:
        self.procs = procs
        self.log = os.path.join(workdir, f"callers-{label}-{n}.log")
        with open(self.log, "wb") as err:
            self.proc = procs.add(subprocess.Popen(
                [NODE, LOAD_WRTC, base_url, key, bl.MODEL, str(n), "--gap-ms", str(gap_ms),
                 "--pings", str(pings), "--max-s", str(max_s)] +
                (["--audio-rtt"] if audio_rtt else []),
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
    pid = gw.pid if gw else None
    if pid:
        time.sleep(1.0)
        res["idle"] = {"rss_kib": bl.proc_rss_kib(pid), "threads": bl.proc_threads(pid)}
        res["idle_census"] = thread_census(pid)
        warm_ids = set(bl.parse_answered(gw.stderr()))
    callers = Callers(procs, workdir, label, base_url, key, n, args.gap_ms, args.pings,
                      int(args.hold + args.warm + n * 12 + 180), not args.no_audio_rtt)
    try:
        up = callers.expect("UP", 60 + n * 10)  # each set-up may take seconds under load
        res["up"], res["failed"] = up["up"], up["failed"]
        res["post_ms"] = [c["post_ms"] for c in up["calls"] if c["post_ms"] is not None]
        res["setup_ms"] = [c["setup_ms"] for c in up["calls"] if c["setup_ms"] is not None]
        res["errors"] = [c["error"] for c in up["calls"] if c["error"]][:5]
        time.sleep(args.warm)
        pids = {"callers": [callers.proc.pid], "upstream": [u.proc.pid for u in upstreams]}
        if pid:
            pids["gateway"] = [pid]
        cpu = bl.CpuWindow(pids)
        callers.send("start")
        callers.expect("STARTED", 30)
        cpu.start()
        perf = None
        if perf_out and pid:  # perf record inside the steady window only
            perf = procs.add(subprocess.Popen(
                ["perf", "record", "-g", "-F", "499", "-p", str(pid), "-o", perf_out, "--",
                 "sleep", str(min(args.perf, args.hold))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        peak = sample_peak(pid or (upstreams[0].proc.pid if upstreams else callers.proc.pid),
                           args.hold)
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
        if pid:
            res["census"] = thread_census(pid)
            res["gw_overhead_ms"] = answered_overhead(gw, warm_ids)
        res["window"] = {k: win[k] for k in ("seconds", "pings_sent", "echoes")}
        res["rtt_ms"] = win["rtt_ms"]
        res["audio_rtt_ms"] = win.get("audio_rtt_ms", [])
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


class ExternalRelay:
    """A relay this bench did not start (--relay LABEL=URL[,key=K][,pid=P]): measured from the
    callers' side; its CPU, RSS and threads only when it runs here (pid=)."""

    def __init__(self, text: str) -> None:
        label, _, rest = text.partition("=")
        url, *opts = rest.split(",")
        kv = dict(o.split("=", 1) for o in opts if "=" in o)
        if not label or not url.startswith("http"):
            raise SystemExit(f"--relay {text!r}: want LABEL=URL[,key=KEY][,pid=PID]")
        self.label, self.url = label, url.rstrip("/")
        self.key = kv.get("key", bl.GATEWAY_KEY)
        self.pid: Optional[int] = int(kv["pid"]) if "pid" in kv else None

    def stderr(self) -> str:
        return ""


PION_SOURCE = os.path.join(bl.ROOT, "..", "shared", "bench-peers", "pion_relay")


def pion_binary(path: Optional[str]) -> str:
    """The pion relay: --pion BINARY, else built once (offline, from Debian's Go packages) into
    ~/.cache/rtgw-bench/pion_relay."""
    if path:
        return path
    cached = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                          "rtgw-bench", "pion_relay")
    build = os.path.join(PION_SOURCE, "build.sh")
    if not os.path.exists(cached) or (os.path.exists(build) and
                                      os.path.getmtime(os.path.join(PION_SOURCE, "main.go")) >
                                      os.path.getmtime(cached)):
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        print(f"building the pion relay into {cached} ...", flush=True)
        subprocess.run(["bash", build, cached], check=True, stdout=subprocess.DEVNULL)
    return cached


def start_pion(procs: bl.Processes, workdir: str, binary: str, upstream: bl.Upstream,
               name: str) -> bl.Gateway:
    """The pion relay in front of one upstream (it takes one; N <= --calls-per-upstream)."""
    port = free_port()
    stderr_path = os.path.join(workdir, f"{name}.stderr.log")
    with open(stderr_path, "wb") as err:
        proc = procs.add(subprocess.Popen(
            [binary, "-listen", f"127.0.0.1:{port}",
             "-upstream", upstream.url + "/v1/realtime/calls"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if http_request("GET", f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200:
                return bl.Gateway(proc, port, stderr_path, "")
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    procs.stop(proc)
    raise RuntimeError(f"pion relay did not start:\n{bl.tail_file(stderr_path, 4000)}")


def upstreams_only(args) -> int:
    """--upstreams-only: the fake upstreams for relays and callers on other machines."""
    workdir = tempfile.mkdtemp(prefix="rtgw-upstreams-")
    host = args.public_host or args.host
    with bl.Processes() as procs:
        ups = [bl.start_fake_upstream(procs, workdir, name=f"fake-upstream-{i}", host=args.host,
                                      extra_args=["--max-live-calls",
                                                  str(args.calls_per_upstream + 8)] +
                                      ([] if args.no_audio_rtt else ["--echo-audio"]))
               for i in range(max(1, args.upstreams))]
        urls = [f"http://{host}:{u.port}" for u in ups]
        print("UPSTREAMS " + ",".join(urls), flush=True)
        print("workers: " + json.dumps([{"name": f"up{i}", "url": url, "api_key": bl.UPSTREAM_KEY}
                                        for i, url in enumerate(urls)]), flush=True)
        print("pion relay: -upstream URL/v1/realtime/calls (one upstream per relay)", flush=True)
        try:
            while all(u.proc.poll() is None for u in ups):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


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
    ap.add_argument("--rounds", type=int, default=2,
                    help="the gateway variants and pion run this many times, alternating")
    ap.add_argument("--pion", metavar="BINARY",
                    help="the pion relay binary (default: built from ../shared/bench-peers)")
    ap.add_argument("--no-pion", action="store_true", help="skip the pion phases")
    ap.add_argument("--no-audio-rtt", action="store_true",
                    help="a steady tone, no audio echo: no audio round trip figure")
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
                    help="perf record -g each gateway and pion relay for SECONDS inside the window")
    ap.add_argument("--relay", action="append", default=[], metavar="LABEL=URL[,key=K][,pid=P]",
                    help="measure a relay that is already running (repeatable)")
    ap.add_argument("--callers-only", action="store_true",
                    help="start no upstream and no relay: only the --relay phases (and direct "
                    "against --direct URLs)")
    ap.add_argument("--direct", metavar="URL[,URL]",
                    help="with --callers-only: the upstreams of the direct phase")
    ap.add_argument("--upstreams-only", action="store_true",
                    help="start --upstreams fake upstreams, print their URLs, run until Ctrl-C")
    ap.add_argument("--host", default="127.0.0.1", help="--upstreams-only: address to bind")
    ap.add_argument("--public-host", help="--upstreams-only: address to print in the URLs")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.upstreams_only:
        return upstreams_only(args)
    ns = [int(x) for x in args.calls.split(",")]
    variants = [] if args.callers_only else \
        [parse_variant(v) for v in args.variant] or [parse_variant("gateway")]
    externals = [ExternalRelay(r) for r in args.relay]
    if args.callers_only and not externals:
        raise SystemExit("--callers-only needs at least one --relay")
    if not os.path.isdir(os.path.join(PEERS_DIR, "node_modules", "@roamhq", "wrtc")):
        print(f"@roamhq/wrtc missing: cd {PEERS_DIR} && npm ci --no-audit --no-fund")
        return 2
    pion = None if args.no_pion or args.callers_only else pion_binary(args.pion)

    workdir = tempfile.mkdtemp(prefix="rtgw-load-")
    print(f"work dir: {workdir}")
    results: List[Dict[str, Any]] = []
    with bl.Processes() as procs:
        upstreams: List[bl.Upstream] = []
        if args.callers_only:
            urls = args.direct or ""
        else:
            k = args.upstreams or max(1, -(-max(ns) // args.calls_per_upstream))
            per = -(-max(ns) // k)
            upstreams = [bl.start_fake_upstream(
                procs, workdir, name=f"fake-upstream-{i}",
                extra_args=["--max-live-calls", str(per + 8)] +
                ([] if args.no_audio_rtt else ["--echo-audio"])) for i in range(k)]
            urls = ",".join(u.url for u in upstreams)
            print(f"{k} fake upstream process(es): {urls}", flush=True)
            # aiortc's first imports and first call, in every upstream process, before any phase
            warm_up(procs, workdir, "upstreams", urls, bl.UPSTREAM_KEY, calls=k)

        def reset():
            for u in upstreams:
                http_request("POST", u.url + "/_test/reset", timeout=10)

        for n in ns:
            if not args.no_direct and urls:
                print(f"[N={n}] direct ...", flush=True)
                warm_up(procs, workdir, "direct", urls, bl.UPSTREAM_KEY)
                results.append(run_phase(args, procs, workdir, "direct", n, urls,
                                         bl.UPSTREAM_KEY, upstreams, None))
                reset()
            # (label, kind, spec): the floor once, then the alternating rounds
            phases: List[tuple] = []
            if not args.callers_only:
                if not args.no_floor:
                    phases.append(("floor", "floor", []))
                for fv in args.floor_variant:
                    flabel, _, fargs = fv.partition(":")
                    phases.append((flabel, "floor", [a for a in fargs.split(",") if a]))
            for rnd in range(max(1, args.rounds)):
                tag = "" if rnd == 0 else f"#{rnd + 1}"
                phases += [(v["label"] + tag, "gateway", v) for v in variants]
                phases += [(e.label + tag, "external", e) for e in externals]
                if pion:
                    phases.append(("pion" + tag, "pion", None))
            for label, kind, spec in phases:
                print(f"[N={n}] {label} ...", flush=True)
                if kind == "floor":
                    gw = start_floor(procs, workdir, upstreams, f"{label}-{n}", args.floor_latency,
                                     spec)
                elif kind == "pion":
                    if n > args.calls_per_upstream and len(upstreams) > 1:
                        print(f"[N={n}] pion: one upstream takes all {n} calls", flush=True)
                    gw = start_pion(procs, workdir, pion, upstreams[0], f"{label}-{n}")
                elif kind == "external":
                    gw = spec
                else:
                    gw = bl.start_gateway(procs, workdir,
                                          bl.gateway_config([u.port for u in upstreams]),
                                          env=spec["env"], binary=spec["binary"],
                                          name=f"{label}-{n}")
                key = bl.UPSTREAM_KEY if kind == "pion" else \
                    (spec.key if kind == "external" else bl.GATEWAY_KEY)
                try:
                    warm_up(procs, workdir, label, gw.url, key)
                    if args.perf > 0 and kind in ("gateway", "pion"):
                        res = run_phase_with_perf(args, procs, workdir, label, n, gw, upstreams,
                                                  key)
                    else:
                        res = run_phase(args, procs, workdir, label, n, gw.url, key, upstreams,
                                        gw if getattr(gw, "pid", None) else None)
                    res["kind"] = kind
                    res["base"] = label.split("#")[0]
                    results.append(res)
                except RuntimeError as e:  # a phase that cannot be measured: say so, go on
                    print(f"[N={n}] {label}: not measured: {str(e)[:300]}", flush=True)
                if kind != "external":
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


def run_phase_with_perf(args, procs, workdir, label, n, gw, upstreams, key):
    """run_phase with `perf record -g` attached to the relay during the window."""
    out = os.path.join(workdir, f"perf-{label}-{n}.data")
    res = run_phase(args, procs, workdir, label, n, gw.url, key, upstreams, gw,
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


NAN = float("nan")


def per_call(r: Dict[str, Any], n: int) -> Dict[str, float]:
    """A relay phase's per-call figures: CPU %core, us CPU per packet, dRSS MiB, dthreads, and
    the relay's own set-up addition (X - Y p50 of its log); NaN where the relay is not local."""
    if "idle" not in r:
        return {"cpu": NAN, "us_pkt": NAN, "rss": NAN, "threads": NAN, "xy": NAN}
    pct = r["cpu"].get("gateway_pct", NAN)
    pps = (r["rx_pps_per_call"] + r["tx_pps_per_call"]) * n
    return {"cpu": pct / n, "us_pkt": pct / 100.0 / pps * 1e6 if pps else NAN,
            "rss": (r["peak"]["rss_kib"] - r["idle"]["rss_kib"]) / 1024 / n,
            "threads": (r["peak"]["threads"] - r["idle"]["threads"]) / n,
            "xy": bl.summary(r.get("gw_overhead_ms", []), (50,))["p50"]}


def added(r: Dict[str, Any], direct: Optional[Dict[str, Any]]) -> Dict[str, float]:
    """What a relay phase adds over the direct phase of the same run: set-up (offer -> first
    event) p50, event round trip p50/p95, audio round trip p50."""
    S = bl.summary
    if not direct:
        return {"setup": NAN, "echo50": NAN, "echo95": NAN, "audio50": NAN}
    rtt, d_rtt = S(r["rtt_ms"], (50, 95)), S(direct["rtt_ms"], (50, 95))
    a, d_a = S(r.get("audio_rtt_ms", []), (50,)), S(direct.get("audio_rtt_ms", []), (50,))
    return {"setup": S(r["setup_ms"], (50,))["p50"] - S(direct["setup_ms"], (50,))["p50"],
            "echo50": rtt["p50"] - d_rtt["p50"], "echo95": rtt["p95"] - d_rtt["p95"],
            "audio50": a["p50"] - d_a["p50"]}


def mean(values: List[float]) -> float:
    vals = [v for v in values if v == v]
    return sum(vals) / len(vals) if vals else NAN


# The issue 28 targets, each against pion in the same run (N = 10): figure, limit(pion value).
TARGETS = [
    ("CPU per call <= 0.9 x pion", "cpu", lambda p: 0.9 * p),
    ("set-up added p50 <= pion", "setup", lambda p: p),
    ("event round trip added p50 <= pion", "echo50", lambda p: p),
    ("event round trip added p95 <= pion", "echo95", lambda p: p),
    ("audio round trip added p50 <= 10 ms", "audio50", lambda p: 10.0),
    ("RSS per call <= 2 MiB", "rss", lambda p: 2.0),
    ("threads per call <= 12", "threads", lambda p: 12.0),
]


def versus_pion(rows: List[Dict[str, Any]], direct: Optional[Dict[str, Any]], n: int) -> None:
    """Every relay against pion: each round's figures, their means, the ratio and the targets."""
    pions = [r for r in rows if r.get("kind") == "pion"]
    if not pions:
        return

    def figures(r):
        f, a = per_call(r, n), added(r, direct)
        return {"cpu": f["cpu"], "rss": f["rss"], "threads": f["threads"], **a,
                "loss": r["loss_pct"]}

    keys = ["cpu", "setup", "echo50", "echo95", "audio50", "rss", "threads", "loss"]
    head = ["phase", "CPU %core/call", "set-up +p50 ms", "event +p50 ms", "event +p95 ms",
            "audio +p50 ms", "dRSS MiB/call", "dthreads/call", "loss %"]
    print(f"\nper call against pion (N = {n}; '+' = added over direct, same run):")
    table = [[r["label"]] + [figures(r)[k] for k in keys]
             for r in rows if r.get("kind") in ("pion", "gateway", "external")]
    bl.print_table(head, table, 2)
    pion = {k: mean([figures(r)[k] for r in pions]) for k in keys}
    bases = []
    for r in rows:
        if r.get("kind") in ("gateway", "external") and r["base"] not in bases:
            bases.append(r["base"])
    ratio_rows = []
    for base in bases:
        mine = {k: mean([figures(r)[k] for r in rows if r.get("base") == base]) for k in keys}
        ratio_rows.append([base] + [mine[k] / pion[k] if pion[k] else NAN for k in keys[:5]])
        print(f"\ntargets, {base} (mean of its rounds) vs pion (mean of its rounds):")
        for name, key, limit in TARGETS:
            lim = limit(pion[key])
            if mine[key] != mine[key]:
                verdict = "not measured"
            else:
                verdict = "met" if mine[key] <= lim else "NOT met"
            print(f"  {name:38s} {bl.fmt(mine[key], 2):>8s}  (limit {bl.fmt(lim, 2)}, "
                  f"pion {bl.fmt(pion[key], 2)})  {verdict}")
    print("\nrelay / pion (means over rounds; < 1 = cheaper or faster than pion):")
    bl.print_table(["phase", "CPU/call", "set-up added", "event added p50", "event added p95",
                    "audio added p50"], ratio_rows, 2)


def report(results: List[Dict[str, Any]], ns: List[int]) -> None:
    S = bl.summary
    for n in ns:
        rows = [r for r in results if r["n"] == n]
        direct = next((r for r in rows if r["label"] == "direct"), None)
        print(f"\n=== N = {n} concurrent calls (figures over the steady window) ===")
        head = ["phase", "up", "CPU %core/call", "us CPU/pkt", "dRSS MiB/call", "dthreads/call",
                "rx pkt/s/call", "tx pkt/s/call", "loss %", "jitter ms p50/max",
                "echo p50 ms", "echo p95 ms", "audio rtt p50", "POST p50 ms", "machine %"]
        table = []
        for r in rows:
            f = per_call(r, n)
            rtt, jit = S(r["rtt_ms"], (50, 95)), S(r["jitter_ms"], (50,))
            table.append([r["label"], f"{r['up']}/{n}", f["cpu"], f["us_pkt"], f["rss"],
                          f["threads"], r["rx_pps_per_call"], r["tx_pps_per_call"],
                          r["loss_pct"], f"{bl.fmt(jit['p50'])}/{bl.fmt(jit['max'])}",
                          rtt["p50"], rtt["p95"], S(r.get("audio_rtt_ms", []), (50,))["p50"],
                          S(r["post_ms"], (50,))["p50"], r["cpu"]["machine_pct"]])
        bl.print_table(head, table, 2)
        if direct:
            print("\nadded by the relay (phase - direct, same run):")
            d_post = S(direct["post_ms"], (50, 90))
            add = []
            for r in rows:
                if r is direct:
                    continue
                a, post = added(r, direct), S(r["post_ms"], (50, 90))
                ov = S(r.get("gw_overhead_ms", []), (50, 90))
                add.append([r["label"], a["echo50"], a["echo95"], a["audio50"],
                            post["p50"] - d_post["p50"], post["p90"] - d_post["p90"],
                            ov["p50"], ov["p90"], a["setup"]])
            bl.print_table(["phase", "echo +p50 ms", "echo +p95 ms", "audio +p50 ms",
                            "POST +p50 ms", "POST +p90 ms", "gw log X-Y p50", "gw log X-Y p90",
                            "offer->1st event +p50"], add, 2)
        print("\ncontext (% of one core over the window; 'relay' = the gateway, floor or pion):")
        bl.print_table(["phase", "relay", "callers (node)", "upstream (aiortc)", "rest",
                        "irq", "pings sent", "echoes", "audio rtts"],
                       [[r["label"], r["cpu"].get("gateway_pct", NAN),
                         r["cpu"]["callers_pct"], r["cpu"]["upstream_pct"], r["cpu"]["rest_pct"],
                         r["cpu"]["irq_pct"], r["window"]["pings_sent"], r["window"]["echoes"],
                         len(r.get("audio_rtt_ms", []))]
                        for r in rows], 1)
        for r in rows:
            if r.get("census"):
                idle = r["idle_census"]
                delta = {k: v - idle.get(k, 0) for k, v in r["census"].items()
                         if v != idle.get(k, 0)}
                top = sorted(delta.items(), key=lambda kv: -kv[1])
                print(f"\nthread census {r['label']} (threads added by {n} calls, per call): " +
                      ", ".join(f"{k} {v / n:.2f}" for k, v in top[:12]))
            if r.get("errors"):
                print(f"{r['label']} errors: {r['errors']}")
        floor = next((r for r in rows if r["label"] == "floor"), None)
        if floor:
            print("\nrelay / floor (same run; 1.00 = the relay costs what a bare webrtcbin pair "
                  "costs):")
            ratios = []
            f = per_call(floor, n)
            for r in rows:
                if r["label"] in ("direct", "floor") or r.get("kind") == "floor":
                    continue
                g = per_call(r, n)
                ratios.append([r["label"]] + [g[k] / f[k] if f[k] else NAN
                                              for k in ("cpu", "us_pkt", "rss", "threads",
                                                        "xy")] + [g["xy"] - f["xy"]])
            bl.print_table(["phase", "CPU/call", "us CPU/pkt", "dRSS/call", "dthreads/call",
                            "set-up added (X-Y p50)", "X-Y: relay - floor ms"], ratios, 2)
        versus_pion(rows, direct, n)
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
