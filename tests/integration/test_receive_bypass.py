"""The receive-queue bypass (issue 28, webrtc/receive_bypass.h, docs/architecture.md "The
receive-queue bypass"): once a leg's ICE is connected, what the shared ICE thread reads goes
straight into webrtcbin's DTLS/SRTP decoder, and transportreceivebin's `queue` thread is given
back to GStreamer's pool.

Calls still work end to end through it (aiortc and Chromium: audio both ways, in order; events
both ways), and the gateway's threads per live call, read from /proc, drop by the queue threads:
with `webrtc.receive_queue_bypass: false` (the stock queue) every DTLS transport keeps a
`queue<n>:src` thread, with the bypass at most GLib's two idle pooled threads carry that name."""
from __future__ import annotations

import asyncio
import time

from cleanstate import wait_for, warm_up, with_admin
from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.browser_client import BrowserCall
from peers.common import opus_payload_type
from test_audio_relay import MIN_PACKETS, SECONDS, check_received, check_upstream_leg
from test_consent import thread_census

CALLS = 3
# Threads per live call the gateway adds with the bypass: measured 11.67 at N = 3 on the 2-core VM
# (13.67 with the stock queue: aiortc's unbundled client leg has two receive queues), with some
# slack for pooled task threads that outlive a call.
MAX_THREADS_PER_CALL = 12.5


def echo(payload):
    return [{"type": "test.echo", "payload": payload}]


def test_aiortc_call_relays_audio_and_events_through_the_bypass(gateway, fake_upstream):
    result = run_call_sync(gateway.url, GATEWAY_KEY, model="gpt-realtime", duration=SECONDS,
                           send_events=echo("aiortc"))
    assert result.status == 201, (result.status, result.error_body, result.error)
    assert result.events_of("test.echoed"), result.events
    client_pt = opus_payload_type(result.offer_sdp)
    check_received(result.rtp_received, client_pt, result.answer_sdp, "aiortc client")
    assert check_upstream_leg(fake_upstream) == client_pt
    (call,) = fake_upstream.calls().values()
    assert any("test.echo" in str(e) for e in call["events"]), call["events"]


def test_chromium_call_relays_audio_and_events_through_the_bypass(gateway, fake_upstream):
    with BrowserCall(gateway.url, GATEWAY_KEY, model="gpt-realtime", record_rtp=True,
                     send_events=echo("chromium")) as call:
        call.connect()
        assert call.connected, (call.result.status, call.result.error_body, call.result.error)
        call.wait_for(lambda r: (r.rtp_received or {}).get("packets", 0) >= 2 * MIN_PACKETS
                      and r.events_of("test.echoed"), SECONDS + 6)
        result = call.close("close")
    assert result.events_of("test.echoed"), result.events
    client_pt = opus_payload_type(result.offer_sdp)
    rtp = result.rtp_received
    if (rtp or {}).get("sequence_numbers", False):
        check_received(rtp, client_pt, result.answer_sdp, "chromium client")
    else:
        assert (rtp or {}).get("packets", 0) >= MIN_PACKETS, rtp
    assert check_upstream_leg(fake_upstream) == client_pt


def census_with_live_calls(gw, fake_upstream, calls):
    """(threads added per live call, named threads during) with `calls` aiortc calls up, each
    with audio both ways and an event echoed both ways."""
    warm_up(gw, GATEWAY_KEY)
    wait_for(lambda: not any(k.endswith(":pc") for k in thread_census(gw.proc.pid)), 10)
    fake_upstream.reset()
    before = thread_census(gw.proc.pid)

    async def scenario():
        live = [AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime", send_events=echo(f"c{i}"))
                for i in range(calls)]
        for call in live:
            await call.connect()
            assert call.connected, call.result.error_body
        for call in live:
            assert await call.wait_for(
                lambda r: r.events_of("test.echoed")
                and (r.rtp_received or {}).get("packets", 0) >= 50, 15), call.result
        # audio reached every upstream call too (the client legs' receive path). Polled without
        # blocking: the callers' aiortc runs on this event loop and must keep answering ICE.
        def upstream_got_audio(s):
            return len(s["calls"]) == calls and all(
                (c["rtp_received"] or {}).get("packets", 0) >= 50 for c in s["calls"].values())
        deadline = time.monotonic() + 15
        while not upstream_got_audio(fake_upstream.state()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert upstream_got_audio(fake_upstream.state()), fake_upstream.calls()
        await asyncio.sleep(1.0)  # idle pooled threads have gone back to the pool
        during = thread_census(gw.proc.pid)
        for call in live:
            await call.close("leave")
        return during

    during = asyncio.run(scenario())
    added = sum(during.values()) - sum(before.values())
    return added / calls, during


def queue_threads(census):
    return sum(n for name, n in census.items() if name.startswith("queue") and name.endswith(":src"))


def test_bypass_gives_the_receive_queue_threads_back(fake_upstream, gateway_factory):
    stock = gateway_factory(with_admin(default_gateway_config(fake_upstream)),
                            env={"RTGW_WEBRTC_RECEIVE_QUEUE_BYPASS": "false"})
    stock_per_call, stock_all = census_with_live_calls(stock, fake_upstream, CALLS)
    stock.stop()
    bypass = gateway_factory(with_admin(default_gateway_config(fake_upstream)))
    bypass_per_call, bypass_all = census_with_live_calls(bypass, fake_upstream, CALLS)
    print(f"threads per call: stock queue {stock_per_call:.2f} ({queue_threads(stock_all)} "
          f"queue threads), bypass {bypass_per_call:.2f} ({queue_threads(bypass_all)}); "
          f"stock {dict(stock_all)}; bypass {dict(bypass_all)}")
    # Every leg (2 per call) keeps its receive queue's thread on the stock path.
    assert queue_threads(stock_all) >= 2 * CALLS, stock_all
    # With the bypass the queues' tasks are stopped: only GLib's idle pool threads (at most 2
    # unused ones are kept) may still carry the name.
    assert queue_threads(bypass_all) <= 2, bypass_all
    assert bypass_per_call <= stock_per_call - 1, (stock_per_call, bypass_per_call)
    assert bypass_per_call <= MAX_THREADS_PER_CALL, (bypass_per_call, bypass_all)
