"""Audio relay: the gateway forwards each RTP packet with the payload type (and SSRC) each leg
negotiated, in order, both ways.

Chromium offers Opus as payload type 111 and aiortc as 96; the gateway offers the upstream the
client's type and rewrites the header of every packet it forwards (pipelines/call.pipeline:
rtpptrewrite), keeping the sender's sequence numbers. Each client is tested with a worker that
takes the offered type and with one that answers with a type of its own (the fake upstream's
"opus_pt"), so the payload type really differs between the legs. Seen from both ends:
  * the client receives only its own Opus payload type, from the one SSRC the gateway's answer
    declares, in sequence order (Chromium: encoded insertable streams give each packet's
    metadata; aiortc: the receiver's packets before aiortc drops unknown payload types);
  * the upstream (aiortc fake worker) receives only the payload type of its own answer, from
    the SSRC of the gateway's offer, in order;
  * nothing is lost on the way (loopback: at most 2 % missing sequence numbers, for a busy CI).
The relay forwards each packet as it arrives (rtpforward in rtpbin's jitterbuffer slot, no
rtpjitterbuffer, no jitterbuffer threads) unless webrtc.jitterbuffer is true: checked on the
live pipeline graph and the gateway's threads.
"""
from __future__ import annotations

import asyncio
import os
import re

import pytest

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.browser_client import BrowserCall
from peers.common import http_request, opus_payload_type

SECONDS = 4.0
MIN_PACKETS = 100  # 20 ms packets: 200 in 4 s; generous under CPU contention


def declared_ssrcs(sdp: str):
    return {int(m) for m in re.findall(r"^a=ssrc:(\d+) ", sdp, re.M)}


def check_received(rtp, expected_pt: int, sender_sdp: str, who: str) -> None:
    assert rtp, f"{who}: no RTP record"
    assert rtp["packets"] >= MIN_PACKETS, (who, rtp)
    # every packet carried the negotiated Opus payload type, and nothing else
    assert rtp["payload_types"] == {str(expected_pt): rtp["packets"]}, (who, expected_pt, rtp)
    assert rtp["out_of_order"] == 0, (who, rtp)
    assert rtp["gaps"] <= max(2, rtp["packets"] // 50), (who, rtp)  # loss
    assert len(rtp["ssrcs"]) == 1, (who, rtp)
    declared = declared_ssrcs(sender_sdp)
    assert declared and rtp["ssrcs"][0] in declared, (who, rtp["ssrcs"], declared)


def check_upstream_leg(fake_upstream):
    calls = fake_upstream.wait_for(lambda s: s["calls"] or None, 10)
    assert calls and len(calls) == 1, calls
    call = next(iter(calls.values()))
    (request,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    upstream_pt = opus_payload_type(call["answer_sdp"])
    assert upstream_pt is not None
    check_received(call["rtp_received"], upstream_pt, request["sdp"], "upstream")
    return upstream_pt


# the worker's own Opus payload type: None = the one offered (the client's)
WORKER_PT = pytest.mark.parametrize("worker_pt", [None, 100], ids=["same_pt", "worker_pt_100"])


def use_worker_pt(fake_upstream, worker_pt) -> None:
    fake_upstream._json("POST", "/_test/config", {"opus_pt": worker_pt})


@WORKER_PT
def test_aiortc_audio_keeps_payload_types_and_order(gateway, fake_upstream, worker_pt):
    use_worker_pt(fake_upstream, worker_pt)
    result = run_call_sync(gateway.url, GATEWAY_KEY, model="gpt-realtime", duration=SECONDS)
    assert result.status == 201, (result.status, result.error_body, result.error)
    client_pt = opus_payload_type(result.offer_sdp)
    assert client_pt == 96, "aiortc 1.4 offers Opus as 96 (this test relies on it)"
    assert opus_payload_type(result.answer_sdp) == client_pt
    check_received(result.rtp_received, client_pt, result.answer_sdp, "aiortc client")
    assert check_upstream_leg(fake_upstream) == (worker_pt or client_pt)


@WORKER_PT
def test_chromium_audio_keeps_payload_types_and_order(gateway, fake_upstream, worker_pt):
    use_worker_pt(fake_upstream, worker_pt)
    with BrowserCall(gateway.url, GATEWAY_KEY, model="gpt-realtime", record_rtp=True) as call:
        call.connect()
        assert call.connected, (call.result.status, call.result.error_body, call.result.error)
        call.wait_for(lambda r: (r.rtp_received or {}).get("packets", 0) >= 2 * MIN_PACKETS,
                      SECONDS + 6)
        result = call.close("close")
    client_pt = opus_payload_type(result.offer_sdp)
    assert client_pt == 111, "Chromium offers Opus as 111 (this test relies on it)"
    assert opus_payload_type(result.answer_sdp) == client_pt
    rtp = result.rtp_received
    if not (rtp or {}).get("sequence_numbers", False):
        pytest.fail(f"this Chromium gives no sequence numbers in encoded frame metadata: {rtp}")
    check_received(rtp, client_pt, result.answer_sdp, "chromium client")
    # getStats agrees on the payload type the packets were decoded as
    assert set(rtp["stats_payload_types"]) == {str(client_pt)}, rtp
    assert check_upstream_leg(fake_upstream) == (worker_pt or client_pt)


ADMIN = "sk-admin-relay"


def thread_names(pid: int):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return names


@pytest.mark.parametrize("jitterbuffer", [None, False, True],
                         ids=["default", "jitterbuffer_false", "jitterbuffer_true"])
def test_relay_forwards_without_jitterbuffer_unless_configured(fake_upstream, gateway_factory,
                                                               jitterbuffer):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"].append({"name": "ops", "key": ADMIN, "models": ["*"], "admin": True})
    if jitterbuffer is not None:
        config["webrtc"] = {"jitterbuffer": jitterbuffer}
    gw = gateway_factory(config)

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime")
        await call.connect()
        assert call.connected, (call.result.status, call.result.error_body, call.result.error)
        # audio relayed both ways: the client hears the worker, the worker heard the client
        assert await call.wait_for(lambda r: r.rtp_received["packets"] >= MIN_PACKETS, 15), \
            call.result.rtp_received
        await asyncio.to_thread(fake_upstream.wait_for, lambda s: any(
            c["rtp_received"]["packets"] >= MIN_PACKETS for c in s["calls"].values()) or None, 15)
        dot = http_request("GET", f"{gw.url}/debug/calls/{call.result.call_id}/pipeline.dot",
                           headers={"Authorization": f"Bearer {ADMIN}"})
        threads = thread_names(gw.proc.pid)
        state = http_request("GET", f"{gw.url}/v1/realtime/calls/{call.result.call_id}",
                             headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()
        await call.close()
        return dot, threads, state, call.result

    dot, threads, state, result = asyncio.run(scenario())
    assert dot.status == 200 and dot.body.startswith("digraph"), dot.status
    jitterbuffer_threads = [t for t in threads if t.startswith("rtpjitterbuf")]
    if jitterbuffer:
        assert "GstRtpJitterBuffer" in dot.body and "RtRtpForward" not in dot.body
        assert jitterbuffer_threads, threads
    else:
        # one rtpforward per received SSRC in each leg's rtpbin, no rtpjitterbuffer anywhere
        assert dot.body.count("RtRtpForward") >= 2 and "GstRtpJitterBuffer" not in dot.body
        assert not jitterbuffer_threads and "timer" not in threads, threads
    check_received(result.rtp_received, 96, result.answer_sdp, "aiortc client")
    check_upstream_leg(fake_upstream)
    media = state["media"]
    assert media["packets_from_client"] >= MIN_PACKETS, media
    assert media["packets_from_upstream"] >= MIN_PACKETS, media
    # rtpbin's session statistics (webrtc_leg) still count per leg, read before the jitterbuffer
    assert abs(media["client_leg_packets_lost"]) <= 2, media
    assert abs(media["upstream_leg_packets_lost"]) <= 2, media
    assert "CRITICAL" not in gw.stderr() and "WARNING **" not in gw.stderr()
