"""Transcripts, opt-in (``transcripts``; SPEC "Telemetry, recording, transcripts";
docs/operations.md#transcripts): the transcription events of a transcribed call are stored per
turn (JSONL beside the usage log, or the PostgreSQL ledger's ``transcripts`` table) and
``GET /v1/realtime/calls/{id}/transcript`` returns exactly what the worker sent, to the creating
key and admins only; a call that is not transcribed stores nothing; and
``transcripts.enable_input_transcription`` switches input transcription on for the worker.
"""
from __future__ import annotations

import asyncio
import json
import os

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import http_request
from peers.ws_client import run_ws_session
from test_ledger import pg, postgres_server, wait_until  # noqa: F401 - pytest fixtures

MODEL = "gpt-realtime"
OTHER_KEY = "sk-test-b-other"
ADMIN_KEY = "sk-test-admin-1"
TRANSCRIPT_EVENTS = ("conversation.item.input_audio_transcription.completed",
                     "response.output_audio_transcript.done")


def config_with(fake_upstream, transcripts, usage=None):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"] += [
        {"name": "team-b", "key": OTHER_KEY, "models": ["*"]},
        {"name": "ops", "key": ADMIN_KEY, "models": ["*"], "admin": True},
    ]
    config["usage"] = usage or {"log": "usage.jsonl"}
    config["transcripts"] = transcripts
    return config


def get_transcript(gw, call_id, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    reply = http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}/transcript",
                         headers=headers)
    return reply.status, (json.loads(reply.body) if reply.body else None)


async def two_turn_call(gw, key):
    """A call with two turns, each an input commit (the worker's input transcription) and a
    response (its output transcript). Returns the call's id."""
    call = AiortcCall(gw.url, key, model=MODEL)
    result = await call.connect()
    assert result.status == 201, result.error or result.body
    try:
        assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
        for turn in (1, 2):
            call.send({"type": "input_audio_buffer.commit"})
            assert await call.wait_for(lambda r: len(r.events_of(TRANSCRIPT_EVENTS[0])) >= turn, 10)
            call.send({"type": "response.create"})
            assert await call.wait_for(lambda r: len(r.events_of("response.done")) >= turn, 10)
        assert len(call.result.events_of(TRANSCRIPT_EVENTS[1])) == 2, call.result.event_types()
    finally:
        await call.close("hangup")
    return call.result.call_id


def worker_transcript(fake_upstream):
    """What the (only) fake-upstream call sent: its transcription events, in order, as the
    entries the gateway must return (turn: responses created before, +1 for an input)."""
    calls = list(fake_upstream.calls().values())
    assert len(calls) == 1, calls
    expected, responses = [], 0
    for raw in calls[0]["sent_events"]:
        event = json.loads(raw)
        if event["type"] == "response.created":
            responses += 1
        elif event["type"] == TRANSCRIPT_EVENTS[0]:
            expected.append({"turn": responses + 1, "role": "user", "text": event["transcript"],
                             "item_id": event["item_id"], "response_id": None})
        elif event["type"] == TRANSCRIPT_EVENTS[1]:
            expected.append({"turn": responses, "role": "assistant", "text": event["transcript"],
                             "item_id": event["item_id"], "response_id": event["response_id"]})
    assert [e["role"] for e in expected] == ["user", "assistant"] * 2, expected
    return expected


def without_times(entries):
    for e in entries:
        assert isinstance(e["at"], float) and e["at"] > 1.7e9, e
    return [{k: v for k, v in e.items() if k != "at"} for e in entries]


def jsonl_lines(gw):
    log = gw.config["usage"]["log"]
    path = os.path.join(gw.workdir, log + ".transcripts.jsonl")  # an absolute log stays as it is
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_jsonl_transcript_equals_what_the_worker_sent(fake_upstream, gateway_factory, tmp_path):
    gw = gateway_factory(config_with(fake_upstream, {"keys": ["team-a"]},
                                     usage={"log": str(tmp_path / "usage.jsonl")}))
    call_id = asyncio.run(two_turn_call(gw, GATEWAY_KEY))
    expected = worker_transcript(fake_upstream)
    assert [e["turn"] for e in expected] == [1, 1, 2, 2], expected

    status, body = get_transcript(gw, call_id, GATEWAY_KEY)
    assert status == 200, body
    assert body["call_id"] == call_id and body["model"] == MODEL, body
    assert without_times(body["entries"]) == expected, body
    # An admin sees it too; another key, and no key, do not.
    status, admin_view = get_transcript(gw, call_id, ADMIN_KEY)
    assert status == 200 and admin_view["entries"] == body["entries"], admin_view
    status, other = get_transcript(gw, call_id, OTHER_KEY)
    assert status == 404 and other["error"]["code"] == "call_not_found", other
    assert get_transcript(gw, call_id, None)[0] == 401

    # One JSON line per entry beside the usage log, with the call's key and model.
    lines = jsonl_lines(gw)
    assert [{k: line[k] for k in ("turn", "role", "text", "item_id", "response_id")}
            for line in lines] == expected, lines
    assert {(line["call_id"], line["key_name"], line["model"]) for line in lines} == {
        (call_id, "team-a", MODEL)}, lines

    # After a restart (same files) the transcript is read back from the file alone, and its
    # owner from its lines.
    gw.stop()
    gw2 = gateway_factory(gw.config)
    status, again = get_transcript(gw2, call_id, GATEWAY_KEY)
    assert status == 200 and again == body, again
    assert get_transcript(gw2, call_id, OTHER_KEY)[0] == 404


def test_a_call_not_transcribed_stores_nothing(fake_upstream, gateway_factory):
    # Only team-b's calls (and no model) are transcribed: team-a's call is not.
    gw = gateway_factory(config_with(fake_upstream, {"keys": ["team-b"], "models": ["other*"]}))
    call_id = asyncio.run(two_turn_call(gw, GATEWAY_KEY))
    assert not jsonl_lines(gw), jsonl_lines(gw)
    for key in (GATEWAY_KEY, ADMIN_KEY):
        status, body = get_transcript(gw, call_id, key)
        assert status == 404 and body["error"]["code"] == "call_not_found", body
    # An unknown call is 404 too.
    assert get_transcript(gw, "rtc_unknown", ADMIN_KEY)[0] == 404


def test_a_model_pattern_transcribes_websocket_sessions(fake_upstream, gateway_factory):
    gw = gateway_factory(config_with(fake_upstream, {"models": ["gpt-*"]}))
    result = run_ws_session(
        gw.url, key=OTHER_KEY, model=MODEL,
        send_events=[{"type": "input_audio_buffer.commit"}, {"type": "response.create"}],
        until=lambda r: r.events_of("response.done"), duration=15)
    assert result.events_of("response.done"), result.event_types()
    created = result.events_of("session.created")
    lines = wait_until(lambda: len(jsonl_lines(gw)) >= 2 and jsonl_lines(gw), 10, "2 entries")
    session_id = lines[0]["call_id"]
    assert [(line["role"], line["turn"], line["key_name"]) for line in lines] == [
        ("user", 1, "team-b"), ("assistant", 1, "team-b")], lines
    assert lines[1]["text"] == result.events_of(TRANSCRIPT_EVENTS[1])[0]["transcript"], created
    status, body = get_transcript(gw, session_id, OTHER_KEY)
    assert status == 200 and len(body["entries"]) == 2, body
    assert get_transcript(gw, session_id, GATEWAY_KEY)[0] == 404


def test_postgres_transcript_rows_and_route(pg, fake_upstream, gateway_factory):  # noqa: F811
    server, db = pg
    gw = gateway_factory(config_with(fake_upstream, {"keys": ["team-a"]},
                                     usage={"log": "usage.jsonl",
                                            "postgres_url": server.url(db)}),
                         health_timeout=30)
    call_id = asyncio.run(two_turn_call(gw, GATEWAY_KEY))
    expected = worker_transcript(fake_upstream)

    def table():
        text = server.psql(db, "SELECT coalesce(json_agg(t ORDER BY t.id), '[]') FROM "
                               "(SELECT * FROM transcripts) t")
        return json.loads(text)
    got = wait_until(lambda: len(table()) >= 4 and table(), 15, "four transcript rows")
    assert [{"turn": r["turn"], "role": r["role"], "text": r["text"], "item_id": r["item_id"],
             "response_id": r["response_id"]} for r in got] == expected, got
    assert {(r["call_id"], r["key_name"], r["model"]) for r in got} == {
        (call_id, "team-a", MODEL)}, got
    assert all(r["created_at"] for r in got), got
    assert not jsonl_lines(gw), "with a ledger the entries go to PostgreSQL only"

    status, body = get_transcript(gw, call_id, GATEWAY_KEY)
    assert status == 200 and without_times(body["entries"]) == expected, body
    assert get_transcript(gw, call_id, OTHER_KEY)[0] == 404

    # A fresh instance on the same database answers from the table (owner from the rows).
    gw.stop()
    gw2 = gateway_factory(gw.config, health_timeout=30)
    status, again = get_transcript(gw2, call_id, GATEWAY_KEY)
    assert status == 200 and without_times(again["entries"]) == expected, again
    assert get_transcript(gw2, call_id, OTHER_KEY)[0] == 404


def test_enable_input_transcription_on_a_bare_offer(fake_upstream, gateway_factory):
    gw = gateway_factory(config_with(fake_upstream, {
        "keys": ["team-a"], "enable_input_transcription": True,
        "input_transcription_model": "whisper-1"}))

    async def bare_then_explicit():
        for session in (None, {"type": "realtime", "audio": {
                "input": {"transcription": {"model": "gpt-4o-transcribe"}}}}):
            call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL, session=session)
            result = await call.connect()
            assert result.status == 201, result.error or result.body
            await call.close("hangup")
    asyncio.run(bare_then_explicit())
    offers = [r for r in fake_upstream.requests()
              if r["method"] == "POST" and r["path"] == "/v1/realtime/calls"]
    assert len(offers) == 2, offers
    bare, explicit = offers[0]["session"], offers[1]["session"]
    assert bare is not None, "the bare offer reached the worker with a session"
    assert bare["audio"]["input"]["transcription"] == {"model": "whisper-1"}, bare
    assert bare["model"] == MODEL and bare["type"] == "realtime", bare
    # The client's own choice is kept.
    assert explicit["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}, explicit

    # A key that is not transcribed gets nothing added.
    async def other():
        call = AiortcCall(gw.url, OTHER_KEY, model=MODEL)
        result = await call.connect()
        assert result.status == 201, result.error or result.body
        await call.close("hangup")
    asyncio.run(other())
    offers = [r for r in fake_upstream.requests()
              if r["method"] == "POST" and r["path"] == "/v1/realtime/calls"]
    assert offers[-1]["session"] is None, offers[-1]


def test_echo_worker_transcript_with_enable_input_transcription(fake_upstream, gateway_factory):
    """The built-in echo worker, on a bare offer: the gateway switches input transcription on, so
    the echo transcribes each commit and sends each response's transcript; both are stored."""
    config = config_with(fake_upstream, {"models": ["echo"], "enable_input_transcription": True})
    config["models"].append({"name": "echo", "workers": [{"provider": "echo"}]})
    gw = gateway_factory(config)

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="echo")
        result = await call.connect()
        assert result.status == 201, result.error or result.body
        try:
            assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
            call.send({"type": "input_audio_buffer.commit"})
            assert await call.wait_for(lambda r: r.events_of(TRANSCRIPT_EVENTS[0]), 10), \
                call.result.event_types()
            call.send({"type": "response.create"})
            assert await call.wait_for(lambda r: r.events_of("response.done"), 10)
        finally:
            await call.close("hangup")
        return call.result
    result = asyncio.run(scenario())
    said = result.events_of(TRANSCRIPT_EVENTS[0])[0]
    answered = result.events_of(TRANSCRIPT_EVENTS[1])
    assert len(answered) == 1, result.event_types()
    status, body = get_transcript(gw, result.call_id, GATEWAY_KEY)
    assert status == 200, body
    assert without_times(body["entries"]) == [
        {"turn": 1, "role": "user", "text": said["transcript"], "item_id": said["item_id"],
         "response_id": None},
        {"turn": 1, "role": "assistant", "text": answered[0]["transcript"],
         "item_id": answered[0]["item_id"], "response_id": answered[0]["response_id"]}], body


def test_enable_input_transcription_on_a_websocket_session(fake_upstream, gateway_factory):
    """A WebSocket session's worker gets the gateway's first session.update with input
    transcription, through the filter even for a key limited to the realtime model."""
    config = config_with(fake_upstream, {"models": [MODEL], "enable_input_transcription": True})
    config["auth"]["keys"].append({"name": "narrow", "key": "sk-test-narrow", "models": [MODEL]})
    gw = gateway_factory(config)
    result = run_ws_session(gw.url, key="sk-test-narrow", model=MODEL,
                            send_events=[{"type": "input_audio_buffer.commit"}],
                            until=lambda r: r.events_of(TRANSCRIPT_EVENTS[0]), duration=15)
    assert result.events_of(TRANSCRIPT_EVENTS[0]), result.event_types()
    assert not result.events_of("error"), result.events_of("error")
    sessions = fake_upstream.ws_sessions()
    assert len(sessions) == 1, sessions
    first = json.loads(sessions[0]["events"][0])
    assert first["type"] == "session.update", first
    assert first["session"]["audio"]["input"]["transcription"] == {
        "model": "gpt-4o-mini-transcribe"}, first
    lines = wait_until(lambda: jsonl_lines(gw), 10, "the user entry")
    assert [(line["role"], line["key_name"]) for line in lines] == [("user", "narrow")], lines
