"""Peer liveness (SPEC "Peer liveness"): a leg whose peer sends nothing for
webrtc.peer_timeout_seconds is dead; the call ends as if that peer hung up and the other side is
told at once. Both peers here run as their own processes and are killed with SIGKILL: no DTLS
close, no SCTP abort, no hang-up."""
from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import time

import pytest

from cleanstate import (assert_clean, ended_for_client, metric, metrics, snapshot, wait_for, warm_up,
                        with_admin)
from conftest import GATEWAY_KEY, HERE, PYTHON, default_gateway_config, start_fake_upstream
from peers.aiortc_client import AiortcCall
from peers.common import http_request, tail_file

PEER_TIMEOUT = 3
AIORTC_CLIENT = os.path.join(HERE, "peers", "aiortc_client.py")


def liveness_config(upstream):
    config = with_admin(default_gateway_config(upstream))
    config["webrtc"] = {"peer_timeout_seconds": PEER_TIMEOUT}
    return config


def get_call(gw, call_id):
    reply = http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                         headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
    assert reply.status == 200, reply
    return reply.json()




def test_killed_upstream_ends_the_call(request, tmp_path, gateway_factory):
    # Its own upstream: this test kills it.
    upstream = start_fake_upstream(str(tmp_path))
    request.addfinalizer(upstream.stop)
    gw = gateway_factory(liveness_config(upstream))
    warm_up(gw, GATEWAY_KEY)
    base = snapshot(gw)

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime",
                          send_events=[{"type": "test.echo", "payload": "before"}])
        await call.connect()
        assert call.connected, call.result.error_body
        assert await call.wait_for(lambda r: r.events_of("test.echoed"), 10)
        # Audio flows from the upstream: the leg is alive well past the timeout.
        await asyncio.sleep(PEER_TIMEOUT + 1.5)
        state = get_call(gw, call.result.call_id)
        assert state["state"] == "active", state
        assert 0 <= state["liveness"]["upstream_idle_ms"] < 2000, state
        upstream.proc.kill()  # SIGKILL: nothing more from the upstream, ever
        upstream.proc.wait(5)
        killed = time.monotonic()
        ended = await call.wait_for(ended_for_client, PEER_TIMEOUT + 6)
        took = time.monotonic() - killed
        await call.close("leave")
        return ended, took, call.result.call_id

    ended, took, call_id = asyncio.run(scenario())
    assert ended, "the client was not told (its data channel is still open)"
    # detected within the timeout plus the 1 s check period, plus a margin for a loaded machine
    assert took < PEER_TIMEOUT + 3.5, took
    assert took > PEER_TIMEOUT - 0.5, f"ended too early ({took:.1f} s): a false positive?"
    state = get_call(gw, call_id)
    assert state["state"] == "ended"
    assert "upstream" in state["end_reason"] and "peer timeout" in state["end_reason"], state
    assert state["outcome"] == "peer_timeout"
    assert wait_for(lambda: metric(metrics(gw), "rtgw_calls_total",
                                   '{model="gpt-realtime",outcome="peer_timeout"}') == 1, 5)
    text = metrics(gw)
    assert metric(text, "rtgw_peer_timeouts_total", '{leg="upstream"}') == 1
    assert metric(text, "rtgw_calls_total", '{model="gpt-realtime",outcome="completed"}') == 1
    assert_clean(gw, base)


def start_client_process(tmp_path, gw, *extra):
    log_path = str(tmp_path / f"client-{time.monotonic_ns()}.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([PYTHON, AIORTC_CLIENT, "--base-url", gw.url, "--key", GATEWAY_KEY,
                             "--model", "gpt-realtime", "--announce", "--duration", "120",
                             *extra],
                            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            if line.startswith("CALL "):
                return proc, line.split()[1].rsplit("/", 1)[-1]
    finally:
        sel.close()
    proc.kill()
    proc.wait(5)
    raise AssertionError(f"the client process did not connect:\n{tail_file(log_path)}")


def test_killed_silent_client_ends_the_call(tmp_path, fake_upstream, gateway_factory):
    gw = gateway_factory(liveness_config(fake_upstream))
    warm_up(gw, GATEWAY_KEY)
    base = snapshot(gw)
    fake_upstream.reset()
    proc, call_id = start_client_process(tmp_path, gw, "--no-audio")
    try:
        # A connected client that sends no audio is not dead (its RTCP and SCTP count).
        time.sleep(PEER_TIMEOUT + 2)
        state = get_call(gw, call_id)
        assert state["state"] == "active", state
        assert state["media"]["packets_from_client"] == 0, state
        (up_id,) = fake_upstream.calls().keys()
        proc.kill()
        proc.wait(5)
        killed = time.monotonic()
        hung_up = fake_upstream.wait_for(lambda s: s["calls"][up_id]["hangup"],
                                         PEER_TIMEOUT + 6)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert hung_up, "the upstream call was not hung up"
    assert PEER_TIMEOUT - 0.5 < took < PEER_TIMEOUT + 3.5, took
    state = get_call(gw, call_id)
    assert state["state"] == "ended"
    assert "client" in state["end_reason"] and "peer timeout" in state["end_reason"], state
    # It was asked (ICE binding requests) before it was given up; nothing answered.
    assert state["liveness"]["client_checks_sent"] >= 1, state["liveness"]
    assert wait_for(lambda: metric(metrics(gw), "rtgw_calls_total",
                                   '{model="gpt-realtime",outcome="peer_timeout"}') == 1, 5)
    assert metric(metrics(gw), "rtgw_peer_timeouts_total", '{leg="client"}') == 1
    assert_clean(gw, base)


def test_peer_timeout_zero_disables_the_check(tmp_path, fake_upstream, gateway_factory):
    config = liveness_config(fake_upstream)
    config["webrtc"]["peer_timeout_seconds"] = 0
    gw = gateway_factory(config)
    proc, call_id = start_client_process(tmp_path, gw, "--no-audio")
    try:
        proc.kill()
        proc.wait(5)
        time.sleep(PEER_TIMEOUT + 2)
        state = get_call(gw, call_id)
        assert state["state"] == "active", state
        assert state["liveness"]["client_idle_ms"] == -1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_check_config_and_env_show_the_peer_timeout(tmp_path):
    binary = os.environ.get("RTGW_BINARY")
    if not binary:
        import pytest
        pytest.skip("RTGW_BINARY is not set")
    out = subprocess.run([binary, "--check-config"], capture_output=True, text=True, timeout=30,
                         cwd=str(tmp_path), env={**os.environ,
                                                 "RTGW_WEBRTC_PEER_TIMEOUT_SECONDS": "7"})
    assert out.returncode == 0, out.stderr
    assert "peer_timeout_s=7" in out.stdout + out.stderr


def test_silent_browser_is_not_taken_for_dead(gateway_factory):
    """No false positive: Chromium stops sending audio (replaceTrack(null)), so the echo worker
    sends none back either; both legs then carry no RTP either way, only what a live peer sends
    anyway (RTCP, SCTP, STUN). The echo worker's webrtcbin sends nothing at all for 25 s (no RTCP,
    libnice keepalives every 25 s): the gateway must ask it (an ICE binding request) and count the
    answer. The call must outlive several timeouts."""
    from peers.browser_client import BrowserCall
    timeout = 4
    gw = gateway_factory({"auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY,
                                              "models": ["*"]}]},
                          "models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
                          "webrtc": {"peer_timeout_seconds": timeout}})
    with BrowserCall(gw.url, GATEWAY_KEY, model="echo") as call:
        call.connect()
        assert call.connected, call.result.error_body or call.result.error
        assert call.wait_for(lambda r: r.channel_opened, 15)
        call.mute()
        time.sleep(1.0)  # packets already in flight arrive
        before = get_call(gw, call.result.call_id)["media"]["packets_from_client"]
        time.sleep(3 * timeout)
        state = get_call(gw, call.result.call_id)
        assert state["state"] == "active", state
        assert state["media"]["packets_from_client"] - before < 5, \
            f"the browser still sent audio: {before} -> {state['media']}"
        # The upstream leg was quiet long enough to be asked, and its answers kept it alive.
        assert state["liveness"]["upstream_checks_sent"] >= 2, state["liveness"]
        assert 0 <= state["liveness"]["upstream_idle_ms"] < timeout * 1000, state["liveness"]
        # The data channel still works both ways.
        call.send({"type": "response.create"})
        assert call.wait_for(lambda r: r.events_of("response.done"), 10), call.result.events
