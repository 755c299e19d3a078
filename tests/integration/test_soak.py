"""Soak, short form (tests/bench/soak.py is the long one): 100 calls with one metered turn each
through the built-in echo worker (10 concurrent callers) leave the gateway's fds and threads
flat and its RSS within 10 %."""
from __future__ import annotations

import asyncio
import os

from cleanstate import ADMIN_KEY, live_calls, snapshot, wait_for
from conftest import GATEWAY_KEY
from peers.turn_calls import run_calls

CALLS = int(os.environ.get("RTGW_SOAK_CALLS", "100"))


def test_calls_leave_nothing_behind(gateway_factory, tmp_path):
    config = {"auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]},
                                {"name": "ops", "key": ADMIN_KEY, "models": ["*"],
                                 "admin": True}]},
              "models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
              "usage": {"log": str(tmp_path / "usage.jsonl")}}
    gw = gateway_factory(config)
    # warm-up: pools and caches that live as long as the process fill here
    warm = asyncio.run(run_calls(gw.url, GATEWAY_KEY, "echo", 20, 10))
    assert warm["failed"] == 0, warm["errors"]
    assert wait_for(lambda: not live_calls(gw), 15)
    base = snapshot(gw)
    stats = asyncio.run(run_calls(gw.url, GATEWAY_KEY, "echo", CALLS, 10))
    assert stats["failed"] == 0, stats["errors"]
    assert wait_for(lambda: not live_calls(gw), 15)
    last = {}

    def flat():
        nonlocal last
        last = snapshot(gw)
        return last["fds"] <= base["fds"] + 2 and last["threads"] <= base["threads"] + 2
    assert wait_for(flat, 20, 0.5), f"{CALLS} calls: {base} -> {last}"
    print(f"soak: {CALLS} calls in {stats['seconds']:.0f} s: {base} -> {last}")
    with open(str(tmp_path / "usage.jsonl")) as f:
        assert sum(1 for _ in f) == CALLS + 20  # every turn metered
    if os.environ.get("RTGW_SANITIZE", "none") not in ("", "none"):
        return  # ASan's allocator keeps freed memory in quarantine
    assert last["rss_kb"] <= base["rss_kb"] * 1.10, f"RSS grew: {base} -> {last}"
