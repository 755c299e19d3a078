#!/usr/bin/python3
"""Load-generating client process for call_bench.py (never run inside the gateway's process).

Places ``--calls`` aiortc calls (one after the other), each sending a 400 Hz tone and one small
``test.echo`` event every ``--event-interval`` seconds, and keeps them up until told to stop.
It talks to its parent through stdin/stdout, one line per message:

  stdout  READY {"connected": n, "failed": [...]}      all calls placed (connected or failed)
  stdin   MARK                                         start of the measuring window
  stdout  MARKED
  stdin   STOP                                         end of the window: hang up and report
  stdout  RESULT {...}                                 per-call counters (see ``_report``)

It also stops (and reports) when stdin closes or after ``--max-seconds``. Logs go to stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402,F401  (puts tests/integration on sys.path)

from peers.aiortc_client import AiortcCall  # noqa: E402


class LoadCall:
    """One call and its counters; echo round trips are timed from the payload's send time."""

    def __init__(self, index: int, base_url: str, key: str, model: str) -> None:
        self.index = index
        self.echoed = 0
        self.sent = 0
        self.rtts_ms: List[float] = []          # echo round trips inside the window
        self.in_window = False
        self.mark: Dict[str, Any] = {}
        self.call = AiortcCall(base_url, key, model, on_event=self._on_event)

    def _on_event(self, event: Dict[str, Any], _call) -> None:
        if event.get("type") != "test.echoed":
            return
        self.echoed += 1
        if self.in_window:
            try:
                self.rtts_ms.append((time.perf_counter_ns() - int(event["payload"])) / 1e6)
            except (KeyError, TypeError, ValueError):
                pass

    def snapshot(self) -> Dict[str, Any]:
        return {"t": time.monotonic(), "frames": self.call.audio.frames,
                "frames_sent": self.call.tone.frames_sent, "echoed": self.echoed,
                "sent": self.sent}

    async def connect(self, timeout: float) -> Optional[str]:
        """Place the call; None when it is up (channel open, session.created, audio heard)."""
        result = await self.call.connect()
        if not self.call.connected:
            return f"POST status {result.status}: {result.error or result.error_body}"
        ok = await self.call.wait_for(
            lambda r: r.channel_opened and r.events_of("session.created")
            and (r.audio_frames_received or 0) > 0, timeout)
        return None if ok else "not connected in time (channel/session.created/audio missing)"

    def send_echo(self) -> None:
        if self.call.channel.readyState == "open":
            # payload = send time, so the echo gives the round trip
            self.call.send({"type": "test.echo", "payload": str(time.perf_counter_ns())})
            self.sent += 1


async def main_async(args) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    calls: List[LoadCall] = []
    failed: List[Dict[str, Any]] = []
    for i in range(args.calls):
        c = LoadCall(i, args.base_url, args.key, args.model)
        error = await c.connect(args.connect_timeout)
        if error is None:
            calls.append(c)
        else:
            failed.append({"index": i, "error": error})
            await c.call.close("close")

    async def ticker() -> None:            # one small event per call per interval
        while True:
            for c in calls:
                c.send_echo()
            await asyncio.sleep(args.event_interval)

    tick = asyncio.ensure_future(ticker())
    say("READY " + json.dumps({"connected": len(calls), "failed": failed}))

    deadline = time.monotonic() + args.max_seconds
    marked_at: Optional[float] = None
    while True:
        try:
            line = await asyncio.wait_for(reader.readline(),
                                          max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        cmd = line.decode().strip()
        if cmd == "MARK":
            marked_at = time.monotonic()
            for c in calls:
                c.mark, c.in_window = c.snapshot(), True
            say("MARKED")
        elif cmd == "STOP" or not line:    # STOP or stdin closed
            break

    end = {c.index: c.snapshot() for c in calls}
    for c in calls:
        c.in_window = False
    tick.cancel()
    per_call = []
    for c in calls:
        m, e = c.mark or end[c.index], end[c.index]
        window = max(1e-9, e["t"] - m["t"])
        per_call.append({
            "index": c.index, "call_id": c.call.result.call_id,
            "remote_closed": c.call.result.remote_closed,
            "window_s": window if c.mark else 0.0,
            "frames_received_per_s": (e["frames"] - m["frames"]) / window if c.mark else 0.0,
            "frames_sent_per_s": (e["frames_sent"] - m["frames_sent"]) / window if c.mark else 0.0,
            "events_sent_window": e["sent"] - m["sent"],
            "events_echoed_window": e["echoed"] - m["echoed"],
            "events_sent_total": c.sent, "events_echoed_total": c.echoed,
            "frames_received_total": e["frames"],
            "echo_rtt_ms": c.rtts_ms,
        })
    await asyncio.gather(*(asyncio.wait_for(c.call.close("close"), 10) for c in calls),
                         return_exceptions=True)
    say("RESULT " + json.dumps({"marked": marked_at is not None, "calls": per_call,
                                "failed": failed}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--key", default=benchlib.GATEWAY_KEY)
    ap.add_argument("--model", default=benchlib.MODEL)
    ap.add_argument("--calls", type=int, default=1)
    ap.add_argument("--event-interval", type=float, default=0.1)
    ap.add_argument("--connect-timeout", type=float, default=20.0)
    ap.add_argument("--max-seconds", type=float, default=600.0,
                    help="safety bound: hang up and exit after this long")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
