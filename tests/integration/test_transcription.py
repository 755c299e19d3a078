"""Transcription sessions (SPEC "Transcription sessions"): the GA shape on every route
(client_secrets token, /v1/realtime/calls multipart and token, WebSocket ?intent=transcription),
routed by session.audio.input.transcription.model, and every transcription metered as a turn of
kind "transcription" (token- and duration-billed) in the usage log and /metrics."""
from __future__ import annotations

import asyncio
import json
import os

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import http_request, post_offer
from peers.ws_client import run_ws_session
from test_calls import aiortc_offer
from test_tokens import mint
from test_websocket import assert_upgraded, metrics, upstream_ws, wait_usage

STT = "gpt-4o-transcribe"          # the model clients name
STT_UPSTREAM = "stt-upstream-name"  # the worker's name for it
COMPLETED = "conversation.item.input_audio_transcription.completed"
DURATION = {"type": "duration", "seconds": 2.5}


def transcription_session(model=STT):
    return {"type": "transcription",
            "audio": {"input": {"transcription": {"model": model, "language": "en"}}}}


def stt_gateway(fake_upstream, gateway_factory, keys_models=("*",)):
    """gpt-realtime and the transcription model on the fake upstream (only the latter under
    its own upstream name), and a usage log."""
    config = default_gateway_config(fake_upstream)
    worker = dict(config["models"][0]["workers"][0])
    config["models"].append({"name": STT, "upstream_model": STT_UPSTREAM, "workers": [worker]})
    config["auth"]["keys"][0]["models"] = list(keys_models)
    config["usage"] = {"log": "usage.jsonl"}
    return gateway_factory(config)


def usage_path(gw):
    return os.path.join(gw.workdir, "usage.jsonl")


def assert_transcription_records(records, completed_events, model=STT, transport="webrtc"):
    """One token-billed and one duration-billed record, matching the client's events."""
    assert [r["kind"] for r in records] == ["transcription", "transcription"], records
    by_item = {r["item_id"]: r for r in records}
    items = [e["item_id"] for e in completed_events]
    assert set(by_item) == set(items), (records, completed_events)
    tokens, duration = by_item[items[0]], by_item[items[1]]
    for r in (tokens, duration):
        assert r["model"] == model and r["key"] == "team-a" and r["transport"] == transport, r
        assert r["response_id"] is None, r
    assert tokens["input_tokens"] == 14 and tokens["output_tokens"] == 6, tokens
    assert tokens["total_tokens"] == 20, tokens
    assert tokens["input_token_details"]["audio_tokens"] == 12, tokens
    assert tokens["input_token_details"]["text_tokens"] == 2, tokens
    assert tokens["transcription_seconds"] == 0, tokens
    assert duration["transcription_seconds"] == 2.5, duration
    assert duration["total_tokens"] == 0, duration


async def transcribe_over_webrtc(url, key, model=None, session=None, events=None):
    call = AiortcCall(url, key, model=model, session=session)
    result = await call.connect()
    assert result.status == 201, result.error or result.body
    try:
        assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
        for event in events or [{"type": "input_audio_buffer.commit"},
                                {"type": "test.transcribe", "usage": DURATION}]:
            call.send(event)
        assert await call.wait_for(lambda r: len(r.events_of(COMPLETED)) >= 2, 10), \
            call.result.event_types()
    finally:
        await call.close("hangup")
    return call.result


def test_client_secret_for_a_transcription_session(fake_upstream, gateway_factory):
    gw = stt_gateway(fake_upstream, gateway_factory)
    reply = mint(gw, session=transcription_session())
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["value"].startswith("ek_")
    assert body["session"]["type"] == "transcription"
    assert body["session"]["audio"]["input"]["transcription"]["model"] == STT
    # The model is the transcription model: unknown → 404, not allowed → 403, none → 400.
    assert mint(gw, session=transcription_session("nope")).status == 404
    missing = mint(gw, session={"type": "transcription", "audio": {"input": {}}})
    assert missing.status == 400 and missing.json()["error"]["code"] == "missing_model"
    bad = mint(gw, session={"type": "translation", "model": STT})
    assert bad.status == 400 and bad.json()["error"]["code"] == "invalid_session"


def test_allow_lists_use_the_transcription_model(fake_upstream, gateway_factory):
    gw = stt_gateway(fake_upstream, gateway_factory, keys_models=("gpt-realtime",))
    reply = mint(gw, session=transcription_session())
    assert reply.status == 403 and reply.json()["error"]["code"] == "model_not_allowed"
    call = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), session=transcription_session())
    assert call.status == 403 and call.json()["error"]["code"] == "model_not_allowed", call.body
    assert fake_upstream.requests() == []


def test_webrtc_with_a_token_is_routed_and_metered(fake_upstream, gateway_factory):
    gw = stt_gateway(fake_upstream, gateway_factory)
    token = mint(gw, session=transcription_session()).json()["value"]
    result = asyncio.run(transcribe_over_webrtc(gw.url, token))
    # Routed by the transcription model: its worker got the session under its upstream name.
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert req["session"]["type"] == "transcription", req
    assert req["session"]["audio"]["input"]["transcription"]["model"] == STT_UPSTREAM, req
    assert req["session"]["audio"]["input"]["transcription"]["language"] == "en", req
    records = wait_usage(usage_path(gw), 2, timeout=15)
    assert_transcription_records(records, result.events_of(COMPLETED))
    text = metrics(gw)
    assert f'rtgw_turns_total{{key="team-a",model="{STT}",kind="transcription"}} 2' in text, text
    assert f'rtgw_transcription_seconds_total{{key="team-a",model="{STT}"}} 2.5' in text, text
    assert f'rtgw_tokens_total{{key="team-a",model="{STT}",kind="input_audio"}} 12' in text, text


def test_webrtc_multipart_and_model_mismatch(fake_upstream, gateway_factory):
    gw = stt_gateway(fake_upstream, gateway_factory)
    mismatch = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime",
                          session=transcription_session())
    assert mismatch.status == 400 and mismatch.json()["error"]["code"] == "model_mismatch", \
        mismatch.body
    assert fake_upstream.requests() == []
    result = asyncio.run(transcribe_over_webrtc(gw.url, GATEWAY_KEY, model=STT,
                                                session=transcription_session()))
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert req["session"]["audio"]["input"]["transcription"]["model"] == STT_UPSTREAM, req
    assert_transcription_records(wait_usage(usage_path(gw), 2, timeout=15), result.events_of(COMPLETED))


def test_websocket_intent_transcription_with_a_key(fake_upstream, gateway_factory):
    gw = stt_gateway(fake_upstream, gateway_factory)
    done = lambda r: len(r.events_of(COMPLETED)) >= 2  # noqa: E731
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=STT,
                            query={"intent": "transcription"},
                            send_events=[{"type": "input_audio_buffer.commit"},
                                         {"type": "test.transcribe", "usage": DURATION}],
                            until=done, duration=15)
    assert_upgraded(result)
    assert done(result), result.event_types()
    up = upstream_ws(fake_upstream)
    (handshake,) = [r for r in fake_upstream.requests() if r.get("ws_id") == up["id"]]
    assert handshake["query"] == {"intent": "transcription"}, handshake
    first = json.loads(up["events"][0])
    assert first["type"] == "session.update", up["events"]
    assert first["session"]["type"] == "transcription", first
    assert first["session"]["audio"]["input"]["transcription"]["model"] == STT_UPSTREAM, first
    assert_transcription_records(wait_usage(usage_path(gw), 2, timeout=15), result.events_of(COMPLETED),
                                 transport="websocket")


def test_websocket_with_a_transcription_token(fake_upstream, gateway_factory):
    gw = stt_gateway(fake_upstream, gateway_factory)
    token = mint(gw, session=transcription_session()).json()["value"]
    done = lambda r: len(r.events_of(COMPLETED)) >= 2  # noqa: E731
    result = run_ws_session(gw.url, subprotocol_key=token, query={"intent": "transcription"},
                            send_events=[{"type": "input_audio_buffer.commit"},
                                         {"type": "test.transcribe", "usage": DURATION}],
                            until=done, duration=15)
    assert_upgraded(result)
    assert done(result), result.event_types()
    up = upstream_ws(fake_upstream)
    first = json.loads(up["events"][0])
    assert first["session"]["audio"]["input"]["transcription"]["model"] == STT_UPSTREAM, first
    assert_transcription_records(wait_usage(usage_path(gw), 2, timeout=15), result.events_of(COMPLETED),
                                 transport="websocket")
    # A model other than the token's is refused before the upgrade.
    other = run_ws_session(gw.url, subprotocol_key=token, model="gpt-realtime", duration=2)
    assert other.status == 403, (other.status, other.handshake_body)


def test_realtime_session_transcriptions_are_metered_beside_responses(fake_upstream,
                                                                      gateway_factory):
    """Input transcription in a realtime session: its transcriptions are turns too, and the
    response turn's cached_tokens_details go into its record."""
    gw = stt_gateway(fake_upstream, gateway_factory)
    usage = {"total_tokens": 57, "input_tokens": 37, "output_tokens": 20,
             "input_token_details": {"text_tokens": 12, "audio_tokens": 25, "image_tokens": 0,
                                     "cached_tokens": 16,
                                     "cached_tokens_details": {"text_tokens": 10,
                                                               "audio_tokens": 6}},
             "output_token_details": {"text_tokens": 5, "audio_tokens": 15}}
    fake_upstream.config(usage=usage)
    done = lambda r: r.events_of(COMPLETED) and r.events_of("response.done")  # noqa: E731
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model="gpt-realtime",
                            send_events=[{"type": "input_audio_buffer.commit"},
                                         {"type": "response.create"}],
                            until=done, duration=15)
    assert done(result), result.event_types()
    records = wait_usage(usage_path(gw), 2, timeout=15)
    kinds = sorted(r["kind"] for r in records)
    assert kinds == ["response", "transcription"], records
    (response,) = [r for r in records if r["kind"] == "response"]
    assert response["item_id"] is None and response["response_id"], response
    assert response["input_token_details"]["cached_tokens_details"] == \
        {"text_tokens": 10, "audio_tokens": 6, "image_tokens": 0}, response
    (transcription,) = [r for r in records if r["kind"] == "transcription"]
    assert transcription["model"] == "gpt-realtime" and transcription["total_tokens"] == 20


def test_budget_counts_transcription_tokens(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"][0]["budget_tokens"] = 15
    gw = gateway_factory(config)
    done = lambda r: r.events_of(COMPLETED) and r.events_of("error")  # noqa: E731
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model="gpt-realtime",
                            send_events=[{"type": "input_audio_buffer.commit"}, 0.5,
                                         {"type": "response.create", "event_id": "evt_over"}],
                            until=done, duration=15)
    assert result.events_of(COMPLETED), result.event_types()
    (error,) = result.events_of("error")
    # 20 transcription tokens > 15: SPEC "Errors agents act on"
    assert error["error"]["type"] == error["error"]["code"] == "insufficient_quota", error
    assert not result.events_of("response.done")


def test_echo_worker_transcribes_offline(gateway_factory):
    """The built-in echo worker serves a transcription session: usage from the audio heard."""
    gw = gateway_factory({
        "listen": "127.0.0.1:0",
        "auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]},
        "models": [{"name": STT, "workers": [{"provider": "echo"}]},
                   {"name": "whisper-1", "workers": [{"provider": "echo"}]}],
        "usage": {"log": "usage.jsonl"},
    })

    async def webrtc():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=STT, session=transcription_session())
        assert (await call.connect()).status == 201
        try:
            assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
            await asyncio.sleep(1.5)  # aiortc sends audio meanwhile
            call.send({"type": "input_audio_buffer.commit"})
            assert await call.wait_for(lambda r: r.events_of(COMPLETED), 10)
        finally:
            await call.close("hangup")
        return call.result

    result = asyncio.run(webrtc())
    (completed,) = result.events_of(COMPLETED)
    assert completed["usage"]["type"] == "tokens" and completed["usage"]["input_tokens"] > 0
    (record,) = wait_usage(usage_path(gw), 1, timeout=15)
    assert record["kind"] == "transcription" and record["item_id"] == completed["item_id"]
    assert record["input_tokens"] == completed["usage"]["input_tokens"], record

    one_second = {"type": "input_audio_buffer.append", "audio": "A" * 64000}  # PCM16 24 kHz
    ws = run_ws_session(gw.url, key=GATEWAY_KEY, model="whisper-1",
                        query={"intent": "transcription"},
                        send_events=[one_second, one_second, {"type": "input_audio_buffer.commit"}],
                        until=lambda r: r.events_of(COMPLETED), duration=15)
    assert len(ws.events_of(COMPLETED)) == 1, ws.event_types()
    (completed,) = ws.events_of(COMPLETED)
    assert completed["usage"] == {"type": "duration", "seconds": 2.0}, completed
    records = wait_usage(usage_path(gw), 2, timeout=15)
    assert records[1]["model"] == "whisper-1" and records[1]["transcription_seconds"] == 2.0
