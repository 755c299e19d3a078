"""Deeply nested JSON never takes the gateway down (issue 11, finding 1).

json-glib 1.6 parses recursively without a depth limit: before the gateway bounded the nesting
(64 levels, refused before json-glib recurses), each of these requests overflowed the stack and
killed the process with every live call in it. Each test sends one such input through a
different door (multipart session with a browser's ephemeral token, client_secrets body,
WebSocket event to the built-in echo worker, data-channel event, config file) and checks the
precise refusal *and* that the gateway is still alive and serving afterwards.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from conftest import GATEWAY_KEY
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.common import build_multipart, http_request
from peers.ws_client import WsClient
from test_calls import aiortc_offer

DEEP = 200_000  # far past any stack: 250,000 levels crashed json-glib on the main thread
# The data channel carries at most 64 KiB per message (webrtcbin 1.22), and the policy's
# max_event_bytes must let it through to the worker: a 60,000-level event, under both.
DEEP_EVENT = 60_000


def echo_config():
    return {
        "listen": "127.0.0.1:0",
        "auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]},
        "models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
        "policy": {"max_event_bytes": 1 << 20},
    }


def mint_token(gw):
    reply = http_request("POST", gw.url + "/v1/realtime/client_secrets",
                         json.dumps({"session": {"type": "realtime", "model": "echo"}}).encode(),
                         {"Authorization": f"Bearer {GATEWAY_KEY}",
                          "Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    return reply.json()["value"]


def assert_alive(gw):
    assert gw.running(), f"the gateway died (exit {gw.proc.returncode}):\n{gw.stderr()[-4000:]}"
    health = http_request("GET", gw.url + "/healthz", timeout=5)
    assert health.status == 200, health


def assert_invalid_json(reply):
    assert reply.status == 400, (reply.status, reply.body, reply.error)
    error = reply.json()["error"]
    assert error["code"] == "invalid_json", error
    assert "64" in error["message"], error


def test_deep_multipart_session_with_a_token_is_400_and_calls_go_on(gateway_factory):
    gw = gateway_factory(echo_config())
    token = mint_token(gw)
    body, ctype = build_multipart({"sdp": aiortc_offer(), "session": "[" * DEEP})
    reply = http_request("POST", gw.url + "/v1/realtime/calls", body,
                         {"Authorization": f"Bearer {token}", "Content-Type": ctype}, timeout=20)
    assert_invalid_json(reply)
    # Nested inside a valid-looking object too (the depth check is not just "starts with [").
    body, ctype = build_multipart({"sdp": aiortc_offer(),
                                   "session": '{"model":"echo","tools":' + "[" * DEEP})
    reply = http_request("POST", gw.url + "/v1/realtime/calls", body,
                         {"Authorization": f"Bearer {token}", "Content-Type": ctype}, timeout=20)
    assert_invalid_json(reply)
    assert_alive(gw)
    # A normal call on the same process still works end to end.
    result = run_call_sync(gw.url, token, model=None,
                           send_events=[{"type": "response.create"}], duration=8.0,
                           until=lambda r: r.events_of("response.done"))
    assert result.status == 201, result.error_body
    assert result.events_of("response.done"), result.event_types()


def test_deep_client_secrets_body_is_400(gateway_factory):
    gw = gateway_factory(echo_config())
    # Both under the 256 KiB body limit: refused for their depth, not their size.
    objects = '{"session":{"type":"realtime","model":"echo","x":' + '{"a":' * 40_000
    for body in ["[" * DEEP, objects]:
        reply = http_request("POST", gw.url + "/v1/realtime/client_secrets", body.encode(),
                             {"Authorization": f"Bearer {GATEWAY_KEY}",
                              "Content-Type": "application/json"}, timeout=20)
        assert_invalid_json(reply)
    assert_alive(gw)
    mint_token(gw)  # and it still mints


def test_deep_websocket_event_to_the_echo_worker_gets_an_error_event(gateway_factory):
    gw = gateway_factory(echo_config())

    async def scenario():
        ws = WsClient(gw.url, key=GATEWAY_KEY, model="echo")
        await ws.connect()
        assert ws.connected, (ws.result.status, ws.result.handshake_body, ws.result.error)
        assert await ws.wait_for(lambda r: r.events_of("session.created"), 8)
        await ws.send('{"type":"conversation.item.create","item":' + "[" * DEEP + "}")
        await ws.send("[" * DEEP)
        got_errors = await ws.wait_for(lambda r: len(r.events_of("error")) >= 2, 10)
        # The session is still served: a turn completes after the hostile events.
        await ws.send({"type": "response.create"})
        done = await ws.wait_for(lambda r: r.events_of("response.done"), 10)
        await ws.close()
        return got_errors, done, ws.result
    got_errors, done, result = asyncio.run(scenario())
    assert got_errors, result.event_types()
    for error in result.events_of("error")[:2]:
        assert error["error"]["code"] == "invalid_json", error
    assert done, result.event_types()
    assert_alive(gw)


def test_deep_data_channel_event_gets_an_error_event_and_the_call_goes_on(gateway_factory):
    # The data channel's 64 KiB cap keeps nesting below what overflows json-glib's stack (this
    # passed on the unbounded build too): it guards the path (filter, meter, echo worker), and
    # the call and the gateway must go on after a refused event.
    gw = gateway_factory(echo_config())

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="echo")
        try:
            await call.connect()
            assert call.connected, (call.result.status, call.result.error_body)
            assert await call.wait_for(lambda r: r.channel_opened, 10)
            call.send('{"type":"conversation.item.create","item":' + "[" * DEEP_EVENT + "}")
            got_error = await call.wait_for(lambda r: r.events_of("error"), 10)
            call.send({"type": "response.create"})
            done = await call.wait_for(lambda r: r.events_of("response.done"), 10)
            return got_error, done, call.result
        finally:
            await call.close()
    got_error, done, result = asyncio.run(scenario())
    assert got_error, result.event_types()
    assert result.events_of("error")[0]["error"]["code"] == "invalid_json", result.events
    assert done, result.event_types()
    assert not result.remote_closed
    assert_alive(gw)


def test_deep_server_event_from_the_upstream_is_relayed_untouched(fake_upstream,
                                                                  gateway_factory):
    # The upstream side: a server event nested 500 levels deep crosses the gateway's event path
    # (meter) intact: the 64-level bound is for client input and what json-glib builds (a client
    # event that deep is refused since issue 21, so the worker sends this one on its own).
    from conftest import default_gateway_config
    gw = gateway_factory(default_gateway_config(fake_upstream))
    payload = "[" * 500 + "]" * 500
    raw = '{"type":"test.echoed","payload":' + payload + "}"
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime",
                           send_events=[{"type": "test.send_raw", "raw": raw}],
                           duration=8.0, until=lambda r: r.events_of("test.echoed"))
    assert result.status == 201, result.error_body
    (echoed,) = result.events_of("test.echoed")
    depth, node = 0, echoed["payload"]
    while isinstance(node, list) and node:
        depth, node = depth + 1, node[0]
    assert depth == 499 and node == [], depth  # 500 levels, the innermost empty
    assert_alive(gw)


def test_deep_config_file_fails_check_config_with_a_precise_message(tmp_path):
    binary = os.environ.get("RTGW_BINARY")
    if not binary:
        pytest.skip("RTGW_BINARY is not set")
    path = tmp_path / "deep.json"
    path.write_text('{"listen": "127.0.0.1:8080", "models": ' + "[" * DEEP)
    proc = subprocess.run([binary, "--config", str(path), "--check-config"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode not in (0, None), proc.stdout
    assert proc.returncode > 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert str(path) in proc.stderr and "deeper than 64" in proc.stderr, proc.stderr
