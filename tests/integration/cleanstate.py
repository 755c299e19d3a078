"""What a fault test checks at its end: the gateway is back to a clean state.

  snapshot(gw)                 fds, threads, RSS (kB) of the gateway process (from /proc)
  warm_up(gw)                  one short call, so pools that live for the process are counted
                               in the baseline
  assert_clean(gw, base, admin_key)
                               no call in GET /debug/calls, every worker's live-call gauge 0 in
                               /metrics, fds and threads back to the baseline (bounded wait,
                               tiny noise allowed)
  metric(text, name, labels)   one sample of /metrics text
"""
from __future__ import annotations

import os
import re
import time
from typing import Dict, Optional

from peers.common import http_request

ADMIN_KEY = "sk-admin-faults"
FD_NOISE = 2       # e.g. an HTTP connection of the test itself still closing
THREAD_NOISE = 2   # GLib/GStreamer pools whose idle threads expire on their own timers


def with_admin(config: Dict) -> Dict:
    """The config plus an admin key (for /debug/calls)."""
    config["auth"]["keys"].append({"name": "ops", "key": ADMIN_KEY, "models": ["*"],
                                   "admin": True})
    return config


def _tcp_inodes_to_port(port: int) -> set:
    """Inodes of the TCP sockets whose remote end is 127.0.0.1:``port`` (IPv4 loopback)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if int(cols[2].split(":")[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def snapshot(gw, pool_port: Optional[int] = None) -> Dict[str, int]:
    """``pool_port``: leave out the gateway's connections to that port (its keep-alive pool
    towards a worker, bounded by the peak concurrency: not a leak)."""
    pid = gw.proc.pid
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    pooled = _tcp_inodes_to_port(pool_port) if pool_port else set()
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in pooled:
            continue
        fds += 1
    return {"fds": fds, "threads": len(os.listdir(f"/proc/{pid}/task")), "rss_kb": rss}


def metric(text: str, name: str, labels: str = "") -> Optional[float]:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def metrics(gw) -> str:
    return http_request("GET", gw.url + "/metrics").body


def live_calls(gw, admin_key: str = ADMIN_KEY):
    reply = http_request("GET", gw.url + "/debug/calls",
                         headers={"Authorization": f"Bearer {admin_key}"})
    assert reply.status == 200, reply
    return reply.json()["data"]


def worker_live_calls(text: str) -> float:
    values = [float(v) for v in re.findall(r"^rtgw_worker_live_calls\{[^}]*\} ([0-9.e+-]+)$",
                                           text, re.M)]
    return sum(values)


def warm_up(gw, key: str) -> None:
    from peers.aiortc_client import run_call_sync
    result = run_call_sync(gw.url, key, model="gpt-realtime",
                           send_events=[{"type": "test.echo", "payload": "warm"}],
                           until=lambda r: r.events_of("test.echoed"), duration=10)
    assert result.status == 201, result.error_body
    wait_for(lambda: not live_calls(gw), 10)


def wait_for(pred, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def assert_clean(gw, base: Dict[str, int], admin_key: str = ADMIN_KEY,
                 timeout: float = 15.0) -> Dict[str, int]:
    """Waits (bounded) for the clean state; returns the last snapshot."""
    assert gw.running(), "the gateway died"
    assert wait_for(lambda: not live_calls(gw, admin_key), timeout), live_calls(gw, admin_key)
    assert wait_for(lambda: worker_live_calls(metrics(gw)) == 0, timeout), metrics(gw)
    last = {}

    def settled():
        nonlocal last
        last = snapshot(gw)
        return (last["fds"] <= base["fds"] + FD_NOISE
                and last["threads"] <= base["threads"] + THREAD_NOISE)
    assert wait_for(settled, timeout, 0.5), f"not back to baseline: {base} -> {last}"
    return last


def ended_for_client(result) -> bool:
    """The gateway ended the call as the client sees it: its data channel was closed by the
    gateway, or its peer connection closed/failed."""
    return (result.remote_closed or "closed" in result.connection_states
            or "failed" in result.connection_states)
