"""The built-in echo worker and the embedded default (no config at all)."""
from __future__ import annotations

from peers.aiortc_client import run_call_sync
from peers.common import http_request


def test_echo_worker_answers_events_and_echoes_audio(default_gateway):
    events = [{"type": "session.update", "session": {"instructions": "hi"}}]
    result = run_call_sync(default_gateway, None, model="echo", send_events=events, duration=2.0)
    assert result.status == 201, result.error_body
    assert result.events_of("session.created")
    assert result.events_of("session.updated")[0]["session"]["instructions"] == "hi"
    # the caller's own audio comes back
    assert result.audio_frames_received >= 40, result.audio_frames_received


def test_echo_worker_meters_what_it_heard(default_gateway):
    import asyncio
    from peers.aiortc_client import AiortcCall

    async def scenario():
        call = AiortcCall(default_gateway, None, model="echo")
        await call.connect()
        assert call.connected, call.result.error_body
        await asyncio.sleep(2.0)  # 2 s of audio at 10 tokens/s
        call.send({"type": "response.create"})
        assert await call.wait_for(lambda r: r.events_of("response.done"), 5)
        await call.close("close")
        return call.result
    result = asyncio.run(scenario())
    types = result.event_types()
    assert types.index("response.created") < types.index("response.done")
    usage = result.events_of("response.done")[0]["response"]["usage"]
    assert usage["input_token_details"]["audio_tokens"] >= 10, usage
    assert usage["input_tokens"] == usage["input_token_details"]["audio_tokens"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_models_lists_echo(default_gateway):
    reply = http_request("GET", default_gateway + "/v1/models")
    assert reply.status == 200
    assert [m["id"] for m in reply.json()["data"]] == ["echo"]
