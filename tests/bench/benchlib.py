"""Shared helpers for the gateway benchmarks (call_bench.py, event_bench.py, load_client.py).

  * start/stop of the fake upstream and of the gateway (each in its own process, loopback only);
  * /proc sampling of a process: CPU seconds, RSS, thread count; machine-wide CPU use;
  * percentiles and small table/JSON output helpers.

Everything here is bounded: every wait has a deadline and every process that is started is
registered in a ``Processes`` stack that stops it (SIGTERM, then SIGKILL, by pid) on exit.
Run with Debian's interpreter (/usr/bin/python3): it is the one that has aiortc and aiohttp.
"""
from __future__ import annotations

import json
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(BENCH_DIR))           # /work/main
INTEGRATION_DIR = os.path.join(ROOT, "tests", "integration")
FAKE_UPSTREAM = os.path.join(INTEGRATION_DIR, "peers", "fake_upstream.py")
PYTHON = "/usr/bin/python3"
if INTEGRATION_DIR not in sys.path:          # make the integration test peers importable
    sys.path.insert(0, INTEGRATION_DIR)

from peers.common import free_port, http_request, tail_file  # noqa: E402

GATEWAY_KEY = "sk-bench-key"
UPSTREAM_KEY = "upstream-secret"
MODEL = "gpt-realtime"

# A realistic policy: service_tier rules scoped by key and model with fallbacks, one denied
# event type, the default size limit. None of it touches the `test.echo` events the call
# benchmarks send, but every event is still parsed and evaluated against it.
BENCH_POLICY: Dict[str, Any] = {
    "service_tier": [
        {"tier": "priority", "action": "block", "models": ["gpt-realtime"], "keys": ["free-*"],
         "fallback": "pass"},
        {"tier": "priority", "action": "filter", "models": ["*"], "keys": ["*"]},
        {"tier": "flex", "action": "pass", "models": ["gpt-realtime*"], "keys": ["*"],
         "fallback": "filter"},
    ],
    "deny_client_events": [{"type": "session.update", "keys": ["readonly-*"]}],
    "max_event_bytes": 65536,
}


def gateway_binary() -> str:
    return os.environ.get("RTGW_BINARY") or os.path.join(ROOT, "build", "src", "realtime-gateway")


def gateway_config(upstream_port, policy: bool = True) -> Dict[str, Any]:
    """The benchmark gateway config: one key, one model served by the fake upstream (a port, or a
    list of ports: one worker each; the gateway gives a new call to the least busy one)."""
    ports = upstream_port if isinstance(upstream_port, (list, tuple)) else [upstream_port]
    config: Dict[str, Any] = {
        "auth": {"keys": [{"name": "bench", "key": GATEWAY_KEY, "models": ["*"]}]},
        "models": [{"name": MODEL, "workers": [{
            "url": f"http://127.0.0.1:{port}", "api_key": UPSTREAM_KEY,
            "provider": "openai"} for port in ports]}],
    }
    if policy:
        config["policy"] = BENCH_POLICY
    return config


# --------------------------------------------------------------------------- processes

def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> Optional[int]:
    """SIGTERM the process (by pid), wait up to ``timeout`` s, then SIGKILL."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    return proc.returncode


class Processes:
    """Every process a benchmark starts; ``stop_all()`` (also on SIGTERM/SIGINT/exit) stops
    them newest first, so clients go before the gateway and the gateway before the upstream."""

    def __init__(self) -> None:
        self._procs: List[subprocess.Popen] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def add(self, proc: subprocess.Popen) -> subprocess.Popen:
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> Optional[int]:
        if proc in self._procs:
            self._procs.remove(proc)
        return stop_process(proc, timeout)

    def stop_all(self) -> None:
        while self._procs:
            stop_process(self._procs.pop(), 10.0)

    def _on_signal(self, signum, _frame) -> None:
        self.stop_all()
        sys.exit(128 + signum)

    def __enter__(self) -> "Processes":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def read_line_with_prefix(proc: subprocess.Popen, prefix: str, timeout: float) -> Optional[str]:
    """Read ``proc.stdout`` lines until one starts with ``prefix`` (returned, stripped) or
    the process exits or ``timeout`` s pass (None)."""
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                return None
            line = proc.stdout.readline()
            if not line:           # EOF: the process exited
                return None
            line = line.decode(errors="replace") if isinstance(line, bytes) else line
            if line.startswith(prefix):
                return line.strip()
        return None
    finally:
        sel.close()


@dataclass
class Upstream:
    proc: subprocess.Popen
    port: int
    log_path: str
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def start_fake_upstream(procs: Processes, workdir: str, timeout: float = 30.0,
                        extra_args: Sequence[str] = (), name: str = "fake-upstream",
                        host: str = "127.0.0.1") -> Upstream:
    """tests/integration/peers/fake_upstream.py --port 0 in its own process."""
    log_path = os.path.join(workdir, f"{name}.log")
    with open(log_path, "wb") as log:
        proc = procs.add(subprocess.Popen(
            [PYTHON, FAKE_UPSTREAM, "--host", host, "--port", "0",
             "--api-key", UPSTREAM_KEY, *extra_args],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL))
    line = read_line_with_prefix(proc, "LISTENING ", timeout)
    if line is None:
        procs.stop(proc)
        raise RuntimeError(f"fake upstream did not start:\n{tail_file(log_path, 4000)}")
    return Upstream(proc, int(line.split()[1]), log_path, host)


@dataclass
class Gateway:
    proc: subprocess.Popen
    port: int
    stderr_path: str
    config_path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def start_gateway(procs: Processes, workdir: str, config: Dict[str, Any],
                  timeout: float = 15.0, env: Optional[Dict[str, str]] = None,
                  binary: Optional[str] = None, name: str = "gateway") -> Gateway:
    """The gateway binary with ``config`` on a free loopback port; returns once /healthz is 200.
    Its logs (stderr, plain text) go to ``workdir/gateway.stderr.log``."""
    binary = binary or gateway_binary()
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"gateway binary {binary} not found: ninja -C build, or set RTGW_BINARY")
    port = free_port()
    config = dict(config, listen=f"127.0.0.1:{port}")
    config_path = os.path.join(workdir, f"{name}.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2)
    stderr_path = os.path.join(workdir, f"{name}.stderr.log")
    env = dict(os.environ, **(env or {}), RTGW_LOG_JSON="0")  # the log parser expects plain text
    with open(os.path.join(workdir, f"{name}.stdout.log"), "wb") as out, \
            open(stderr_path, "wb") as err:
        proc = procs.add(subprocess.Popen(
            [binary, "--config", config_path, "--listen", f"127.0.0.1:{port}"],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env))
    gw = Gateway(proc, port, stderr_path, config_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{tail_file(stderr_path, 4000)}")
        if http_request("GET", gw.url + "/healthz", timeout=1.0).status == 200:
            return gw
        time.sleep(0.05)
    procs.stop(proc)
    raise RuntimeError(f"gateway not healthy after {timeout} s:\n{tail_file(stderr_path, 4000)}")


# The gateway's per-call set-up log line (src/calls/call.cpp), with the steps since the set-up
# steps were logged (older builds and floor_relay.py stop after the upstream answer):
#   [rtc_…] answered in 20.3 ms (upstream answer 8.0 ms; steps at: pipeline 2.1, client offer
#   accepted 6.0, upstream offer sent 11.1, worker answered 19.0, upstream ready 20.3, client
#   answer 11.7)
ANSWERED_RE = re.compile(r"\[(?P<id>[^\]]+)\] answered in (?P<total>[0-9.]+) ms "
                         r"\(upstream answer (?P<upstream>[0-9.]+) ms(?P<steps>; steps at: [^)]*)?\)")
STEP_RE = re.compile(r"(?P<name>[a-z ]+) (?P<ms>-?[0-9.]+)")


def parse_answered(log_text: str) -> Dict[str, Dict[str, float]]:
    """{call_id: {"total_ms", "upstream_ms"[, "step: <name>" ms since the request]}} from the
    gateway's stderr."""
    out = {}
    for m in ANSWERED_RE.finditer(log_text):
        entry = {"total_ms": float(m["total"]), "upstream_ms": float(m["upstream"])}
        if m["steps"]:
            for step in m["steps"][len("; steps at: "):].split(", "):
                s = STEP_RE.fullmatch(step.strip())
                if s:
                    entry["step: " + s["name"]] = float(s["ms"])
        out[m["id"]] = entry
    return out


# --------------------------------------------------------------------------- /proc sampling

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def machine_cpu_ticks() -> tuple:
    """(busy, total, irq) jiffies of all CPUs, from the first line of /proc/stat. ``irq`` is
    hard + soft interrupt time: loopback packet delivery is mostly softirq time that no
    process is charged for."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]] + [0] * 8
    # user nice system idle iowait irq softirq steal (guest is inside user)
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total, values[5] + values[6]


class CpuWindow:
    """CPU use of some processes and of the whole machine between ``start()`` and ``stop()``."""

    def __init__(self, pids: Dict[str, Sequence[int]]) -> None:
        self.pids = pids            # label -> pids (their CPU is summed)
        self._t0 = 0.0
        self._cpu0: Dict[str, float] = {}
        self._machine0 = (0, 0, 0)
        self.result: Dict[str, float] = {}

    def _cpu(self) -> Dict[str, float]:
        out = {}
        for label, pids in self.pids.items():
            total = 0.0
            for pid in pids:
                try:
                    total += proc_cpu_seconds(pid)
                except OSError:
                    pass
            out[label] = total
        return out

    def start(self) -> None:
        self._t0, self._cpu0, self._machine0 = time.monotonic(), self._cpu(), machine_cpu_ticks()

    def stop(self) -> Dict[str, float]:
        """{"seconds": wall, "<label>_pct": % of one core (each label), "machine_pct": % of
        all cores, "irq_pct": interrupt time in % of one core, "rest_pct": the machine's busy
        time not charged to the labelled processes nor to interrupts, in % of one core (other
        processes; +-10 of accounting noise: /proc/stat is sampled per tick)}"""
        wall = time.monotonic() - self._t0
        cpu1, machine1 = self._cpu(), machine_cpu_ticks()
        self.result = {"seconds": wall}
        for label in self.pids:
            self.result[f"{label}_pct"] = 100.0 * (cpu1[label] - self._cpu0[label]) / wall
        busy, total, irq = (b - a for a, b in zip(self._machine0, machine1))
        ncpu = os.cpu_count() or 1
        self.result["machine_pct"] = 100.0 * busy / total if total else float("nan")
        self.result["irq_pct"] = 100.0 * ncpu * irq / total if total else float("nan")
        self.result["rest_pct"] = (100.0 * ncpu * (busy - irq) / total if total else float("nan")) \
            - sum(self.result[f"{label}_pct"] for label in self.pids)
        return self.result


# --------------------------------------------------------------------------- statistics

def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    data = sorted(values)
    k = (len(data) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary(values: Sequence[float], ps: Iterable[float] = (50, 90, 99)) -> Dict[str, float]:
    """{"n", "p50", "p90", …, "min", "max", "mean"}."""
    out: Dict[str, float] = {"n": len(values)}
    for p in ps:
        out[f"p{p:g}"] = percentile(values, p)
    out["min"] = min(values) if values else float("nan")
    out["max"] = max(values) if values else float("nan")
    out["mean"] = sum(values) / len(values) if values else float("nan")
    return out


# --------------------------------------------------------------------------- output

def fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 1) -> None:
    """A plain, aligned text table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(h) for h in headers]] + [[fmt(v, digits) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths)))
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print(line(r))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str, data: Dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(_json_safe(data), f, indent=2)
        f.write("\n")
    print(f"\nfigures written to {path}")


def host_info() -> Dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "gateway_binary": gateway_binary(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
