"""Many short calls, each with one metered turn (for the soak benchmark and its short test).

    stats = asyncio.run(run_calls(base_url, key, "echo", calls=100, concurrency=10))

Each call: aiortc offer, POST, wait for the data channel, response.create, wait for
response.done, close (DTLS close_notify). ``stats`` = {"ok", "failed", "errors" (first few),
"seconds", "setup_ms" (list)}.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, Optional

from peers.aiortc_client import AiortcCall


async def one_turn_call(base_url: str, key: Optional[str], model: str,
                        timeout: float = 20.0) -> Dict[str, Any]:
    call = AiortcCall(base_url, key, model=model, send_events=[{"type": "response.create"}])
    started = time.monotonic()
    try:
        await call.connect()
        if not call.connected:
            return {"ok": False, "error": f"status {call.result.status}: {call.result.error_body} "
                                        f"{call.result.error}"}
        setup_ms = (time.monotonic() - started) * 1000
        done = await call.wait_for(lambda r: r.events_of("response.done"), timeout)
        return {"ok": done, "setup_ms": setup_ms,
                "error": None if done else "no response.done"}
    finally:
        await call.close("close")


async def run_calls(base_url: str, key: Optional[str], model: str, calls: int,
                    concurrency: int = 1, progress=None) -> Dict[str, Any]:
    """``calls`` calls through ``concurrency`` callers (each caller places its calls in turn)."""
    stats: Dict[str, Any] = {"ok": 0, "failed": 0, "errors": [], "setup_ms": []}
    next_index = 0
    started = time.monotonic()

    async def caller() -> None:
        nonlocal next_index
        while next_index < calls:
            next_index += 1
            try:
                r = await one_turn_call(base_url, key, model)
            except Exception as e:  # noqa: BLE001 - counted, not raised
                r = {"ok": False, "error": repr(e)}
            if r["ok"]:
                stats["ok"] += 1
                stats["setup_ms"].append(r["setup_ms"])
            else:
                stats["failed"] += 1
                if len(stats["errors"]) < 5:
                    stats["errors"].append(r.get("error"))
            if progress is not None:
                progress(stats["ok"] + stats["failed"])

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    stats["seconds"] = time.monotonic() - started
    return stats
