#!/usr/bin/python3
"""WebSocket benchmark: what the gateway's WebSocket relay (accept, worker socket, filter +
meter, relay) adds to a realtime session. Prints figures (no verdict).

  1. set-up: time from the client's connect to its first event (session.created), through the
     gateway and directly against the fake upstream, N sessions each, alternating.
  2. latency: one session through the gateway and one direct; M test.echo events one at a time
     on each (alternating), waiting for each test.echoed.
  3. throughput: S seconds of test.echo events with at most WINDOW in flight on each; events/s,
     and the gateway's CPU per relayed event.

  /usr/bin/python3 tests/bench/ws_bench.py [--sessions N] [--events M] [--seconds S] [--json FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/v1/realtime?model=" + bl.MODEL


class EchoSocket:
    """One realtime WebSocket whose test.echoed events resolve per-payload futures."""

    def __init__(self, name: str, base_url: str, key: str) -> None:
        self.name, self.base_url, self.key = name, base_url, key
        self.waiting: Dict[str, asyncio.Future] = {}
        self.seq = 0
        self.back = 0

    async def open(self, session: aiohttp.ClientSession) -> float:
        """Connects; returns ms from the connect to session.created."""
        t0 = time.perf_counter()
        self.ws = await session.ws_connect(ws_url(self.base_url), heartbeat=None,
                                           headers={"Authorization": "Bearer " + self.key})
        first = json.loads((await self.ws.receive(timeout=10)).data)
        assert first["type"] == "session.created", first
        ms = (time.perf_counter() - t0) * 1000
        self.reader = asyncio.ensure_future(self._read())
        return ms

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            if event.get("type") != "test.echoed":
                continue
            self.back += 1
            fut = self.waiting.pop(event.get("payload"), None)
            if fut and not fut.done():
                fut.set_result(time.perf_counter())

    async def round_trip(self, timeout: float = 5.0):
        self.seq += 1
        payload = f"{self.name}-{self.seq}"
        fut = asyncio.get_running_loop().create_future()
        self.waiting[payload] = fut
        t0 = time.perf_counter()
        await self.ws.send_str(json.dumps({"type": "test.echo", "payload": payload}))
        try:
            return (await asyncio.wait_for(fut, timeout) - t0) * 1000
        except asyncio.TimeoutError:
            self.waiting.pop(payload, None)
            return None

    async def flood(self, seconds: float, window: int) -> Dict[str, float]:
        start_back, sent, deadline = self.back, 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            while sent - (self.back - start_back) < window:
                await self.ws.send_str(json.dumps({"type": "test.echo", "payload": "flood"}))
                sent += 1
            await asyncio.sleep(0.001)
        elapsed = seconds
        for _ in range(100):                      # let the window drain (bounded)
            if self.back - start_back >= sent:
                break
            await asyncio.sleep(0.1)
        echoed = self.back - start_back
        return {"sent": sent, "echoed": echoed, "events_per_s": echoed / elapsed}

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def run(gw: bl.Gateway, up: bl.Upstream, sessions: int, events: int, seconds: float,
              window: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        setup: Dict[str, List[float]] = {"gateway": [], "direct": []}
        for _ in range(sessions):
            for name, base, key in (("gateway", gw.url, bl.GATEWAY_KEY),
                                    ("direct", up.url, bl.UPSTREAM_KEY)):
                s = EchoSocket(name, base, key)
                setup[name].append(await s.open(http))
                await s.close()
        out["setup_ms"] = {k: bl.summary(v, (50, 90)) for k, v in setup.items()}
        pair = [EchoSocket("gateway", gw.url, bl.GATEWAY_KEY),
                EchoSocket("direct", up.url, bl.UPSTREAM_KEY)]
        for s in pair:
            await s.open(http)
        rtts: Dict[str, List[float]] = {"gateway": [], "direct": []}
        for i in range(20 + events):               # 20 warm-up round trips left out
            for s in pair:
                ms = await s.round_trip()
                if ms is not None and i >= 20:
                    rtts[s.name].append(ms)
        out["rtt_ms"] = {k: bl.summary(v, (50, 90, 99)) for k, v in rtts.items()}
        out["throughput"] = {}
        for s in pair:
            cpu = bl.CpuWindow({"gateway": [gw.pid]})
            cpu.start()
            t = out["throughput"][s.name] = await s.flood(seconds, window)
            c = cpu.stop()
            t["gateway_cpu_pct"] = c["gateway_pct"]
            t["gateway_cpu_us_per_event"] = (c["gateway_pct"] / 100 * c["seconds"]
                                             / max(1, t["echoed"]) * 1e6)
        for s in pair:
            await s.close()
    return out


def report(r: Dict[str, Any], sessions: int, events: int) -> None:
    g, d = r["setup_ms"]["gateway"], r["setup_ms"]["direct"]
    print(f"\n== 1. connect -> session.created, ms ({sessions} sessions each)")
    bl.print_table(["path", "p50", "p90"],
                   [["via gateway", g["p50"], g["p90"]], ["direct", d["p50"], d["p90"]],
                    ["gateway adds", g["p50"] - d["p50"], g["p90"] - d["p90"]]], digits=2)
    g, d = r["rtt_ms"]["gateway"], r["rtt_ms"]["direct"]
    print(f"\n== 2. event round trip, ms ({events} events each, one at a time, alternating)")
    bl.print_table(["path", "n", "p50", "p90", "p99"],
                   [["client -> gateway -> upstream -> gateway -> client", g["n"], g["p50"],
                     g["p90"], g["p99"]],
                    ["client -> upstream -> client", d["n"], d["p50"], d["p90"], d["p99"]],
                    ["gateway adds (both passes)", "", g["p50"] - d["p50"], g["p90"] - d["p90"],
                     g["p99"] - d["p99"]]], digits=3)
    print("\n== 3. throughput")
    bl.print_table(["path", "sent", "echoed", "events/s", "gateway CPU %core",
                    "gateway CPU µs/event"],
                   [[n, t["sent"], t["echoed"], t["events_per_s"], t["gateway_cpu_pct"],
                     t["gateway_cpu_us_per_event"] if n == "gateway" else "-"]
                    for n, t in r["throughput"].items()], digits=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=30, help="N set-ups per path")
    ap.add_argument("--events", type=int, default=500, help="M round trips per path")
    ap.add_argument("--seconds", type=float, default=5.0, help="S, throughput run per path")
    ap.add_argument("--window", type=int, default=50, help="events in flight, throughput run")
    ap.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="rtgw-ws-bench-")
    print(f"gateway {bl.gateway_binary()}; logs in {workdir}")
    try:
        with bl.Processes() as procs:
            up = bl.start_fake_upstream(procs, workdir)
            gw = bl.start_gateway(procs, workdir, bl.gateway_config(up.port))
            result = asyncio.run(run(gw, up, args.sessions, args.events, args.seconds,
                                     args.window))
        report(result, args.sessions, args.events)
        if args.json:
            bl.write_json(args.json, {"host": bl.host_info(), "args": vars(args), **result})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
