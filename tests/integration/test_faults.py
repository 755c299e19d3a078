"""Faults (issue 14): each ends in a clean state: no live call in GET /debug/calls, every
worker's live-call gauge back to 0, the gateway's fds and threads back to their baseline, and
the right outcome in /metrics."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import pytest

from cleanstate import (ADMIN_KEY, assert_clean, ended_for_client, live_calls, metric, metrics,
                        snapshot, wait_for, warm_up, with_admin)
from conftest import GATEWAY_KEY, default_gateway_config

SANITIZED = os.environ.get("RTGW_SANITIZE", "none") not in ("", "none")
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.common import http_request, post_offer, wait_until

MODEL = "gpt-realtime"
ECHO = {"type": "test.echo", "payload": "still here"}




def get_call(gw, call_id):
    return http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                        headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()


def started_gateway(fake_upstream, gateway_factory, **extra):
    config = with_admin(default_gateway_config(fake_upstream))
    config.update(extra)
    gw = gateway_factory(config)
    warm_up(gw, GATEWAY_KEY)
    fake_upstream.reset()
    return gw, snapshot(gw)


def test_upstream_answers_but_never_connects_ice(fake_upstream, gateway_factory):
    gw, base = started_gateway(fake_upstream, gateway_factory,
                               webrtc={"ice_connect_timeout_seconds": 3})
    fake_upstream.config(no_ice=True)

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected, call.result.error_body  # the worker did answer
        started = time.monotonic()
        ended = await call.wait_for(ended_for_client, 10)
        took = time.monotonic() - started
        await call.close("leave")
        return ended, took, call.result.call_id
    ended, took, call_id = asyncio.run(scenario())
    assert ended, "the client was not told"
    assert took < 3 + 3, took
    state = get_call(gw, call_id)
    assert "ICE connect timeout" in state["end_reason"], state
    assert fake_upstream.wait_for(
        lambda s: s["calls"] and all(c["hangup"] for c in s["calls"].values()), 5)
    assert_clean(gw, base)
    text = metrics(gw)
    assert metric(text, "rtgw_calls_total", f'{{model="{MODEL}",outcome="ice_timeout"}}') == 1


def test_upstream_closes_only_its_data_channel(fake_upstream, gateway_factory):
    gw, base = started_gateway(fake_upstream, gateway_factory)

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL, send_events=[ECHO])
        await call.connect()
        assert call.connected
        assert await call.wait_for(lambda r: r.events_of("test.echoed"), 10)
        call.send({"type": "test.close_channel"})
        started = time.monotonic()
        ended = await call.wait_for(ended_for_client, 5)
        took = time.monotonic() - started
        await call.close("leave")
        return ended, took, call.result.call_id
    ended, took, call_id = asyncio.run(scenario())
    assert ended and took < 2.0, took
    state = get_call(gw, call_id)
    assert state["state"] == "ended" and "upstream" in state["end_reason"], state
    # the upstream's peer connection, left up by the worker, is hung up by the gateway
    assert fake_upstream.wait_for(lambda s: all(c["hangup"] for c in s["calls"].values()), 5)
    assert_clean(gw, base)
    assert metric(metrics(gw), "rtgw_calls_total", f'{{model="{MODEL}",outcome="completed"}}') == 2


def test_upstream_malformed_and_oversized_events(fake_upstream, gateway_factory):
    gw, base = started_gateway(fake_upstream, gateway_factory, policy={"max_event_bytes": 8192})

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected
        assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
        call.send({"type": "test.send_raw", "raw": '{"type": "oops", '})
        call.send({"type": "test.send_raw", "raw": "not json at all"})
        call.send({"type": "test.send_large", "bytes": 20000})
        call.send({"type": "test.send_large", "bytes": 100})  # under the limit: relayed
        call.send(ECHO)
        assert await call.wait_for(lambda r: r.events_of("test.echoed"), 10)
        await asyncio.sleep(0.5)
        state = get_call(gw, call.result.call_id)
        await call.close()
        return call.result, state
    result, state = asyncio.run(scenario())
    errors = [e["error"] for e in result.events_of("error")]
    codes = [e["code"] for e in errors]
    assert codes.count("invalid_upstream_event") == 2, errors
    assert codes.count("event_too_large") == 1, errors
    assert len(result.events_of("test.large")) == 1  # the small one
    # nothing malformed reached the client
    for raw in result.raw_events:
        assert isinstance(json.loads(raw), dict), raw
    assert state["state"] == "active" and state["events"]["refused"] == 3, state
    assert_clean(gw, base)
    assert metric(metrics(gw), "rtgw_calls_total", f'{{model="{MODEL}",outcome="completed"}}') == 2


def test_client_flooding_events(fake_upstream, gateway_factory):
    gw, base = started_gateway(fake_upstream, gateway_factory)
    rate, seconds = 10_000, 3

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected
        assert await call.wait_for(lambda r: r.channel_opened, 10)
        sent = 0
        peak_rss = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            # 10 ms worth of events at a time
            due = int((time.monotonic() - start) * rate) - sent
            for _ in range(max(0, due)):
                call.channel.send('{"type":"test.flood","n":%d}' % sent)
                sent += 1
            peak_rss = max(peak_rss, snapshot(gw)["rss_kb"])
            await asyncio.sleep(0.01)
        achieved = sent / (time.monotonic() - start)
        call.send(ECHO)
        alive = await call.wait_for(lambda r: r.events_of("test.echoed"), 30)
        for _ in range(100):  # let the gateway account for the whole burst
            state = get_call(gw, call.result.call_id)
            if state["events"]["from_client"] >= sent + 1:
                break
            await asyncio.sleep(0.2)
        await call.close()
        return call.result, state, sent, achieved, peak_rss
    result, state, sent, achieved, peak_rss = asyncio.run(scenario())
    print(f"flood: sent {sent} events ({achieved:.0f}/s), relayed "
          f"{state['events']['from_client'] - state['events']['refused']}, refused "
          f"{state['events']['refused']}; RSS {base['rss_kb']} kB -> peak {peak_rss} kB")
    assert gw.running()
    assert achieved > 3000, "the test client could not flood (machine too slow)"
    assert result.events_of("test.echoed"), "the call did not survive the flood"
    # every event was either relayed or refused with an error event (none silently dropped)
    assert state["events"]["from_client"] == sent + 1, state
    refused_errors = [e for e in result.events_of("error")
                      if e["error"]["code"] in ("event_queue_full", "event_too_large",
                                                "rate_limited", "events_rate_limited")]
    assert len(refused_errors) >= state["events"]["refused"] - 1, (state, len(refused_errors))
    # bounded memory: the burst (~300 kB of events) cannot cost more than a few tens of MB. Under
    # ASan every freed block waits in its quarantine (256 MB by default) before it is reused, so
    # RSS there grows with what was freed, not with what is held (CI saw +109 MB): only the
    # unsanitized build checks the tight bound.
    limit_kb = 100_000 if not SANITIZED else 400_000
    assert peak_rss - base["rss_kb"] < limit_kb, (base, peak_rss)
    assert_clean(gw, base)


def test_usage_log_on_a_full_disk(fake_upstream, gateway_factory, tmp_path):
    log = tmp_path / "usage.log"
    os.symlink("/dev/full", log)
    gw, base = started_gateway(fake_upstream, gateway_factory, usage={"log": str(log)})
    for _ in range(2):  # calls go on, turn after turn
        result = run_call_sync(gw.url, GATEWAY_KEY, model=MODEL,
                               send_events=[{"type": "response.create"}],
                               until=lambda r: r.events_of("response.done"), duration=10)
        assert result.status == 201 and result.events_of("response.done")
    assert wait_for(lambda: metric(metrics(gw), "rtgw_usage_log_errors_total") == 2, 5), \
        metrics(gw)
    assert "usage log write failed (No space left on device)" in gw.stderr()
    text = metrics(gw)
    # the turns still count (budgets are kept in memory)
    assert metric(text, "rtgw_tokens_total", f'{{key="team-a",model="{MODEL}",kind="input"}}') == 74
    assert_clean(gw, base)


def test_sigterm_with_many_live_calls(gateway_factory):
    # 20 by default to keep CI short; RTGW_FAULT_LIVE_CALLS=50 for the figure (exit 0
    # 6.2 s after SIGTERM with a 3 s drain, on 2 cores).
    n = int(os.environ.get("RTGW_FAULT_LIVE_CALLS", "20"))
    drain = 3
    config = {"auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]},
              "models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
              "limits": {"drain_timeout_seconds": drain}}
    gw = gateway_factory(config)

    async def scenario():
        calls = [AiortcCall(gw.url, GATEWAY_KEY, model="echo") for _ in range(n)]
        for i in range(0, n, 10):  # 10 set-ups at a time
            await asyncio.gather(*(c.connect() for c in calls[i:i + 10]))
        assert all(c.connected for c in calls), [c.result.status for c in calls]
        assert all([await c.wait_for(lambda r: r.channel_opened, 30) for c in calls])
        text = metrics(gw)
        assert metric(text, "rtgw_live_calls", '{model="echo"}') == n, text
        gw.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        # new calls are refused while draining (once the signal reached the main loop: GLib
        # hands it over from its own thread, which a loaded machine may run after a request)
        assert await asyncio.to_thread(
            wait_until, lambda: "shutting down:" in gw.stderr(), 10), gw.stderr()[-2000:]
        refused = await asyncio.to_thread(post_offer, gw.url, GATEWAY_KEY,
                                          calls[0].result.offer_sdp, "echo")
        try:
            code = await asyncio.to_thread(gw.proc.wait, drain + 20)
        except subprocess.TimeoutExpired:  # keep the evidence: where is every thread stuck?
            bt = subprocess.run(["gdb", "-p", str(gw.proc.pid), "-batch", "-ex",
                                 "thread apply all bt"], capture_output=True, text=True,
                                timeout=120).stdout
            raise AssertionError(f"the gateway did not exit after SIGTERM:\n{bt[-20000:]}")
        took = time.monotonic() - sent
        told = [await c.wait_for(ended_for_client, 5) for c in calls]
        for c in calls:
            await c.close("leave")
        return refused, code, took, told
    refused, code, took, told = asyncio.run(scenario())
    assert refused.status in (503, 0), refused  # 0: the listener already closed
    assert code == 0, gw.stderr()[-3000:]
    assert took < drain + 15, took
    assert all(told), f"{told.count(False)} of {n} clients were not told"
    print(f"SIGTERM with {n} live calls: exit {code} after {took:.1f} s (drain {drain} s)")


def test_sigkill_and_restart_replays_budgets(fake_upstream, gateway_factory, tmp_path):
    log = str(tmp_path / "usage.jsonl")
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"][0]["budget_tokens"] = 50
    config["usage"] = {"log": log}
    gw = gateway_factory(config)
    first = run_call_sync(gw.url, GATEWAY_KEY, model=MODEL,
                          send_events=[{"type": "response.create"}],
                          until=lambda r: r.events_of("response.done"), duration=10)
    assert first.events_of("response.done")  # 57 tokens: over the 50 budget
    refused = post_offer(gw.url, GATEWAY_KEY, "v=0", MODEL)
    assert refused.status == 429 and refused.json()["error"]["code"] == "insufficient_quota"
    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait(5)
    gw2 = gateway_factory(config)
    again = post_offer(gw2.url, GATEWAY_KEY, "v=0", MODEL)
    assert again.status == 429, again
    assert again.json()["error"]["code"] == "insufficient_quota"
