"""/metrics after a real call: calls by outcome, set-up and upstream latency, events by direction,
RTP per leg (packets, bytes, loss), live calls and worker gauges."""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from conftest import GATEWAY_KEY
from peers.aiortc_client import AiortcCall
from peers.common import http_request, post_offer


def metric(text, name, labels=""):
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_metrics_after_a_call(gateway, fake_upstream):
    async def scenario():
        call = AiortcCall(gateway.url, GATEWAY_KEY, model="gpt-realtime",
                          send_events=[{"type": "test.echo", "payload": "m"}])
        await call.connect()
        assert call.connected
        await call.wait_for(lambda r: r.events_of("test.echoed"), 5)
        await asyncio.sleep(2.5)  # past one stats poll
        live = http_request("GET", gateway.url + "/metrics").body
        state = http_request("GET", f"{gateway.url}/v1/realtime/calls/{call.result.call_id}",
                             headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()
        await call.close()
        return live, state
    live, state = asyncio.run(scenario())
    assert metric(live, "rtgw_live_calls", '{model="gpt-realtime"}') == 1
    assert metric(live, "rtgw_worker_live_calls", '{worker="gpt-realtime/0"}') == 1
    assert "client_leg_packets_lost" in state["media"] and "upstream_leg_packets_lost" in state["media"]
    assert post_offer(gateway.url, "sk-bad-key", "x", model="gpt-realtime").status == 401
    # The call's end is accounted on the main loop, in the same step that keeps its final state
    # (GET /v1/realtime/calls/{id} of an ended call): the counters must equal that state.
    deadline = time.monotonic() + 10
    while True:
        text = http_request("GET", gateway.url + "/metrics").body
        if metric(text, "rtgw_calls_total", '{model="gpt-realtime",outcome="completed"}') is not None:
            break
        assert time.monotonic() < deadline, "the call's end was not accounted"
        time.sleep(0.1)
    final = http_request("GET", f"{gateway.url}/v1/realtime/calls/{state['id']}",
                         headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()
    assert final["state"] == "ended"
    assert metric(text, "rtgw_calls_total", '{model="gpt-realtime",outcome="completed"}') == 1
    assert metric(text, "rtgw_call_setup_seconds_count", '{model="gpt-realtime"}') == 1
    assert metric(text, "rtgw_upstream_request_seconds_count", '{worker="gpt-realtime/0"}') == 1
    assert metric(text, "rtgw_call_setup_seconds_sum", '{model="gpt-realtime"}') == \
        pytest.approx(final["timings"]["setup_ms"] / 1000.0, abs=1e-6)
    assert metric(text, "rtgw_events_total", '{direction="client_to_upstream"}') == \
        final["events"]["from_client"] >= 1
    assert metric(text, "rtgw_events_total", '{direction="upstream_to_client"}') == \
        final["events"]["from_upstream"] >= 2
    media = final["media"]
    for leg, other in (("client", "upstream"), ("upstream", "client")):
        packets = metric(text, "rtgw_rtp_packets_total", f'{{leg="{leg}"}}')
        sent = media[f"packets_from_{leg}"]
        # The audio probes count on streaming threads until the reaper has stopped the pipeline:
        # a packet may land between the final state and the metric (same main-loop step).
        assert sent > 50 and sent <= packets <= sent + 2, (leg, packets, sent)
        octets = metric(text, "rtgw_rtp_bytes_total", f'{{leg="{leg}"}}')
        assert media[f"bytes_from_{leg}"] <= octets <= media[f"bytes_from_{leg}"] + 2 * 1500
        assert octets > 1000
        # Loss comes from webrtcbin's statistics, read on the main loop: exactly the final state's
        # (negative, RTCP's duplicates, counts as 0), and per leg, not the other leg's.
        lost = max(0, media[f"{leg}_leg_packets_lost"])
        assert metric(text, "rtgw_rtp_packets_lost_total", f'{{leg="{leg}"}}') == lost, \
            (leg, media)
    assert metric(text, "rtgw_live_calls", '{model="gpt-realtime"}') == 0
    assert metric(text, "rtgw_worker_healthy", '{worker="gpt-realtime/0"}') == 1
