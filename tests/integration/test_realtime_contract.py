"""Today's Realtime contract (issue 24 items 2-5) with real clients: the reasoning-effort cap on
every path (SPEC "Policy": initial session, token session, session.update, response.create, beta
and GA, WebRTC and WebSocket; `lower` and `block`), a custom voice object end to end, the new
transcription fields passed through and metered, and a budget kill seen by the official `openai`
node SDK and by aiortc (SPEC "Errors agents act on")."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess

from cleanstate import ended_for_client
from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import http_request
from peers.ws_client import run_ws_session
from test_tokens import mint
from test_transcription import COMPLETED, DURATION, assert_transcription_records
from test_websocket import assert_quota_error, assert_upgraded, of_type, wait_usage

REASONING = "gpt-realtime-2"
TEAM_B_KEY = "sk-team-b-contract"
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")
NODE = "/usr/bin/node"
# team-b may not go above low at all; everyone else is lowered to medium.
EFFORT_POLICY = {"reasoning_effort": [
    {"max": "low", "action": "block", "keys": ["team-b"]},
    {"max": "medium", "action": "lower", "models": ["gpt-realtime-2*"], "keys": ["*"]}]}
VOICE = {"id": "voice_1234abcd"}


def contract_gateway(fake_upstream, gateway_factory, policy=None, keys=None, models=()):
    config = default_gateway_config(fake_upstream)
    worker = config["models"][0]["workers"][0]
    for name in (REASONING, *models):
        config["models"].append({"name": name, "upstream_model": name, "workers": [worker]})
    config["auth"]["keys"] = keys or [
        {"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]},
        {"name": "team-b", "key": TEAM_B_KEY, "models": ["*"]}]
    config["auth"]["token_secret"] = "contract-secret"
    if policy is not None:
        config["policy"] = policy
    config["usage"] = {"log": "usage.jsonl"}
    return gateway_factory(config)


def effort(session):
    return (session.get("reasoning") or {}).get("effort")


def upstream_call_sessions(fake_upstream):
    """The initial sessions the fake upstream received with calls, oldest first."""
    return [r["session"] for r in fake_upstream.requests()
            if r["path"] == "/v1/realtime/calls" and r.get("session") is not None]


def upstream_events_of(fake_upstream, type_):
    """Every event of `type_` the fake upstream received, from calls and WebSocket sessions."""
    state = fake_upstream.state()
    raws = [e for c in state["calls"].values() for e in c["events"]]
    raws += [e for w in state["ws_sessions"].values() for e in w["events"]]
    return of_type(raws, type_)


async def one_call(url, key, session=None, model=None, events=(), until=None, path=None):
    kwargs = {"path": path} if path else {}
    call = AiortcCall(url, key, model=model, session=session, **kwargs)
    await call.connect()
    try:
        if call.connected:
            await call.wait_for(lambda r: r.events_of("session.created"), 10)
            for e in events:
                call.send(e)
            if until:
                await call.wait_for(until, 10)
    finally:
        await call.close("hangup")
    return call.result


def updated_twice(r):
    return len(r.events_of("session.updated")) >= 1 and r.events_of("response.done")


# --------------------------------------------------------------------------- reasoning effort

def test_reasoning_effort_is_lowered_on_every_path(fake_upstream, gateway_factory):
    gw = contract_gateway(fake_upstream, gateway_factory, EFFORT_POLICY)
    xhigh = {"type": "realtime", "model": REASONING, "reasoning": {"effort": "xhigh"},
             "parallel_tool_calls": False}
    update = {"type": "session.update", "event_id": "evt_u",
              "session": {"type": "realtime", "reasoning": {"effort": "high"},
                          "parallel_tool_calls": True}}
    create = {"type": "response.create", "event_id": "evt_c",
              "response": {"reasoning": {"effort": "xhigh"}, "instructions": "keep me"}}

    # WebRTC: multipart initial session, then session.update and response.create on the channel.
    result = asyncio.run(one_call(gw.url, GATEWAY_KEY, session=xhigh, events=[update, create],
                                  until=updated_twice))
    assert updated_twice(result), result.event_types()
    assert not result.events_of("error"), result.events_of("error")
    # WebRTC with a token minted for an xhigh session.
    minted = mint(gw, session=xhigh)
    assert minted.status == 200, minted.body
    assert effort(minted.json()["session"]) == "xhigh"  # the token binds what was asked
    token_call = asyncio.run(one_call(gw.url, minted.json()["value"]))
    assert token_call.status == 201, (token_call.status, token_call.error_body)
    # A beta client: a legacy mint's session, redeemed on the legacy WebRTC route.
    legacy = http_request("POST", gw.url + "/v1/realtime/sessions",
                          json.dumps({"model": REASONING, "voice": "alloy",
                                      "reasoning": {"effort": "high"},
                                      "parallel_tool_calls": False}).encode(),
                          {"Authorization": f"Bearer {GATEWAY_KEY}",
                           "Content-Type": "application/json"})
    assert legacy.status == 200, legacy.body
    beta_call = asyncio.run(one_call(gw.url, legacy.json()["client_secret"]["value"],
                                     path="/v1/realtime"))
    assert beta_call.status == 201, (beta_call.status, beta_call.error_body)
    sessions = upstream_call_sessions(fake_upstream)
    assert [effort(s) for s in sessions] == ["medium", "medium", "medium"], sessions
    assert [s["parallel_tool_calls"] for s in sessions] == [False, False, False], sessions
    assert sessions[2]["audio"]["output"]["voice"] == "alloy", sessions[2]
    updates = [e for e in upstream_events_of(fake_upstream, "session.update")
               if e.get("event_id") == "evt_u"]
    assert [effort(u["session"]) for u in updates] == ["medium"], updates
    assert updates[0]["session"]["parallel_tool_calls"] is True, updates
    creates = [e for e in upstream_events_of(fake_upstream, "response.create")
               if e.get("event_id") == "evt_c"]
    assert [c["response"] for c in creates] == [
        {"reasoning": {"effort": "medium"}, "instructions": "keep me"}], creates

    # WebSocket (GA), with a token's session and a session.update; then a beta client.
    ws = run_ws_session(gw.url, subprotocol_key=minted.json()["value"],
                        send_events=[dict(update, event_id="evt_ws")],
                        until=lambda r: r.events_of("session.updated"), duration=10)
    assert_upgraded(ws)
    beta = run_ws_session(gw.url, key=GATEWAY_KEY, model=REASONING, beta_header=True,
                          send_events=[{"type": "session.update", "event_id": "evt_beta",
                                        "session": {"voice": "alloy",
                                                    "reasoning": {"effort": "xhigh"}}}],
                          until=lambda r: r.events_of("session.updated"), duration=10)
    assert_upgraded(beta)
    ws_updates = {e.get("event_id"): e for e in upstream_events_of(fake_upstream, "session.update")}
    assert effort(ws_updates["evt_ws"]["session"]) == "medium", ws_updates
    assert effort(ws_updates["evt_beta"]["session"]) == "medium", ws_updates
    assert ws_updates["evt_beta"]["session"]["audio"]["output"]["voice"] == "alloy"
    # A lowered event is counted as filtered, by its rule (the initial sessions are not events).
    text = http_request("GET", gw.url + "/metrics").body
    assert 'rtgw_events_filtered_total{rule="reasoning_effort[1]"}' in text, text[-3000:]
    # the token's initial session went upstream lowered too (its first session.update)
    token_first = [e for e in upstream_events_of(fake_upstream, "session.update")
                   if e.get("session", {}).get("parallel_tool_calls") is False]
    assert token_first and all(effort(e["session"]) == "medium" for e in token_first), token_first


def test_reasoning_effort_block_refuses_on_every_path(fake_upstream, gateway_factory):
    gw = contract_gateway(fake_upstream, gateway_factory, EFFORT_POLICY)
    medium = {"type": "realtime", "model": REASONING, "reasoning": {"effort": "medium"}}

    refused = asyncio.run(one_call(gw.url, TEAM_B_KEY, session=medium))
    assert refused.status == 403, (refused.status, refused.error_body)
    assert refused.error_json["error"]["code"] == "policy_violation", refused.error_body
    minted = mint(gw, key=TEAM_B_KEY, session=medium)
    assert minted.status == 200, minted.body
    with_token = asyncio.run(one_call(gw.url, minted.json()["value"]))
    assert with_token.status == 403, (with_token.status, with_token.error_body)
    assert with_token.error_json["error"]["code"] == "policy_violation", with_token.error_body
    ws_token = run_ws_session(gw.url, subprotocol_key=minted.json()["value"], duration=2)
    assert ws_token.status == 403, (ws_token.status, ws_token.handshake_body)
    assert ws_token.handshake_body["error"]["code"] == "policy_violation"
    assert not upstream_call_sessions(fake_upstream)

    # session.update and response.create on a live call and a live WebSocket: error events.
    events = [{"type": "session.update", "event_id": "evt_bu",
               "session": {"reasoning": {"effort": "high"}}},
              {"type": "response.create", "event_id": "evt_bc",
               "response": {"reasoning": {"effort": "medium"}}},
              {"type": "session.update", "event_id": "evt_ok",
               "session": {"reasoning": {"effort": "low"}}}]
    two_errors = lambda r: len(r.events_of("error")) >= 2 and r.events_of("session.updated")  # noqa
    call = asyncio.run(one_call(gw.url, TEAM_B_KEY, model=REASONING, events=events,
                                until=two_errors))
    ws = run_ws_session(gw.url, key=TEAM_B_KEY, model=REASONING,
                        send_events=[dict(e, event_id=e["event_id"] + "_ws") for e in events],
                        until=two_errors, duration=10)
    for result, suffix in ((call, ""), (ws, "_ws")):
        errors = result.events_of("error")
        assert [e["error"]["code"] for e in errors] == ["policy_violation"] * 2, errors
        assert [e["error"]["event_id"] for e in errors] == ["evt_bu" + suffix,
                                                            "evt_bc" + suffix], errors
        assert "reasoning_effort" in errors[0]["error"]["message"], errors
    text = http_request("GET", gw.url + "/metrics").body
    assert ('rtgw_events_blocked_total{rule="reasoning_effort[0]",reason="reasoning_effort"}'
            in text), text[-3000:]
    sent = {e.get("event_id") for t in ("session.update", "response.create")
            for e in upstream_events_of(fake_upstream, t)}
    assert {"evt_ok", "evt_ok_ws"} <= sent and not sent & {"evt_bu", "evt_bc", "evt_bu_ws",
                                                            "evt_bc_ws"}, sent


# --------------------------------------------------------------------------- voice objects

def test_a_custom_voice_object_goes_through_unchanged(fake_upstream, gateway_factory):
    gw = contract_gateway(fake_upstream, gateway_factory, EFFORT_POLICY)
    session = {"type": "realtime", "model": REASONING,
               "audio": {"output": {"voice": VOICE}}, "reasoning": {"effort": "low"}}
    minted = mint(gw, session=session)
    assert minted.status == 200, minted.body
    assert minted.json()["session"]["audio"]["output"]["voice"] == VOICE
    other = {"id": "voice_ffff0000"}
    update = {"type": "session.update", "event_id": "evt_voice",
              "session": {"type": "realtime", "audio": {"output": {"voice": other}}}}
    result = asyncio.run(one_call(gw.url, minted.json()["value"], events=[update],
                                  until=lambda r: r.events_of("session.updated")))
    assert not result.events_of("error"), result.events_of("error")
    (initial,) = upstream_call_sessions(fake_upstream)
    assert initial["audio"]["output"]["voice"] == VOICE, initial
    (up,) = [e for e in upstream_events_of(fake_upstream, "session.update")
             if e.get("event_id") == "evt_voice"]
    assert up["session"]["audio"]["output"]["voice"] == other, up
    updated = result.events_of("session.updated")[-1]
    assert updated["session"]["audio"]["output"]["voice"] == other, updated

    # Beta: a legacy mint with a voice object, and a beta WebSocket's session.update.
    beta_mint = http_request("POST", gw.url + "/v1/realtime/sessions",
                             json.dumps({"model": REASONING, "voice": VOICE}).encode(),
                             {"Authorization": f"Bearer {GATEWAY_KEY}",
                              "Content-Type": "application/json"})
    assert beta_mint.status == 200, beta_mint.body
    assert beta_mint.json()["voice"] == VOICE, beta_mint.body
    beta = run_ws_session(gw.url, key=GATEWAY_KEY, model=REASONING, beta_header=True,
                          send_events=[{"type": "session.update", "event_id": "evt_bv",
                                        "session": {"voice": other}}],
                          until=lambda r: r.events_of("session.updated"), duration=10)
    assert_upgraded(beta)
    (bup,) = [e for e in upstream_events_of(fake_upstream, "session.update")
              if e.get("event_id") == "evt_bv"]
    assert bup["session"]["audio"]["output"]["voice"] == other, bup
    assert beta.events_of("session.updated")[-1]["session"]["voice"] == other, beta.events


# --------------------------------------------------------------------------- transcription fields

def test_new_transcription_fields_pass_through_and_are_metered(fake_upstream, gateway_factory):
    models = ("gpt-realtime-whisper", "gpt-transcribe", "gpt-live-transcribe")
    gw = contract_gateway(fake_upstream, gateway_factory, models=models)
    sessions = {
        "gpt-realtime-whisper": {"type": "transcription", "audio": {"input": {
            "transcription": {"model": "gpt-realtime-whisper", "delay": "low"},
            "turn_detection": None}}},
        "gpt-transcribe": {"type": "transcription", "audio": {"input": {
            "transcription": {"model": "gpt-transcribe", "keywords": ["Kubernetes", "GStreamer"],
                              "languages": ["en", "de"]}}}},
        "gpt-live-transcribe": {"type": "transcription", "audio": {"input": {
            "transcription": {"model": "gpt-live-transcribe", "languages": ["fr"],
                              "keywords": ["webrtcbin"]}}}},
    }
    done = lambda r: len(r.events_of(COMPLETED)) >= 2  # noqa: E731
    seen = 0
    for model, session in sessions.items():
        minted = mint(gw, session=session)
        assert minted.status == 200, minted.body
        result = run_ws_session(gw.url, subprotocol_key=minted.json()["value"],
                                query={"intent": "transcription"},
                                send_events=[{"type": "input_audio_buffer.commit"},
                                             {"type": "test.transcribe", "usage": DURATION}],
                                until=done, duration=15)
        assert_upgraded(result)
        assert done(result), result.event_types()
        up = sorted(fake_upstream.ws_sessions(), key=lambda w: w["created"])[-1]
        first = json.loads(up["events"][0])
        assert first["type"] == "session.update", up["events"]
        assert first["session"]["audio"]["input"] == session["audio"]["input"], first
        seen += 2
        records = wait_usage(os.path.join(gw.workdir, "usage.jsonl"), seen, timeout=15)
        assert_transcription_records(records[-2:], result.events_of(COMPLETED), model=model,
                                     transport="websocket")


# --------------------------------------------------------------------------- budget kill

def budget_keys():
    # One turn of the fake upstream is 57 tokens: over budget after the first response.done.
    return [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "budget_tokens": 50,
             "end_calls_over_budget": True}]


def test_budget_kill_is_insufficient_quota_for_the_openai_node_sdk(fake_upstream,
                                                                  gateway_factory):
    gw = contract_gateway(fake_upstream, gateway_factory, keys=budget_keys())
    proc = subprocess.run([NODE, "openai_sdk_budget_kill.mjs", gw.url, GATEWAY_KEY, REASONING],
                          cwd=PEERS, capture_output=True, text=True, timeout=40)
    assert proc.stdout.strip(), proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["response_done"] == 1, seen
    assert seen["errors"] and seen["errors"][0]["type"] == "insufficient_quota", seen
    assert seen["errors"][0]["code"] == "insufficient_quota", seen
    assert seen["close_code"] == 1008, seen
    # what comes next for this key: 429 insufficient_quota, which the SDK does not retry
    refused = mint(gw, session={"type": "realtime", "model": REASONING})
    assert refused.status == 429, refused.body
    assert_quota_error(refused.json())
    log = open(os.path.join(gw.workdir, "usage.jsonl")).read()
    assert "budget_exceeded" in gw.stderr() or "budget_exceeded" in log, gw.stderr()[-2000:]


def test_budget_kill_is_insufficient_quota_for_an_aiortc_call(fake_upstream, gateway_factory):
    gw = contract_gateway(fake_upstream, gateway_factory, keys=budget_keys())

    async def run():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=REASONING)
        await call.connect()
        assert call.connected
        call.send({"type": "response.create"})
        await call.wait_for(lambda r: r.events_of("error") and ended_for_client(r), 15)
        await call.close()
        return call.result
    result = asyncio.run(run())
    errors = result.events_of("error")
    assert errors, result.event_types()
    assert_quota_error(errors[0])
    reply = http_request("GET", f"{gw.url}/v1/realtime/calls/{result.call_id}",
                         headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
    assert reply.json()["outcome"] == "budget_exceeded", reply.body
