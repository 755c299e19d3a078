"""Budgets hold against requests in flight, unpriced components and absurd usage (issue 21).

- Budget reservations: a response.create takes an estimate of its turn before it goes upstream
  and settles it when its turn is metered; within one estimate of a budget a key has one open
  response, the others get the ``insufficient_quota`` error event (SPEC "Errors agents act on").
  Before: 50 back to back one token below a 1,000-token budget all ran (6,999 tokens), and five
  sessions at the edge ran five responses.
- Saturation: a worker reporting 9223372036854775807 tokens wrapped the key's total (and reset its
  budget), and the replay after a restart wrapped the same way.
- ``--check-config`` warns about a price table that lacks a per-token price.

Against the real gateway and peers/fake_upstream.py over WebSocket; each turn of the fake upstream
costs 57 tokens.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess

from conftest import GATEWAY_KEY, default_gateway_config
from peers.common import http_request
from peers.ws_client import WsClient, run_ws_session

MODEL = "gpt-realtime"
TURN_TOKENS = 57  # the fake upstream's usage per response.done
INT64_MAX = 9223372036854775807


def read_usage_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def seeded_gateway(fake_upstream, gateway_factory, tmp_path, spent, **key_fields):
    """A gateway whose key team-a has already spent `spent` tokens (a usage log replayed at
    start-up)."""
    log = tmp_path / "usage.jsonl"
    if spent:
        log.write_text(json.dumps({"time": 1, "kind": "response", "key": "team-a", "model": MODEL,
                                   "input_tokens": spent, "output_tokens": 0,
                                   "total_tokens": spent}) + "\n")
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"][0].update(key_fields)
    config["usage"] = {"log": str(log)}
    return gateway_factory(config), str(log)


def quota_errors(result):
    return [e for e in result.events_of("error")
            if e["error"]["code"] == "insufficient_quota"]


def key_tokens(log):
    return sum(r["total_tokens"] for r in read_usage_log(log) if r["key"] == "team-a")


def test_fifty_back_to_back_one_token_below_the_budget_run_one(fake_upstream, gateway_factory,
                                                                tmp_path):
    gw, log = seeded_gateway(fake_upstream, gateway_factory, tmp_path, 999, budget_tokens=1000)

    async def flood():
        async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL) as client:
            assert client.connected
            await client.wait_for(lambda r: r.events_of("session.created"), 10)
            for i in range(50):
                await client.send({"type": "response.create", "event_id": f"evt_flood_{i}"})
            await client.wait_for(
                lambda r: len(quota_errors(r)) >= 49 and r.events_of("response.done"), 15)
            await asyncio.sleep(1.0)  # anything else would have arrived by now
            return client.result
    result = asyncio.run(flood())
    errors = quota_errors(result)
    assert len(result.events_of("response.done")) == 1, result.event_types()
    assert len(errors) == 49, result.event_types()
    assert errors[0]["error"]["type"] == "insufficient_quota", errors[0]
    assert errors[0]["error"]["event_id"].startswith("evt_flood_"), errors[0]
    (session,) = fake_upstream.ws_sessions()
    creates = [e for e in map(json.loads, session["events"]) if e.get("type") == "response.create"]
    assert len(creates) == 1, len(creates)
    records = read_usage_log(log)
    assert len(records) == 2, records  # the seed and the one turn
    # The documented bound: at the edge one response, so the budget plus at most one turn.
    assert key_tokens(log) == 999 + TURN_TOKENS <= 1000 + TURN_TOKENS


def test_five_concurrent_sessions_at_the_edge_run_one_response(fake_upstream, gateway_factory,
                                                               tmp_path):
    gw, log = seeded_gateway(fake_upstream, gateway_factory, tmp_path, 999, budget_tokens=1000)

    async def five():
        clients = [WsClient(gw.url, key=GATEWAY_KEY, model=MODEL) for _ in range(5)]
        for c in clients:
            await c.connect()
            assert c.connected
        for c in clients:
            await c.wait_for(lambda r: r.events_of("session.created"), 10)
        await asyncio.gather(*(c.send({"type": "response.create"}) for c in clients))
        for c in clients:
            await c.wait_for(lambda r: r.events_of("response.done") or quota_errors(r), 15)
        await asyncio.sleep(1.0)
        results = [c.result for c in clients]
        for c in clients:
            await c.close()
        return results
    results = asyncio.run(five())
    done = sum(len(r.events_of("response.done")) for r in results)
    refused = sum(len(quota_errors(r)) for r in results)
    assert (done, refused) == (1, 4), [r.event_types() for r in results]
    assert key_tokens(log) == 999 + TURN_TOKENS


def test_a_webrtc_call_at_the_edge_runs_one_of_three(fake_upstream, gateway_factory, tmp_path):
    # The same reservation on the data channel: three response.create back to back, one runs.
    from peers.aiortc_client import AiortcCall
    gw, log = seeded_gateway(fake_upstream, gateway_factory, tmp_path, 999, budget_tokens=1000)

    async def run():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected
        for i in range(3):
            call.send({"type": "response.create", "event_id": f"evt_call_{i}"})
        await call.wait_for(lambda r: len(quota_errors(r)) >= 2 and r.events_of("response.done"),
                            15)
        await asyncio.sleep(1.0)
        await call.close()
        return call.result
    result = asyncio.run(run())
    assert len(result.events_of("response.done")) == 1, result.event_types()
    assert len(quota_errors(result)) == 2, result.event_types()
    assert key_tokens(log) == 999 + TURN_TOKENS


def test_room_for_several_turns_lets_them_run_together(fake_upstream, gateway_factory, tmp_path):
    # The estimate is the key's recent average (57 after one turn): 1,000 - 57 leaves room for
    # 16 more; 5 at once all run.
    gw, log = seeded_gateway(fake_upstream, gateway_factory, tmp_path, 0, budget_tokens=1000)

    async def run():
        async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL) as client:
            await client.wait_for(lambda r: r.events_of("session.created"), 10)
            await client.send({"type": "response.create"})
            await client.wait_for(lambda r: r.events_of("response.done"), 10)
            for _ in range(5):
                await client.send({"type": "response.create"})
            await client.wait_for(lambda r: len(r.events_of("response.done")) >= 6, 15)
            return client.result
    result = asyncio.run(run())
    assert len(result.events_of("response.done")) == 6, result.event_types()
    assert not quota_errors(result)
    assert key_tokens(log) == 6 * TURN_TOKENS


def test_huge_usage_saturates_and_never_resets_the_budget(fake_upstream, gateway_factory,
                                                          tmp_path):
    log = tmp_path / "usage.jsonl"
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"][0]["budget_tokens"] = 1_000_000_050
    config["usage"] = {"log": str(log)}
    gw = gateway_factory(config)
    fake_upstream.config(usage={"input_tokens": INT64_MAX, "output_tokens": INT64_MAX,
                                "total_tokens": INT64_MAX})

    def one_turn():
        async def run():
            async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL) as client:
                await client.wait_for(lambda r: r.events_of("session.created"), 10)
                await client.send({"type": "response.create"})
                await client.wait_for(lambda r: r.events_of("response.done")
                                      or r.events_of("error"), 10)
                return client.result
        return asyncio.run(run())
    assert one_turn().events_of("response.done")
    (record,) = read_usage_log(str(log))
    assert record["total_tokens"] == 1_000_000_000, record  # counted at the 10^9 cap
    assert record["input_tokens"] == 1_000_000_000, record
    text = http_request("GET", gw.url + "/metrics").body
    assert 'rtgw_usage_invalid_total{key="team-a",model="gpt-realtime"} 1' in text
    assert "invalid usage from worker" in gw.stderr()
    # Not over yet (10^9 < 10^9 + 50); one more turn of 57 is, and stays so.
    fake_upstream.config(usage=None)  # back to the 57-token default
    assert one_turn().events_of("response.done")
    refused = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, duration=0.5)
    assert refused.handshake_status == 429, refused.handshake_status
    gw.stop()
    # The replay after a restart adds up to the same total: still over.
    again = gateway_factory(config)
    refused = run_ws_session(again.url, key=GATEWAY_KEY, model=MODEL, duration=0.5)
    assert refused.handshake_status == 429, refused.handshake_status


def test_check_config_warns_about_an_incomplete_price_table(tmp_path):
    config = {"models": [{"name": "m", "workers": [{"provider": "echo"}],
                          "pricing": {"per_million_tokens": {"text_input": 4, "audio_input": 32,
                                                             "text_output": 16,
                                                             "audio_output": 64}}}]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run([os.environ["RTGW_BINARY"], "--config", str(path), "--check-config"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr  # a warning, not an error
    out = proc.stdout + proc.stderr
    assert ("$.models[0].pricing.per_million_tokens: incomplete price table, no image_input: "
            "tokens of those kinds are charged at 64 USD per million tokens (the table's highest "
            "price)") in out, out
    # A complete table says nothing of the sort.
    config["models"][0]["pricing"]["per_million_tokens"]["image_input"] = 5
    path.write_text(json.dumps(config))
    proc = subprocess.run([os.environ["RTGW_BINARY"], "--config", str(path), "--check-config"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "incomplete price table" not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- cluster mode

from test_cluster import LEASE_SECONDS, redis, two_instances  # noqa: E402,F401 (fixture)
from peers.common import wait_until  # noqa: E402

RENEWAL_S = LEASE_SECONDS / 3  # how often an instance re-reads the others' reservations


def live_reservations(redis_proc):
    now_ms = str(int(__import__("time").time() * 1000))
    return int(redis_proc.command("ZCOUNT", "rtgw:reserve:team-a", now_ms, "+inf") or 0)


def test_cluster_counts_reservations_in_redis_and_a_dead_instances_lapse(
        fake_upstream, gateway_factory, redis):
    # The key is one token from its budget on the shared counter.
    redis.command("HSET", "rtgw:budget:team-a", "tokens", "999")
    a, b = two_instances(fake_upstream, gateway_factory, redis, budget_tokens=1000)
    fake_upstream.config(turn_ms=15000)  # A's response stays open

    async def scenario():
        on_a = WsClient(a.url, key=GATEWAY_KEY, model=MODEL)
        await on_a.connect()
        assert on_a.connected
        await on_a.wait_for(lambda r: r.events_of("session.created"), 10)
        await asyncio.sleep(RENEWAL_S + 0.5)  # A has read the shared total (999)
        await on_a.send({"type": "response.create"})
        await on_a.wait_for(lambda r: r.events_of("response.created"), 10)
        loop = asyncio.get_running_loop()
        held = await loop.run_in_executor(
            None, lambda: wait_until(lambda: live_reservations(redis) == 1, 5))
        assert held, redis.command("ZRANGE", "rtgw:reserve:team-a", "0", "-1")
        # B learns of A's reservation at its next renewal: its response.create is refused.
        on_b = WsClient(b.url, key=GATEWAY_KEY, model=MODEL)
        await on_b.connect()
        assert on_b.connected
        await on_b.wait_for(lambda r: r.events_of("session.created"), 10)
        await asyncio.sleep(RENEWAL_S + 0.5)
        await on_b.send({"type": "response.create", "event_id": "evt_b1"})
        await on_b.wait_for(lambda r: quota_errors(r) or r.events_of("response.created"), 10)
        refused = quota_errors(on_b.result)
        # A dies with its reservation: it lapses within lease_seconds and B may go on.
        a.proc.kill()
        a.proc.wait(5)
        fake_upstream.config(turn_ms=0)
        lapsed = await loop.run_in_executor(
            None, lambda: wait_until(lambda: live_reservations(redis) == 0, LEASE_SECONDS + 3))
        await asyncio.sleep(RENEWAL_S + 0.5)  # B re-reads the (now empty) set
        await on_b.send({"type": "response.create", "event_id": "evt_b2"})
        await on_b.wait_for(lambda r: r.events_of("response.done"), 15)
        result = on_b.result
        await on_b.close()
        await on_a.close()
        return refused, lapsed, result
    refused, lapsed, result = asyncio.run(scenario())
    assert refused and refused[0]["error"]["event_id"] == "evt_b1", result.event_types()
    assert lapsed, "the dead instance's reservation never lapsed"
    assert len(result.events_of("response.done")) == 1, result.event_types()
