"""/metrics after a real call: calls by outcome, set-up and upstream latency, events by direction,
RTP per leg (packets, bytes, loss), live calls and worker gauges."""
from __future__ import annotations

import asyncio
import re
import time

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
    time.sleep(1.0)  # the call's end is accounted on the main loop
    text = http_request("GET", gateway.url + "/metrics").body
    assert metric(text, "rtgw_calls_total", '{model="gpt-realtime",outcome="completed"}') == 1
    assert metric(text, "rtgw_call_setup_seconds_count", '{model="gpt-realtime"}') == 1
    assert metric(text, "rtgw_upstream_request_seconds_count", '{worker="gpt-realtime/0"}') == 1
    assert metric(text, "rtgw_events_total", '{direction="client_to_upstream"}') >= 1
    assert metric(text, "rtgw_events_total", '{direction="upstream_to_client"}') >= 2
    for leg in ("client", "upstream"):
        assert metric(text, "rtgw_rtp_packets_total", f'{{leg="{leg}"}}') > 50
        assert metric(text, "rtgw_rtp_bytes_total", f'{{leg="{leg}"}}') > 1000
        assert metric(text, "rtgw_rtp_packets_lost_total", f'{{leg="{leg}"}}') is not None
    assert metric(text, "rtgw_live_calls", '{model="gpt-realtime"}') == 0
    assert metric(text, "rtgw_worker_healthy", '{worker="gpt-realtime/0"}') == 1
