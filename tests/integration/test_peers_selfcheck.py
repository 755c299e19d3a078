"""Self-checks of the test peers: every client calls the fake upstream DIRECTLY (no gateway),
proving audio flows both ways and the data channel carries events both ways. If these fail,
gateway test failures mean nothing.

    cd /work/main && /usr/bin/python3 -m pytest -x -q tests/integration/test_peers_selfcheck.py
"""
import asyncio
import json
import os
import shutil
import uuid

import pytest

from peers.aiortc_client import AiortcCall, run_call_sync
from peers.common import post_offer

MIN_FRAMES = 25          # 0.5 s of 20 ms frames (aiortc), received by either side
BIG = 60_000             # a large event payload, below the 64 KiB data-channel message limit


def echo_event(size: int = 32) -> dict:
    """A test.echo event with a unique, recognisable payload."""
    token = uuid.uuid4().hex
    return {"type": "test.echo", "payload": (token * (size // len(token) + 1))[:size]}


def echoed_payloads(result) -> list:
    return [e.get("payload") for e in result.events_of("test.echoed")]


def json_type(raw: str) -> str:
    return json.loads(raw)["type"]


def upstream_frames(fake_upstream, call_id) -> int:
    """Audio frames the fake upstream has decoded so far on a live call (0 before it exists).
    A loaded machine decodes behind the sender, so tests wait for this rather than assume it."""
    if not call_id:
        return 0
    call = fake_upstream.calls().get(call_id) or {}
    return call.get("audio_frames_received") or 0


def wait_upstream_closed(fake_upstream, call_id, timeout=5.0) -> dict:
    return fake_upstream.wait_for(lambda s: s["calls"][call_id]["closed"] and
                                  s["calls"][call_id], timeout)


# --------------------------------------------------------------------------- fake upstream

def test_fake_upstream_auth_and_fault_injection(fake_upstream):
    reply = post_offer(fake_upstream.url, "wrong-key", "v=0\r\n", model="gpt-realtime")
    assert reply.status == 401
    assert reply.json()["error"]["code"] == "invalid_api_key"

    fake_upstream.config(status=503, body={"error": {"type": "server_error",
                                                     "code": "overloaded", "message": "busy"}},
                         times=1)
    reply = post_offer(fake_upstream.url, fake_upstream.api_key, "v=0\r\n")
    assert reply.status == 503 and reply.json()["error"]["code"] == "overloaded"
    reply = post_offer(fake_upstream.url, fake_upstream.api_key, "not an sdp")
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_sdp"

    requests = fake_upstream.requests()
    assert [r["status"] for r in requests] == [401, 503, 400]
    assert requests[0]["authorization"] == "Bearer wrong-key"
    assert requests[0]["query"] == {"model": "gpt-realtime"}
    assert requests[1]["content_type"] == "application/sdp"
    fake_upstream.reset()
    assert fake_upstream.state()["requests"] == []


# --------------------------------------------------------------------------- aiortc

def test_aiortc_client_to_fake_upstream(fake_upstream):
    small, big = echo_event(), echo_event(BIG)
    session = {"model": "gpt-realtime", "instructions": "be brief"}
    result = run_call_sync(
        fake_upstream.url, fake_upstream.api_key, model="gpt-realtime", session=session,
        send_events=[small, big, {"type": "response.create"}], duration=10,
        until=lambda r: (r.audio_frames_received >= MIN_FRAMES and len(echoed_payloads(r)) == 2
                         and r.events_of("response.done")),
        close="hangup")
    assert result.status == 201, result.error_body
    assert result.location == f"/v1/realtime/calls/{result.call_id}"
    assert result.call_id.startswith("rtc_")
    assert result.channel_opened and result.error is None
    assert result.event_types()[0] == "session.created"
    assert result.events[0]["session"]["instructions"] == "be brief"
    assert echoed_payloads(result) == [small["payload"], big["payload"]]
    done = result.events_of("response.done")[0]["response"]
    assert done["id"].startswith("resp_") and done["usage"]["total_tokens"] == 57
    assert result.audio_frames_received >= MIN_FRAMES
    assert result.hangup_status == 200

    request = fake_upstream.requests()[0]
    assert request["content_type"].startswith("multipart/form-data")
    assert request["session"] == session and "a=group:BUNDLE" in request["sdp"]
    call = wait_upstream_closed(fake_upstream, result.call_id)
    assert call and call["hangup"]
    assert call["audio_frames_received"] >= MIN_FRAMES
    assert call["channel_label"] == "oai-events"
    assert [json_type(e) for e in call["events"]] == ["test.echo", "test.echo",
                                                      "response.create"]
    assert big["payload"] in call["events"][1]


def test_aiortc_client_live_call_and_close_modes(fake_upstream):
    """The interactive API: act while the call is up, then close (upstream notices)."""
    async def scenario():
        call = AiortcCall(fake_upstream.url, fake_upstream.api_key, model="gpt-realtime")
        try:
            await call.connect()
            assert call.connected, call.result.error_body
            assert await call.wait_for(lambda r: r.events_of("session.created"), 5)
            event = echo_event()
            call.send(event)
            assert await call.wait_for(lambda r: echoed_payloads(r) == [event["payload"]], 5)
        finally:
            await call.close("close")
        return call.result

    result = asyncio.run(scenario())
    call = wait_upstream_closed(fake_upstream, result.call_id)
    assert call and call["remote_closed"] and not call["hangup"]

    # The far end hanging up is visible to the client as remote_closed.
    async def hung_up_by_peer():
        call = AiortcCall(fake_upstream.url, fake_upstream.api_key)
        try:
            await call.connect()
            assert await call.wait_for(lambda r: r.channel_opened, 5)
            assert await call.hangup() == 200      # ends the upstream's side only
            assert await call.wait_for(lambda r: r.remote_closed, 5)
        finally:
            await call.close()
        return call.result

    assert asyncio.run(hung_up_by_peer()).remote_closed

    # "leave": no close_notify; the upstream only learns through ICE consent later.
    left = run_call_sync(fake_upstream.url, fake_upstream.api_key, duration=0.5, close="leave")
    assert left.status == 201
    assert not fake_upstream.calls()[left.call_id]["closed"]


# --------------------------------------------------------------------------- chromium

@pytest.mark.skipif(not (os.path.exists("/usr/bin/chromium")
                         and os.path.exists("/usr/bin/chromedriver")),
                    reason="needs Debian's chromium and chromium-driver")
def test_chromium_to_fake_upstream(fake_upstream):
    from peers.browser_client import run_browser_call
    small, big = echo_event(), echo_event(BIG)
    result = run_browser_call(
        fake_upstream.url, fake_upstream.api_key, model="gpt-realtime",
        send_events=[small, big], duration=10,
        until=lambda r: (r.audio_packets_received >= MIN_FRAMES and
                         r.audio_packets_sent >= MIN_FRAMES and len(echoed_payloads(r)) == 2
                         and upstream_frames(fake_upstream, r.call_id) >= MIN_FRAMES))
    assert result.status == 201, result.error_body
    assert result.error is None and result.channel_opened
    assert result.event_types()[0] == "session.created"
    assert echoed_payloads(result) == [small["payload"], big["payload"]]
    assert result.audio_packets_received >= MIN_FRAMES
    assert result.audio_packets_sent >= MIN_FRAMES

    call = wait_upstream_closed(fake_upstream, result.call_id)
    assert call and call["audio_frames_received"] >= MIN_FRAMES
    assert len(call["events"]) == 2


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs chromium")
def test_chromium_live_call_sees_remote_hangup(fake_upstream):
    from peers.browser_client import BrowserCall
    from peers.common import post_hangup
    with BrowserCall(fake_upstream.url, fake_upstream.api_key) as call:
        call.connect()
        assert call.connected, (call.result.error, call.result.error_body)
        event = echo_event()
        call.send(event)                            # queued until the channel opens
        assert call.wait_for(lambda r: echoed_payloads(r) == [event["payload"]], 10)
        assert post_hangup(fake_upstream.url, fake_upstream.api_key,
                           call.result.location).status == 200
        assert call.wait_for(lambda r: r.remote_closed, 10)
        result = call.close()
    assert result.remote_closed and not result.error


# --------------------------------------------------------------------------- wrtc (libwebrtc)

@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_wrtc_to_fake_upstream(fake_upstream):
    from peers.wrtc_client import run_wrtc_call
    small, big = echo_event(), echo_event(BIG)
    result = run_wrtc_call(fake_upstream.url, fake_upstream.api_key, model="gpt-realtime",
                           session={"model": "gpt-realtime"}, send_events=[small, big],
                           duration=2.0)
    assert result.status == 201, (result.error, result.error_body)
    assert result.error is None and result.channel_opened
    assert result.event_types()[0] == "session.created"
    assert echoed_payloads(result) == [small["payload"], big["payload"]]
    assert result.audio_frames_received >= 2 * MIN_FRAMES   # wrtc counts 10 ms frames
    assert result.audio_packets_sent >= MIN_FRAMES

    call = wait_upstream_closed(fake_upstream, result.call_id)
    assert call and call["audio_frames_received"] >= MIN_FRAMES
    assert fake_upstream.requests()[0]["session"] == {"model": "gpt-realtime"}


# --------------------------------------------------------------------------- gateway fixture

STUB_GATEWAY = '''#!/usr/bin/python3
# Stands in for realtime-gateway: --config FILE --listen HOST:PORT, GET /healthz, SIGTERM.
import http.server, json, signal, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
config = json.load(open(args["--config"]))
host, port = args["--listen"].rsplit(":", 1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(config if self.path == "/config" else {"ok": True}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
server = http.server.HTTPServer((host, int(port)), H)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("stub gateway up", file=sys.stderr, flush=True)
server.serve_forever()
'''


@pytest.fixture
def stub_gateway_binary(tmp_path, monkeypatch):
    path = tmp_path / "stub-gateway"
    path.write_text(STUB_GATEWAY)
    path.chmod(0o755)
    monkeypatch.setenv("RTGW_BINARY", str(path))
    return str(path)


def test_gateway_fixture_with_stub_binary(stub_gateway_binary, fake_upstream, gateway_factory):
    """The gateway fixtures themselves, exercised with a stub binary."""
    from conftest import default_gateway_config
    from peers.common import http_request
    gw = gateway_factory(default_gateway_config(fake_upstream))
    assert gw.running() and gw.key == "sk-test-a"
    written = http_request("GET", gw.url + "/config").json()
    assert written["listen"] == f"127.0.0.1:{gw.port}"
    assert written["models"][0]["workers"][0]["url"] == fake_upstream.url
    assert "stub gateway up" in gw.stderr()
    assert gw.stop() == 0 and not gw.running()


# --------------------------------------------------------------------------- webrtcbin offerer

def _have_webrtcbin() -> bool:
    import subprocess
    probe = ("import gi; gi.require_version('Gst','1.0'); from gi.repository import Gst; "
             "Gst.init(None); assert Gst.ElementFactory.find('webrtcbin') "
             "and Gst.ElementFactory.find('nicesrc') and Gst.ElementFactory.find('opusenc')")
    return subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True).returncode == 0


@pytest.mark.skipif(not _have_webrtcbin(), reason="needs python3-gi, gstreamer1.0-nice, "
                    "gir1.2-gst-plugins-bad-1.0 and gstreamer1.0-plugins-{good,bad}")
def test_webrtcbin_offer_to_fake_upstream(fake_upstream):
    """The fake upstream's real peer is the gateway's webrtcbin offerer: check that pairing."""
    from peers.gst_offerer import run_gst_offer_call
    small, big = echo_event(), echo_event(BIG)
    result = run_gst_offer_call(fake_upstream.url, fake_upstream.api_key, "gpt-realtime",
                                send_events=[small, big, {"type": "response.create"}],
                                duration=2.0)
    assert result.status == 201, (result.error, result.error_body)
    assert result.channel_opened
    assert result.event_types()[:1] == ["session.created"]
    assert echoed_payloads(result) == [small["payload"], big["payload"]]
    assert result.events_of("response.done")
    assert result.audio_packets_received >= MIN_FRAMES
    call = fake_upstream.calls()[result.call_id]
    assert call["audio_frames_received"] >= MIN_FRAMES
    assert [json_type(e) for e in call["events"]] == ["test.echo", "test.echo",
                                                      "response.create"]
