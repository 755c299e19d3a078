"""Call and session set-up under hostile or unlucky conditions (issue 11, findings 4, 5, 7, 8 and
the webrtcbin-refused offer).

- The initial session (multipart ``session`` or a token's) passes the policy like a
  ``session.update``, and a refused one never reaches a worker.
- A client that drops its POST during set-up leaves nothing live, here or upstream.
- An upstream 401/403 is the gateway's own misconfiguration: 502 without the upstream's body.
- A key over its budget gets 429 ``insufficient_quota`` (type and code, as OpenAI's) for new
  calls, sessions and tokens, on the GA and the legacy beta routes; the log says
  ``budget_exceeded``.
- An offer webrtcbin refuses is the client's 400 ``invalid_sdp``.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
import urllib.parse

import pytest

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import run_call_sync
from peers.common import build_multipart, http_request, post_offer, wait_until
from peers.ws_client import WsClient
from test_calls import aiortc_offer
from test_tokens import mint

MODEL = "gpt-realtime"
ADMIN = "sk-admin-setup"
BLOCK_PRIORITY = {"service_tier": [{"tier": "priority", "action": "block", "models": ["*"],
                                    "keys": ["*"]}]}
FILTER_PRIORITY = {"service_tier": [{"tier": "priority", "action": "filter", "models": ["*"],
                                     "keys": ["*"]}]}


def setup_gateway(fake_upstream, gateway_factory, policy=None, keys=None, worker=None,
                  usage_log=None):
    config = default_gateway_config(fake_upstream)
    config["auth"]["token_secret"] = "setup-hardening-secret"
    config["auth"]["keys"] = (keys or config["auth"]["keys"]) + [
        {"name": "ops", "key": ADMIN, "models": ["*"], "admin": True}]
    if policy is not None:
        config["policy"] = policy
    if worker:
        config["models"][0]["workers"][0].update(worker)
    if usage_log:
        config["usage"] = {"log": usage_log}
    return gateway_factory(config)


def call_requests(fake_upstream):
    return [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]


def metrics(gw):
    return http_request("GET", gw.url + "/metrics").body


def assert_error(reply, status, code):
    assert reply.status == status, (reply.status, reply.body)
    assert reply.json()["error"]["code"] == code, reply.body


async def ws_handshake(gw, key, model=MODEL):
    """The status of a WebSocket handshake (101 when upgraded) and the refusal's JSON body."""
    client = WsClient(gw.url, key=key, model=model)
    try:
        await client.connect()
        if client.connected:
            return 101, None
        return client.result.handshake_status, client.result.handshake_body
    finally:
        await client.close()


# --------------------------------------------------------------------------- initial session policy

def test_multipart_session_is_filtered_before_the_worker(fake_upstream, gateway_factory):
    gw = setup_gateway(fake_upstream, gateway_factory, FILTER_PRIORITY)
    session = {"type": "realtime", "model": MODEL, "service_tier": " Fast ",
               "instructions": "keep me"}
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), session=session)
    assert reply.status == 201, reply.body
    (req,) = call_requests(fake_upstream)
    assert "service_tier" not in req["session"], req["session"]
    assert req["session"]["instructions"] == "keep me"
    assert req["session"]["model"] == MODEL


def test_multipart_session_of_several_json_values_is_refused(fake_upstream, gateway_factory):
    # json-glib reads the first of several top-level values, and the policy once saw the raw text
    # as a malformed event and let the tier through. Several values are not JSON: 400
    # invalid_json before any worker is contacted (issue 21: strict JSON only).
    gw = setup_gateway(fake_upstream, gateway_factory, FILTER_PRIORITY)
    session = json.dumps({"type": "realtime", "model": MODEL, "service_tier": "priority",
                          "instructions": "keep me"}) + "{}"
    body, ctype = build_multipart({"sdp": aiortc_offer(), "session": session})
    reply = http_request("POST", gw.url + "/v1/realtime/calls", body,
                         {"Content-Type": ctype, "Authorization": f"Bearer {GATEWAY_KEY}"}, 15.0)
    assert_error(reply, 400, "invalid_json")
    assert call_requests(fake_upstream) == []


def test_multipart_session_blocked_is_403_and_no_worker_is_contacted(fake_upstream,
                                                                     gateway_factory):
    gw = setup_gateway(fake_upstream, gateway_factory, BLOCK_PRIORITY)
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(),
                       session={"type": "realtime", "model": MODEL, "service_tier": "priority"})
    assert_error(reply, 403, "policy_violation")
    assert "service_tier" in reply.json()["error"]["message"]
    assert call_requests(fake_upstream) == []
    # the same key and model without the tier are fine
    ok = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(),
                    session={"type": "realtime", "model": MODEL})
    assert ok.status == 201, ok.body


def test_denied_session_update_refuses_a_call_with_an_initial_session(fake_upstream,
                                                                      gateway_factory):
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]},
            {"name": "team-b", "key": "sk-test-b", "models": ["*"]}]
    policy = {"deny_client_events": [{"type": "session.update", "keys": ["team-b"]}]}
    gw = setup_gateway(fake_upstream, gateway_factory, policy, keys=keys)
    session = {"type": "realtime", "model": MODEL, "tools": []}
    assert_error(post_offer(gw.url, "sk-test-b", aiortc_offer(), session=session), 403,
                 "policy_violation")
    assert call_requests(fake_upstream) == []
    # no initial session: nothing to deny; another key: allowed
    assert post_offer(gw.url, "sk-test-b", aiortc_offer(), model=MODEL).status == 201
    assert post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), session=session).status == 201


def test_token_session_is_filtered_and_blocked_like_a_session_update(fake_upstream,
                                                                     gateway_factory):
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]},
            {"name": "team-b", "key": "sk-test-b", "models": ["*"]}]
    policy = {"service_tier": [
        {"tier": "priority", "action": "block", "models": ["*"], "keys": ["team-b"]},
        {"tier": "priority", "action": "filter", "models": ["*"], "keys": ["*"]}]}
    gw = setup_gateway(fake_upstream, gateway_factory, policy, keys=keys)
    session = {"type": "realtime", "model": MODEL, "service_tier": "priority",
               "instructions": "from the token"}
    filtered_token = mint(gw, session=session).json()["value"]
    blocked_token = mint(gw, key="sk-test-b", session=session).json()["value"]

    assert_error(post_offer(gw.url, blocked_token, aiortc_offer()), 403, "policy_violation")
    status, body = asyncio.run(ws_handshake(gw, blocked_token))
    assert status == 403 and body["error"]["code"] == "policy_violation", (status, body)
    assert fake_upstream.requests() == [], "a refused token session reached the worker"

    reply = post_offer(gw.url, filtered_token, aiortc_offer())
    assert reply.status == 201, reply.body
    (req,) = call_requests(fake_upstream)
    assert "service_tier" not in req["session"], req["session"]
    assert req["session"]["instructions"] == "from the token"


# --------------------------------------------------------------------------- abandoned set-up

def raw_post(gw, body: bytes, content_type: str, key=GATEWAY_KEY, model=MODEL) -> socket.socket:
    """Sends a POST /v1/realtime/calls on a raw socket and returns the socket (unread)."""
    path = "/v1/realtime/calls?" + urllib.parse.urlencode({"model": model})
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    sock.sendall(head + body)
    return sock


def debug_calls(gw):
    reply = http_request("GET", gw.url + "/debug/calls",
                         headers={"Authorization": f"Bearer {ADMIN}"})
    assert reply.status == 200, reply.body
    return [c for c in reply.json()["data"] if c.get("object") == "realtime.call"]


def test_client_leaving_during_setup_cancels_the_upstream_exchange(fake_upstream,
                                                                   gateway_factory):
    gw = setup_gateway(fake_upstream, gateway_factory)
    fake_upstream.config(delay_ms=3000)
    sock = raw_post(gw, aiortc_offer().encode(), "application/sdp")
    try:
        assert fake_upstream.wait_for(lambda s: call_requests(fake_upstream), 10), \
            "the worker never got the offer"
        (setting_up,) = debug_calls(gw)
        assert setting_up["state"] == "setting_up"
        call_id = setting_up["id"]
    finally:
        sock.close()
    left = time.monotonic()
    assert wait_until(lambda: not debug_calls(gw), 1.5), debug_calls(gw)
    assert time.monotonic() - left < 1.5
    state = http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                         headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert state["state"] == "ended", state
    # the worker's request was abandoned: it never produced a live call (and never will)
    time.sleep(3.5)
    (req,) = call_requests(fake_upstream)
    assert req["call_id"] is None or any(
        r["path"].endswith(f"/{req['call_id']}/hangup") for r in fake_upstream.requests()), req
    assert all(c["closed"] for c in fake_upstream.calls().values()), fake_upstream.calls()
    assert f'rtgw_calls_total{{model="{MODEL}",outcome="cancelled"}} 1' in metrics(gw)
    # the gateway is fine afterwards
    fake_upstream.config(delay_ms=0)
    assert post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model=MODEL).status == 201


def test_client_pipelining_a_byte_then_leaving_still_cancels_the_setup(fake_upstream,
                                                                        gateway_factory):
    """Issue 21 item 10: the abandoned-set-up watch stopped at the first byte a client pipelined
    after its request (the socket stayed readable with it); the close that followed went unseen
    and the set-up ran on at the worker. It keeps watching for the close."""
    gw = setup_gateway(fake_upstream, gateway_factory)
    fake_upstream.config(delay_ms=3000)
    sock = raw_post(gw, aiortc_offer().encode(), "application/sdp")
    try:
        assert fake_upstream.wait_for(lambda s: call_requests(fake_upstream), 10), \
            "the worker never got the offer"
        (setting_up,) = debug_calls(gw)
        assert setting_up["state"] == "setting_up"
        call_id = setting_up["id"]
        sock.sendall(b"G")  # the start of a pipelined request, after the POST's body
        time.sleep(0.5)     # the watch sees the byte first
        assert [c["id"] for c in debug_calls(gw)] == [call_id], "the byte ended the set-up"
    finally:
        sock.close()
    left = time.monotonic()
    assert wait_until(lambda: not debug_calls(gw), 1.5), debug_calls(gw)
    assert time.monotonic() - left < 1.5
    state = http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                         headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert state["state"] == "ended", state
    # nothing stays live at the worker
    time.sleep(3.5)
    (req,) = call_requests(fake_upstream)
    assert req["call_id"] is None or any(
        r["path"].endswith(f"/{req['call_id']}/hangup") for r in fake_upstream.requests()), req
    assert all(c["closed"] for c in fake_upstream.calls().values()), fake_upstream.calls()
    assert f'rtgw_calls_total{{model="{MODEL}",outcome="cancelled"}} 1' in metrics(gw)


# --------------------------------------------------------------------------- upstream 401/403

@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_failure_is_502_without_its_body(status, fake_upstream, gateway_factory):
    gw = setup_gateway(fake_upstream, gateway_factory,
                       worker={"name": "only", "breaker_failures": 1,
                               "health_interval_seconds": 0})
    leak = "Incorrect API key provided: sk-UPSTR****6789"
    fake_upstream.config(status=status, body={"error": {
        "type": "invalid_request_error", "code": "invalid_api_key", "message": leak}})
    assert 'rtgw_worker_breaker_open{worker="only"} 0' in metrics(gw)
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert_error(reply, 502, "upstream_error")
    assert "sk-UPSTR" not in reply.body and "6789" not in reply.body, reply.body
    assert leak not in gw.stderr()
    assert len(call_requests(fake_upstream)) == 1
    # the worker's failure counted: its breaker (1 failure) is open now
    assert 'rtgw_worker_breaker_open{worker="only"} 1' in metrics(gw)
    assert_error(post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model=MODEL), 503, "no_capacity")


def test_other_upstream_client_errors_still_pass_through(fake_upstream, gateway_factory):
    gw = setup_gateway(fake_upstream, gateway_factory,
                       worker={"name": "only", "breaker_failures": 1})
    body = {"error": {"type": "invalid_request_error", "code": "bad_voice", "message": "nope"}}
    fake_upstream.config(status=400, body=body, times=1)
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model=MODEL)
    assert reply.status == 400 and reply.json() == body
    assert 'rtgw_worker_breaker_open{worker="only"} 0' in metrics(gw)


# --------------------------------------------------------------------------- budgets

def assert_quota_error(status, body):
    """SPEC: 429 with error type and code both ``insufficient_quota``, as OpenAI's own."""
    assert status == 429, (status, body)
    assert body["error"]["type"] == "insufficient_quota", body
    assert body["error"]["code"] == "insufficient_quota", body
    assert body["error"]["message"], body


def over_budget_gateway(fake_upstream, gateway_factory, tmp_path):
    """A gateway whose key team-a is over its 50-token budget after one call's turn (57 tokens),
    and a token minted for it before, while it was within its budget."""
    log = str(tmp_path / "usage.jsonl")
    keys = [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "budget_tokens": 50}]
    gw = setup_gateway(fake_upstream, gateway_factory, keys=keys, usage_log=log)
    early = mint(gw, session={"type": "realtime", "model": MODEL})
    assert early.status == 200, early.body
    first = run_call_sync(gw.url, GATEWAY_KEY, model=MODEL,
                          send_events=[{"type": "response.create"}], duration=8,
                          until=lambda r: r.events_of("response.done"))
    assert first.events_of("response.done"), first.event_types()  # 57 tokens > 50
    assert wait_until(lambda: os.path.exists(log) and open(log).read().strip(), 5)
    return gw, early.json()["value"]


def test_over_budget_key_gets_429_for_new_calls_and_sessions(fake_upstream, gateway_factory,
                                                             tmp_path):
    gw, token = over_budget_gateway(fake_upstream, gateway_factory, tmp_path)
    # New calls and sessions only: the first call's own hang-up may reach the worker meanwhile.
    calls_before = len(call_requests(fake_upstream))
    sessions_before = len(fake_upstream.ws_sessions())
    # a new call (GA and legacy beta route), with the key and with the earlier token
    for reply in (post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model=MODEL),
                  post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model=MODEL,
                             path="/v1/realtime"),
                  post_offer(gw.url, token, aiortc_offer())):
        assert_quota_error(reply.status, reply.json())
    # a new WebSocket session, GA and beta
    assert_quota_error(*asyncio.run(ws_handshake(gw, GATEWAY_KEY)))

    async def beta_handshake():
        client = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL, beta_header=True)
        try:
            await client.connect()
            assert not client.connected, "an over-budget key's beta session was upgraded"
            return client.result.handshake_status, client.result.handshake_body
        finally:
            await client.close()
    assert_quota_error(*asyncio.run(beta_handshake()))
    reached = "an over-budget key reached the worker"
    assert len(call_requests(fake_upstream)) == calls_before, reached
    assert len(fake_upstream.ws_sessions()) == sessions_before, reached
    # the operator's log keeps the reason
    assert "key 'team-a' refused: budget_exceeded" in gw.stderr(), gw.stderr()[-2000:]


def test_over_budget_key_gets_no_new_token(fake_upstream, gateway_factory, tmp_path):
    gw, _ = over_budget_gateway(fake_upstream, gateway_factory, tmp_path)
    refused = mint(gw, session={"type": "realtime", "model": MODEL})
    assert_quota_error(refused.status, refused.json())
    legacy = http_request("POST", gw.url + "/v1/realtime/sessions",
                          json.dumps({"model": MODEL}).encode(),
                          {"Authorization": f"Bearer {GATEWAY_KEY}",
                           "Content-Type": "application/json"})
    assert_quota_error(legacy.status, legacy.json())
    # the model checks come first: an unknown model is still 404
    unknown = mint(gw, session={"type": "realtime", "model": "nope"})
    assert unknown.status == 404, unknown.body
    assert "key 'team-a' refused: budget_exceeded" in gw.stderr(), gw.stderr()[-2000:]


# --------------------------------------------------------------------------- webrtcbin refusals

@pytest.mark.parametrize("name,mangle", [
    ("unknown-setup", lambda sdp: re.sub(r"a=setup:\w+", "a=setup:sideways", sdp)),
    # The first m-line's fingerprint names another certificate (first byte changed, still a
    # usable sha-256): the bundled m-lines disagree, which webrtcbin refuses. (A fingerprint that
    # is not usable at all is refused before webrtcbin: see test_media_trust.py.)
    ("inconsistent-fingerprints", lambda sdp: re.sub(
        r"a=fingerprint:sha-256 ([0-9A-Fa-f]{2}):",
        lambda m: "a=fingerprint:sha-256 " + ("01" if m.group(1) == "00" else "00") + ":",
        sdp, count=1)),
])
def test_offer_refused_by_webrtcbin_is_invalid_sdp(name, mangle, fake_upstream,
                                                   gateway_factory):
    gw = setup_gateway(fake_upstream, gateway_factory,
                       worker={"name": "only", "breaker_failures": 1})
    offer = mangle(aiortc_offer())
    reply = post_offer(gw.url, GATEWAY_KEY, offer, model=MODEL)
    assert_error(reply, 400, "invalid_sdp")
    assert call_requests(fake_upstream) == [], "a refused offer reached the worker"
    assert 'rtgw_worker_breaker_open{worker="only"} 0' in metrics(gw)
    assert f'rtgw_calls_total{{model="{MODEL}",outcome="invalid_sdp"}} 1' in metrics(gw)
    assert post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model=MODEL).status == 201
