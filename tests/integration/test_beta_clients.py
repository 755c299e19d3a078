"""Beta clients (SPEC "Beta clients (legacy shape)"): clients written for the retired beta
Realtime shape talk to the gateway unchanged, and the worker only ever sees GA.

Each test asserts at both ends: what the beta client received (beta event names and session
shape) and what the fake upstream recorded (GA events, GA initial session, no OpenAI-Beta), plus
the usage log (the meter saw GA).
"""
from __future__ import annotations

import asyncio
import json
import os
import time

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import run_call_sync
from peers.common import header, http_request
from peers.ws_client import WsClient, run_ws_session

MODEL = "gpt-realtime"
TRANSCRIBE_MODEL = "gpt-4o-transcribe"

BETA_SESSION = {
    "modalities": ["text", "audio"], "voice": "alloy", "instructions": "be brief",
    "input_audio_format": "pcm16", "output_audio_format": "g711_ulaw",
    "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 300},
    "input_audio_transcription": {"model": "whisper-1"}, "speed": 1.1,
}
# What the worker must receive for BETA_SESSION.
GA_SESSION = {
    "type": "realtime", "output_modalities": ["audio"], "instructions": "be brief",
    "audio": {
        "input": {"format": {"type": "audio/pcm", "rate": 24000},
                  "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                     "silence_duration_ms": 300},
                  "transcription": {"model": "whisper-1"}},
        "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy", "speed": 1.1},
    },
}
# GA server events the fake upstream's script does not play (test.emit makes it send them): a
# whole turn of its own, metered like any other.
EMIT_USAGE = {"total_tokens": 14, "input_tokens": 10, "output_tokens": 4,
              "input_token_details": {"text_tokens": 10, "audio_tokens": 0, "cached_tokens": 0},
              "output_token_details": {"text_tokens": 1, "audio_tokens": 3}}
GA_EVENTS = [
    {"type": "response.created", "response": {
        "id": "resp_emit", "object": "realtime.response", "status": "in_progress", "output": [],
        "output_modalities": ["audio"],
        "audio": {"output": {"voice": "alloy", "format": {"type": "audio/pcm", "rate": 24000}}}}},
    {"type": "conversation.item.added", "item": {
        "id": "item_1", "type": "message", "role": "assistant",
        "content": [{"type": "output_audio", "transcript": "hi"}]}},
    {"type": "response.output_audio.delta", "response_id": "resp_emit", "item_id": "item_1",
     "delta": "AAAA"},
    {"type": "response.output_audio.done", "response_id": "resp_emit", "item_id": "item_1"},
    {"type": "response.output_text.delta", "response_id": "resp_emit", "item_id": "item_1",
     "delta": "t"},
    {"type": "response.output_text.done", "response_id": "resp_emit", "item_id": "item_1",
     "text": "t"},
    {"type": "response.output_audio_transcript.done", "response_id": "resp_emit",
     "item_id": "item_1", "transcript": "hi"},
    {"type": "response.done", "response": {
        "id": "resp_emit", "object": "realtime.response", "status": "completed",
        "output_modalities": ["audio"],
        "output": [{"id": "item_1", "type": "message", "role": "assistant",
                    "content": [{"type": "output_audio", "transcript": "hi"}]}],
        "usage": EMIT_USAGE}},
    {"type": "conversation.item.done", "item": {"id": "item_1", "content": []}},
    {"type": "test.emitted"},
]
BETA_NAMES = ["conversation.item.created", "response.audio.delta", "response.audio.done",
              "response.text.delta", "response.text.done", "response.audio_transcript.done",
              "conversation.item.done"]
GA_ONLY_NAMES = ["conversation.item.added", "response.output_audio.delta",
                 "response.output_audio.done", "response.output_text.delta",
                 "response.output_text.done", "response.output_audio_transcript.delta",
                 "response.output_audio_transcript.done"]


def beta_gateway(fake_upstream, gateway_factory, tmp_path, transcription_model=False):
    config = default_gateway_config(fake_upstream)
    config["auth"]["token_secret"] = "beta-secret"
    config["usage"] = {"log": str(tmp_path / "usage.jsonl")}
    if transcription_model:
        config["models"].append({"name": TRANSCRIBE_MODEL, "upstream_model": TRANSCRIBE_MODEL,
                                 "workers": config["models"][0]["workers"]})
    return gateway_factory(config)


def usage_records(gw, tmp_path, count, timeout=10.0):
    path = str(tmp_path / "usage.jsonl")
    deadline = time.monotonic() + timeout
    records = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                records = [json.loads(line) for line in f if line.strip()]
        if len(records) >= count:
            break
        time.sleep(0.1)
    return records


def post_json(gw, path, body, key=GATEWAY_KEY):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return http_request("POST", gw.url + path, json.dumps(body).encode(), headers)


def sent_upstream(session):
    return [json.loads(raw) for raw in session["events"]]


def assert_beta_session_shape(session):
    """session.created/updated as a beta client knows it: no GA-only members."""
    assert "type" not in session and "audio" not in session, session
    assert "output_modalities" not in session, session


FLOW_TURN = [{"type": "session.update", "session": BETA_SESSION}, {"type": "response.create"}]
# Sent once the turn is done (so the scripted GA events cannot open a turn of their own).
FLOW_EMIT = {"type": "test.emit", "events": GA_EVENTS}


def done_with_flow(r):
    return r.events_of("response.done") and r.events_of("test.emitted")


def run_ws_flow(base_url, first=FLOW_TURN, **client_args):
    """A WebSocket client: ``first`` events, response.done awaited, then the GA events."""
    async def scenario():
        async with WsClient(base_url, **client_args) as ws:
            if not ws.connected:
                return ws.result
            assert await ws.wait_for(lambda r: r.events_of("session.created"), 10)
            for event in first:
                await ws.send(event)
            assert await ws.wait_for(lambda r: r.events_of("response.done"), 10), \
                ws.result.event_types()
            await ws.send(FLOW_EMIT)
            assert await ws.wait_for(lambda r: r.events_of("test.emitted"), 10), \
                ws.result.event_types()
        return ws.result
    return asyncio.run(scenario())


def check_beta_flow(result, upstream_session, records):
    """The beta client's view, the worker's view and the meter's, for beta_session_flow_events."""
    types = result.event_types()
    # the client: beta names, never the GA ones
    for name in BETA_NAMES + ["response.audio_transcript.delta"]:
        assert name in types, (name, types)
    for name in GA_ONLY_NAMES:
        assert name not in types, (name, types)
    (created,) = result.events_of("conversation.item.created")
    assert created["item"]["content"] == [{"type": "audio", "transcript": "hi"}], created
    # session.created and session.updated in the beta shape
    assert_beta_session_shape(result.events_of("session.created")[0]["session"])
    (updated,) = result.events_of("session.updated")
    session = updated["session"]
    assert_beta_session_shape(session)
    assert session["voice"] == "alloy" and session["modalities"] == ["text", "audio"], session
    assert session["input_audio_format"] == "pcm16", session
    assert session["output_audio_format"] == "g711_ulaw", session
    assert session["turn_detection"] == BETA_SESSION["turn_detection"], session
    assert session["input_audio_transcription"] == {"model": "whisper-1"}, session
    assert session["speed"] == 1.1, session
    assert result.events_of("response.done")[0]["response"]["usage"]["total_tokens"] == 57
    assert not result.events_of("error"), result.events_of("error")

    # the worker: GA only
    sent = sent_upstream(upstream_session)
    updates = [e for e in sent if e["type"] == "session.update"]
    assert updates[-1]["session"] == GA_SESSION, updates[-1]
    assert [e["type"] for e in sent][-2:] == ["response.create", "test.emit"], sent
    # every GA event it sent is the one translated to the client
    assert "response.output_audio_transcript.delta" in [
        json.loads(raw)["type"] for raw in upstream_session["sent_events"]]

    # the emitted turn, as the beta client knows it
    emitted_created, emitted_done = (result.events_of("response.created")[-1],
                                     result.events_of("response.done")[-1])
    assert emitted_created["response"]["modalities"] == ["text", "audio"], emitted_created
    assert emitted_created["response"]["voice"] == "alloy", emitted_created
    assert emitted_created["response"]["output_audio_format"] == "pcm16", emitted_created
    assert "audio" not in emitted_created["response"], emitted_created
    assert emitted_done["response"]["output"][0]["content"] == [
        {"type": "audio", "transcript": "hi"}], emitted_done
    assert emitted_done["response"]["usage"] == EMIT_USAGE, emitted_done

    # the meter: both turns recorded (it saw GA response.created/response.done)
    assert len(records) == 2, records
    scripted, emitted = records
    assert scripted["input_tokens"] == 37 and scripted["output_tokens"] == 20, scripted
    assert scripted["total_tokens"] == 57, scripted
    assert scripted["response_id"] == result.events_of("response.done")[0]["response"]["id"]
    assert emitted["response_id"] == "resp_emit", emitted
    assert emitted["total_tokens"] == 14 and emitted["output_tokens"] == 4, emitted
    assert emitted["output_token_details"]["audio_tokens"] == 3, emitted


# --------------------------------------------------------------------------- WebSocket

def test_beta_websocket_by_header_speaks_beta_and_the_worker_speaks_ga(
        fake_upstream, gateway_factory, tmp_path):
    gw = beta_gateway(fake_upstream, gateway_factory, tmp_path)
    result = run_ws_flow(gw.url, key=GATEWAY_KEY, model=MODEL, beta_header=True)
    assert result.status == 101, (result.status, result.handshake_body)
    (upstream,) = fake_upstream.ws_sessions()
    assert upstream["openai_beta"] is None, "OpenAI-Beta must never reach a worker"
    check_beta_flow(result, upstream, usage_records(gw, tmp_path, 2))


def test_beta_websocket_by_subprotocol(fake_upstream, gateway_factory, tmp_path):
    gw = beta_gateway(fake_upstream, gateway_factory, tmp_path)
    # the browser form: key and beta marker as subprotocols
    result = run_ws_flow(gw.url, subprotocol_key=GATEWAY_KEY, model=MODEL)
    assert result.status == 101, (result.status, result.handshake_body)
    assert result.protocol == "realtime"
    (upstream,) = fake_upstream.ws_sessions()
    assert upstream["openai_beta"] is None
    assert not any("beta" in p for p in upstream["subprotocols"]), upstream["subprotocols"]
    check_beta_flow(result, upstream, usage_records(gw, tmp_path, 2))


def test_ga_websocket_client_is_not_translated(fake_upstream, gateway_factory, tmp_path):
    """The control: without the beta marker, GA names and shapes pass as the worker sent them."""
    gw = beta_gateway(fake_upstream, gateway_factory, tmp_path)
    result = run_ws_flow(gw.url, first=[{"type": "response.create"}], model=MODEL,
                         protocols=["realtime", "openai-insecure-api-key." + GATEWAY_KEY])
    assert result.status == 101, (result.status, result.handshake_body)
    types = result.event_types()
    assert "conversation.item.added" in types and "response.output_audio.delta" in types, types
    assert "response.output_audio_transcript.delta" in types, types
    assert "conversation.item.created" not in types and "response.audio.delta" not in types
    assert result.events_of("session.created")[0]["session"]["type"] == "realtime"
    (upstream,) = fake_upstream.ws_sessions()
    assert result.raw_events == upstream["sent_events"], "a GA client gets the worker's bytes"


# --------------------------------------------------------------------------- legacy mint routes

def test_legacy_sessions_route_mints_a_beta_token(fake_upstream, gateway_factory, tmp_path):
    gw = beta_gateway(fake_upstream, gateway_factory, tmp_path)
    body = dict(BETA_SESSION, model=MODEL,
                client_secret={"expires_after": {"anchor": "created_at", "seconds": 120}})
    reply = post_json(gw, "/v1/realtime/sessions", body)
    assert reply.status == 200, reply.body
    out = reply.json()
    assert out["object"] == "realtime.session" and out["id"].startswith("sess_"), out
    assert out["model"] == MODEL and out["voice"] == "alloy", out
    assert out["modalities"] == ["text", "audio"] and out["input_audio_format"] == "pcm16", out
    assert set(out["client_secret"]) == {"value", "expires_at"}, out
    assert out["client_secret"]["value"].startswith("ek_"), out
    assert abs(out["client_secret"]["expires_at"] - (time.time() + 120)) < 5, out
    assert "audio" not in out and "type" not in out, out

    # the token's WebSocket is beta (no marker needed); its session reaches the worker as GA,
    # first, before anything the client sends
    result = run_ws_session(gw.url, key=out["client_secret"]["value"],
                            send_events=[{"type": "test.emit", "events": GA_EVENTS}],
                            until=lambda r: r.events_of("test.emitted"), duration=10)
    assert result.status == 101, (result.status, result.handshake_body)
    assert "response.audio.delta" in result.event_types(), result.event_types()
    (upstream,) = fake_upstream.ws_sessions()
    first = sent_upstream(upstream)[0]
    assert first["type"] == "session.update", first
    assert first["session"] == dict(GA_SESSION, model=MODEL), first["session"]
    assert upstream["openai_beta"] is None

    # refusals: the SPEC's JSON errors
    missing = post_json(gw, "/v1/realtime/sessions", {"voice": "alloy"})
    assert missing.status == 400 and missing.json()["error"]["code"] == "missing_model"
    unknown = post_json(gw, "/v1/realtime/sessions", {"model": "nope"})
    assert unknown.status == 404 and unknown.json()["error"]["code"] == "model_not_found"
    anonymous = post_json(gw, "/v1/realtime/sessions", body, key=None)
    assert anonymous.status == 401 and anonymous.json()["error"]["code"] == "missing_api_key"
    with_token = post_json(gw, "/v1/realtime/sessions", body, key=out["client_secret"]["value"])
    assert with_token.status == 401, "a token cannot mint tokens"
    bad = http_request("POST", gw.url + "/v1/realtime/sessions", b"{nope",
                       {"Authorization": f"Bearer {GATEWAY_KEY}"})
    assert bad.status == 400 and bad.json()["error"]["code"] == "invalid_json"


def test_legacy_transcription_sessions_route(fake_upstream, gateway_factory, tmp_path):
    gw = beta_gateway(fake_upstream, gateway_factory, tmp_path, transcription_model=True)
    body = {"input_audio_format": "pcm16",
            "input_audio_transcription": {"model": TRANSCRIBE_MODEL, "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 400},
            "input_audio_noise_reduction": {"type": "near_field"},
            "include": ["item.input_audio_transcription.logprobs"]}
    reply = post_json(gw, "/v1/realtime/transcription_sessions", body)
    assert reply.status == 200, reply.body
    out = reply.json()
    assert out["object"] == "realtime.transcription_session", out
    assert out["id"].startswith("sess_"), out
    assert out["input_audio_transcription"] == body["input_audio_transcription"], out
    assert out["input_audio_format"] == "pcm16" and out["include"] == body["include"], out
    assert out["client_secret"]["value"].startswith("ek_"), out
    assert abs(out["client_secret"]["expires_at"] - (time.time() + 600)) < 5, out

    # a WebRTC call with that token: the worker gets the GA transcription session
    result = run_call_sync(gw.url, out["client_secret"]["value"], model=None,
                           send_events=[{"type": "test.emit", "events": GA_EVENTS}],
                           until=lambda r: r.events_of("test.emitted"), duration=10)
    assert result.status == 201, (result.status, result.error_body)
    assert "conversation.item.created" in result.event_types(), result.event_types()
    (call_request,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    session = call_request["session"]
    assert session["type"] == "transcription", session
    assert session["audio"]["input"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": {"model": TRANSCRIBE_MODEL, "language": "en"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 400},
        "noise_reduction": {"type": "near_field"}}, session
    assert session["include"] == body["include"], session
    for beta_name in ("input_audio_format", "input_audio_transcription", "turn_detection"):
        assert beta_name not in session, session

    missing = post_json(gw, "/v1/realtime/transcription_sessions", {"input_audio_format": "pcm16"})
    assert missing.status == 400 and missing.json()["error"]["code"] == "missing_model"
    unknown = post_json(gw, "/v1/realtime/transcription_sessions",
                        {"input_audio_transcription": {"model": "whisper-9"}})
    assert unknown.status == 404 and unknown.json()["error"]["code"] == "model_not_found"


# --------------------------------------------------------------------------- legacy WebRTC

def test_legacy_webrtc_flow_from_chromium(fake_upstream, gateway_factory, tmp_path):
    """The beta browser flow: POST /v1/realtime/sessions (key) -> client_secret.value ->
    POST /v1/realtime?model=M (application/sdp, the token) -> 201 + SDP; beta events on the
    data channel, GA at the worker, the turn metered."""
    from peers.browser_client import BrowserCall

    gw = beta_gateway(fake_upstream, gateway_factory, tmp_path)
    minted = post_json(gw, "/v1/realtime/sessions", dict(BETA_SESSION, model=MODEL))
    assert minted.status == 200, minted.body
    token = minted.json()["client_secret"]["value"]
    with BrowserCall(gw.url, token, model=MODEL, path="/v1/realtime") as call:
        result = call.connect()
        assert result.status == 201, (result.status, result.error_body, result.error)
        assert (header(result.headers, "Content-Type") or "").startswith("application/sdp")
        assert (result.location or "").startswith("/v1/realtime/calls/"), result.headers
        assert result.answer_sdp.startswith("v=0"), result.answer_sdp[:80]
        assert call.wait_for(lambda r: r.events_of("session.created"), 20), call.result.error
        for event in FLOW_TURN:
            call.send(event)
        assert call.wait_for(lambda r: r.events_of("response.done"), 20), \
            call.result.event_types()
        call.send(FLOW_EMIT)
        assert call.wait_for(done_with_flow, 20), call.result.event_types()
        result = call.close("close")

    (upstream_call,) = fake_upstream.calls().values()
    # the token's session went upstream first, as GA (the worker's initial configuration)
    (call_request,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert call_request["session"] == dict(GA_SESSION, model=MODEL), call_request["session"]
    records = usage_records(gw, tmp_path, 2)
    check_beta_flow(result, upstream_call, records)
    assert all(r["transport"] == "webrtc" for r in records), records


def test_legacy_webrtc_route_with_a_key_and_its_errors(fake_upstream, gateway_factory, tmp_path):
    """POST /v1/realtime with a gateway key (no token) is a beta call too; its errors are the
    SPEC's JSON ones; the WebSocket route on the same path still upgrades."""
    gw = beta_gateway(fake_upstream, gateway_factory, tmp_path)
    result = run_call_sync(gw.url, GATEWAY_KEY, model=MODEL, path="/v1/realtime",
                           send_events=[{"type": "session.update", "session": BETA_SESSION},
                                        FLOW_EMIT],
                           until=lambda r: r.events_of("test.emitted"), duration=15)
    assert result.status == 201, (result.status, result.error_body)
    assert (result.location or "").startswith("/v1/realtime/calls/"), result.headers
    types = result.event_types()
    assert "session.updated" in types and "response.audio.delta" in types, types
    assert "response.output_audio.delta" not in types, types
    assert result.events_of("session.updated")[0]["session"]["voice"] == "alloy"
    (upstream_call,) = fake_upstream.calls().values()
    sent = sent_upstream(upstream_call)
    assert sent[0] == {"type": "session.update", "session": GA_SESSION}, sent[0]
    fake_upstream.reset()

    no_auth = http_request("POST", gw.url + "/v1/realtime?model=" + MODEL, b"v=0\r\n",
                           {"Content-Type": "application/sdp"})
    assert no_auth.status == 401 and no_auth.json()["error"]["code"] == "missing_api_key"
    bad_sdp = http_request("POST", gw.url + "/v1/realtime?model=" + MODEL, b"v=0\r\n",
                           {"Content-Type": "application/sdp",
                            "Authorization": f"Bearer {GATEWAY_KEY}"})
    assert bad_sdp.status == 400 and bad_sdp.json()["error"]["code"] == "invalid_sdp"
    no_model = http_request("POST", gw.url + "/v1/realtime", b"v=0\r\n",
                            {"Content-Type": "application/sdp",
                             "Authorization": f"Bearer {GATEWAY_KEY}"})
    assert no_model.status == 400 and no_model.json()["error"]["code"] == "missing_model"
    assert all(r["path"] != "/v1/realtime/calls" for r in fake_upstream.requests())
    ws = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL,
                        send_events=[{"type": "test.echo", "payload": "still here"}],
                        until=lambda r: r.events_of("test.echoed"), duration=8)
    assert ws.status == 101 and ws.events_of("test.echoed"), (ws.status, ws.event_types())


def test_policy_sees_the_ga_form(fake_upstream, gateway_factory, tmp_path):
    """A beta transcription_session.update is a GA session.update for the policy: a rule denying
    session.update to the key blocks it (the worker never sees it); the same event from a GA
    client is another type, and passes."""
    config = default_gateway_config(fake_upstream)
    config["policy"] = {"deny_client_events": [{"type": "session.update", "keys": ["team-a"]}]}
    gw = gateway_factory(config)
    update = {"type": "transcription_session.update", "event_id": "evt_client_1",
              "session": {"input_audio_transcription": {"model": "whisper-1"}}}
    probe = {"type": "test.echo", "payload": "after"}
    beta = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, beta_header=True,
                          send_events=[update, probe],
                          until=lambda r: r.events_of("test.echoed"), duration=10)
    assert beta.status == 101, (beta.status, beta.handshake_body)
    (error,) = beta.events_of("error")
    assert error["error"]["code"] == "policy_violation", error
    (upstream,) = fake_upstream.ws_sessions()
    assert [json.loads(e)["type"] for e in upstream["events"]] == ["test.echo"], upstream["events"]

    fake_upstream.reset()
    ga = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL, send_events=[update, probe],
                        until=lambda r: r.events_of("test.echoed"), duration=10)
    assert ga.status == 101 and not ga.events_of("error"), ga.events_of("error")
    (upstream,) = fake_upstream.ws_sessions()
    assert [json.loads(e)["type"] for e in upstream["events"]] == [
        "transcription_session.update", "test.echo"], upstream["events"]
