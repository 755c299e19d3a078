"""Pricing and spend (SPEC "Pricing and spend"): cost_usd on every usage record, in /metrics
and in GET /v1/usage; budget_usd across calls and restarts; end_calls_over_budget.

The fake upstream's response.done reports 37 input tokens (12 text, 25 audio) and 20 output
(5 text, 15 audio): at gpt-realtime's prices (text 4 / 16, audio 32 / 64 $ per million) a turn
costs (12*4 + 25*32 + 5*16 + 15*64) / 1e6 = $0.001888.
"""
from __future__ import annotations

import asyncio
import json
import math
import time

from cleanstate import ended_for_client
from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import http_request, post_offer, wait_until
from peers.ws_client import WsClient
from test_calls import aiortc_offer, get_call
from test_websocket import assert_quota_error, read_usage_log, wait_usage

MODEL = "gpt-realtime"
UNPRICED = "unpriced-realtime"
PRICING = {"per_million_tokens": {"text_input": 4.0, "text_cached_input": 0.4,
                                  "audio_input": 32.0, "audio_cached_input": 0.4,
                                  "image_input": 5.0, "text_output": 16.0, "audio_output": 64.0},
           "per_minute": {"transcription": 0.006}}
TURN_USD = (12 * 4 + 25 * 32 + 5 * 16 + 15 * 64) / 1e6  # 0.001888
ADMIN_KEY = "sk-ops-admin-0001"
TEAM_B_KEY = "sk-team-b-0000002"


def spend_gateway(fake_upstream, gateway_factory, log, keys=None):
    config = default_gateway_config(fake_upstream)
    priced = config["models"][0]
    priced["pricing"] = PRICING
    config["models"].append({"name": UNPRICED, "upstream_model": "gpt-realtime",
                             "workers": priced["workers"]})
    if keys is not None:
        config["auth"]["keys"] = keys
    if log:
        config["usage"] = {"log": log}
    return gateway_factory(config)


def close(a, b):
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def spend_metric(gw, key, model):
    text = http_request("GET", gw.url + "/metrics").body
    for line in text.splitlines():
        if line.startswith(f'rtgw_spend_usd_total{{key="{key}",model="{model}"}} '):
            return float(line.split()[-1])
    return None


def usage_report(gw, key, query=""):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return http_request("GET", gw.url + "/v1/usage" + query, headers=headers)


async def ws_turns(url, key, model, turns, extra=(), until=None):
    """A WebSocket session that asks for `turns` responses (each waited for), sends `extra`
    events and waits for `until(result)`; returns the client's result."""
    async with WsClient(url, key=key, model=model) as client:
        assert client.connected, client.result
        await client.wait_for(lambda r: r.events_of("session.created"), 10)
        for i in range(turns):
            await client.send({"type": "response.create"})
            assert await client.wait_for(lambda r: len(r.events_of("response.done")) > i, 10)
        for event in extra:
            await client.send(event)
        if until:
            assert await client.wait_for(until, 10), client.result.event_types()
        return client.result


def test_cost_usd_in_the_usage_log_metrics_and_call_state(fake_upstream, gateway_factory,
                                                          tmp_path):
    log = str(tmp_path / "usage.jsonl")
    gw = spend_gateway(fake_upstream, gateway_factory, log)

    async def webrtc_turn():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected
        call.send({"type": "response.create"})
        assert await call.wait_for(lambda r: r.events_of("response.done"), 10)
        return call
    call = None

    async def run():
        nonlocal call
        call = await webrtc_turn()
        records = wait_usage(log, 1)
        state = http_request("GET", f"{gw.url}/v1/realtime/calls/{call.result.call_id}",
                             headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()
        await call.close()
        return records, state
    records, state = asyncio.run(run())
    assert len(records) == 1 and records[0]["transport"] == "webrtc"
    assert close(records[0]["cost_usd"], TURN_USD), records
    # the call's state carries its running cost and each turn's
    assert close(state["usage"]["cost_usd"], TURN_USD), state["usage"]
    assert [t["id"] for t in state["usage"]["turn_costs"]] == [records[0]["response_id"]]
    assert close(state["usage"]["turn_costs"][0]["cost_usd"], TURN_USD)

    # WebSocket: a second priced turn, a duration-billed transcription (90 s at $0.006/min),
    # and a turn of a model without a price table (null, never 0)
    asyncio.run(ws_turns(gw.url, GATEWAY_KEY, MODEL, 1, extra=[
        {"type": "test.transcribe", "usage": {"type": "duration", "seconds": 90}}],
        until=lambda r: r.events_of("conversation.item.input_audio_transcription.completed")))
    asyncio.run(ws_turns(gw.url, GATEWAY_KEY, UNPRICED, 1))
    records = wait_usage(log, 4)
    assert len(records) == 4, records
    by_kind = {(r["model"], r["kind"], r["transport"]): r for r in records}
    assert close(by_kind[(MODEL, "response", "websocket")]["cost_usd"], TURN_USD)
    transcription = by_kind[(MODEL, "transcription", "websocket")]
    assert transcription["transcription_seconds"] == 90
    assert close(transcription["cost_usd"], 0.009), transcription
    unpriced = by_kind[(UNPRICED, "response", "websocket")]
    assert "cost_usd" in unpriced and unpriced["cost_usd"] is None, unpriced

    assert close(spend_metric(gw, "team-a", MODEL), 2 * TURN_USD + 0.009)
    assert spend_metric(gw, "team-a", UNPRICED) is None  # no price: no spend series


def test_cached_tokens_are_charged_at_the_cached_price(fake_upstream, gateway_factory, tmp_path):
    log = str(tmp_path / "usage.jsonl")
    gw = spend_gateway(fake_upstream, gateway_factory, log)
    fake_upstream.config(usage={
        "total_tokens": 1150, "input_tokens": 1000, "output_tokens": 150,
        "input_token_details": {"text_tokens": 400, "audio_tokens": 600, "image_tokens": 0,
                                "cached_tokens": 500,
                                "cached_tokens_details": {"text_tokens": 300,
                                                          "audio_tokens": 200}},
        "output_token_details": {"text_tokens": 50, "audio_tokens": 100}})
    asyncio.run(ws_turns(gw.url, GATEWAY_KEY, MODEL, 1))
    (record,) = wait_usage(log, 1)
    expected = (100 * 4 + 300 * 0.4 + 400 * 32 + 200 * 0.4 + 50 * 16 + 100 * 64) / 1e6
    assert close(record["cost_usd"], expected), (record, expected)


def test_budget_usd_blocks_across_calls_and_survives_a_restart(fake_upstream, gateway_factory,
                                                               tmp_path):
    log = str(tmp_path / "usage.jsonl")
    # two turns (2 x $0.001888) go over $0.003; one does not
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "budget_usd": 0.003}]
    gw = spend_gateway(fake_upstream, gateway_factory, log, keys=keys)
    first = asyncio.run(ws_turns(gw.url, GATEWAY_KEY, MODEL, 1))
    assert not first.events_of("error"), first.event_types()

    async def second_session():
        async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL) as client:
            assert client.connected, client.result
            await client.wait_for(lambda r: r.events_of("session.created"), 10)
            await client.send({"type": "response.create"})
            assert await client.wait_for(lambda r: r.events_of("response.done"), 10)
            # now over $0.003: the live session blocks the next response.create
            await client.send({"type": "response.create", "event_id": "evt_over_usd"})
            assert await client.wait_for(lambda r: r.events_of("error"), 10)
            return client.result
    second = asyncio.run(second_session())
    assert len(second.events_of("response.done")) == 1
    assert_quota_error(second.events_of("error")[0])
    sessions = fake_upstream.ws_sessions()
    assert not [e for s in sessions for e in s["events"] if "evt_over_usd" in e]
    assert len(wait_usage(log, 2)) == 2
    # no new call or session for the key
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 429, reply.body
    assert_quota_error(reply.json())
    gw.stop()
    # a restart replays the spend from the usage log
    gw2 = spend_gateway(fake_upstream, gateway_factory, log, keys=keys)
    reply = post_offer(gw2.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 429, reply.body
    assert_quota_error(reply.json())
    assert len(read_usage_log(log)) == 2


def test_end_calls_over_budget_hangs_up_after_the_error_event(fake_upstream, gateway_factory,
                                                               tmp_path):
    log = str(tmp_path / "usage.jsonl")
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "budget_usd": 0.001,
             "end_calls_over_budget": True},
            {"name": "team-b", "key": TEAM_B_KEY, "models": ["*"], "budget_usd": 0.001}]
    gw = spend_gateway(fake_upstream, gateway_factory, log, keys=keys)

    async def run():
        # a WebSocket session of the same key, idle, and one of another key
        idle = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
        other = WsClient(gw.url, key=TEAM_B_KEY, model=MODEL)
        await idle.connect()
        await other.connect()
        assert idle.connected and other.connected
        await idle.wait_for(lambda r: r.events_of("session.created"), 10)
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected
        call.send({"type": "response.create"})
        # one turn ($0.001888) takes team-a over $0.001: error event, then hung up
        await call.wait_for(lambda r: ended_for_client(r), 15)
        await idle.wait_closed(10)
        await asyncio.sleep(0.5)
        other_open = other.open
        result = call.result
        call_id = result.call_id
        await call.close()
        await idle.close()
        await other.close()
        return result, idle.result, other_open, call_id
    call, idle, other_open, call_id = asyncio.run(run())
    assert ended_for_client(call), call.event_types()
    errors = call.events_of("error")
    assert errors, call.event_types()
    assert_quota_error(errors[0])
    assert "budget" in errors[0]["error"]["message"]
    assert idle.closed and idle.closed_by_server, idle
    assert idle.close_code == 1008, idle
    assert_quota_error(idle.events_of("error")[0])
    assert other_open, "another key's session must stay up"
    # the reason stays budget_exceeded in the call state and the log
    assert wait_until(lambda: get_call(gw, call_id).json()["state"] == "ended", 5)
    state = get_call(gw, call_id).json()
    assert state["outcome"] == "budget_exceeded", state
    assert state["end_reason"].startswith("budget_exceeded: "), state
    assert "ended (1008): budget_exceeded" in gw.stderr(), gw.stderr()[-2000:]
    (record,) = wait_usage(log, 1)
    assert close(record["cost_usd"], TURN_USD)


def test_a_turn_cut_short_by_a_hang_up_is_priced(fake_upstream, gateway_factory, tmp_path):
    """The client leaves mid-response: the gateway cancels it upstream, waits for its late
    response.done and prices the usage it reports."""
    log = str(tmp_path / "usage.jsonl")
    gw = spend_gateway(fake_upstream, gateway_factory, log)
    fake_upstream.config(turn_ms=10000)  # a long response, cut short only by response.cancel

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected
        call.send({"type": "response.create"})
        assert await call.wait_for(
            lambda r: r.events_of("response.output_audio_transcript.delta"), 10)
        await call.close("close")  # leave mid-response
    asyncio.run(scenario())
    (record,) = wait_usage(log, 1, timeout=10)
    assert record["status"] == "cancelled", record
    assert close(record["cost_usd"], TURN_USD), record
    assert close(spend_metric(gw, "team-a", MODEL), TURN_USD)


def log_line(time_, key, model, cost, tokens=10):
    return json.dumps({"time": time_, "kind": "response", "key": key, "model": model,
                       "input_tokens": tokens, "output_tokens": tokens,
                       "total_tokens": 2 * tokens, "transcription_seconds": 0,
                       "cost_usd": cost})


def test_usage_report_visibility_and_window(fake_upstream, gateway_factory, tmp_path):
    log = tmp_path / "usage.jsonl"
    # an earlier history: team-a in 1000 and 2000, team-b in 1500
    log.write_text("\n".join([log_line(1000, "team-a", MODEL, 0.5),
                              log_line(1500, "team-b", MODEL, 0.25),
                              log_line(2000, "team-a", MODEL, 0.125),
                              log_line(2000, "team-a", UNPRICED, None)]) + "\n")
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]},
            {"name": "team-b", "key": TEAM_B_KEY, "models": ["*"]},
            {"name": "ops", "key": ADMIN_KEY, "models": ["*"], "admin": True}]
    gw = spend_gateway(fake_upstream, gateway_factory, str(log), keys=keys)
    asyncio.run(ws_turns(gw.url, TEAM_B_KEY, MODEL, 1))  # and a live turn of team-b
    wait_usage(str(log), 5)

    reply = usage_report(gw, None)
    assert reply.status == 401, reply.body
    assert usage_report(gw, "sk-not-a-key-at-all").status == 401

    own = usage_report(gw, GATEWAY_KEY)
    assert own.status == 200, own.body
    body = own.json()
    assert body["object"] == "list"
    rows = {(r["key"], r["model"]): r for r in body["data"]}
    assert set(rows) == {("team-a", MODEL), ("team-a", UNPRICED)}, rows
    a = rows[("team-a", MODEL)]
    assert a["turns"] == 2 and a["input_tokens"] == 20 and a["output_tokens"] == 20
    assert a["total_tokens"] == 40 and a["transcription_seconds"] == 0
    assert close(a["cost_usd"], 0.625)
    assert rows[("team-a", UNPRICED)]["cost_usd"] is None

    admin = usage_report(gw, ADMIN_KEY).json()
    rows = {(r["key"], r["model"]): r for r in admin["data"]}
    assert set(rows) == {("team-a", MODEL), ("team-a", UNPRICED), ("team-b", MODEL)}, rows
    b = rows[("team-b", MODEL)]
    assert b["turns"] == 2 and close(b["cost_usd"], 0.25 + TURN_USD), b
    assert b["total_tokens"] == 20 + 57

    # since inclusive, until exclusive
    window = usage_report(gw, ADMIN_KEY, "?since=1500&until=2000").json()
    assert [(r["key"], r["turns"]) for r in window["data"]] == [("team-b", 1)], window
    later = usage_report(gw, GATEWAY_KEY, "?since=2000").json()
    assert sorted((r["model"], r["turns"]) for r in later["data"]) == [(MODEL, 1), (UNPRICED, 1)]
    live = usage_report(gw, TEAM_B_KEY, f"?since={int(time.time()) - 600}").json()
    assert [(r["key"], r["turns"]) for r in live["data"]] == [("team-b", 1)], live
    assert close(live["data"][0]["cost_usd"], TURN_USD)
    assert usage_report(gw, ADMIN_KEY, "?until=1000").json()["data"] == []

    for bad in ["?since=abc", "?until=-5", "?since=", "?since=1e400", "?since=20&until=10"]:
        reply = usage_report(gw, ADMIN_KEY, bad)
        assert reply.status == 400, (bad, reply.body)
        assert reply.json()["error"]["type"] == "invalid_request_error", reply.body


def test_tester_page_shows_each_turns_cost_and_the_running_cost(fake_upstream, gateway_factory,
                                                                 tmp_path):
    import shutil

    from peers.browser_client import start_chromium
    from test_tester_page import wait_text

    gw = spend_gateway(fake_upstream, gateway_factory, str(tmp_path / "usage.jsonl"))
    driver, profile = start_chromium()
    try:
        driver.get(gw.url + "/")
        driver.find_element("id", "key").send_keys(GATEWAY_KEY)
        driver.execute_script("loadModels()")
        assert MODEL in wait_text(driver, "model", lambda t: MODEL in t)
        driver.execute_script(f"document.getElementById('model').value = '{MODEL}'")
        driver.find_element("id", "start").click()
        log = wait_text(driver, "log", lambda t: "data channel open" in t)
        assert "data channel open" in log, log
        driver.find_element("id", "respond").click()
        one = f"${TURN_USD:.6f}"
        usage = wait_text(driver, "usage", lambda t: one in t)
        assert "completed" in usage and one in usage, usage
        assert wait_text(driver, "cost", lambda t: t == one) == one
        driver.find_element("id", "respond").click()
        two = f"${2 * TURN_USD:.6f}"
        assert wait_text(driver, "cost", lambda t: t == two) == two
        usage = driver.find_element("id", "usage").text
        assert usage.count(one) == 2, usage  # each turn's own cost
        driver.find_element("id", "hangup").click()
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_usage_report_without_a_usage_log_counts_this_process(fake_upstream, gateway_factory):
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]},
            {"name": "ops", "key": ADMIN_KEY, "models": ["*"], "admin": True}]
    gw = spend_gateway(fake_upstream, gateway_factory, None, keys=keys)
    assert usage_report(gw, GATEWAY_KEY).json()["data"] == []
    asyncio.run(ws_turns(gw.url, GATEWAY_KEY, MODEL, 2))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = usage_report(gw, ADMIN_KEY).json()["data"]
        if rows and rows[0]["turns"] == 2:
            break
        time.sleep(0.1)
    assert [(r["key"], r["model"], r["turns"]) for r in rows] == [("team-a", MODEL, 2)], rows
    assert close(rows[0]["cost_usd"], 2 * TURN_USD) and rows[0]["total_tokens"] == 114
    assert usage_report(gw, ADMIN_KEY, f"?since={int(time.time()) + 60}").json()["data"] == []
