"""Policy and metering through the gateway (rteventfilter / rtusagemeter in every call).

Asserted at the real aiortc upstream: filtered fields and blocked events never arrive. Asserted
in the usage log and /metrics: the right numbers.
"""
from __future__ import annotations

import asyncio
import json
import os
import re

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.common import http_request, post_offer
from test_calls import aiortc_offer

USAGE = {"total_tokens": 57, "input_tokens": 37, "output_tokens": 20,
         "input_token_details": {"text_tokens": 12, "audio_tokens": 25, "image_tokens": 0,
                                 "cached_tokens": 0},
         "output_token_details": {"text_tokens": 5, "audio_tokens": 15}}


def policy_gateway(fake_upstream, gateway_factory, policy, keys=None, usage_log=None):
    config = default_gateway_config(fake_upstream)
    config["policy"] = policy
    if keys:
        config["auth"]["keys"] = keys
    if usage_log:
        config["usage"] = {"log": usage_log}
    return gateway_factory(config)


def upstream_events(fake_upstream):
    calls = fake_upstream.wait_for(lambda s: s["calls"] or None, 10)
    assert calls
    return [e for c in calls.values() for e in c["events"]]


def run_until(url, key, events, until, duration=6.0):
    return run_call_sync(url, key, model="gpt-realtime", send_events=events, duration=duration,
                         until=until)


def test_service_tier_filtered_and_other_events_untouched(fake_upstream, gateway_factory):
    gw = policy_gateway(fake_upstream, gateway_factory, {"service_tier": [
        {"tier": "priority", "action": "filter", "models": ["*"], "keys": ["*"]}]})
    odd_spacing = '{"type":  "test.echo", "payload":"kept \\u00e9 exactly" }'
    result = run_until(gw.url, GATEWAY_KEY, [
        {"type": "response.create", "event_id": "evt_c1",
         "response": {"service_tier": " FAST ", "instructions": "keep me"}},
        odd_spacing],
        lambda r: r.events_of("response.done") and r.events_of("test.echoed"))
    assert result.events_of("response.done"), result.event_types()
    seen = upstream_events(fake_upstream)
    creates = [json.loads(e) for e in seen if '"response.create"' in e]
    assert len(creates) == 1
    assert "service_tier" not in creates[0]["response"], creates
    assert creates[0]["response"]["instructions"] == "keep me"
    assert odd_spacing in seen, "an event the policy does not touch must pass byte for byte"
    assert not result.events_of("error")


def test_blocked_tier_gets_policy_violation_and_never_reaches_upstream(fake_upstream,
                                                                      gateway_factory):
    gw = policy_gateway(fake_upstream, gateway_factory, {"service_tier": [
        {"tier": "priority", "action": "block", "models": ["*"], "keys": ["*"]}]})
    result = run_until(gw.url, GATEWAY_KEY, [
        {"type": "response.create", "event_id": "evt_blocked", "response": {"service_tier": "priority"}},
        {"type": "test.echo", "payload": "after"}],
        lambda r: r.events_of("error") and r.events_of("test.echoed"))
    (error,) = result.events_of("error")
    assert re.fullmatch(r"evt_[0-9a-f]{32}", error["event_id"]), error
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["code"] == "policy_violation"
    assert error["error"]["message"]
    seen = upstream_events(fake_upstream)
    assert not [e for e in seen if "evt_blocked" in e], "a blocked event reached the upstream"
    assert [e for e in seen if '"after"' in e], "the call must go on after a block"
    metrics = http_request("GET", gw.url + "/metrics").body
    assert re.search(r'rtgw_events_blocked_total\{rule="service_tier\[0\]",reason="service_tier"\} 1',
                     metrics), metrics


def test_block_rule_can_end_the_call(fake_upstream, gateway_factory):
    gw = policy_gateway(fake_upstream, gateway_factory, {"service_tier": [
        {"tier": "priority", "action": "block", "models": ["*"], "keys": ["*"], "end_call": True}]})
    result = run_until(gw.url, GATEWAY_KEY, [
        {"type": "response.create", "response": {"service_tier": "fast"}}],
        lambda r: r.remote_closed)
    assert result.events_of("error")[0]["error"]["code"] == "policy_violation"
    assert result.remote_closed, "the call was not ended by the rule"
    assert fake_upstream.wait_for(
        lambda s: all(c["hangup"] or c["closed"] for c in s["calls"].values()), 3)


def test_deny_client_events_per_key(fake_upstream, gateway_factory):
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]},
            {"name": "team-b", "key": "sk-test-b", "models": ["*"]}]
    policy = {"deny_client_events": [{"type": "session.update", "keys": ["team-b"]}]}
    gw = policy_gateway(fake_upstream, gateway_factory, policy, keys=keys)
    update = {"type": "session.update", "session": {"tools": []}}
    # wait for the upstream's session.created too: its channel was open when the event was denied
    denied = run_until(gw.url, "sk-test-b", [update, {"type": "test.echo", "payload": "x"}],
                       lambda r: r.events_of("error") and r.events_of("test.echoed"), 5)
    assert denied.events_of("error")[0]["error"]["code"] == "policy_violation"
    assert not [e for e in upstream_events(fake_upstream) if "session.update" in e]
    fake_upstream.reset()
    allowed = run_until(gw.url, GATEWAY_KEY, [update], lambda r: r.events_of("session.updated"), 5)
    assert allowed.events_of("session.updated") and not allowed.events_of("error")


def test_model_follows_session_update_for_rules(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["models"].append({"name": "gpt-realtime-mini",
                             "workers": config["models"][0]["workers"]})
    config["policy"] = {"service_tier": [
        {"tier": "priority", "action": "block", "models": ["gpt-realtime-mini"], "keys": ["*"],
         "fallback": "pass"}]}
    gw = gateway_factory(config)
    result = run_until(gw.url, GATEWAY_KEY, [
        {"type": "response.create", "event_id": "evt_first", "response": {"service_tier": "priority"}},
        {"type": "session.update", "session": {"model": "gpt-realtime-mini"}},
        {"type": "response.create", "event_id": "evt_second", "response": {"service_tier": "priority"}}],
        lambda r: r.events_of("error") and r.events_of("response.done"))
    assert len(result.events_of("error")) == 1
    seen = upstream_events(fake_upstream)
    assert [e for e in seen if "evt_first" in e]
    assert not [e for e in seen if "evt_second" in e]


def read_usage_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_usage_log_and_metrics(fake_upstream, gateway_factory, tmp_path):
    log = str(tmp_path / "usage.jsonl")
    gw = policy_gateway(fake_upstream, gateway_factory, {}, usage_log=log)
    result = run_until(gw.url, GATEWAY_KEY, [
        {"type": "response.create", "response": {"service_tier": "Priority"}}],
        lambda r: r.events_of("response.done"))
    assert result.events_of("response.done")
    (record,) = read_usage_log(log)
    assert record["call_id"] == result.call_id
    assert record["key"] == "team-a" and record["model"] == "gpt-realtime"
    assert record["worker"] and record["response_id"].startswith("resp_")
    assert record["input_tokens"] == 37 and record["output_tokens"] == 20
    assert record["total_tokens"] == 57
    assert record["input_token_details"] == USAGE["input_token_details"]
    assert record["output_token_details"] == USAGE["output_token_details"]
    assert record["service_tier"] == "priority"
    assert record["first_token_latency_ms"] is not None and record["first_token_latency_ms"] >= 0
    assert record["turn_duration_ms"] >= record["first_token_latency_ms"]
    metrics = http_request("GET", gw.url + "/metrics").body
    for kind, n in [("input", 37), ("output", 20), ("input_audio", 25), ("input_text", 12),
                    ("output_audio", 15), ("output_text", 5)]:
        assert f'rtgw_tokens_total{{key="team-a",model="gpt-realtime",kind="{kind}"}} {n}' in metrics, (kind, metrics)
    state = http_request("GET", f"{gw.url}/v1/realtime/calls/{result.call_id}",
                         headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()
    assert state["usage"]["input_tokens"] == 37 and state["usage"]["turns"] == 1


def test_budget_blocks_response_create_and_survives_restart(fake_upstream, gateway_factory,
                                                             tmp_path):
    log = str(tmp_path / "usage.jsonl")
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "budget_tokens": 50}]
    gw = policy_gateway(fake_upstream, gateway_factory, {}, keys=keys, usage_log=log)

    async def two_turns(url):
        call = AiortcCall(url, GATEWAY_KEY, model="gpt-realtime")
        await call.connect()
        assert call.connected
        call.send({"type": "response.create"})
        await call.wait_for(lambda r: r.events_of("response.done"), 8)
        # 57 tokens: now over the 50 budget; the live call blocks the next response.create
        call.send({"type": "response.create", "event_id": "evt_over"})
        await call.wait_for(lambda r: r.events_of("error"), 5)
        await call.close()
        return call.result
    first = asyncio.run(two_turns(gw.url))
    assert len(first.events_of("response.done")) == 1, first.event_types()
    over = first.events_of("error")[0]["error"]
    assert over["type"] == over["code"] == "insufficient_quota", over
    assert not [e for e in upstream_events(fake_upstream) if "evt_over" in e]
    # no new call for a key over its budget
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime")
    assert reply.status == 429 and reply.json()["error"]["code"] == "insufficient_quota", reply.body
    gw.stop()
    # a restart rebuilds the totals from the usage log
    gw2 = policy_gateway(fake_upstream, gateway_factory, {}, keys=keys, usage_log=log)
    reply = post_offer(gw2.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime")
    assert reply.status == 429 and reply.json()["error"]["code"] == "insufficient_quota", reply.body
    assert len(read_usage_log(log)) == 1


def test_late_response_done_after_client_left_is_metered(fake_upstream, gateway_factory,
                                                         tmp_path):
    log = str(tmp_path / "usage.jsonl")
    gw = policy_gateway(fake_upstream, gateway_factory, {}, usage_log=log)
    fake_upstream.config(turn_ms=10000)  # a long response, cut short only by response.cancel

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime")
        await call.connect()
        assert call.connected
        call.send({"type": "response.create"})
        assert await call.wait_for(lambda r: r.events_of("response.output_audio_transcript.delta"), 5)
        await call.close("close")  # leave mid-response
    asyncio.run(scenario())
    # the gateway cancels upstream at once and meters the cancelled turn
    calls = fake_upstream.wait_for(
        lambda s: [c for c in s["calls"].values() if '{"type":"response.cancel"}' in c["events"]], 5)
    assert calls, "the gateway did not cancel the response upstream"
    import time
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (os.path.exists(log) and read_usage_log(log)):
        time.sleep(0.1)
    (record,) = read_usage_log(log)
    assert record["status"] == "cancelled"
    assert record["total_tokens"] == 57
