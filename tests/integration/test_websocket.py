"""WebSocket transport: ``GET /v1/realtime?model=M`` relayed to the worker's own WebSocket, and
sideband sockets (``GET /v1/realtime?call_id=…``) attached to a live WebRTC call.

Every test starts the real gateway ($RTGW_BINARY) in front of peers/fake_upstream.py, talks to
it with peers/ws_client.py (aiohttp) and asserts at both ends: what the client received (events,
close code and reason, or the HTTP refusal of the upgrade) and what the fake upstream recorded
(the events that reached it byte for byte, its handshake requests, who closed its socket and
with which code).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import GATEWAY_KEY, UPSTREAM_KEY, default_gateway_config, start_fake_upstream
from peers.aiortc_client import AiortcCall
from peers.common import free_port, header, http_request, post_offer
from peers.ws_client import WsClient, run_ws_session
from test_calls import aiortc_offer
from test_tokens import mint

REPO_ROOT = Path(__file__).resolve().parents[2]

MODEL = "gpt-realtime"
ECHO = {"type": "test.echo", "payload": "ping-over-websocket"}
ERROR_EVENT_ID = re.compile(r"evt_[0-9a-f]{32}")
USAGE = {"total_tokens": 57, "input_tokens": 37, "output_tokens": 20,
         "input_token_details": {"text_tokens": 12, "audio_tokens": 25, "image_tokens": 0,
                                 "cached_tokens": 0},
         "output_token_details": {"text_tokens": 5, "audio_tokens": 15}}
ADMIN_KEY = "sk-admin-ws"


# --------------------------------------------------------------------------- helpers

def compact(event):
    return json.dumps(event, separators=(",", ":"))


def parsed(raws):
    out = []
    for raw in raws:
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def of_type(raws, type_):
    return [e for e in parsed(raws) if e.get("type") == type_]


def ws_handshakes(upstream):
    """The fake upstream's recorded WebSocket handshakes (GET /v1/realtime)."""
    return [r for r in upstream.requests() if r["path"] == "/v1/realtime" and r["method"] == "GET"]


def upstream_ws(upstream, timeout=10.0):
    """The single WebSocket session the fake upstream accepted (waits for it)."""
    sessions = upstream.wait_for(lambda s: list(s["ws_sessions"].values()) or None, timeout)
    assert sessions, "the upstream never got a WebSocket session"
    assert len(sessions) == 1, [w["id"] for w in sessions]
    return sessions[0]


def upstream_ws_closed(upstream, timeout=5.0):
    """Wait until every upstream WebSocket session is closed; returns them (or None)."""
    sessions = upstream.wait_for(
        lambda s: (list(s["ws_sessions"].values())
                   if s["ws_sessions"] and all(w["closed"] for w in s["ws_sessions"].values())
                   else None), timeout)
    return sorted(sessions, key=lambda w: w["created"]) if sessions else None


def ws_gateway(fake_upstream, gateway_factory, env=None, keys=None, **sections):
    config = default_gateway_config(fake_upstream)
    if keys is not None:
        config["auth"]["keys"] = keys
    config.update(sections)
    return gateway_factory(config, env=env)


def assert_upgraded(result):
    assert result.status == 101, (result.status, result.handshake_body, result.error)


def assert_policy_error(event, code="policy_violation"):
    assert ERROR_EVENT_ID.fullmatch(event.get("event_id") or ""), event
    assert event["error"]["type"] == "invalid_request_error", event
    assert event["error"]["code"] == code, event
    assert event["error"]["message"], event


def assert_quota_error(event):
    """SPEC "Errors agents act on": what a budget refuses or ends is `insufficient_quota`, type
    and code (an error event, or a refusal's JSON body), as OpenAI's own."""
    if "type" in event:
        assert event["type"] == "error", event
        assert ERROR_EVENT_ID.fullmatch(event.get("event_id") or ""), event
    assert event["error"]["type"] == "insufficient_quota", event
    assert event["error"]["code"] == "insufficient_quota", event
    assert event["error"]["message"], event


def read_usage_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_usage(path, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(read_usage_log(path)) < count:
        time.sleep(0.1)
    return read_usage_log(path)


def metrics(gw):
    return http_request("GET", gw.url + "/metrics").body


def echoed(payload):
    return lambda r: [e for e in r.events_of("test.echoed") if e.get("payload") == payload]


def until_closed(r):
    return r.closed


# --------------------------------------------------------------------------- relay

def test_relay_both_ways_with_bearer_header(gateway, fake_upstream):
    odd_spacing = '{"type":  "test.echo", "payload":"kept \\u00e9 exactly" }'
    update = {"type": "session.update", "session": {"instructions": "be brief"}}
    result = run_ws_session(
        gateway.url, key=GATEWAY_KEY, model=MODEL,
        send_events=[update, odd_spacing, {"type": "response.create"}],
        until=lambda r: (r.events_of("session.updated") and r.events_of("test.echoed")
                         and r.events_of("response.done")), duration=8)
    assert_upgraded(result)
    assert result.protocol is None  # nothing offered, nothing answered
    types = result.event_types()
    assert types[0] == "session.created", types
    assert result.events_of("session.updated")[0]["session"]["instructions"] == "be brief"
    assert result.events_of("test.echoed")[0]["payload"] == "kept \u00e9 exactly"
    assert types.index("response.created") < types.index(
        "response.output_audio_transcript.delta") < types.index("response.done"), types
    assert result.events_of("response.done")[0]["response"]["usage"] == USAGE
    assert not result.events_of("error"), result.events_of("error")

    up = upstream_ws(fake_upstream)
    assert up["model"] == MODEL and up["authorization_ok"]
    assert up["openai_beta"] is None, "no beta was asked for, none must be sent upstream"
    # client -> upstream and upstream -> client: every frame, byte for byte, in order
    assert up["events"] == result.sent_events
    assert result.raw_events == up["sent_events"]
    (handshake,) = ws_handshakes(fake_upstream)
    assert handshake["status"] == 101
    assert handshake["query"].get("model") == MODEL
    assert handshake["authorization"] == f"Bearer {UPSTREAM_KEY}", "the worker key goes upstream"
    assert not any(GATEWAY_KEY in p for p in up["subprotocols"]), up["subprotocols"]
    # the client closed: the gateway closes the upstream socket too
    closed = upstream_ws_closed(fake_upstream, 3)
    assert closed and closed[0]["closed_by"] == "peer", closed


def test_subprotocol_auth_answers_realtime_and_never_sends_the_beta_header(gateway, fake_upstream):
    result = run_ws_session(gateway.url, subprotocol_key=GATEWAY_KEY, model=MODEL,
                            send_events=[ECHO], until=echoed(ECHO["payload"]), duration=8)
    assert_upgraded(result)
    assert result.protocol == "realtime", result.response_headers
    assert echoed(ECHO["payload"])(result)
    up = upstream_ws(fake_upstream)
    # the client offered openai-beta.realtime-v1: it gets the beta dialect, the worker GA only
    assert up["openai_beta"] is None, "OpenAI-Beta must never reach a worker"
    assert up["events"] == [compact(ECHO)]
    (handshake,) = ws_handshakes(fake_upstream)
    assert handshake["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert not any(GATEWAY_KEY in p for p in up["subprotocols"]), "the client key leaked upstream"
    assert upstream_ws_closed(fake_upstream, 3)

    # the OpenAI-Beta header (Authorization auth, no subprotocol) asks for the beta as well, and
    # is not passed on either
    fake_upstream.reset()
    result = run_ws_session(gateway.url, key=GATEWAY_KEY, model=MODEL, beta_header=True,
                            send_events=[ECHO], until=echoed(ECHO["payload"]), duration=8)
    assert_upgraded(result)
    assert result.protocol is None
    assert upstream_ws(fake_upstream)["openai_beta"] is None

    # a wrong key in the subprotocol is refused before the upgrade
    fake_upstream.reset()
    refused = run_ws_session(gateway.url, subprotocol_key="sk-wrong-key", model=MODEL)
    assert refused.handshake_status == 401, (refused.status, refused.handshake_body)
    assert refused.error_code == "invalid_api_key"
    assert ws_handshakes(fake_upstream) == []


def test_ephemeral_token_session_goes_upstream_first(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["auth"]["token_secret"] = "shared-secret"
    config["models"][0]["name"] = "alias"            # upstream_model stays gpt-realtime
    gw = gateway_factory(config)
    reply = mint(gw, session={"type": "realtime", "model": "alias",
                              "instructions": "from the token"})
    assert reply.status == 200, reply.body
    token = reply.json()["value"]

    for auth in ({"key": token}, {"subprotocol_key": token}):
        fake_upstream.reset()
        result = run_ws_session(gw.url, model="alias", send_events=[ECHO],
                                until=echoed(ECHO["payload"]), duration=8, **auth)
        assert_upgraded(result)
        assert echoed(ECHO["payload"])(result), result.event_types()
        if "subprotocol_key" in auth:
            assert result.protocol == "realtime"
        up = upstream_ws(fake_upstream)
        assert up["model"] == "gpt-realtime", "?model= upstream is the upstream model"
        first = json.loads(up["events"][0])
        assert first["type"] == "session.update", up["events"]
        assert first["session"]["instructions"] == "from the token"
        assert first["session"]["model"] == "gpt-realtime", first
        assert compact(ECHO) in up["events"][1:]
        (handshake,) = ws_handshakes(fake_upstream)
        assert handshake["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert token not in json.dumps(handshake), "the token leaked upstream"


# --------------------------------------------------------------------------- policy

def test_policy_filters_service_tier_and_leaves_other_events_untouched(fake_upstream,
                                                                       gateway_factory):
    gw = ws_gateway(fake_upstream, gateway_factory, policy={"service_tier": [
        {"tier": "priority", "action": "filter", "models": ["*"], "keys": ["*"]}]})
    odd_spacing = '{"type":  "test.echo", "payload":"kept \\u00e9 exactly" }'
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, send_events=[
        {"type": "response.create", "event_id": "evt_c1",
         "response": {"service_tier": " FAST ", "instructions": "keep me"}}, odd_spacing],
        until=lambda r: r.events_of("response.done") and r.events_of("test.echoed"), duration=8)
    assert_upgraded(result)
    assert result.events_of("response.done"), result.event_types()
    assert not result.events_of("error")
    up = upstream_ws(fake_upstream)
    (create,) = of_type(up["events"], "response.create")
    assert "service_tier" not in create["response"], create
    assert create["response"]["instructions"] == "keep me"
    assert create["event_id"] == "evt_c1"
    assert odd_spacing in up["events"], "an event the policy does not touch must pass byte for byte"


def test_policy_blocks_and_the_session_goes_on(fake_upstream, gateway_factory):
    gw = ws_gateway(fake_upstream, gateway_factory, policy={
        "service_tier": [{"tier": "priority", "action": "block", "models": ["*"], "keys": ["*"]}],
        "deny_client_events": [{"type": "session.update", "keys": ["team-a"]}]})
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, send_events=[
        {"type": "response.create", "event_id": "evt_blocked",
         "response": {"service_tier": "priority"}},
        {"type": "session.update", "event_id": "evt_denied", "session": {"tools": []}},
        {"type": "test.echo", "payload": "after"}],
        until=lambda r: len(r.events_of("error")) >= 2 and echoed("after")(r), duration=8)
    assert_upgraded(result)
    errors = result.events_of("error")
    assert len(errors) == 2, result.event_types()
    for error in errors:
        assert_policy_error(error)
    assert echoed("after")(result), "the session must go on after a block"
    assert not result.closed_by_server
    up = upstream_ws(fake_upstream)
    assert not [e for e in up["events"] if "evt_blocked" in e or "evt_denied" in e], up["events"]
    assert up["events"] == [compact({"type": "test.echo", "payload": "after"})]
    assert re.search(r'rtgw_events_blocked_total\{rule="service_tier\[0\]",reason="service_tier"\} 1',
                     metrics(gw))


def test_end_call_rule_closes_the_socket_with_1008(fake_upstream, gateway_factory):
    gw = ws_gateway(fake_upstream, gateway_factory, policy={"service_tier": [
        {"tier": "priority", "action": "block", "models": ["*"], "keys": ["*"], "end_call": True}]})
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, send_events=[
        {"type": "response.create", "event_id": "evt_ends", "response": {"service_tier": "priority"}}],
        until=until_closed, duration=6)
    assert_upgraded(result)
    errors = result.events_of("error")
    assert errors, f"no error event before the close: {result.event_types()}"
    assert_policy_error(errors[0])
    assert result.closed_by_server and result.close_code == 1008, (result.close_code,
                                                                   result.close_reason)
    closed = upstream_ws_closed(fake_upstream, 3)
    assert closed, "the upstream socket stayed open"
    assert closed[0]["closed_by"] == "peer"
    assert not [e for e in closed[0]["events"] if "evt_ends" in e]


def test_event_too_large_and_binary_get_error_events(fake_upstream, gateway_factory):
    gw = ws_gateway(fake_upstream, gateway_factory, policy={"max_event_bytes": 2000},
                    websocket={"max_message_bytes": 100000})
    big = {"type": "conversation.item.create", "payload": "c" * 3000}
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL,
                            send_events=[big, b"\x00\x01binary\xff", {"type": "test.echo", "payload": "after"}],
                            until=lambda r: len(r.events_of("error")) >= 2 and echoed("after")(r),
                            duration=8)
    assert_upgraded(result)
    errors = result.events_of("error")
    assert sorted(e["error"]["code"] for e in errors) == ["binary_not_supported",
                                                          "event_too_large"], errors
    for error in errors:
        assert ERROR_EVENT_ID.fullmatch(error.get("event_id") or ""), error
        assert error["error"]["message"]
    assert echoed("after")(result), "the session must go on"
    assert not result.closed_by_server
    up = upstream_ws(fake_upstream)
    assert up["binary_received"] == 0, "a binary message was relayed"
    assert not [e for e in up["events"] if "c" * 3000 in e], "the oversized event was relayed"
    assert up["events"] == [compact({"type": "test.echo", "payload": "after"})]


def test_message_above_max_message_bytes_closes_with_1009(fake_upstream, gateway_factory):
    gw = ws_gateway(fake_upstream, gateway_factory, websocket={"max_message_bytes": 4096})
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL,
                            send_events=[{"type": "test.echo", "payload": "x" * 8000}],
                            until=until_closed, duration=6)
    assert_upgraded(result)
    assert result.closed_by_server and result.close_code == 1009, (result.close_code,
                                                                   result.close_reason)
    closed = upstream_ws_closed(fake_upstream, 3)
    assert closed, "the upstream socket stayed open"
    assert not [e for e in closed[0]["events"] if "x" * 8000 in e]


# --------------------------------------------------------------------------- metering

def test_usage_is_logged_and_counted_for_websocket_sessions(fake_upstream, gateway_factory,
                                                            tmp_path):
    log = str(tmp_path / "usage.jsonl")
    gw = ws_gateway(fake_upstream, gateway_factory, usage={"log": log})
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL,
                            send_events=[{"type": "response.create"}],
                            until=lambda r: r.events_of("response.done"), duration=8)
    assert_upgraded(result)
    (done,) = result.events_of("response.done")
    (record,) = wait_usage(log, 1)
    assert record["transport"] == "websocket", record
    assert record["call_id"].startswith("ws_"), record
    assert record["key"] == "team-a" and record["model"] == MODEL
    assert record["worker"]
    assert record["response_id"] == done["response"]["id"]
    assert record["status"] == "completed"
    assert record["input_tokens"] == 37 and record["output_tokens"] == 20
    assert record["total_tokens"] == 57
    assert record["input_token_details"] == USAGE["input_token_details"]
    assert record["output_token_details"] == USAGE["output_token_details"]
    text = metrics(gw)
    for kind, n in [("input", 37), ("output", 20), ("input_audio", 25), ("input_text", 12),
                    ("output_audio", 15), ("output_text", 5)]:
        assert f'rtgw_tokens_total{{key="team-a",model="gpt-realtime",kind="{kind}"}} {n}' in text, (kind, text)


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_budget_blocks_response_create_over_websocket(fake_upstream, gateway_factory, tmp_path,
                                                      beta):
    log = str(tmp_path / "usage.jsonl")
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "budget_tokens": 50}]
    gw = ws_gateway(fake_upstream, gateway_factory, keys=keys, usage={"log": log})

    async def two_turns():
        async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL, beta_header=beta) as client:
            assert client.connected
            await client.wait_for(lambda r: r.events_of("session.created"), 10)
            await client.send({"type": "response.create"})
            await client.wait_for(lambda r: r.events_of("response.done"), 8)
            # 57 tokens: over the budget; the live session blocks the next response.create
            await client.send({"type": "response.create", "event_id": "evt_over"})
            await client.send({"type": "test.echo", "payload": "still here"})
            await client.wait_for(lambda r: r.events_of("error") and echoed("still here")(r), 8)
            return client.result
    first = asyncio.run(two_turns())
    assert len(first.events_of("response.done")) == 1, first.event_types()
    assert_quota_error(first.events_of("error")[0])
    (session,) = fake_upstream.ws_sessions()
    assert len(of_type(session["events"], "response.create")) == 1, session["events"]
    assert len(wait_usage(log, 1)) == 1
    # no new session for a key over its budget, refused before the upgrade
    over = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, duration=0.5, beta_header=beta)
    assert not over.upgraded
    assert over.handshake_status == 429, (over.handshake_status, over.handshake_text)
    assert_quota_error(over.handshake_body)
    assert len(fake_upstream.ws_sessions()) == 1
    assert len(read_usage_log(log)) == 1


# --------------------------------------------------------------------------- upstream failures

@pytest.mark.parametrize("status,close_code", [(401, 1008), (403, 1008), (429, 1013),
                                               (500, 1011)])
def test_upstream_handshake_refusal_closes_the_client(status, close_code, gateway, fake_upstream):
    fake_upstream.config(status=status, body={"error": {"type": "server_error",
                                                        "code": f"upstream_{status}",
                                                        "message": "nope"}})
    result = run_ws_session(gateway.url, key=GATEWAY_KEY, model=MODEL, until=until_closed,
                            duration=8, first_event_timeout=8)
    assert_upgraded(result)  # the client's upgrade succeeded before the upstream was asked
    errors = result.events_of("error")
    assert errors and isinstance(errors[0].get("error"), dict), result.event_types()
    assert result.closed_by_server and result.close_code == close_code, (result.close_code,
                                                                         result.close_reason)
    handshakes = ws_handshakes(fake_upstream)
    assert handshakes and all(h["status"] == status for h in handshakes), handshakes
    assert fake_upstream.ws_sessions() == []


def test_slow_upstream_handshake_closes_with_1013(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["models"][0]["workers"][0]["timeout_seconds"] = 1
    gw = gateway_factory(config)
    fake_upstream.config(delay_ms=3000)
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, until=until_closed,
                            duration=6, first_event_timeout=6)
    assert_upgraded(result)
    assert result.events_of("error"), result.event_types()
    assert result.closed_by_server and result.close_code == 1013, (result.close_code,
                                                                   result.close_reason)
    assert result.closed_at - result.opened_at < 2.5, result.closed_at - result.opened_at
    assert ws_handshakes(fake_upstream), "the worker was never asked"


def test_unreachable_upstream_closes_with_1011(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["models"][0]["workers"][0]["url"] = f"http://127.0.0.1:{free_port()}"
    config["models"][0]["workers"][0]["health_interval_seconds"] = 0
    gw = gateway_factory(config)
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, until=until_closed,
                            duration=6, first_event_timeout=6)
    assert_upgraded(result)
    assert result.events_of("error"), result.event_types()
    assert result.closed_by_server and result.close_code == 1011, (result.close_code,
                                                                   result.close_reason)


def worker(upstream, name, **extra):
    return dict({"name": name, "url": upstream.url, "api_key": upstream.api_key,
                 "provider": "openai"}, **extra)


def test_failover_to_the_next_worker(fake_upstream, gateway_factory, tmp_path):
    bad = start_fake_upstream(str(tmp_path))
    slow = start_fake_upstream(str(tmp_path))
    try:
        slow.config(delay_ms=3000)
        dead = {"name": "dead", "url": f"http://127.0.0.1:{free_port()}", "api_key": "x",
                "provider": "openai", "health_interval_seconds": 0}
        config = default_gateway_config(fake_upstream)
        config["models"][0]["workers"] = [
            dead, worker(bad, "bad", health_interval_seconds=0),
            worker(slow, "slow", timeout_seconds=1), worker(fake_upstream, "good")]
        gw = gateway_factory(config)
        for status in (500, 429):
            bad.config(status=status, body={"error": {"code": "x", "message": "y", "type": "z"}})
            result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, send_events=[ECHO],
                                    until=echoed(ECHO["payload"]), duration=10,
                                    first_event_timeout=8)
            assert_upgraded(result)
            assert echoed(ECHO["payload"])(result), (status, result.event_types(),
                                                      result.close_code, result.close_reason)
            assert not result.closed_by_server
        assert [h["status"] for h in ws_handshakes(bad)] == [500, 429]
        assert len(ws_handshakes(slow)) == 2
        sessions = fake_upstream.ws_sessions()
        assert len(sessions) == 2
        assert all(s["events"] == [compact(ECHO)] for s in sessions), sessions
    finally:
        bad.stop()
        slow.stop()


def test_no_failover_when_the_upstream_refuses_the_key(fake_upstream, gateway_factory,
                                                       tmp_path):
    bad = start_fake_upstream(str(tmp_path))
    try:
        bad.config(status=401, body={"error": {"code": "invalid_api_key", "message": "no",
                                               "type": "invalid_request_error"}})
        config = default_gateway_config(fake_upstream)
        config["models"][0]["workers"] = [worker(bad, "bad"), worker(fake_upstream, "good")]
        gw = gateway_factory(config)
        result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, until=until_closed,
                                duration=6, first_event_timeout=6)
        assert_upgraded(result)
        assert result.close_code == 1008, (result.close_code, result.close_reason)
        assert [h["status"] for h in ws_handshakes(bad)] == [401]
        assert ws_handshakes(fake_upstream) == [], "a 401 must not fail over"
    finally:
        bad.stop()


# --------------------------------------------------------------------------- closing

@pytest.mark.parametrize("reason", ["bye", "\u00e9" * 60], ids=["short", "120-bytes-utf8"])
def test_upstream_close_code_reaches_the_client(reason, gateway, fake_upstream):
    result = run_ws_session(gateway.url, key=GATEWAY_KEY, model=MODEL,
                            send_events=[{"type": "test.close", "code": 4001, "reason": reason}],
                            until=until_closed, duration=6)
    assert_upgraded(result)
    assert result.closed_by_server and result.close_code == 4001, (result.close_code,
                                                                   result.close_reason,
                                                                   result.error)
    assert result.close_reason and "upstream" in result.close_reason.lower(), result.close_reason
    assert len(result.close_reason.encode()) <= 123
    up = upstream_ws(fake_upstream)
    assert up["closed_by"] == "upstream" and up["close_code"] == 4001


def test_client_leaving_mid_response_cancels_and_meters_it(fake_upstream, gateway_factory,
                                                           tmp_path):
    log = str(tmp_path / "usage.jsonl")
    gw = ws_gateway(fake_upstream, gateway_factory, usage={"log": log})
    fake_upstream.config(turn_ms=10000)  # a long response, cut short only by response.cancel

    async def scenario():
        ws = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
        await ws.connect()
        assert ws.connected, (ws.result.status, ws.result.handshake_body, ws.result.error)
        assert await ws.wait_for(lambda r: r.events_of("session.created"), 8)
        await ws.send({"type": "response.create"})
        assert await ws.wait_for(
            lambda r: r.events_of("response.output_audio_transcript.delta"), 5)
        await ws.close(1000)  # leave mid-response
        return time.monotonic()
    left_at = asyncio.run(scenario())
    cancelled = fake_upstream.wait_for(
        lambda s: [w for w in s["ws_sessions"].values()
                   if of_type(w["events"], "response.cancel")], 2)
    assert cancelled, "the gateway did not cancel the response upstream at once"
    assert time.monotonic() - left_at < 2.5
    (record,) = wait_usage(log, 1)
    assert record["status"] == "cancelled", record
    assert record["total_tokens"] == 57 and record["transport"] == "websocket"
    closed = upstream_ws_closed(fake_upstream, 5)
    assert closed and closed[0]["closed_by"] == "peer", "the upstream socket stayed open"
    assert of_type(closed[0]["sent_events"], "response.done"), "closed before the late done"


@pytest.mark.parametrize("via", ["config", "env"])
def test_idle_session_is_closed(via, fake_upstream, gateway_factory):
    if via == "config":
        gw = ws_gateway(fake_upstream, gateway_factory, websocket={"idle_timeout_seconds": 2})
    else:
        gw = ws_gateway(fake_upstream, gateway_factory,
                        env={"RTGW_WEBSOCKET_IDLE_TIMEOUT_SECONDS": "2"})

    async def scenario():
        ws = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
        await ws.connect()
        assert ws.connected, (ws.result.status, ws.result.handshake_body, ws.result.error)
        assert await ws.wait_for(lambda r: r.events_of("session.created"), 8)
        await asyncio.sleep(1.0)  # activity before the limit keeps it open
        await ws.send(ECHO)
        assert await ws.wait_for(echoed(ECHO["payload"]), 3)
        closed = await ws.wait_closed(6)
        await ws.close()
        return closed, ws.result
    closed, result = asyncio.run(scenario())
    assert closed, "the idle session was never closed"
    assert result.closed_by_server and result.close_code == 1000, (result.close_code,
                                                                   result.close_reason)
    assert "idle" in (result.close_reason or "").lower(), result.close_reason
    last_activity = max(result.last_message_at, result.last_sent_at)
    idle = result.closed_at - last_activity
    assert 1.5 <= idle <= 4.0, idle
    sessions = upstream_ws_closed(fake_upstream, 3)
    assert sessions and sessions[0]["closed_by"] == "peer", "the upstream socket stayed open"


# --------------------------------------------------------------------------- refusals

@pytest.fixture
def restricted_gateway(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"].append({"name": "team-b", "key": "sk-test-b", "models": ["other*"]})
    config["models"].append({"name": "other-model", "workers": [{"provider": "echo"}]})
    return gateway_factory(config)


REFUSALS = [
    # (id, auth kwargs, model, status, code)
    ("no-key", {}, MODEL, 401, "missing_api_key"),
    ("wrong-key", {"key": "sk-nope-nope"}, MODEL, 401, "invalid_api_key"),
    ("wrong-subprotocol-key", {"subprotocol_key": "sk-nope-nope"}, MODEL, 401, "invalid_api_key"),
    ("missing-model", {"key": GATEWAY_KEY}, None, 400, "missing_model"),
    ("unknown-model", {"key": GATEWAY_KEY}, "no-such-model", 404, "model_not_found"),
    ("model-not-allowed", {"key": "sk-test-b"}, MODEL, 403, "model_not_allowed"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_refusals_happen_before_the_upgrade(case, restricted_gateway, fake_upstream):
    _, auth, model, status, code = case
    result = run_ws_session(restricted_gateway.url, model=model, duration=0.5, **auth)
    assert not result.upgraded, "the upgrade must be refused"
    assert result.handshake_status == status, (result.handshake_status, result.handshake_text,
                                               result.error)
    err = result.handshake_body["error"]
    assert err["code"] == code, err
    assert err["message"] and err["type"]
    assert (header(result.handshake_headers, "Content-Type") or "").startswith(
        "application/json"), result.handshake_headers
    time.sleep(0.2)
    assert fake_upstream.requests() == [], "the upstream was contacted for a refused upgrade"


def test_plain_get_without_upgrade_is_426(gateway, fake_upstream):
    reply = http_request("GET", f"{gateway.url}/v1/realtime?model={MODEL}",
                         headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
    assert reply.status == 426, (reply.status, reply.body)
    assert reply.json()["error"]["code"] == "websocket_required"
    assert fake_upstream.requests() == []


def test_call_limits_count_websocket_sessions_and_webrtc_calls_together(fake_upstream,
                                                                        gateway_factory):
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "max_concurrent_calls": 1},
            {"name": "team-b", "key": "sk-test-b", "models": ["*"]},
            {"name": "team-c", "key": "sk-test-c", "models": ["*"]}]
    gw = ws_gateway(fake_upstream, gateway_factory, keys=keys, limits={"max_calls": 2})
    offer = aiortc_offer()

    async def refused(key):
        ws = WsClient(gw.url, key=key, model=MODEL)
        await ws.connect()
        await ws.close()
        return ws.result

    async def scenario():
        loop = asyncio.get_running_loop()
        first = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
        await first.connect()
        assert first.connected, (first.result.status, first.result.handshake_body)
        assert await first.wait_for(lambda r: r.events_of("session.created"), 8)
        again = await refused(GATEWAY_KEY)
        assert again.handshake_status == 429 and again.error_code == "too_many_calls", again
        # a WebSocket session counts against the key's calls
        reply = await loop.run_in_executor(
            None, lambda: post_offer(gw.url, GATEWAY_KEY, offer, model=MODEL))
        assert reply.status == 429 and reply.json()["error"]["code"] == "too_many_calls", reply.body
        await first.close()
        assert await loop.run_in_executor(None, lambda: upstream_ws_closed(fake_upstream, 3))
        call = None
        for _ in range(3):  # the slot is freed as the session ends
            call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
            await call.connect()
            if call.connected or call.result.status != 429:
                break
            await call.close()
            await asyncio.sleep(0.3)
        assert call.connected, (call.result.status, call.result.error_body)
        try:
            # ... and a WebRTC call counts against the key's WebSocket sessions
            after = await refused(GATEWAY_KEY)
            assert after.handshake_status == 429 and after.error_code == "too_many_calls", after
            other = WsClient(gw.url, key="sk-test-b", model=MODEL)
            await other.connect()
            assert other.connected, (other.result.status, other.result.handshake_body)
            full = await refused("sk-test-c")  # global max_calls 2: one call + one socket
            assert full.handshake_status == 503 and full.error_code == "no_capacity", full
            await other.close()
        finally:
            await call.close()
    asyncio.run(scenario())


def test_shutting_down_refuses_new_sessions(fake_upstream, gateway_factory):
    gw = ws_gateway(fake_upstream, gateway_factory, limits={"drain_timeout_seconds": 2})

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL, send_events=[ECHO])
        await call.connect()
        assert call.connected, call.result.error_body
        assert await call.wait_for(lambda r: r.events_of("test.echoed"), 10)
        try:
            gw.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            ws = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
            await ws.connect()
            await ws.close()
            return ws.result
        finally:
            await call.close("leave")
    result = asyncio.run(scenario())
    assert result.handshake_status == 503, (result.status, result.handshake_body, result.error)
    assert result.error_code == "shutting_down"
    assert ws_handshakes(fake_upstream) == []


# --------------------------------------------------------------------------- sideband

def sideband_gateway(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"] += [{"name": "team-b", "key": "sk-test-b", "models": ["*"]},
                               {"name": "ops", "key": ADMIN_KEY, "models": ["*"], "admin": True}]
    config["auth"]["token_secret"] = "shared-secret"
    config["policy"] = {"service_tier": [
        {"tier": "priority", "action": "block", "models": ["*"], "keys": ["*"]}]}
    return gateway_factory(config)


def the_upstream_call(fake_upstream):
    calls = fake_upstream.calls()
    assert len(calls) == 1, list(calls)
    return next(iter(calls.values()))


def test_sideband_receives_sends_obeys_policy_and_closes_with_the_call(fake_upstream,
                                                                       gateway_factory):
    gw = sideband_gateway(fake_upstream, gateway_factory)

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected, call.result.error_body
        side = None
        try:
            assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
            side = WsClient(gw.url, key=GATEWAY_KEY, call_id=call.result.call_id)
            await side.connect()
            assert side.connected, (side.result.status, side.result.handshake_body,
                                    side.result.error)
            # the call's server events reach the sideband
            call.send({"type": "test.echo", "payload": "from-call"})
            assert await side.wait_for(echoed("from-call"), 5), side.result.event_types()
            # the sideband's client events reach the upstream (the answer goes to both)
            assert await side.send({"type": "test.echo", "payload": "from-sideband"})
            assert await call.wait_for(
                lambda r: [e for e in r.events_of("test.echoed")
                           if e.get("payload") == "from-sideband"], 5)
            assert await side.wait_for(echoed("from-sideband"), 5)
            # the call's policy applies to the sideband's events
            assert await side.send({"type": "response.create", "event_id": "evt_side_blocked",
                                    "response": {"service_tier": "priority"}})
            assert await side.wait_for(lambda r: r.events_of("error"), 5), side.result.event_types()
            assert await call.wait_for(lambda r: r.events_of("error"), 5), call.result.event_types()
            # a whole response the WebRTC client asked for is seen by the sideband
            call.send({"type": "response.create"})
            assert await side.wait_for(lambda r: r.events_of("response.done"), 5)
            assert not side.result.closed
            # the call ends: the sideband is closed with 1000
            await call.close("hangup")
            closed = await side.wait_closed(5)
            return closed, side.result, call.result
        finally:
            await call.close("leave")
            if side is not None:
                await side.close()

    closed, side, call = asyncio.run(scenario())
    assert_policy_error(side.events_of("error")[0])
    assert_policy_error(call.events_of("error")[0])
    types = side.event_types()
    assert types.index("response.created") < types.index("response.done"), types
    assert closed, "the sideband stayed open after the call ended"
    assert side.closed_by_server and side.close_code == 1000, (side.close_code, side.close_reason)
    up = the_upstream_call(fake_upstream)
    assert compact({"type": "test.echo", "payload": "from-sideband"}) in up["events"]
    assert not [e for e in up["events"] if "evt_side_blocked" in e], "a blocked event got through"
    assert fake_upstream.ws_sessions() == [], "a sideband must not open an upstream socket"


def test_sideband_auth(fake_upstream, gateway_factory):
    gw = sideband_gateway(fake_upstream, gateway_factory)
    token = mint(gw, session={"type": "realtime", "model": MODEL}).json()["value"]

    async def attach(call_id, **auth):
        ws = WsClient(gw.url, call_id=call_id, **auth)
        await ws.connect()
        await ws.close()
        return ws.result

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected, call.result.error_body
        try:
            assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
            call_id = call.result.call_id
            return {
                "owner": await attach(call_id, key=GATEWAY_KEY),
                "owner-subprotocol": await attach(call_id, subprotocol_key=GATEWAY_KEY),
                "admin": await attach(call_id, key=ADMIN_KEY),
                "other-key": await attach(call_id, key="sk-test-b"),
                "token": await attach(call_id, key=token),
                "no-key": await attach(call_id),
                "unknown-call": await attach("rtc_" + "0" * 32, key=GATEWAY_KEY),
            }
        finally:
            await call.close()

    results = asyncio.run(scenario())
    assert results["owner"].upgraded, results["owner"].handshake_body
    assert results["owner-subprotocol"].upgraded
    assert results["owner-subprotocol"].protocol == "realtime"
    assert results["admin"].upgraded, results["admin"].handshake_body
    for name, status, code in [("other-key", 404, "call_not_found"),
                               ("unknown-call", 404, "call_not_found"),
                               ("token", 401, None), ("no-key", 401, "missing_api_key")]:
        r = results[name]
        assert r.handshake_status == status, (name, r.status, r.handshake_body)
        if code:
            assert r.error_code == code, (name, r.handshake_body)


def test_official_openai_sdk_realtime_websocket_client(gateway, fake_upstream):
    """The `openai` npm SDK's OpenAIRealtimeWS, pointed at the gateway, runs a whole session."""
    from peers.node_client import NODE, PEERS_DIR, ensure_node_deps

    ensure_node_deps("ws")
    proc = subprocess.run([NODE, "openai_sdk_realtime_ws.mjs", gateway.url, GATEWAY_KEY, MODEL],
                          cwd=PEERS_DIR, capture_output=True, text=True, timeout=60)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"], (out, proc.stderr)
    assert "/v1/realtime?model=" + MODEL in out["url"], out
    assert out["types"][0] == "session.created", out
    assert "session.updated" in out["types"] and "response.done" in out["types"], out
    assert not out["errors"], out
    assert out["usage"]["total_tokens"] == 57, out
    assert out["close_code"] == 1000, out
    (session,) = fake_upstream.ws_sessions()
    sent = [json.loads(e) for e in session["events"]]
    assert [e["type"] for e in sent] == ["session.update", "response.create"], sent
    assert sent[0]["session"]["instructions"] == "from the SDK"


_BROWSER_SESSION = """
const [url, key, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const out = {protocol: null, types: [], close_code: null, error: null};
const ws = new WebSocket(url, ["realtime", "openai-insecure-api-key." + key,
                               "openai-beta.realtime-v1"]);
const timer = setTimeout(() => { out.error = "timeout"; done(out); }, 15000);
ws.onopen = () => { out.protocol = ws.protocol; };
ws.onerror = () => { out.error = out.error || "error event"; };
ws.onmessage = (m) => {
  const event = JSON.parse(m.data);
  out.types.push(event.type);
  if (event.type === "session.created") ws.send(JSON.stringify({type: "response.create"}));
  if (event.type === "response.done") ws.close(1000, "done");
};
ws.onclose = (e) => { out.close_code = e.code; clearTimeout(timer); done(out); };
"""


def test_browser_websocket_with_subprotocol_key(gateway, fake_upstream):
    """Chromium's own WebSocket: the key travels as a subprotocol (browsers cannot set headers),
    and the browser fails the socket unless the gateway answers with an offered subprotocol."""
    from peers.browser_client import start_chromium

    driver, profile = start_chromium()
    try:
        driver.get(gateway.url + "/healthz")  # a same-origin page to run the script on
        url = gateway.url.replace("http://", "ws://") + "/v1/realtime?model=" + MODEL
        out = driver.execute_async_script(_BROWSER_SESSION, url, GATEWAY_KEY)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert out["error"] is None, out
    assert out["protocol"] == "realtime", out
    assert out["types"][0] == "session.created" and "response.done" in out["types"], out
    assert out["close_code"] == 1000, out
    (session,) = fake_upstream.ws_sessions()
    assert session["openai_beta"] is None, session
    assert [json.loads(e)["type"] for e in session["events"]] == ["response.create"]


def test_official_openai_sdk_sideband_on_a_live_call(fake_upstream, gateway_factory):
    """The SDK's sideband form (`callID`) attaches to a WebRTC call and drives a response."""
    from peers.node_client import NODE, PEERS_DIR, ensure_node_deps

    ensure_node_deps("ws")
    gw = sideband_gateway(fake_upstream, gateway_factory)

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        try:
            assert call.connected, call.result.error_body
            assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
            proc = await asyncio.create_subprocess_exec(
                NODE, "openai_sdk_realtime_ws.mjs", gw.url, GATEWAY_KEY,
                "call:" + call.result.call_id, cwd=PEERS_DIR,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
            # the WebRTC client hears the response the sideband asked for
            assert await call.wait_for(lambda r: r.events_of("response.done"), 5)
            return json.loads(stdout.decode().strip().splitlines()[-1]), stderr.decode()
        finally:
            await call.close("hangup")

    out, stderr = asyncio.run(scenario())
    assert out["ok"], (out, stderr)
    assert "/v1/realtime?call_id=rtc_" in out["url"], out
    assert "response.done" in out["types"] and not out["errors"], out
    assert out["close_code"] == 1000, out
    up = the_upstream_call(fake_upstream)
    creates = [json.loads(e) for e in up["events"] if '"response.create"' in e]
    assert creates and creates[0]["response"]["instructions"] == "from the sideband", up["events"]
    assert fake_upstream.ws_sessions() == [], "a sideband must not open an upstream socket"


def test_admin_lists_live_websocket_sessions(fake_upstream, gateway_factory):
    gw = sideband_gateway(fake_upstream, gateway_factory)

    async def scenario():
        async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL) as ws:
            assert await ws.wait_for(lambda r: r.events_of("session.created"), 5)
            await ws.send({"type": "test.echo", "payload": "x"})
            assert await ws.wait_for(lambda r: r.events_of("test.echoed"), 5)
            return await asyncio.to_thread(
                http_request, "GET", gw.url + "/debug/calls",
                headers={"Authorization": "Bearer " + ADMIN_KEY})

    listing = asyncio.run(scenario())
    assert listing.status == 200, listing.body
    (session,) = [s for s in json.loads(listing.body)["data"]
                  if s["object"] == "realtime.websocket_session"]
    assert session["id"].startswith("ws_") and session["key"] == "team-a", session
    assert session["state"] == "active" and session["model"] == MODEL, session
    assert session["events"]["from_client"] == 1 and session["events"]["from_upstream"] >= 2
    relay = session["timings"]["event_relay_us"]
    assert relay["to_upstream"]["count"] == 1, relay
    assert relay["to_client"]["count"] == session["events"]["from_upstream"], relay
    assert 0 < relay["to_upstream"]["p50"] < 1e6, relay


def test_check_config_builds_the_session_pipeline(tmp_path):
    bad = tmp_path / "session.pipeline"
    bad.write_text("appsrc name=client_events_in ! fakesink\n")
    env = dict(os.environ, RTGW_WEBSOCKET_PIPELINE_FILE=str(bad))
    proc = subprocess.run([os.environ["RTGW_BINARY"], "--check-config"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0, proc.stdout
    assert "session pipeline has no element named" in proc.stderr, proc.stderr
    ok = subprocess.run([os.environ["RTGW_BINARY"], "--check-config"], capture_output=True,
                        text=True, timeout=30)
    assert ok.returncode == 0 and "websocket: idle_timeout_seconds=300" in ok.stdout, ok


def test_check_config_wants_event_sources_it_can_push_to(tmp_path):
    # The default sources are rteventsrc; an appsrc (an older pipeline file) still takes events,
    # a source without the push-buffer action signal is refused before anything starts.
    stock = (REPO_ROOT / "pipelines" / "session.pipeline").read_text()
    assert "rteventsrc name=client_events_in" in stock
    cases = {
        "appsrc": (stock.replace("rteventsrc name=client_events_in",
                                 "appsrc name=client_events_in is-live=true format=time "
                                 "caps=application/x-realtime-event"), True),
        "fakesrc": (stock.replace("rteventsrc name=upstream_events_in",
                                  "fakesrc name=upstream_events_in"), False),
    }
    for name, (text, accepted) in cases.items():
        path = tmp_path / f"{name}.pipeline"
        path.write_text(text)
        for variable in ("RTGW_WEBSOCKET_PIPELINE_FILE", "RTGW_PIPELINE_FILE"):
            env = dict(os.environ, **{variable: str(path)})
            if variable == "RTGW_PIPELINE_FILE":
                # The call pipeline also needs the webrtcbins and audio ends.
                call = (REPO_ROOT / "pipelines" / "call.pipeline").read_text()
                path_call = tmp_path / f"{name}-call.pipeline"
                path_call.write_text(call.split("rteventsrc name=client_events_in")[0] + text)
                env[variable] = str(path_call)
            proc = subprocess.run([os.environ["RTGW_BINARY"], "--check-config"], env=env,
                                  capture_output=True, text=True, timeout=30)
            assert (proc.returncode == 0) == accepted, (name, variable, proc.stderr)
            if not accepted:
                assert "'upstream_events_in' (GstFakeSrc) cannot take events" in proc.stderr, \
                    proc.stderr
