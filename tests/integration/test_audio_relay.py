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
    the SSRC of the gateway's offer, in order.
"""
from __future__ import annotations

import re

import pytest

from conftest import GATEWAY_KEY
from peers.aiortc_client import run_call_sync
from peers.browser_client import BrowserCall
from peers.common import opus_payload_type

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
