"""Translation sessions (SPEC "Translation sessions"): POST /v1/realtime/translations/calls (no
?model=), GET /v1/realtime/translations?model= and POST /v1/realtime/translations/client_secrets,
through the same pipelines, policy and meter. Translation has no responses: its usage is
continuous, metered as turns of kind "translation" from the session.* events that carry it, and
priced from the model's table (per_minute.audio and token prices)."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.common import http_request, post_offer, wait_until
from peers.ws_client import run_ws_session
from test_calls import aiortc_offer
from test_tokens import mint
from test_websocket import read_usage_log, wait_usage

TRANSLATE = "gpt-realtime-translate"
TRANSLATE_UPSTREAM = "translate-upstream-name"
PRICING = {"per_million_tokens": {"text_input": 4.0, "audio_input": 32.0, "text_output": 16.0,
                                  "audio_output": 64.0},
           "per_minute": {"audio": 0.25}}
# A second report with usage of its own (the fake's default is DEFAULT_TRANSLATION_USAGE).
SECOND_USAGE = {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18,
                "input_token_details": {"audio_tokens": 11, "text_tokens": 0},
                "output_token_details": {"audio_tokens": 5, "text_tokens": 2},
                "seconds": 1.5}
TRANSLATION_EVENTS = ("session.input_transcript.delta", "session.output_audio.delta",
                      "session.output_transcript.delta")


def expected_cost(u):
    """PRICING applied to one reported usage object (SPEC "Pricing and spend")."""
    i, o = u["input_token_details"], u["output_token_details"]
    per_token = (i["text_tokens"] * 4.0 + i["audio_tokens"] * 32.0 +
                 o["text_tokens"] * 16.0 + o["audio_tokens"] * 64.0) / 1e6
    return per_token + u["seconds"] / 60.0 * 0.25


def translation_gateway(fake_upstream, gateway_factory, keys_models=("*",), pricing=PRICING):
    config = default_gateway_config(fake_upstream)
    worker = dict(config["models"][0]["workers"][0])
    model = {"name": TRANSLATE, "upstream_model": TRANSLATE_UPSTREAM, "workers": [worker]}
    if pricing:
        model["pricing"] = pricing
    config["models"].append(model)
    config["auth"]["keys"][0]["models"] = list(keys_models)
    config["usage"] = {"log": "usage.jsonl"}
    return gateway_factory(config)


def usage_path(gw):
    return os.path.join(gw.workdir, "usage.jsonl")


def translation_records(gw, count, timeout=10.0):
    wait_until(lambda: len([r for r in read_usage_log(usage_path(gw))
                            if r.get("kind") == "translation"]) >= count, timeout)
    return [r for r in read_usage_log(usage_path(gw)) if r.get("kind") == "translation"]


def assert_records_match(records, reported, transport):
    """One record per report, each exactly what the worker reported, priced from the table."""
    assert len(records) == len(reported), (records, reported)
    for record, usage in zip(records, reported):
        assert record["kind"] == "translation" and record["model"] == TRANSLATE, record
        assert record["key"] == "team-a" and record["transport"] == transport, record
        assert record["response_id"] is None and record["item_id"], record
        for field in ("input_tokens", "output_tokens", "total_tokens"):
            assert record[field] == usage[field], (field, record, usage)
        for side in ("input_token_details", "output_token_details"):
            for k, v in usage[side].items():
                assert record[side][k] == v, (side, k, record, usage)
        assert record["audio_seconds"] == usage["seconds"], record
        assert record["transcription_seconds"] == 0, record
        assert record["cost_usd"] == pytest.approx(expected_cost(usage), rel=1e-9), record


def test_translation_call_aiortc_relayed_metered_and_priced(fake_upstream, gateway_factory):
    """An aiortc call on the translation route: the worker gets its translation URL and session,
    the client the translation events, and every usage report becomes one priced record."""
    from peers.fake_upstream import DEFAULT_TRANSLATION_USAGE

    gw = translation_gateway(fake_upstream, gateway_factory)
    session = {"model": TRANSLATE, "audio": {"output": {"language": "es"}}}
    events = [{"type": "test.translate"}, {"type": "test.translate", "usage": SECOND_USAGE},
              {"type": "response.create", "event_id": "evt_client_rc"}]

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, session=session, send_events=events,
                          path="/v1/realtime/translations/calls")
        try:
            await call.connect()
            assert call.connected, (call.result.status, call.result.body)
            ok = await call.wait_for(
                lambda r: len(r.events_of("session.output_transcript.delta")) >= 2
                and r.events_of("error"), 15)
            assert ok, call.result.events
        finally:
            await call.close("hangup")
        return call.result

    result = asyncio.run(scenario())
    assert result.location.startswith("/v1/realtime/calls/"), result.location
    for kind in TRANSLATION_EVENTS:
        assert len(result.events_of(kind)) == 2, (kind, result.events)
    # Translation has no response.create: the policy refuses it, the worker never sees it.
    (error,) = result.events_of("error")
    assert error["error"]["code"] == "policy_violation", error
    (call_state,) = fake_upstream.calls().values()
    assert not [e for e in call_state["events"] if '"response.create"' in e], call_state["events"]
    posted = [r for r in fake_upstream.requests() if r["method"] == "POST"
              and r["path"].startswith("/v1/realtime/translations/calls")]
    assert len(posted) == 1 and posted[0]["query"] == {}, posted
    assert posted[0]["session"]["type"] == "translation", posted[0]
    assert posted[0]["session"]["model"] == TRANSLATE_UPSTREAM, posted[0]
    assert posted[0]["session"]["audio"] == {"output": {"language": "es"}}, posted[0]

    records = translation_records(gw, 2)
    assert_records_match(records, [DEFAULT_TRANSLATION_USAGE, SECOND_USAGE], "webrtc")
    # The spend is the records' (GET /v1/usage).
    report = http_request("GET", gw.url + "/v1/usage",
                          headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
    assert report.status == 200, report.body
    (row,) = [r for r in report.json()["data"] if r["model"] == TRANSLATE]
    assert row["turns"] == 2 and row["total_tokens"] == 75 + 18, row
    assert row["cost_usd"] == pytest.approx(
        expected_cost(DEFAULT_TRANSLATION_USAGE) + expected_cost(SECOND_USAGE)), row


def test_translation_call_refuses_a_model_query(fake_upstream, gateway_factory):
    gw = translation_gateway(fake_upstream, gateway_factory)
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model=TRANSLATE,
                       path="/v1/realtime/translations/calls")
    assert reply.status == 400, reply.body
    err = reply.json()["error"]
    assert err["code"] == "invalid_request" and err["type"] == "invalid_request_error", err
    assert not [r for r in fake_upstream.requests() if r["method"] == "POST"], "worker contacted"
    # Without one, the default model is gpt-realtime-translate; a session of another type is 400.
    bad = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), session={"type": "realtime"},
                     path="/v1/realtime/translations/calls")
    assert bad.status == 400 and bad.json()["error"]["code"] == "invalid_session", bad.body


def test_translation_tokens_and_the_cross_use_rule(fake_upstream, gateway_factory):
    """A token from translations/client_secrets redeems on the translation routes only, and a
    realtime token not there (401 invalid_api_key: retrying cannot help)."""
    gw = translation_gateway(fake_upstream, gateway_factory)
    minted = http_request("POST", gw.url + "/v1/realtime/translations/client_secrets",
                          json.dumps({"session": {"model": TRANSLATE,
                                                  "audio": {"output": {"language": "fr"}}}})
                          .encode(),
                          {"Authorization": f"Bearer {GATEWAY_KEY}",
                           "Content-Type": "application/json"})
    assert minted.status == 200, minted.body
    body = minted.json()
    token = body["value"]
    assert token.startswith("ek_") and body["expires_at"] > 0, body
    assert body["session"]["type"] == "translation" and body["session"]["model"] == TRANSLATE

    result = run_call_sync(gw.url, token, path="/v1/realtime/translations/calls",
                           send_events=[{"type": "test.translate"}],
                           until=lambda r: r.events_of("session.output_transcript.delta"),
                           duration=15)
    assert result.status == 201, result.body
    assert result.events_of("session.output_transcript.delta"), result.events
    posted = [r for r in fake_upstream.requests()
              if r["path"] == "/v1/realtime/translations/calls"]
    assert posted[-1]["session"]["audio"] == {"output": {"language": "fr"}}, posted[-1]

    on_realtime = post_offer(gw.url, token, aiortc_offer(), path="/v1/realtime/calls")
    assert on_realtime.status == 401, on_realtime.body
    assert on_realtime.json()["error"]["code"] == "invalid_api_key"
    ws = run_ws_session(gw.url, key=token, model="gpt-realtime", duration=1)
    assert ws.handshake_status == 401, ws.handshake_body

    realtime_token = mint(gw, session={"type": "realtime", "model": "gpt-realtime"}).json()["value"]
    on_translation = post_offer(gw.url, realtime_token, aiortc_offer(),
                                path="/v1/realtime/translations/calls")
    assert on_translation.status == 401, on_translation.body
    assert on_translation.json()["error"]["code"] == "invalid_api_key"
    # A key's allow-list applies: a key without the translation model cannot mint for it.
    gw2 = translation_gateway(fake_upstream, gateway_factory, keys_models=("gpt-realtime",))
    refused = http_request("POST", gw2.url + "/v1/realtime/translations/client_secrets",
                           b"{}", {"Authorization": f"Bearer {GATEWAY_KEY}",
                                   "Content-Type": "application/json"})
    assert refused.status == 403 and refused.json()["error"]["code"] == "model_not_allowed"


def test_translation_websocket_with_the_openai_node_sdk(fake_upstream, gateway_factory):
    """The official `openai` SDK mints the token (its generic client.post: 6.49 has no
    translations helper, nor a translation WebSocket); a `ws` socket runs the session with it."""
    from peers.fake_upstream import DEFAULT_TRANSLATION_USAGE
    from peers.node_client import NODE, PEERS_DIR, ensure_node_deps

    ensure_node_deps("ws")
    gw = translation_gateway(fake_upstream, gateway_factory)
    proc = subprocess.run([NODE, "openai_sdk_translation_ws.mjs", gw.url, GATEWAY_KEY, TRANSLATE],
                          cwd=PEERS_DIR, capture_output=True, text=True, timeout=60)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"], (out, proc.stderr)
    assert out["token"].startswith("ek_"), out
    assert out["types"][0] == "session.created", out
    for kind in TRANSLATION_EVENTS:
        assert kind in out["types"], out
    assert out["usage"] == DEFAULT_TRANSLATION_USAGE, out
    (session,) = fake_upstream.ws_sessions()
    assert session["model"] == TRANSLATE_UPSTREAM, session
    assert session["session"]["type"] == "translation", session
    handshakes = [r for r in fake_upstream.requests() if r.get("ws_id")]
    assert handshakes[-1]["path"] == "/v1/realtime/translations", handshakes
    records = translation_records(gw, 1)
    assert_records_match(records, [DEFAULT_TRANSLATION_USAGE], "websocket")


def test_translation_call_from_chromium(fake_upstream, gateway_factory):
    from peers.browser_client import BrowserCall
    from peers.fake_upstream import DEFAULT_TRANSLATION_USAGE

    gw = translation_gateway(fake_upstream, gateway_factory)
    with BrowserCall(gw.url, GATEWAY_KEY, session={"model": TRANSLATE},
                     send_events=[{"type": "test.translate"}],
                     path="/v1/realtime/translations/calls") as call:
        call.connect()
        if call.connected:
            call.wait_for(lambda r: r.events_of("session.output_transcript.delta"), 20)
        call.close("hangup")
    result = call.result
    assert result.status == 201, result.body
    for kind in TRANSLATION_EVENTS:
        assert result.events_of(kind), (kind, result.events)
    assert_records_match(translation_records(gw, 1), [DEFAULT_TRANSLATION_USAGE], "webrtc")


def test_default_gateway_translates_with_the_echo_worker(default_gateway):
    """No config: the built-in echo model answers the translation route (the session names it:
    the default gpt-realtime-translate is not configured there); the call hears the caller's
    audio and reports continuous usage from it."""
    missing = post_offer(default_gateway, None, aiortc_offer(),
                         path="/v1/realtime/translations/calls")
    assert missing.status == 404, missing.body
    assert TRANSLATE in missing.json()["error"]["message"], missing.body
    result = run_call_sync(default_gateway, None, session={"model": "echo"},
                           path="/v1/realtime/translations/calls",
                           until=lambda r: r.events_of("session.output_transcript.delta"),
                           duration=15)
    assert result.status == 201, result.body
    (created, *_) = result.events_of("session.created")
    assert created["session"]["type"] == "translation", created
    assert created["session"]["model"] == "echo", created
    delta = result.events_of("session.output_transcript.delta")[0]
    assert delta["usage"]["seconds"] > 0 and delta["usage"]["input_tokens"] > 0, delta
    assert result.events_of("session.input_transcript.delta"), result.events
