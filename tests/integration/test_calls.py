"""Call relay core: real WebRTC calls through the gateway to a real aiortc upstream.

Every test starts the real gateway binary ($RTGW_BINARY) and a fake upstream worker
(peers/fake_upstream.py, aiortc), then calls the gateway with real clients and asserts what both
ends saw: events both ways, audio packets both ways, and — for bad input — the status, the error
code, and that the upstream saw nothing.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time

import pytest

from cleanstate import ended_for_client
from conftest import GATEWAY_KEY, UPSTREAM_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.common import free_port, header, http_request, post_hangup, post_offer, wait_until

ECHO = {"type": "test.echo", "payload": "ping-from-client"}
MIN_AUDIO_FRAMES = 40  # 3 s of 20 ms frames is 150; demand a clear flow, not a trickle


def upstream_call(fake_upstream, timeout=10.0):
    """The single call the fake upstream has (waits for it)."""
    calls = fake_upstream.wait_for(lambda s: s["calls"] or None, timeout)
    assert calls, "the upstream never received a call"
    assert len(calls) == 1, calls
    return next(iter(calls.values()))


def assert_relayed_both_ways(result, fake_upstream):
    assert result.status == 201, (result.status, result.error_body, result.error)
    assert result.channel_opened
    # upstream -> client: the upstream's own session.created and its reply to our test.echo
    assert result.events_of("session.created"), result.event_types()
    echoed = result.events_of("test.echoed")
    assert echoed and echoed[0]["payload"] == ECHO["payload"], result.event_types()
    # client -> upstream: the upstream received exactly our event, byte for byte
    call = upstream_call(fake_upstream)
    assert json.dumps(ECHO, separators=(",", ":")) in call["events"]
    # audio both ways (the upstream sends its own tone; it counts what it receives)
    assert call["audio_frames_received"] >= MIN_AUDIO_FRAMES, call["audio_frames_received"]
    return call


def test_aiortc_call_relays_audio_and_events_both_ways(gateway, fake_upstream):
    result = run_call_sync(gateway.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO],
                           duration=3.0)
    call = assert_relayed_both_ways(result, fake_upstream)
    assert result.audio_frames_received >= MIN_AUDIO_FRAMES, result.audio_frames_received
    # the signalling per SPEC
    assert header(result.headers, "Content-Type").startswith("application/sdp")
    assert re.fullmatch(r"/v1/realtime/calls/rtc_[0-9a-f]{32}", result.location), result.location
    assert result.answer_sdp.startswith("v=0")
    # the upstream was called with the worker's key, never the client's
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert req["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert req["content_type"].startswith("application/sdp")
    assert req["query"].get("model") == "gpt-realtime"
    assert "m=application" in req["sdp"] and "m=audio" in req["sdp"]
    assert call["channel_label"] == "oai-events"


def test_multipart_session_is_forwarded_upstream(gateway, fake_upstream):
    session = {"type": "realtime", "model": "gpt-realtime", "instructions": "be brief",
               "audio": {"output": {"voice": "marin"}}}
    result = run_call_sync(gateway.url, GATEWAY_KEY, session=session, send_events=[ECHO],
                           duration=2.5)
    assert_relayed_both_ways(result, fake_upstream)
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert req["content_type"].startswith("multipart/form-data")
    assert req["session"]["instructions"] == "be brief"
    assert req["session"]["audio"] == session["audio"]
    assert req["session"]["model"] == "gpt-realtime"


def test_upstream_model_name_is_used_upstream(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["models"][0]["name"] = "alias"
    config["models"][0]["upstream_model"] = "gpt-realtime"
    gw = gateway_factory(config)
    session = {"type": "realtime", "model": "alias"}
    result = run_call_sync(gw.url, GATEWAY_KEY, session=session, duration=1.0)
    assert result.status == 201, result.error_body
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert req["session"]["model"] == "gpt-realtime"
    assert req["query"].get("model") == "gpt-realtime"


def test_concurrent_calls(gateway, fake_upstream):
    async def three():
        return await asyncio.gather(*[
            __import__("peers.aiortc_client", fromlist=["run_call"]).run_call(
                gateway.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO], duration=3.0)
            for _ in range(3)])
    results = asyncio.run(three())
    for r in results:
        assert r.status == 201, r.error_body
        assert r.events_of("test.echoed")
        assert r.audio_frames_received >= MIN_AUDIO_FRAMES
    assert len({r.call_id for r in results}) == 3
    calls = fake_upstream.wait_for(lambda s: len(s["calls"]) == 3 and s["calls"], 10)
    for c in calls.values():
        assert c["audio_frames_received"] >= MIN_AUDIO_FRAMES


# --------------------------------------------------------------------------- bad input

def aiortc_offer():
    """A real aiortc offer (not sent anywhere)."""
    from aiortc import RTCPeerConnection
    from peers.common import make_tone_track

    async def make():
        pc = RTCPeerConnection()
        pc.addTrack(make_tone_track())
        pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp
    return asyncio.run(make())


def strip_media(sdp: str, kind: str) -> str:
    """Drop the m-section of ``kind`` (audio/application)."""
    out, skip = [], False
    for line in sdp.splitlines(keepends=True):
        if line.startswith("m="):
            skip = line.startswith(f"m={kind}")
        if not skip:
            out.append(line)
    return "".join(out)


@pytest.fixture
def restricted_gateway(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"].append({"name": "team-b", "key": "sk-test-b", "models": ["other*"]})
    config["models"].append({"name": "other-model", "workers": [{"provider": "echo"}]})
    config["limits"] = {"max_body_bytes": 20000}
    return gateway_factory(config)


BAD_INPUTS = [
    # (id, key, model, body-maker, content_type, session, status, code)
    ("no-key", None, "gpt-realtime", "offer", None, None, 401, "missing_api_key"),
    ("wrong-key", "sk-nope-nope", "gpt-realtime", "offer", None, None, 401, "invalid_api_key"),
    ("unknown-model", GATEWAY_KEY, "no-such-model", "offer", None, None, 404, "model_not_found"),
    ("model-not-allowed", "sk-test-b", "gpt-realtime", "offer", None, None, 403, "model_not_allowed"),
    ("missing-model", GATEWAY_KEY, None, "offer", None, None, 400, "missing_model"),
    ("text-plain", GATEWAY_KEY, "gpt-realtime", "offer", "text/plain", None, 400, "invalid_content_type"),
    ("garbage-sdp", GATEWAY_KEY, "gpt-realtime", "garbage", None, None, 400, "invalid_sdp"),
    ("no-audio", GATEWAY_KEY, "gpt-realtime", "no-audio", None, None, 400, "invalid_sdp"),
    ("no-datachannel", GATEWAY_KEY, "gpt-realtime", "no-data", None, None, 400, "invalid_sdp"),
    ("no-opus", GATEWAY_KEY, "gpt-realtime", "no-opus", None, None, 400, "invalid_sdp"),
    ("bad-multipart", GATEWAY_KEY, "gpt-realtime", "offer", "multipart/form-data; boundary=zz",
     None, 400, "invalid_multipart"),
    ("too-large", GATEWAY_KEY, "gpt-realtime", "huge", None, None, 413, "body_too_large"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_before_any_worker_is_contacted(case, restricted_gateway,
                                                             fake_upstream):
    _, key, model, body, ctype, session, status, code = case
    offer = aiortc_offer()
    sdp = {"offer": offer, "garbage": "this is not sdp",
           "no-audio": strip_media(offer, "audio"), "no-data": strip_media(offer, "application"),
           "no-opus": offer.replace("opus/48000/2", "ISAC/16000"),
           "huge": offer + "a=x-pad:" + "x" * 30000 + "\r\n"}[body]
    reply = post_offer(restricted_gateway.url, key, sdp, model=model, session=session,
                       content_type=ctype)
    assert reply.status == status, (reply.status, reply.body)
    err = reply.json()["error"]
    assert err["code"] == code, err
    assert err["message"] and err["type"]
    assert header(reply.headers, "Content-Type").startswith("application/json")
    time.sleep(0.2)
    assert fake_upstream.requests() == [], "the upstream was contacted for a bad request"


def test_multipart_without_model_is_missing_model(gateway, fake_upstream):
    reply = post_offer(gateway.url, GATEWAY_KEY, aiortc_offer(), session={"type": "realtime"})
    assert reply.status == 400 and reply.json()["error"]["code"] == "missing_model"
    assert fake_upstream.requests() == []


# --------------------------------------------------------------------------- upstream failures

# (401/403 are the gateway's own credentials refused: 502 without the body, see
# test_setup_hardening.py)
@pytest.mark.parametrize("status", [500, 429, 400])
def test_upstream_error_status_and_body_pass_through(status, gateway, fake_upstream):
    body = {"error": {"type": "server_error", "code": f"upstream_{status}", "message": "nope"}}
    fake_upstream.config(status=status, body=body)
    reply = post_offer(gateway.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime")
    assert reply.status == status, reply.body
    assert reply.json() == body


def test_unreachable_worker_is_upstream_error(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["models"][0]["workers"][0]["url"] = f"http://127.0.0.1:{free_port()}"
    # without health checks: the set-up itself must find out (test_workers covers the checks)
    config["models"][0]["workers"][0]["health_interval_seconds"] = 0
    gw = gateway_factory(config)
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime")
    assert reply.status == 502, reply.body
    assert reply.json()["error"]["code"] == "upstream_error"


def test_slow_worker_is_upstream_timeout(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["models"][0]["workers"][0]["timeout_seconds"] = 1
    gw = gateway_factory(config)
    fake_upstream.config(delay_ms=3000)
    started = time.monotonic()
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime")
    assert reply.status == 504, reply.body
    assert reply.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 2.5


# --------------------------------------------------------------------------- lifecycle



def get_call(gw, call_id, key=GATEWAY_KEY):
    return http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                        headers={"Authorization": f"Bearer {key}"})


def test_call_state_and_hangup_by_api(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"].append({"name": "team-b", "key": "sk-test-b", "models": ["*"]})
    config["auth"]["keys"].append({"name": "ops", "key": "sk-admin-1", "models": ["*"], "admin": True})
    gw = gateway_factory(config)

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO])
        await call.connect()
        assert call.connected, call.result.error_body
        assert await call.wait_for(lambda r: r.events_of("test.echoed"), 10)
        await asyncio.sleep(1.0)
        state = get_call(gw, call.result.call_id)
        assert state.status == 200, state.body
        info = state.json()
        assert info["id"] == call.result.call_id
        assert info["model"] == "gpt-realtime" and info["state"] == "active"
        assert info["media"]["packets_from_client"] > 10
        assert info["media"]["packets_from_upstream"] > 10
        assert info["events"]["from_client"] >= 1 and info["events"]["from_upstream"] >= 2
        # Time inside the gateway per event, each way: counted, and well under a second.
        relay = info["timings"]["event_relay_us"]
        assert relay["to_upstream"]["count"] == info["events"]["from_client"], relay
        assert relay["to_client"]["count"] == info["events"]["from_upstream"], relay
        for way in relay.values():
            assert 0 < way["p50"] <= way["p90"] <= way["max"] < 1e6, relay
        # another key does not see it; an admin does
        assert get_call(gw, call.result.call_id, "sk-test-b").status == 404
        assert get_call(gw, call.result.call_id, "sk-admin-1").status == 200
        assert post_hangup(gw.url, "sk-test-b", call.result.location).status == 404
        # hang up through the API: both legs end within a second
        started = time.monotonic()
        reply = post_hangup(gw.url, GATEWAY_KEY, call.result.location)
        assert reply.status == 200, reply.body
        assert reply.json()["state"] == "ended"
        ended = await call.wait_for(ended_for_client, 5)
        client_gone = time.monotonic() - started
        await call.close("leave")
        return ended, client_gone, call.result.call_id

    ended, client_gone, call_id = asyncio.run(scenario())
    up = fake_upstream.wait_for(
        lambda s: all(c["hangup"] or c["closed"] for c in s["calls"].values()) and s["calls"], 3)
    assert up, "the upstream call was not ended"
    assert ended, "the client leg did not end"
    assert client_gone < 3.0
    assert get_call(gw, call_id).json()["state"] == "ended"


def test_client_leaving_ends_upstream_within_a_second(gateway, fake_upstream):
    result = run_call_sync(gateway.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO],
                           duration=2.0, close="close")
    assert result.status == 201
    left_at = time.monotonic()
    up = fake_upstream.wait_for(
        lambda s: [c for c in s["calls"].values() if c["hangup"] or c["closed"]], 5)
    assert up, "the upstream was not hung up"
    assert time.monotonic() - left_at < 1.5
    assert get_call(gateway, result.call_id).json()["state"] == "ended"


def test_upstream_ending_ends_client(gateway, fake_upstream):
    async def scenario():
        call = AiortcCall(gateway.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO])
        await call.connect()
        assert call.connected
        assert await call.wait_for(lambda r: r.events_of("test.echoed"), 10)
        (up_id,) = fake_upstream.calls().keys()
        # the upstream hangs up on its own
        http_request("POST", f"{fake_upstream.url}/v1/realtime/calls/{up_id}/hangup", b"",
                     {"Authorization": f"Bearer {UPSTREAM_KEY}"})
        started = time.monotonic()
        ok = await call.wait_for(ended_for_client, 5)
        took = time.monotonic() - started
        await call.close("leave")
        return ok, took, call.result.call_id
    ok, took, call_id = asyncio.run(scenario())
    assert ok, "the client leg stayed up after the upstream ended"
    assert took < 2.0, took
    state = get_call(gateway, call_id).json()
    assert state["state"] == "ended", state


def test_oversized_events_get_an_error_event_never_a_silent_drop(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["policy"] = {"max_event_bytes": 2000}
    gw = gateway_factory(config)
    big_up = {"type": "test.echo", "payload": "u" * 3000}  # the upstream's echo exceeds the limit
    big_client = {"type": "conversation.item.create", "payload": "c" * 3000}
    small = {"type": "test.echo", "payload": "after"}
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime",
                           send_events=[big_client, big_up, small], duration=3.0)
    assert result.status == 201
    errors = result.events_of("error")
    assert len(errors) >= 2, result.event_types()
    for e in errors:
        assert e["error"]["code"] == "event_too_large", e
        assert re.fullmatch(r"evt_[0-9a-f]{32}", e["event_id"]), e
    # the call goes on: the small event still travels both ways
    assert [e for e in result.events_of("test.echoed") if e["payload"] == "after"]
    call = upstream_call(fake_upstream)
    assert not [e for e in call["events"] if "c" * 3000 in e], "oversized client event reached the upstream"


def test_sigterm_drains_then_exits_zero(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["limits"] = {"drain_timeout_seconds": 2}
    gw = gateway_factory(config)
    offer = aiortc_offer()

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO])
        await call.connect()
        assert call.connected
        assert await call.wait_for(lambda r: r.events_of("test.echoed"), 10)
        gw.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        # new calls are refused while the live one drains
        reply = await asyncio.get_running_loop().run_in_executor(
            None, lambda: post_offer(gw.url, GATEWAY_KEY, offer, model="gpt-realtime"))
        assert reply.status == 503, reply.body
        assert reply.json()["error"]["code"] == "shutting_down"
        still_up = not ended_for_client(call.result)
        ended = await call.wait_for(ended_for_client, 6)
        await call.close("leave")
        return still_up, ended
    still_up, ended = asyncio.run(scenario())
    assert still_up, "the live call was cut before the drain timeout"
    assert ended, "the live call was not hung up at the drain timeout"
    assert gw.proc.wait(10) == 0
    assert fake_upstream.wait_for(
        lambda s: all(c["hangup"] or c["closed"] for c in s["calls"].values()), 3)


def fd_kinds(pid):
    kinds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = re.sub(r"[0-9]+", "N", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        kinds[target] = kinds.get(target, 0) + 1
    return kinds


def proc_counts(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    with open(f"/proc/{pid}/status") as f:
        rss_kb = int(next(l for l in f if l.startswith("VmRSS:")).split()[1])
    return fds, threads, rss_kb


def test_no_fd_or_thread_growth_across_many_calls(gateway, fake_upstream):
    pid = gateway.proc.pid
    for _ in range(2):  # warm-up: first-use allocations (DTLS cert, plugin loading)
        assert run_call_sync(gateway.url, GATEWAY_KEY, model="gpt-realtime",
                             duration=0.5).status == 201
    time.sleep(1.5)
    before = proc_counts(pid)
    for _ in range(12):
        r = run_call_sync(gateway.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO],
                          duration=0.5)
        assert r.status == 201, r.error_body
    assert wait_until(lambda: http_request("GET", gateway.url + "/healthz").status == 200, 5)
    # Teardown of the last calls (off the main loop; slower on a loaded machine): bounded wait for
    # the counts to settle, so a leak still fails and a slow stop does not.
    wait_until(lambda: proc_counts(pid)[0] <= before[0] + 2 and
               proc_counts(pid)[1] <= before[1] + 2, 10)
    after = proc_counts(pid)
    print(f"fds {before[0]}->{after[0]} threads {before[1]}->{after[1]} "
          f"rss {before[2]}->{after[2]} KiB")
    assert after[0] <= before[0] + 2, (before, after, fd_kinds(pid))
    assert after[1] <= before[1] + 2, (before, after)
    if os.environ.get("RTGW_SANITIZE", "none") == "none":
        assert after[2] <= before[2] + 40 * 1024, (before, after)


def test_ice_connect_timeout_ends_a_call_that_never_connects(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = {"ice_connect_timeout_seconds": 2}
    gw = gateway_factory(config)
    # a client that posts its offer and then never sets the answer (never connects)
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime")
    assert reply.status == 201, reply.body
    call_id = header(reply.headers, "Location").rsplit("/", 1)[-1]
    assert get_call(gw, call_id).json()["state"] == "active"
    assert wait_until(lambda: get_call(gw, call_id).json()["state"] == "ended", 6)
    state = get_call(gw, call_id).json()
    assert "ICE connect timeout" in state["end_reason"], state
    assert fake_upstream.wait_for(
        lambda s: all(c["hangup"] for c in s["calls"].values()) and s["calls"], 3)


def test_client_that_vanishes_silently_is_noticed(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = {"client_media_timeout_seconds": 2}
    gw = gateway_factory(config)
    # "leave": the client's sockets close without DTLS close_notify or SCTP abort
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", send_events=[ECHO],
                           duration=1.5, close="leave")
    assert result.status == 201
    assert wait_until(lambda: get_call(gw, result.call_id).json()["state"] == "ended", 6)
    state = get_call(gw, result.call_id).json()
    assert "no audio from the client" in state["end_reason"], state
    assert fake_upstream.wait_for(
        lambda s: all(c["hangup"] for c in s["calls"].values()) and s["calls"], 3)
