"""The model allow-list covers a session's transcription model (issue 21).

A key whose `models` do not include a transcription model must not reach it through
`audio.input.transcription.model` (GA) or `input_audio_transcription.model` (beta), on any path:
the initial session of a call (multipart), a token's session (call and WebSocket), the mint routes
(GA and legacy) and `session.update` (GA and beta WebSocket clients). Set-up paths answer 403
`model_not_allowed` before any worker is contacted; a session.update gets an error event with
that code and never reaches the worker.
"""
from __future__ import annotations

import asyncio
import json

from conftest import GATEWAY_KEY, default_gateway_config
from peers.common import http_request, post_offer
from peers.ws_client import WsClient, run_ws_session
from test_calls import aiortc_offer
from test_tokens import mint

MODEL = "gpt-realtime"
STT = "gpt-4o-transcribe"


def realtime_session(transcription_model=STT):
    return {"type": "realtime", "model": MODEL,
            "audio": {"input": {"transcription": {"model": transcription_model}}}}


def allow_gateway(fake_upstream, gateway_factory, models=(MODEL,), secret="allow-list-secret"):
    config = default_gateway_config(fake_upstream)
    worker = dict(config["models"][0]["workers"][0])
    config["models"].append({"name": STT, "workers": [worker]})
    config["auth"]["keys"][0]["models"] = list(models)
    config["auth"]["token_secret"] = secret
    return gateway_factory(config)


def assert_refused(reply):
    assert reply.status == 403, (reply.status, reply.body)
    assert reply.json()["error"]["code"] == "model_not_allowed", reply.body
    assert STT in reply.json()["error"]["message"], reply.body


def test_setup_paths_refuse_a_transcription_model_the_key_may_not_use(fake_upstream,
                                                                       gateway_factory):
    gw = allow_gateway(fake_upstream, gateway_factory)
    # Multipart call with the session.
    assert_refused(post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), session=realtime_session()))
    # The GA mint route.
    assert_refused(mint(gw, session=realtime_session()))
    # The legacy mint route, beta field.
    beta = {"model": MODEL, "input_audio_transcription": {"model": STT}}
    assert_refused(http_request("POST", gw.url + "/v1/realtime/sessions", json.dumps(beta).encode(),
                                {"Authorization": f"Bearer {GATEWAY_KEY}",
                                 "Content-Type": "application/json"}))
    assert fake_upstream.requests() == []
    # An allowed one still works (the route itself is not broken).
    ok = mint(gw, session=realtime_session(transcription_model="gpt-realtime"))
    assert ok.status == 200, ok.body


def test_a_token_minted_before_the_key_lost_the_model_is_refused(fake_upstream, gateway_factory):
    # Minted while the key may use every model; redeemed by an instance (same secret) where it
    # may not: the token's session is checked again at every set-up.
    wide = allow_gateway(fake_upstream, gateway_factory, models=("*",))
    reply = mint(wide, session=realtime_session())
    assert reply.status == 200, reply.body
    token = reply.json()["value"]
    narrow = allow_gateway(fake_upstream, gateway_factory)
    assert_refused(post_offer(narrow.url, token, aiortc_offer()))
    ws = run_ws_session(narrow.url, key=token, duration=0.5)
    assert not ws.upgraded
    assert ws.handshake_status == 403, ws.handshake_status
    assert ws.handshake_body["error"]["code"] == "model_not_allowed", ws.handshake_body
    assert fake_upstream.requests() == []


def session_update_refused(gw, fake_upstream, event, beta):
    async def run():
        async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL, beta_header=beta) as client:
            assert client.connected
            await client.wait_for(lambda r: r.events_of("session.created"), 10)
            await client.send(event)
            await client.send({"type": "test.echo", "payload": "after"})
            await client.wait_for(lambda r: r.events_of("error") and r.events_of("test.echoed"),
                                  10)
            return client.result
    result = asyncio.run(run())
    (error,) = result.events_of("error")
    assert error["error"]["code"] == "model_not_allowed", error
    assert error["error"].get("event_id") == "evt_stt", error
    (session,) = fake_upstream.ws_sessions()
    assert not [e for e in session["events"] if STT in e], session["events"]


def test_session_update_naming_a_transcription_model_is_refused_ga(fake_upstream,
                                                                   gateway_factory):
    gw = allow_gateway(fake_upstream, gateway_factory)
    session_update_refused(gw, fake_upstream,
                           {"type": "session.update", "event_id": "evt_stt",
                            "session": {"type": "realtime", "audio": {"input": {
                                "transcription": {"model": STT}}}}}, beta=False)


def test_session_update_naming_a_transcription_model_is_refused_beta(fake_upstream,
                                                                     gateway_factory):
    gw = allow_gateway(fake_upstream, gateway_factory)
    session_update_refused(gw, fake_upstream,
                           {"type": "session.update", "event_id": "evt_stt",
                            "session": {"input_audio_transcription": {"model": STT}}}, beta=True)


def test_a_transcription_session_of_an_allowed_model_still_works(fake_upstream, gateway_factory):
    # The gateway's own first session.update names the worker's (upstream) name of the model:
    # that is allowed for the session it was admitted for.
    config = default_gateway_config(fake_upstream)
    worker = dict(config["models"][0]["workers"][0])
    config["models"].append({"name": STT, "upstream_model": "stt-upstream", "workers": [worker]})
    config["auth"]["keys"][0]["models"] = [STT]
    gw = gateway_factory(config)

    async def run():
        async with WsClient(gw.url, key=GATEWAY_KEY, model=STT,
                            query={"intent": "transcription"}) as client:
            assert client.connected
            await client.send({"type": "test.echo", "payload": "up"})
            await client.wait_for(lambda r: r.events_of("test.echoed"), 10)
            return client.result
    result = asyncio.run(run())
    assert not result.events_of("error"), result.events_of("error")
    (session,) = fake_upstream.ws_sessions()
    assert [e for e in session["events"] if "stt-upstream" in e], session["events"]
