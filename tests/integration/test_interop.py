"""Interop: the clients the SPEC names complete calls through the gateway.

Headless Chromium with a fake microphone, a libwebrtc-based native client (node + @roamhq/wrtc,
which embeds Google's libwebrtc), and aiortc 1.4 (in test_calls.py). Each asserts audio packets
both ways and events both ways, seen from the client and from the upstream.
"""
from __future__ import annotations

import json

from conftest import GATEWAY_KEY
from peers.browser_client import run_browser_call
from peers.werift_client import run_werift_call
from peers.wrtc_client import run_wrtc_call

ECHO = {"type": "test.echo", "payload": "interop"}


def upstream_saw(fake_upstream, min_frames=40):
    calls = fake_upstream.wait_for(lambda s: s["calls"] or None, 10)
    assert calls and len(calls) == 1, calls
    call = next(iter(calls.values()))
    assert json.dumps(ECHO, separators=(",", ":")) in call["events"], call["events"]
    assert call["audio_frames_received"] >= min_frames, call["audio_frames_received"]
    return call


def test_chromium_call_through_gateway(gateway, fake_upstream):
    result = run_browser_call(gateway.url, GATEWAY_KEY, model="gpt-realtime",
                              send_events=[ECHO], duration=4.0)
    assert result.status == 201, (result.status, result.error_body, result.error)
    assert result.channel_opened
    assert result.events_of("session.created")
    assert [e for e in result.events_of("test.echoed") if e["payload"] == ECHO["payload"]]
    assert result.audio_packets_received and result.audio_packets_received >= 50, result
    assert result.audio_packets_sent and result.audio_packets_sent >= 50, result
    upstream_saw(fake_upstream)


def test_chromium_multipart_session(gateway, fake_upstream):
    session = {"type": "realtime", "model": "gpt-realtime", "instructions": "from chromium"}
    result = run_browser_call(gateway.url, GATEWAY_KEY, session=session, send_events=[ECHO],
                              duration=3.0)
    assert result.status == 201, result.error_body
    upstream_saw(fake_upstream)
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert req["session"]["instructions"] == "from chromium"


def test_libwebrtc_native_client_through_gateway(gateway, fake_upstream):
    result = run_wrtc_call(gateway.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO],
                           duration=4.0)
    assert result.status == 201, (result.status, result.error_body, result.error)
    assert result.channel_opened
    assert [e for e in result.events_of("test.echoed") if e["payload"] == ECHO["payload"]]
    # wrtc's RTCAudioSink delivers 10 ms frames
    assert result.audio_frames_received and result.audio_frames_received >= 100, result
    upstream_saw(fake_upstream)


def test_werift_client_through_gateway(gateway, fake_upstream):
    result = run_werift_call(gateway.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO],
                             duration=4.0)
    assert result.status == 201, (result.status, result.error_body, result.error,
                                  result.offer_sdp)
    assert result.channel_opened, (result.connection_states, result.offer_sdp, result.answer_sdp)
    assert [e for e in result.events_of("test.echoed") if e["payload"] == ECHO["payload"]], \
        result.raw_events
    # werift does not decode: it counts the RTP packets received on the remote track (20 ms each)
    assert result.audio_packets_received >= 50, result
    upstream_saw(fake_upstream)
