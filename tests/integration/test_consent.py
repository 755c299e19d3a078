"""The gateway's ICE agent (issue 22, SPEC "Media trust" and "Peer liveness"): RFC 7675 consent
freshness on both legs ends a call whose peer stops answering, whatever its candidate type (here a
stopped worker on host candidates, and a stopped caller behind TURN), and all calls' libnice
agents share one thread, with no nicesrc thread per webrtcbin (the thread census).

The peers are processes of their own, stopped with SIGSTOP: their sockets stay open and nothing
closes (no DTLS close, no SCTP abort, no ICMP), they just stop answering. peer_timeout_seconds is
left at its default (10 s, libnice's consent timeout): the gateway's packet clock is then off and
consent freshness alone must end the call."""
from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from cleanstate import ended_for_client, metric, metrics, wait_for, warm_up, with_admin
from conftest import GATEWAY_KEY, default_gateway_config, start_fake_upstream
from peers.aiortc_client import AiortcCall
from peers.common import free_port
from test_liveness import get_call, start_client_process

CONSENT_TIMEOUT = 10  # libnice 0.1.21's NICE_AGENT_TIMER_CONSENT_TIMEOUT (webrtc/ice_agent.h)
MARGIN = 4.0  # the main loop's hop and a loaded machine
# Consent is lost 10 s after the last *answer*; checks go out every 4-6 s, so a peer stopped
# right after answering one ends its call 4-6 s earlier than 10 s after the stop.
EARLIEST = CONSENT_TIMEOUT - 6.5


def consent_config(upstream, **webrtc):
    config = with_admin(default_gateway_config(upstream))
    config["webrtc"] = {"peer_timeout_seconds": CONSENT_TIMEOUT, **webrtc}
    return config


def test_stopped_worker_loses_consent_and_ends_the_call(request, tmp_path, gateway_factory):
    upstream = start_fake_upstream(str(tmp_path))  # its own: this test stops it

    def cleanup():
        if upstream.proc.poll() is None:
            upstream.proc.send_signal(signal.SIGCONT)
        upstream.stop()
    request.addfinalizer(cleanup)
    gw = gateway_factory(consent_config(upstream))
    warm_up(gw, GATEWAY_KEY)

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime",
                          send_events=[{"type": "test.echo", "payload": "before"}])
        await call.connect()
        assert call.connected, call.result.error_body
        assert await call.wait_for(lambda r: r.events_of("test.echoed"), 10)
        state = get_call(gw, call.result.call_id)
        assert state["liveness"]["consent_freshness"] is True, state
        # Past a whole consent timeout with a live worker: consent is renewed, no false positive.
        await asyncio.sleep(CONSENT_TIMEOUT + 1.5)
        state = get_call(gw, call.result.call_id)
        assert state["state"] == "active", state
        os.kill(upstream.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        ended = await call.wait_for(ended_for_client, CONSENT_TIMEOUT + MARGIN + 4)
        took = time.monotonic() - stopped
        await call.close("leave")
        return ended, took, call.result.call_id

    ended, took, call_id = asyncio.run(scenario())
    upstream.proc.kill()  # nothing left to answer the gateway's hang-up
    print(f"stopped worker: call ended {took:.1f} s after SIGSTOP")
    assert ended, "the client was not told (its data channel is still open)"
    assert took < CONSENT_TIMEOUT + MARGIN, took
    assert took > EARLIEST, f"ended too early ({took:.1f} s)"
    state = get_call(gw, call_id)
    assert state["state"] == "ended", state
    assert "upstream" in state["end_reason"] and "consent" in state["end_reason"], state
    assert state["outcome"] == "peer_timeout", state
    assert wait_for(lambda: metric(metrics(gw), "rtgw_peer_timeouts_total",
                                   '{leg="upstream"}') == 1, 5), metrics(gw)


def start_turn_server(tmp_path):
    port = free_port()
    log = open(tmp_path / "turnserver.log", "wb")
    turn = subprocess.Popen(
        ["turnserver", "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
         "--relay-ip=127.0.0.1", "--min-port=49501", "--max-port=49600", "--realm=rtgw",
         "--lt-cred-mech", "--user=rtgw:turnpass", "--no-tls", "--no-dtls", "--no-cli",
         "--allow-loopback-peers", "--no-multicast-peers", f"--pidfile={tmp_path}/turn.pid",
         f"--log-file={tmp_path}/turn-detail.log"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    return turn, port


def test_caller_silent_behind_turn_loses_consent(tmp_path, fake_upstream, gateway_factory):
    """The gateway gathers relay candidates only (ice_transport_policy=relay), so the client leg's
    selected pair goes through coturn: the packet clock could not send its own checks there,
    consent freshness does."""
    if not shutil.which("turnserver"):
        pytest.skip("coturn is not installed")
    turn, port = start_turn_server(tmp_path)
    proc = None
    try:
        assert not wait_for(lambda: turn.poll() is not None, 1.0), \
            (tmp_path / "turnserver.log").read_text()
        gw = gateway_factory(consent_config(
            fake_upstream, turn_servers=[f"turn://rtgw:turnpass@127.0.0.1:{port}"],
            ice_transport_policy="relay", ice_gathering_timeout_ms=3000))
        fake_upstream.reset()
        proc, call_id = start_client_process(tmp_path, gw)
        time.sleep(CONSENT_TIMEOUT + 1.5)
        state = get_call(gw, call_id)
        assert state["state"] == "active", state
        assert state["media"]["packets_from_client"] > 0, state
        (up_id,) = fake_upstream.calls().keys()
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        hung_up = fake_upstream.wait_for(lambda s: s["calls"][up_id]["hangup"],
                                         CONSENT_TIMEOUT + MARGIN + 4)
        took = time.monotonic() - stopped
        print(f"silent caller behind TURN: call ended {took:.1f} s after SIGSTOP")
        assert hung_up, "the upstream call was not hung up"
        assert EARLIEST < took < CONSENT_TIMEOUT + MARGIN, took
        state = get_call(gw, call_id)
        assert state["state"] == "ended", state
        assert "client" in state["end_reason"] and "consent" in state["end_reason"], state
        assert state["outcome"] == "peer_timeout", state
        assert wait_for(lambda: metric(metrics(gw), "rtgw_peer_timeouts_total",
                                       '{leg="client"}') == 1, 5), metrics(gw)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        turn.terminate()
        turn.wait(10)


def thread_census(pid):
    """{thread name, digits folded: count} of a process."""
    names = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names[re.sub(r"\d+", "", f.read().strip())] += 1
        except OSError:
            pass  # the thread ended meanwhile
    return names


def threads_per_call(gw, calls=2):
    """Threads the gateway adds per live call (census with `calls` calls up - after warm-up)."""
    warm_up(gw, GATEWAY_KEY)
    # The warm-up call's pipeline is stopped on the reaper's thread: wait until its threads went.
    wait_for(lambda: not any(k.endswith((":pc", ":ice")) for k in thread_census(gw.proc.pid)), 10)
    before = thread_census(gw.proc.pid)

    async def scenario():
        live = [AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime",
                           send_events=[{"type": "test.echo", "payload": "census"}])
                for _ in range(calls)]
        for call in live:
            await call.connect()
            assert call.connected, call.result.error_body
        for call in live:
            assert await call.wait_for(lambda r: r.events_of("test.echoed"), 10)
        await asyncio.sleep(1.0)  # every thread of the calls is up (data channels open)
        during = thread_census(gw.proc.pid)
        for call in live:
            await call.close("leave")
        return during

    during = asyncio.run(scenario())
    added = {k: v - before.get(k, 0) for k, v in during.items() if v != before.get(k, 0)}
    return sum(added.values()) / calls, added, during


def test_thread_census_shared_agent_against_stock(fake_upstream, gateway_factory):
    """The same calls through a gateway with webrtcbin's own agent and one with the shared agent,
    back to back: the shared one has no `nicesrc` and no per-webrtcbin `:ice` thread, one
    `rtgw-ice-N` thread per CPU for the whole process, and 4 threads fewer per call
    (tests/bench/load_bench.py measures the same, 18 -> 14 per call)."""
    stock = gateway_factory(with_admin(default_gateway_config(fake_upstream)),
                            env={"RTGW_WEBRTC_ICE_AGENT": "stock"})
    stock_per_call, stock_added, stock_all = threads_per_call(stock)
    stock.stop()
    shared = gateway_factory(with_admin(default_gateway_config(fake_upstream)))
    shared_per_call, shared_added, shared_all = threads_per_call(shared)
    print(f"threads per call: stock {stock_per_call} {stock_added}; "
          f"shared {shared_per_call} {shared_added}")
    # Named threads, counted while 2 calls (4 webrtcbins) are up. GStreamer's task threads are
    # pooled and keep their last name while idle, so names are checked in absolute numbers.
    ice = [k for k in stock_all if k.endswith(":ice")]
    assert sum(stock_all[k] for k in ice) >= 4 and stock_all["nicesrc:src"] >= 4, stock_all
    assert not any(k == "nicesrc:src" or k.endswith(":ice") for k in shared_all), shared_all
    # One `rtgw-ice-N` per CPU (webrtc.ice_threads 0; the census folds the digits).
    cpus = min(len(os.sched_getaffinity(0)), 64)
    assert shared_all.get("rtgw-ice-") == cpus and "rtgw-ice" not in shared_all, shared_all
    # 2 fewer threads per webrtcbin (4 per call); the totals also move with pooled task threads
    # that outlive the warm-up call under their old names (noise of about 1 per census).
    assert shared_per_call <= stock_per_call - 2, (stock_added, shared_added)


def test_check_config_shows_the_agent(tmp_path):
    binary = os.environ.get("RTGW_BINARY")
    if not binary:
        pytest.skip("RTGW_BINARY is not set")
    for value, ok in (("shared", True), ("stock", True), ("own", False)):
        out = subprocess.run([binary, "--check-config"], capture_output=True, text=True,
                             timeout=30, cwd=str(tmp_path),
                             env={**os.environ, "RTGW_WEBRTC_ICE_AGENT": value})
        text = out.stdout + out.stderr
        if ok:
            assert out.returncode == 0, text
            assert f"ice_agent={value}" in text, text
            assert "unavailable" not in text, text  # 1.22.0's layout matched
        else:
            assert out.returncode != 0, text
            assert "webrtc.ice_agent" in text and "shared" in text, text
