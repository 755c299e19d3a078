"""Worker pool: failover during set-up, circuit breaker, health checks, /readyz."""
from __future__ import annotations

import re

from conftest import GATEWAY_KEY, default_gateway_config, start_fake_upstream
from peers.aiortc_client import run_call_sync
from peers.common import free_port, http_request, post_offer
from test_calls import aiortc_offer


def worker(upstream, name, **extra):
    return dict({"name": name, "url": upstream.url, "api_key": upstream.api_key,
                 "provider": "openai"}, **extra)


def pool_gateway(gateway_factory, fake_upstream, workers):
    config = default_gateway_config(fake_upstream)
    config["models"][0]["workers"] = workers
    return gateway_factory(config)


def call_worker(gw, call_id):
    return http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                        headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()["worker"]


def test_failover_past_failing_and_dead_workers(fake_upstream, gateway_factory, tmp_path):
    bad = start_fake_upstream(str(tmp_path))
    try:
        dead = {"name": "dead", "url": f"http://127.0.0.1:{free_port()}", "api_key": "x",
                "provider": "openai", "health_interval_seconds": 0}
        gw = pool_gateway(gateway_factory, fake_upstream,
                          [dead, worker(bad, "bad", health_interval_seconds=0),
                           worker(fake_upstream, "good")])
        for status in (500, 429):
            bad.config(status=status, body={"error": {"code": "x", "message": "y", "type": "z"}})
            result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", duration=0.5)
            assert result.status == 201, result.error_body
            assert call_worker(gw, result.call_id) == "good"
        assert len([r for r in bad.requests() if r["path"] == "/v1/realtime/calls"]) == 2
    finally:
        bad.stop()


def test_client_errors_never_count_against_a_worker(fake_upstream, gateway_factory):
    gw = pool_gateway(gateway_factory, fake_upstream,
                      [worker(fake_upstream, "only", breaker_failures=2)])
    for _ in range(4):
        assert post_offer(gw.url, GATEWAY_KEY, "garbage", model="gpt-realtime").status == 400
    metrics = http_request("GET", gw.url + "/metrics").body
    assert 'rtgw_worker_breaker_open{worker="only"} 0' in metrics
    assert run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", duration=0.3).status == 201


def test_breaker_opens_then_half_open_probe_closes_it(fake_upstream, gateway_factory):
    import time
    gw = pool_gateway(gateway_factory, fake_upstream,
                      [worker(fake_upstream, "only", breaker_failures=2, breaker_open_seconds=2)])
    fake_upstream.config(status=503, body={"error": {"code": "busy", "message": "m", "type": "t"}})
    for _ in range(2):
        assert post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime").status == 503
    before = len(fake_upstream.requests())
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime")
    assert reply.status == 503 and reply.json()["error"]["code"] == "no_capacity", reply.body
    assert len(fake_upstream.requests()) == before, "an open breaker must not contact the worker"
    assert 'rtgw_worker_breaker_open{worker="only"} 1' in http_request("GET", gw.url + "/metrics").body
    fake_upstream.config(status=None)
    time.sleep(2.2)
    assert run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", duration=0.3).status == 201
    assert 'rtgw_worker_breaker_open{worker="only"} 0' in http_request("GET", gw.url + "/metrics").body


def test_health_checks_and_readyz(fake_upstream, gateway_factory):
    import time
    dead = {"name": "dead", "url": f"http://127.0.0.1:{free_port()}", "api_key": "x",
            "provider": "openai", "health_interval_seconds": 1}
    gw = pool_gateway(gateway_factory, fake_upstream, [dead])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and http_request("GET", gw.url + "/readyz").status == 200:
        time.sleep(0.2)
    assert http_request("GET", gw.url + "/readyz").status == 503
    assert re.search(r'rtgw_worker_healthy\{worker="dead"\} 0', http_request("GET", gw.url + "/metrics").body)
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime")
    assert reply.status == 503 and reply.json()["error"]["code"] == "no_capacity"

    healthy = pool_gateway(gateway_factory, fake_upstream,
                           [worker(fake_upstream, "up", health_interval_seconds=1)])
    assert http_request("GET", healthy.url + "/readyz").status == 200
    assert fake_upstream.wait_for(lambda s: s.get("models_requests", 0) >= 1, 5)


def test_slow_worker_times_out_and_the_next_one_answers(fake_upstream, gateway_factory, tmp_path):
    slow = start_fake_upstream(str(tmp_path))
    try:
        slow.config(delay_ms=3000)
        gw = pool_gateway(gateway_factory, fake_upstream,
                          [worker(slow, "slow", timeout_seconds=1), worker(fake_upstream, "fast")])
        # both idle: "slow" is listed first and is tried first
        result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", duration=0.3)
        assert result.status == 201, result.error_body
        assert call_worker(gw, result.call_id) == "fast"
        assert [r for r in slow.requests() if r["path"] == "/v1/realtime/calls"]
    finally:
        slow.stop()


def test_per_key_and_global_call_limits(fake_upstream, gateway_factory):
    import asyncio
    from peers.aiortc_client import AiortcCall

    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"] = [
        {"name": "team-a", "key": GATEWAY_KEY, "models": ["*"], "max_concurrent_calls": 1},
        {"name": "team-b", "key": "sk-test-b", "models": ["*"]},
        {"name": "team-c", "key": "sk-test-c", "models": ["*"]}]
    config["limits"] = {"max_calls": 2}
    gw = gateway_factory(config)

    async def scenario():
        first = AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime")
        await first.connect()
        assert first.connected
        loop = asyncio.get_running_loop()
        offer = await loop.run_in_executor(None, aiortc_offer)
        again = await loop.run_in_executor(
            None, lambda: post_offer(gw.url, GATEWAY_KEY, offer, model="gpt-realtime"))
        assert again.status == 429 and again.json()["error"]["code"] == "too_many_calls"
        second = AiortcCall(gw.url, "sk-test-b", model="gpt-realtime")
        await second.connect()
        assert second.connected
        full = await loop.run_in_executor(
            None, lambda: post_offer(gw.url, "sk-test-c", offer, model="gpt-realtime"))
        assert full.status == 503 and full.json()["error"]["code"] == "no_capacity"
        await first.close()
        await second.close()
    asyncio.run(scenario())


def _open_breaker_then_wait(gw, fake_upstream, open_seconds):
    """Two worker failures open the only worker's breaker; returns once it is half-open."""
    import time
    fake_upstream.config(status=503, body={"error": {"code": "busy", "message": "m", "type": "t"}})
    for _ in range(2):
        assert post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime").status == 503
    fake_upstream.config(status=None)
    assert http_request("GET", gw.url + "/readyz").status == 503
    time.sleep(open_seconds + 0.2)


def _wait_ready(gw, timeout=5.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and http_request("GET", gw.url + "/readyz").status != 200:
        time.sleep(0.1)
    return http_request("GET", gw.url + "/readyz").status


def test_breaker_recovers_after_a_probe_refused_with_a_client_error(fake_upstream,
                                                                     gateway_factory):
    """The half-open probe's request is refused (400): nothing is learnt about the worker, the
    probe slot goes back, and the worker stays in rotation."""
    import time
    gw = pool_gateway(gateway_factory, fake_upstream,
                      [worker(fake_upstream, "only", breaker_failures=2, breaker_open_seconds=1)])
    _open_breaker_then_wait(gw, fake_upstream, 1)
    fake_upstream.config(status=400, times=1, body={"error": {
        "code": "invalid_value", "message": "refused", "type": "invalid_request_error"}})
    before = len(fake_upstream.requests())
    probe = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime")
    assert probe.status == 400, probe.body
    assert len(fake_upstream.requests()) == before + 1, "the probe must reach the worker"
    time.sleep(1.2)  # past breaker_open_seconds again
    assert _wait_ready(gw) == 200
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", duration=0.3)
    assert result.status == 201, result.error_body
    assert call_worker(gw, result.call_id) == "only"
    metrics = http_request("GET", gw.url + "/metrics").body
    assert 'rtgw_worker_breaker_open{worker="only"} 0' in metrics


def test_breaker_recovers_after_the_probes_client_leaves_during_set_up(fake_upstream,
                                                                         gateway_factory):
    """The half-open probe's client hangs up before the slow worker answers: the call is
    cancelled, the probe slot goes back, and the next call reaches the worker."""
    import time
    gw = pool_gateway(gateway_factory, fake_upstream,
                      [worker(fake_upstream, "only", breaker_failures=2, breaker_open_seconds=1,
                              timeout_seconds=60)])
    _open_breaker_then_wait(gw, fake_upstream, 1)
    fake_upstream.config(delay_ms=40000)  # the probe's answer would come long after the test
    before = len(fake_upstream.requests())
    gone = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime", timeout=1.5)
    assert gone.status is None, "the client was to give up before the answer"
    assert len(fake_upstream.requests()) == before + 1, "the probe must reach the worker"
    fake_upstream.config(delay_ms=0)
    time.sleep(1.2)  # past breaker_open_seconds again
    # The gateway ends the call when it notices the client is gone (at the latest when the
    # client leg's ICE fails, a few seconds on), long before the worker would have answered.
    assert _wait_ready(gw, timeout=25) == 200
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", duration=0.3)
    assert result.status == 201, result.error_body
    assert call_worker(gw, result.call_id) == "only"
    metrics = http_request("GET", gw.url + "/metrics").body
    assert 'rtgw_worker_breaker_open{worker="only"} 0' in metrics
    deadline = time.monotonic() + 10  # every call over: the worker's load is back to 0
    while time.monotonic() < deadline and 'rtgw_worker_live_calls{worker="only"} 0' not in metrics:
        time.sleep(0.2)
        metrics = http_request("GET", gw.url + "/metrics").body
    assert 'rtgw_worker_live_calls{worker="only"} 0' in metrics
