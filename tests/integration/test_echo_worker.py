"""The built-in echo worker and the embedded default (no config at all)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from peers.aiortc_client import run_call_sync
from peers.common import free_port, http_request


@pytest.fixture
def default_gateway(tmp_path):
    """The gateway exactly as the README's run command starts it: no config file."""
    binary = os.environ.get("RTGW_BINARY")
    if not binary:
        pytest.skip("RTGW_BINARY is not set")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    log = open(tmp_path / "gateway.log", "wb")
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, env=env, cwd=str(tmp_path))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while http_request("GET", url + "/healthz", timeout=1).status != 200:
        assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.1)
    yield url
    proc.terminate()
    assert proc.wait(10) == 0
    log.close()


def test_echo_worker_answers_events_and_echoes_audio(default_gateway):
    events = [{"type": "session.update", "session": {"instructions": "hi"}}]
    responded = []

    def on_event(event, call):
        # ask for a response once we have spoken for a while
        if event.get("type") == "session.updated" and not responded:
            responded.append(True)

    result = run_call_sync(default_gateway, None, model="echo", send_events=events, duration=2.0,
                           on_event=on_event)
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
