"""Media trust (SPEC "Media trust", issue 22): a peer whose DTLS certificate is not the one its
SDP's a=fingerprint names relays nothing and ends the call, on either leg. webrtcbin 1.22 never
makes that comparison itself; these peers are independent (aiortc on both sides), one of them
lying by one hex digit."""
from __future__ import annotations

import asyncio
import json
import os
import time

from cleanstate import (ended_for_client, metric, metrics, wait_for)
from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import http_request, lie_about_fingerprint, post_offer
from test_calls import aiortc_offer

MODEL = "gpt-realtime"
CREATE = {"type": "response.create"}


def gateway_with_log(fake_upstream, gateway_factory, tmp_path):
    config = default_gateway_config(fake_upstream)
    log = str(tmp_path / "usage.jsonl")
    config["usage"] = {"log": log}
    gw = gateway_factory(config)
    fake_upstream.reset()
    return gw, log


def get_call(gw, call_id):
    return http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                        headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()


def usage_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def worker_calls(fake_upstream):
    return list(fake_upstream.calls().values())


def gateway_ended(gw, call_id):
    return get_call(gw, call_id).get("state") == "ended"


def run_call(gw, mangle_offer=None, hold=6.0):
    """One aiortc call that sends response.create as soon as its channel opens, and audio all
    along; kept up until the gateway says the call ended (at most `hold` s), then one more
    second to collect anything still in flight. Returns (result, ended).

    The client is not necessarily told: the gateway ends a liar's call as soon as its DTLS
    handshake is done, often before its SCTP association (and so any data channel close) is up;
    the gateway's own state is what says the call is over."""
    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL, send_events=[CREATE],
                          mangle_offer=mangle_offer)
        await call.connect()
        ended = False
        if call.connected:
            ended = await call.wait_for(
                lambda r: ended_for_client(r) or gateway_ended(gw, r.call_id), hold)
            await call.wait_for(lambda r: False, 1.0)
        await call.close("leave" if ended else "close")
        return call.result, ended
    return asyncio.run(scenario())


def assert_mismatch_recorded(gw, log, call_id, leg):
    state = wait_for(lambda: (s := get_call(gw, call_id)).get("state") == "ended" and s, 10)
    assert state, get_call(gw, call_id)
    assert state["outcome"] == "dtls_fingerprint_mismatch", state
    assert "dtls_fingerprint_mismatch" in state["end_reason"] and leg in state["end_reason"], state
    assert state["dtls"]["failed_leg"] == leg, state
    assert state["dtls"][leg] == "failed", state
    assert wait_for(lambda: metric(metrics(gw), "rtgw_dtls_failures_total",
                                   f'{{leg="{leg}",reason="dtls_fingerprint_mismatch"}}') == 1, 10), \
        metrics(gw)
    records = wait_for(lambda: [r for r in usage_records(log) if r["call_id"] == call_id], 10)
    assert records, usage_records(log)
    (record,) = records
    assert record["kind"] == "call" and record["status"] == "dtls_fingerprint_mismatch", record
    assert record["leg"] == leg and record["total_tokens"] == 0, record
    assert f"dtls_fingerprint_mismatch on the {leg} leg" in gw.stderr()
    return state


def test_client_lying_about_its_fingerprint_relays_nothing(fake_upstream, gateway_factory,
                                                           tmp_path):
    gw, log = gateway_with_log(fake_upstream, gateway_factory, tmp_path)
    result, ended = run_call(gw, mangle_offer=lie_about_fingerprint)
    assert result.status == 201, result.error_body  # the offer itself is well formed
    assert ended, "the gateway did not end the call of a client with a forged fingerprint"
    state = assert_mismatch_recorded(gw, log, result.call_id, "client")
    # Nothing of the liar reached the worker, nothing of the worker reached the liar.
    (worker_call,) = worker_calls(fake_upstream)
    assert not any('"response.create"' in e for e in worker_call["events"]), worker_call["events"]
    assert worker_call["audio_frames_received"] == 0, worker_call
    assert result.events == [], result.events
    assert result.audio_frames_received == 0
    assert state["media"]["packets_from_client"] >= 0
    # The worker's call was hung up.
    assert wait_for(lambda: worker_calls(fake_upstream)[0]["hangup"], 10), worker_calls(
        fake_upstream)
    assert state["events"]["from_client"] == 0 and state["events"]["from_upstream"] == 0, state


def test_worker_lying_about_its_fingerprint_gets_nothing(fake_upstream, gateway_factory,
                                                         tmp_path):
    gw, log = gateway_with_log(fake_upstream, gateway_factory, tmp_path)
    fake_upstream._json("POST", "/_test/config", {"lie_fingerprint": True})
    result, ended = run_call(gw)
    # The worker's DTLS may complete before or after the client's answer is ready: a set-up
    # failure (502) or an answered call that ends.
    assert result.status in (201, 502), (result.status, result.error_body)
    if result.status == 201:
        assert ended, "the gateway did not end a call whose worker forged its fingerprint"
        assert_mismatch_recorded(gw, log, result.call_id, "upstream")
    else:
        assert "fingerprint" in (result.error_body or ""), result.error_body
        assert wait_for(lambda: metric(metrics(gw), "rtgw_dtls_failures_total",
                                       '{leg="upstream",reason="dtls_fingerprint_mismatch"}') == 1,
                        10), metrics(gw)
    (worker_call,) = worker_calls(fake_upstream)
    time.sleep(0.5)  # anything in flight would land now
    worker_call = worker_calls(fake_upstream)[0]
    assert not any('"response.create"' in e for e in worker_call["events"]), worker_call["events"]
    assert worker_call["audio_frames_received"] == 0, worker_call
    # The worker sent session.created on open: the client never saw it.
    assert result.events == [], result.events
    assert wait_for(lambda: worker_calls(fake_upstream)[0]["hangup"], 10), worker_calls(
        fake_upstream)


def test_honest_call_is_verified_on_both_legs(fake_upstream, gateway_factory, tmp_path):
    gw, _ = gateway_with_log(fake_upstream, gateway_factory, tmp_path)
    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL, send_events=[CREATE])
        await call.connect()
        done = await call.wait_for(
            lambda r: any(e.get("type") == "response.done" for e in r.events)
            and r.audio_frames_received > 0, 10)
        state = get_call(gw, call.result.call_id)
        await call.close("hangup")
        return call.result, done, state
    result, done, state = asyncio.run(scenario())
    assert done, (result.events, result.audio_frames_received)
    assert state["dtls"]["client"] == "verified" and state["dtls"]["upstream"] == "verified", state
    assert "failed_leg" not in state["dtls"], state
    assert "rtgw_dtls_failures_total{" not in metrics(gw)


def test_offer_without_usable_fingerprint_is_refused(fake_upstream, gateway_factory, tmp_path):
    """Nothing to compare the certificate with: refused before any worker is asked."""
    gw, _ = gateway_with_log(fake_upstream, gateway_factory, tmp_path)
    offer = aiortc_offer().replace("a=fingerprint:sha-256 ", "a=fingerprint:md5 ")
    reply = post_offer(gw.url, GATEWAY_KEY, offer, model=MODEL)
    assert reply.status == 400, reply
    body = reply.json()
    assert body["error"]["code"] == "invalid_sdp", body
    assert "usable DTLS fingerprint" in body["error"]["message"], body
    assert fake_upstream.calls() == {}, "a refused offer reached the worker"
