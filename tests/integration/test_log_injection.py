"""Peer-supplied strings never forge log lines (issue 21, item 10).

A WebSocket close reason and a data channel label went to the log as they came: a newline in
either started a line of the attacker's choosing. Every message is now escaped by the log writer,
and these strings are quoted where they are logged. Checked in both log formats.
"""
from __future__ import annotations

import asyncio
import json

import pytest

from conftest import GATEWAY_KEY
from peers.aiortc_client import AiortcCall
from peers.ws_client import WsClient

FORGED = "FORGED-LINE rtgw_admin_key=leaked"


def echo_config(json_logs):
    return {
        "listen": "127.0.0.1:0",
        "auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]},
        "models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
        "log_json": json_logs,
    }


def log_text(gw):
    """The log, with JSON lines reduced to their message (as it was before JSON escaping)."""
    with open(gw.stdout_path, errors="replace") as out:
        raw = gw.stderr() + out.read()
    lines = []
    for line in raw.splitlines():
        if line.startswith("{"):
            line = json.loads(line)["message"]
        lines.append(line)
    return "\n".join(lines)


async def wait_for_log_async(gw, needle, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if needle in log_text(gw):
            return True
        await asyncio.sleep(0.1)
    return False


def wait_for_log(gw, needle, timeout=10.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log_text(gw):
            return True
        time.sleep(0.1)
    return False


def check_lines(gw, json_logs):
    with open(gw.stdout_path, errors="replace") as out:
        raw = gw.stderr() + out.read()
    for line in raw.splitlines():
        assert not line.startswith(FORGED), line
        if json_logs:
            json.loads(line)  # every line is one JSON object
    for line in log_text(gw).splitlines():  # a JSON line's message holds no raw newline either
        assert not line.startswith(FORGED), line


@pytest.mark.parametrize("json_logs", [False, True])
def test_websocket_close_reason_is_escaped_in_the_log(gateway_factory, json_logs):
    gw = gateway_factory(echo_config(json_logs))

    async def scenario():
        ws = WsClient(gw.url, key=GATEWAY_KEY, model="echo")
        await ws.connect()
        assert ws.connected, (ws.result.status, ws.result.handshake_body, ws.result.error)
        assert await ws.wait_for(lambda r: r.events_of("session.created"), 8)
        await ws.close(code=4000, reason="bye\n" + FORGED + "\r\x1b[2K")
    asyncio.run(scenario())
    assert wait_for_log(gw, FORGED), gw.stderr()[-2000:]
    check_lines(gw, json_logs)
    assert "bye\\n" + FORGED in log_text(gw)


@pytest.mark.parametrize("json_logs", [False, True])
def test_data_channel_label_is_escaped_in_the_log(gateway_factory, json_logs):
    gw = gateway_factory(echo_config(json_logs))

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="echo", label="x\n" + FORGED)
        try:
            await call.connect()
            assert call.connected, (call.result.status, call.result.error_body)
            return await wait_for_log_async(gw, FORGED)
        finally:
            await call.close()
    assert asyncio.run(scenario()), gw.stderr()[-2000:]
    check_lines(gw, json_logs)
    assert "x\\n" + FORGED in log_text(gw)
