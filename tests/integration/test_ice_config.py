"""ICE and network knobs that change what a client is told, on loopback: the interfaces gathered
on, IPv6/TCP candidates, the UDP port range (held under concurrent calls, exhaustion → 503)."""
from __future__ import annotations

import asyncio
import re

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.common import post_offer
from test_calls import aiortc_offer

CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ (\S+)", re.M)


def candidates(sdp):
    return [(t.lower(), addr, int(port), typ) for t, addr, port, typ in CANDIDATE.findall(sdp)]


def ice_gateway(fake_upstream, gateway_factory, **webrtc):
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = webrtc
    return gateway_factory(config)


def test_interfaces_ipv6_and_tcp_switches(fake_upstream, gateway_factory):
    gw = ice_gateway(fake_upstream, gateway_factory, ice_interfaces=["lo"], ice_tcp=False,
                     ice_ipv6=False)
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime",
                           send_events=[{"type": "test.echo", "payload": "i"}], duration=1.5)
    assert result.status == 201, result.error_body
    cands = candidates(result.answer_sdp)
    assert cands and all(c[0] == "udp" and c[1] == "127.0.0.1" for c in cands), cands
    assert result.events_of("test.echoed") and result.audio_frames_received > 20
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    up = candidates(req["sdp"])
    assert up and all(c[0] == "udp" and c[1] == "127.0.0.1" for c in up), up


def test_default_advertises_tcp_candidates(gateway, fake_upstream):
    result = run_call_sync(gateway.url, GATEWAY_KEY, model="gpt-realtime", duration=0.3)
    assert [c for c in candidates(result.answer_sdp) if c[0] == "tcp"]


def test_udp_port_range_holds_and_exhaustion_is_503(fake_upstream, gateway_factory):
    # aiortc calls are not bundled (see WEBRTCBIN-NOTES): 2 client-leg ports + 1 upstream-leg port
    low, high = 47100, 47105  # 6 ports = 2 calls
    gw = ice_gateway(fake_upstream, gateway_factory, ice_interfaces=["lo"], ice_tcp=False,
                     ice_ipv6=False, udp_port_min=low, udp_port_max=high,
                     ice_gathering_timeout_ms=500)

    async def scenario():
        calls = [AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime") for _ in range(2)]
        for c in calls:
            await c.connect()
            assert c.connected, c.result.error_body
        loop = asyncio.get_running_loop()
        offer = await loop.run_in_executor(None, aiortc_offer)
        full = await loop.run_in_executor(
            None, lambda: post_offer(gw.url, GATEWAY_KEY, offer, model="gpt-realtime"))
        answers = [c.result.answer_sdp for c in calls]
        for c in calls:
            await c.close()
        return answers, full
    answers, full = asyncio.run(scenario())
    ports = [p for sdp in answers for (_, _, p, _) in candidates(sdp)]
    assert ports and all(low <= p <= high for p in ports), ports
    for req in fake_upstream.requests():
        if req["path"] == "/v1/realtime/calls" and req.get("sdp"):
            assert all(low <= p <= high for (_, _, p, _) in candidates(req["sdp"]))
    assert full.status == 503, full.body
    assert full.json()["error"]["code"] == "no_capacity" and "UDP port" in full.json()["error"]["message"]
    # nothing leaked: once the calls are gone, the range serves a new call
    import time
    time.sleep(1.0)
    again = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", duration=0.3)
    assert again.status == 201, again.error_body


def test_bad_interface_fails_at_start(fake_upstream, gateway_factory):
    import subprocess, os, json
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = {"ice_interfaces": ["no-such-if0"]}
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"rtgw-badif-{os.getpid()}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    proc = subprocess.run([os.environ["RTGW_BINARY"], "--config", path, "--check-config"],
                          capture_output=True, text=True, timeout=30)
    os.unlink(path)
    assert proc.returncode != 0 and "no-such-if0" in proc.stderr, proc.stderr


def test_turn_relay_only(fake_upstream, gateway_factory, tmp_path):
    """A TURN server of the test's own (coturn on loopback) and ice_transport_policy=relay: the
    client is offered relay candidates only, and the call still carries audio and events."""
    import os
    import shutil
    import subprocess
    import time

    import pytest

    from peers.common import free_port

    if not shutil.which("turnserver"):
        pytest.skip("coturn is not installed")
    port = free_port()
    log = open(tmp_path / "turnserver.log", "wb")
    turn = subprocess.Popen(
        ["turnserver", "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
         "--relay-ip=127.0.0.1", "--min-port=49400", "--max-port=49500", "--realm=rtgw",
         "--lt-cred-mech", "--user=rtgw:turnpass", "--no-tls", "--no-dtls", "--no-cli",
         "--allow-loopback-peers", "--no-multicast-peers", f"--pidfile={tmp_path}/turn.pid",
         f"--log-file={tmp_path}/turn-detail.log"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        assert turn.poll() is None, (tmp_path / "turnserver.log").read_text()
        gw = ice_gateway(fake_upstream, gateway_factory,
                         turn_servers=[f"turn://rtgw:turnpass@127.0.0.1:{port}"],
                         ice_transport_policy="relay", ice_gathering_timeout_ms=3000)
        result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime",
                               send_events=[{"type": "test.echo", "payload": "relay"}],
                               duration=3.0)
        assert result.status == 201, result.error_body
        cands = candidates(result.answer_sdp)
        assert cands and all(c[3] == "relay" for c in cands), cands
        assert result.events_of("test.echoed"), result.event_types()
        assert result.audio_frames_received > 40
    finally:
        turn.terminate()
        turn.wait(10)
        log.close()


def test_unanswering_stun_server_costs_a_bounded_time(fake_upstream, gateway_factory):
    """A STUN server that never answers (a UDP socket of the test's that swallows requests):
    set-up takes about ice_gathering_timeout_ms longer, and the call still completes."""
    import socket
    import time

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        gw = ice_gateway(fake_upstream, gateway_factory,
                         stun_server=f"stun://127.0.0.1:{silent.getsockname()[1]}",
                         ice_gathering_timeout_ms=800)
        started = time.monotonic()
        result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime",
                               send_events=[{"type": "test.echo", "payload": "s"}], duration=1.5)
        assert result.status == 201, result.error_body
        assert result.events_of("test.echoed")
        # the POST (inside the call's first seconds) waited for the bound, not for libnice's ~2 s+
        post_ms = float(next(l for l in gw.stderr().splitlines() if "answered in" in l)
                        .split("answered in ")[1].split(" ms")[0])
        assert 700 <= post_ms <= 1600, post_ms
        assert time.monotonic() - started < 10
    finally:
        silent.close()
