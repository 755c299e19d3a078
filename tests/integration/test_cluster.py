"""Cluster mode (SPEC "Scale-out (cluster mode)"): two gateway instances and one real
redis-server (Debian's /usr/bin/redis-server, started by the ``redis`` fixture on a free loopback
port in a temporary directory, no persistence) with the fake upstream.

Covers: a key's cap across instances, budgets across instances, GET and hang-up of a call through
the other instance, the sideband through the other instance, kill -9 of an instance freeing its
slots within lease_seconds, and Redis going away (calls go on, rtgw_cluster_redis_up 0) and coming
back (1, leases re-registered so a cap holds again).
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.common import free_port, http_request, post_hangup, post_offer, wait_until
from peers.ws_client import WsClient

REDIS_SERVER = "/usr/bin/redis-server"
MODEL = "gpt-realtime"
SECRET = "cluster-test-internal-secret"
LEASE_SECONDS = 3

pytestmark = pytest.mark.skipif(not os.access(REDIS_SERVER, os.X_OK),
                                reason="redis-server is not installed (apt-get install redis-server)")


# --------------------------------------------------------------------------- redis fixture

def redis_command(port: int, *args: str, timeout: float = 2.0):
    """One command over RESP (no client library needed); returns the decoded reply."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        data = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(out)
        f = s.makefile("rb")
        return _read_reply(f)


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n")
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError(f"unexpected reply {line!r}")


class RedisProc:
    def __init__(self, workdir: str, port: int):
        self.workdir, self.port = workdir, port
        self.proc = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self, timeout: float = 10.0) -> None:
        log = open(os.path.join(self.workdir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir, "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir)
        log.close()

        def pong():
            try:
                return redis_command(self.port, "PING") == "PONG"
            except OSError:
                return False
        if not wait_until(pong, timeout, 0.05):
            raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def command(self, *args):
        return redis_command(self.port, *args)


@pytest.fixture
def redis(tmp_path):
    workdir = tmp_path / "redis"
    workdir.mkdir()
    r = RedisProc(str(workdir), free_port())
    r.start()
    yield r
    r.kill()


# --------------------------------------------------------------------------- helpers

def cluster_env(redis: RedisProc, name: str):
    return {"RTGW_CLUSTER_REDIS_URL": redis.url, "RTGW_CLUSTER_SECRET": SECRET,
            "RTGW_CLUSTER_INSTANCE_ID": name, "RTGW_CLUSTER_LEASE_SECONDS": str(LEASE_SECONDS)}


def metric(gw, name: str):
    reply = http_request("GET", gw.url + "/metrics")
    for line in reply.body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def redis_up(gw) -> bool:
    return metric(gw, "rtgw_cluster_redis_up") == 1


def two_instances(fake_upstream, gateway_factory, redis, pricing=None, **key_fields):
    config = default_gateway_config(fake_upstream)
    if pricing:
        config["models"][0]["pricing"] = pricing
    config["auth"]["keys"][0].update(key_fields)
    config["auth"]["keys"].append({"name": "team-b", "key": "sk-test-b", "models": ["*"]})
    a = gateway_factory(config, env=cluster_env(redis, "gw-a"))
    b = gateway_factory(config, env=cluster_env(redis, "gw-b"))
    assert wait_until(lambda: redis_up(a) and redis_up(b), 10), "the instances never reached Redis"
    return a, b


def aiortc_offer():
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


def error_code(reply):
    return reply.json()["error"]["code"]


def echoed(payload):
    return lambda r: [e for e in r.events_of("test.echoed") if e.get("payload") == payload]


# --------------------------------------------------------------------------- tests

def test_key_cap_holds_across_instances(fake_upstream, gateway_factory, redis):
    a, b = two_instances(fake_upstream, gateway_factory, redis, max_concurrent_calls=1)
    offer = aiortc_offer()

    async def scenario():
        call = AiortcCall(a.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        try:
            assert call.connected, call.result.error_body
            # the key's one slot is taken on A: B refuses, and so does A
            refused_b = post_offer(b.url, GATEWAY_KEY, offer, MODEL)
            refused_a = post_offer(a.url, GATEWAY_KEY, offer, MODEL)
            members = redis.command("ZRANGE", "rtgw:leases:key:team-a", "0", "-1")
        finally:
            await call.close("hangup")
        return refused_b, refused_a, members
    refused_b, refused_a, members = asyncio.run(scenario())
    assert refused_b.status == 429, refused_b.body
    assert error_code(refused_b) == "too_many_calls"
    assert refused_a.status == 429 and error_code(refused_a) == "too_many_calls"
    assert len(members) == 1 and members[0].startswith("gw-a/"), members
    # the slot comes back when the call ends: B takes a call
    assert wait_until(lambda: redis.command("ZCARD", "rtgw:leases:key:team-a") == 0, 5)
    result = run_call_sync(b.url, GATEWAY_KEY, model=MODEL, duration=0.5)
    assert result.status == 201, result.error_body


def test_global_max_calls_holds_across_instances(fake_upstream, gateway_factory, redis):
    config = default_gateway_config(fake_upstream)
    config["limits"] = {"max_calls": 1}
    a = gateway_factory(config, env=cluster_env(redis, "gw-a"))
    b = gateway_factory(config, env=cluster_env(redis, "gw-b"))
    assert wait_until(lambda: redis_up(a) and redis_up(b), 10)

    async def scenario():
        # a WebSocket session on A counts too
        ws = WsClient(a.url, key=GATEWAY_KEY, model=MODEL)
        await ws.connect()
        try:
            assert ws.connected, (ws.result.status, ws.result.handshake_body)
            refused = await asyncio.get_running_loop().run_in_executor(
                None, lambda: post_offer(b.url, GATEWAY_KEY, aiortc_offer(), MODEL))
            ws2 = WsClient(b.url, key=GATEWAY_KEY, model=MODEL)
            await ws2.connect()
            refused_ws = ws2.result
            await ws2.close()
        finally:
            await ws.close()
        return refused, refused_ws
    refused, refused_ws = asyncio.run(scenario())
    assert refused.status == 503 and error_code(refused) == "no_capacity", refused.body
    assert refused_ws.status == 503, (refused_ws.status, refused_ws.handshake_body)
    assert b'no_capacity' in (refused_ws.handshake_body or b"") or "no_capacity" in str(
        refused_ws.handshake_body)


def test_budget_spent_on_one_instance_blocks_the_other(fake_upstream, gateway_factory, redis):
    a, b = two_instances(fake_upstream, gateway_factory, redis, budget_tokens=50)
    first = run_call_sync(a.url, GATEWAY_KEY, model=MODEL,
                          send_events=[{"type": "response.create"}],
                          until=lambda r: r.events_of("response.done"), duration=10)
    assert first.events_of("response.done")  # 57 tokens: over the 50 budget
    assert wait_until(lambda: int(redis.command("HGET", "rtgw:budget:team-a", "tokens") or 0)
                      == 57, 5)
    refused = post_offer(b.url, GATEWAY_KEY, aiortc_offer(), MODEL)
    assert refused.status == 429, refused.body
    assert error_code(refused) == "insufficient_quota"
    # another key is not affected
    other = run_call_sync(b.url, "sk-test-b", model=MODEL, duration=0.5)
    assert other.status == 201, other.error_body


# The fake upstream's turn: 37 input tokens (12 text, 25 audio), 20 output (5 text, 15 audio).
PRICING = {"per_million_tokens": {"text_input": 4.0, "audio_input": 32.0, "text_output": 16.0,
                                  "audio_output": 64.0}}
TURN_USD = (12 * 4 + 25 * 32 + 5 * 16 + 15 * 64) / 1e6  # 0.001888


def test_budget_usd_spent_on_one_instance_blocks_the_other(fake_upstream, gateway_factory, redis):
    a, b = two_instances(fake_upstream, gateway_factory, redis, pricing=PRICING,
                         budget_usd=0.0015)
    offer = aiortc_offer()

    async def scenario():
        # A session on B, live before the key spends its budget on A.
        async with WsClient(b.url, key=GATEWAY_KEY, model=MODEL) as live:
            assert live.connected, live.result
            assert await live.wait_for(lambda r: r.events_of("session.created"), 10)
            async with WsClient(a.url, key=GATEWAY_KEY, model=MODEL) as spender:
                assert spender.connected, spender.result
                await spender.wait_for(lambda r: r.events_of("session.created"), 10)
                await spender.send({"type": "response.create"})
                assert await spender.wait_for(lambda r: r.events_of("response.done"), 10)
                assert not spender.result.events_of("error"), spender.result.event_types()
            # $0.001888 spent on A is in Redis...
            spent = await asyncio.to_thread(wait_until, lambda: float(
                redis.command("HGET", "rtgw:budget:team-a", "usd") or 0) > 0.0015, 5)
            assert spent, redis.command("HGETALL", "rtgw:budget:team-a")
            assert abs(float(redis.command("HGET", "rtgw:budget:team-a", "usd")) - TURN_USD) < 1e-9
            # ... so B refuses a new call and a new session of the key...
            refused = await asyncio.to_thread(post_offer, b.url, GATEWAY_KEY, offer, MODEL)
            async with WsClient(b.url, key=GATEWAY_KEY, model=MODEL) as late:
                refused_ws = late.result
            # ... and blocks the live session's next response.create.
            await live.send({"type": "response.create", "event_id": "evt_over_usd_b"})
            assert await live.wait_for(lambda r: r.events_of("error"), 10), live.result.event_types()
            return refused, refused_ws, live.result
    refused, refused_ws, live = asyncio.run(scenario())
    assert refused.status == 429 and error_code(refused) == "insufficient_quota", refused.body
    assert refused.json()["error"]["type"] == "insufficient_quota", refused.body
    assert refused_ws.status == 429, (refused_ws.status, refused_ws.handshake_body)
    assert refused_ws.handshake_body["error"]["code"] == "insufficient_quota", refused_ws
    (error,) = live.events_of("error")  # SPEC "Errors agents act on", as for budget_tokens
    assert error["error"]["type"] == "insufficient_quota", error
    assert error["error"]["code"] == "insufficient_quota" and error["error"]["message"], error
    assert not live.events_of("response.done")
    sent = [e for s in fake_upstream.ws_sessions() for e in s["events"] if "evt_over_usd_b" in e]
    assert not sent, sent
    # another key is not affected
    other = run_call_sync(b.url, "sk-test-b", model=MODEL, duration=0.5)
    assert other.status == 201, other.error_body


def test_get_and_hangup_through_the_other_instance(fake_upstream, gateway_factory, redis):
    a, b = two_instances(fake_upstream, gateway_factory, redis)

    async def scenario():
        call = AiortcCall(a.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        try:
            assert call.connected, call.result.error_body
            call_id = call.result.call_id
            url = f"{b.url}/v1/realtime/calls/{call_id}"
            state = http_request("GET", url, headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
            other_key = http_request("GET", url, headers={"Authorization": "Bearer sk-test-b"})
            wrong_secret = http_request("GET", f"{a.url}/v1/realtime/calls/{call_id}",
                                        headers={"Authorization": f"Bearer {GATEWAY_KEY}",
                                                 "X-RTGW-Internal": "not-the-secret"})
            unknown = http_request("GET", f"{b.url}/v1/realtime/calls/rtc_nosuchcall",
                                   headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
            hung = post_hangup(b.url, GATEWAY_KEY, call.result.location)
            return call_id, state, other_key, wrong_secret, unknown, hung
        finally:
            await call.close("leave")
    call_id, state, other_key, wrong_secret, unknown, hung = asyncio.run(scenario())
    assert state.status == 200, state.body
    assert state.json()["id"] == call_id and state.json()["state"] == "active"
    assert other_key.status == 404, other_key.body  # a key sees only its own calls
    assert wrong_secret.status == 403, wrong_secret.body
    assert unknown.status == 404 and error_code(unknown) == "call_not_found"
    assert hung.status == 200, hung.body
    assert hung.json()["state"] == "ended"
    up = fake_upstream.wait_for(
        lambda s: all(c["hangup"] or c["closed"] for c in s["calls"].values()) and s["calls"], 5)
    assert up, "the upstream call was not ended"
    # the ended call's final state is still served through B
    again = http_request("GET", f"{b.url}/v1/realtime/calls/{call_id}",
                         headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
    assert again.status == 200 and again.json()["state"] == "ended", again.body


def test_sideband_through_the_other_instance(fake_upstream, gateway_factory, redis):
    a, b = two_instances(fake_upstream, gateway_factory, redis)

    async def scenario():
        call = AiortcCall(a.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        side = None
        try:
            assert call.connected, call.result.error_body
            assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
            refused = WsClient(b.url, key="sk-test-b", call_id=call.result.call_id)
            await refused.connect()
            await refused.close()
            side = WsClient(b.url, key=GATEWAY_KEY, call_id=call.result.call_id)
            await side.connect()
            assert side.connected, (side.result.status, side.result.handshake_body,
                                    side.result.error)
            call.send({"type": "test.echo", "payload": "from-call"})
            assert await side.wait_for(echoed("from-call"), 5), side.result.event_types()
            assert await side.send({"type": "test.echo", "payload": "from-sideband"})
            assert await call.wait_for(echoed("from-sideband"), 5)
            await call.close("hangup")
            closed = await side.wait_closed(5)
            return refused.result, closed, side.result
        finally:
            await call.close("leave")
            if side is not None:
                await side.close()
    refused, closed, side = asyncio.run(scenario())
    assert refused.status == 404, (refused.status, refused.handshake_body)
    assert closed, "the relayed sideband stayed open after the call ended"
    assert side.close_code == 1000, (side.close_code, side.close_reason)


def test_kill_9_frees_the_dead_instances_slots_within_lease_seconds(fake_upstream,
                                                                     gateway_factory, redis):
    a, b = two_instances(fake_upstream, gateway_factory, redis, max_concurrent_calls=1)
    offer = aiortc_offer()

    async def scenario():
        call = AiortcCall(a.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        try:
            assert call.connected, call.result.error_body
            refused = post_offer(b.url, GATEWAY_KEY, offer, MODEL)
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(5)
            killed_at = time.monotonic()
            freed = await asyncio.get_running_loop().run_in_executor(None, lambda: wait_until(
                lambda: redis.command("ZCOUNT", "rtgw:leases:key:team-a",
                                      str(int(time.time() * 1000)), "+inf") == 0,
                LEASE_SECONDS + 3))
            return refused, freed, time.monotonic() - killed_at
        finally:
            await call.close("leave")
    refused, freed, took = asyncio.run(scenario())
    assert refused.status == 429, refused.body
    assert freed and took <= LEASE_SECONDS + 1.0, took
    result = run_call_sync(b.url, GATEWAY_KEY, model=MODEL, duration=0.5)
    assert result.status == 201, result.error_body


def test_redis_down_calls_go_on_and_come_back(fake_upstream, gateway_factory, redis):
    a, b = two_instances(fake_upstream, gateway_factory, redis, max_concurrent_calls=1)
    offer = aiortc_offer()

    async def scenario():
        call = AiortcCall(a.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        try:
            assert call.connected, call.result.error_body
            redis.kill()
            loop = asyncio.get_running_loop()
            down = await loop.run_in_executor(
                None, lambda: wait_until(lambda: metric(a, "rtgw_cluster_redis_up") == 0, 5))
            # the call goes on: events still relayed both ways
            call.send({"type": "test.echo", "payload": "during-outage"})
            relayed = await call.wait_for(echoed("during-outage"), 5)
            # Redis back (empty): A re-registers its lease, and the cap holds again on B
            await loop.run_in_executor(None, redis.start)
            back = await loop.run_in_executor(
                None, lambda: wait_until(lambda: redis_up(a) and redis_up(b), 10))
            registered = await loop.run_in_executor(None, lambda: wait_until(
                lambda: redis.command("ZCARD", "rtgw:leases:key:team-a") == 1, 5))
            refused = await loop.run_in_executor(
                None, lambda: post_offer(b.url, GATEWAY_KEY, offer, MODEL))
            call.send({"type": "test.echo", "payload": "after-outage"})
            still = await call.wait_for(echoed("after-outage"), 5)
            return down, relayed, back, registered, refused, still
        finally:
            await call.close("hangup")
    down, relayed, back, registered, refused, still = asyncio.run(scenario())
    assert down, "rtgw_cluster_redis_up did not go to 0"
    assert relayed, "the call stopped relaying while Redis was down"
    assert back, "rtgw_cluster_redis_up did not come back to 1"
    assert registered, "the live call's lease was not re-registered"
    assert refused.status == 429 and error_code(refused) == "too_many_calls", refused.body
    assert still, "the call did not survive the outage"
    with open(a.stderr_path) as err, open(a.stdout_path) as out:
        log = err.read() + out.read()
    assert log.count("unreachable") == 1, "the outage must be logged once"


def test_client_leaving_during_admission_releases_its_lease(fake_upstream, gateway_factory,
                                                            redis):
    a, b = two_instances(fake_upstream, gateway_factory, redis, max_concurrent_calls=1)
    offer = aiortc_offer()
    # A Redis that does not answer holds the admission (up to its deadline): the client gives
    # up meanwhile.
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        gone = post_offer(a.url, GATEWAY_KEY, offer, MODEL, timeout=0.3)
        assert gone.status is None, gone  # the client timed out
        assert metric(a, "rtgw_cluster_leases") == 1, "the admission holds its lease meanwhile"
        released = wait_until(lambda: metric(a, "rtgw_cluster_leases") == 0, 5)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    assert released, "the lease of a client that left during admission was never released"
    assert fake_upstream.calls() == {}, "no call may start for a client that left"
    assert wait_until(lambda: redis_up(a), 10)
    # nothing of it holds the key's one slot: a call goes through on the other instance
    assert wait_until(lambda: redis.command("ZCOUNT", "rtgw:leases:key:team-a",
                                            str(int(time.time() * 1000)), "+inf") == 0,
                      LEASE_SECONDS + 2)
    result = run_call_sync(b.url, GATEWAY_KEY, model=MODEL, duration=0.5)
    assert result.status == 201, result.error_body


def test_check_config_shows_cluster(gateway_factory, tmp_path):
    binary = os.environ.get("RTGW_BINARY")
    if not binary:
        pytest.skip("RTGW_BINARY is not set")
    env = {**os.environ, "RTGW_CLUSTER_REDIS_URL": "redis://:pw@127.0.0.1:6390/2",
           "RTGW_CLUSTER_SECRET": SECRET}
    out = subprocess.run([binary, "--check-config"], env=env, capture_output=True, text=True,
                         timeout=30)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "cluster: redis=127.0.0.1:6390/2" in text and "pw" not in text.replace("(password set)", "")
    assert SECRET not in text
    env["RTGW_CLUSTER_SECRET"] = "short"
    bad = subprocess.run([binary, "--check-config"], env=env, capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode != 0 and "internal_secret" in bad.stdout + bad.stderr
