"""Reload without a restart (SIGHUP and ``POST /admin/reload``): the config file is re-read,
checked as ``--check-config`` checks it, and applied at once to what starts next (keys, models and
workers, prices, policy, CORS, limits); live calls and sessions keep what they started with;
restart-only keys are reported and left; a file that fails changes nothing.

Live sessions are WebSocket sessions (peers/ws_client.py) and WebRTC calls (aiortc) through the
fake upstream; prices are read from the usage log's ``cost_usd``.
"""
from __future__ import annotations

import asyncio
import copy
import json
import math
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import GATEWAY_KEY, default_gateway_config, start_fake_upstream
from peers.aiortc_client import AiortcCall
from peers.common import http_request
from peers.ws_client import WsClient, run_ws_session
from test_websocket import read_usage_log

MODEL = "gpt-realtime"
ADMIN_KEY = "sk-reload-admin-01"
TEAM_B_KEY = "sk-reload-team-b-2"
TEAM_C_KEY = "sk-reload-team-c-3"
# Every token kind the fake upstream reports (12 text + 25 audio in, 5 text + 15 audio out).
OLD_PRICE = {"per_million_tokens": {"text_input": 1.0, "audio_input": 1.0, "image_input": 1.0,
                                    "text_output": 1.0, "audio_output": 1.0}}
NEW_PRICE = {"per_million_tokens": {"text_input": 10.0, "audio_input": 10.0, "image_input": 10.0,
                                    "text_output": 10.0, "audio_output": 10.0}}
OLD_TURN_USD = 57 / 1e6
NEW_TURN_USD = 570 / 1e6


# --------------------------------------------------------------------------- helpers

def reload_config(upstream, log):
    config = default_gateway_config(upstream)
    config["auth"]["keys"] += [
        {"name": "ops", "key": ADMIN_KEY, "models": ["*"], "admin": True},
        {"name": "team-b", "key": TEAM_B_KEY, "models": ["*"]}]
    config["models"][0]["pricing"] = copy.deepcopy(OLD_PRICE)
    config["usage"] = {"log": log}
    return config


def write_config(gw, config):
    """Rewrites the gateway's file in place (atomically: a reload never reads half a file)."""
    config = dict(config, listen=gw.config["listen"])
    tmp = gw.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config, indent=2))
    os.replace(tmp, gw.config_path)


def write_text(gw, text):
    tmp = gw.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, gw.config_path)


def post_reload(gw, key=ADMIN_KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return http_request("POST", gw.url + "/admin/reload", b"", headers)


def metric(gw, sample):
    for line in http_request("GET", gw.url + "/metrics").body.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return None


def wait_log(gw, pattern, timeout=10.0):
    """The first stderr line matching ``pattern`` (bounded poll)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in gw.stderr().splitlines():
            if re.search(pattern, line):
                return line
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def check_config_message(binary, path):
    """What ``--check-config`` prints for a bad file (its stderr, one line)."""
    out = subprocess.run([binary, "--check-config", "--config", path], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0, out.stdout
    # Its own line (a sanitized build may add a leak report after it).
    lines = [l for l in out.stderr.splitlines() if l.startswith("realtime-gateway: ")]
    assert lines, out.stderr
    return re.sub(r"^realtime-gateway: (config error: )?", "", lines[-1])


def close(a, b):
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


async def wait_records(log, n, timeout=10.0):
    """The usage log's records once there are ``n`` (bounded poll)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(read_usage_log(log)) < n:
        await asyncio.sleep(0.1)
    return read_usage_log(log)


async def echo(client, payload, timeout=10.0):
    await client.send({"type": "test.echo", "payload": payload})
    return await client.wait_for(
        lambda r: any(e.get("payload") == payload for e in r.events_of("test.echoed")), timeout)


async def call_echo(call, payload, timeout=10.0):
    call.send({"type": "test.echo", "payload": payload})
    return await call.wait_for(
        lambda r: any(e.get("payload") == payload for e in r.events_of("test.echoed")), timeout)


# --------------------------------------------------------------------------- tests

def test_reload_under_live_calls_drops_none_and_new_calls_see_new_prices_and_keys(
        fake_upstream, gateway_factory, tmp_path):
    log = str(tmp_path / "usage.jsonl")
    config = reload_config(fake_upstream, log)
    gw = gateway_factory(config)

    async def scenario():
        sessions = [WsClient(gw.url, key=GATEWAY_KEY, model=MODEL) for _ in range(8)]
        calls = [AiortcCall(gw.url, GATEWAY_KEY, model=MODEL) for _ in range(2)]
        try:
            for s in sessions:
                await s.connect()
                assert s.connected, s.result.to_dict()
                assert await s.wait_for(lambda r: r.events_of("session.created"), 10)
            for c in calls:
                await c.connect()
                assert c.connected, c.result.error_body
            for i, s in enumerate(sessions):
                assert await echo(s, f"before-{i}")
            for i, c in enumerate(calls):
                assert await call_echo(c, f"call-before-{i}")

            # The new file: prices x10, team-b gone, team-c new.
            new = copy.deepcopy(config)
            new["models"][0]["pricing"] = copy.deepcopy(NEW_PRICE)
            new["auth"]["keys"] = [k for k in new["auth"]["keys"] if k["name"] != "team-b"]
            new["auth"]["keys"].append({"name": "team-c", "key": TEAM_C_KEY, "models": ["*"]})
            write_config(gw, new)
            reply = await asyncio.to_thread(post_reload, gw)
            assert reply.status == 200, reply.body
            answer = reply.json()
            assert answer["generation"] == 2, answer
            for item in ("auth.keys[team-b]: removed", "auth.keys[team-c]: added",
                         "models[gpt-realtime]: pricing changed"):
                assert item in answer["changed"], answer
            assert answer["restart_required"] == [], answer
            assert TEAM_C_KEY not in reply.body and TEAM_B_KEY not in reply.body

            # Every live session and call goes on, at its old prices.
            for i, s in enumerate(sessions):
                assert s.connected, f"session {i} dropped by the reload"
                assert await echo(s, f"after-{i}"), f"session {i} stopped relaying"
            for i, c in enumerate(calls):
                assert c.connected, f"call {i} dropped by the reload"
                assert await call_echo(c, f"call-after-{i}"), f"call {i} stopped relaying"
            old = sessions[0]
            await old.send({"type": "response.create"})
            assert await old.wait_for(lambda r: r.events_of("response.done"), 10)
            records = await wait_records(log, 1)
            assert len(records) == 1 and close(records[0]["cost_usd"], OLD_TURN_USD), records

            # A new session: the new prices.
            fresh = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
            await fresh.connect()
            assert fresh.connected, fresh.result.to_dict()
            assert await fresh.wait_for(lambda r: r.events_of("session.created"), 10)
            await fresh.send({"type": "response.create"})
            assert await fresh.wait_for(lambda r: r.events_of("response.done"), 10)
            records = await wait_records(log, 2)
            assert len(records) == 2 and close(records[1]["cost_usd"], NEW_TURN_USD), records
            assert records[0]["call_id"] != records[1]["call_id"], records
            await fresh.close()

            # New keys: team-c in, team-b out.
            added = WsClient(gw.url, key=TEAM_C_KEY, model=MODEL)
            await added.connect()
            assert added.connected, added.result.to_dict()
            await added.close()
            removed = WsClient(gw.url, key=TEAM_B_KEY, model=MODEL)
            await removed.connect()
            assert removed.result.status == 401, removed.result.to_dict()
            assert removed.result.error_code == "invalid_api_key", removed.result.to_dict()
            for i, s in enumerate(sessions):
                assert s.connected, f"session {i} dropped"
        finally:
            for s in sessions:
                await s.close()
            for c in calls:
                await c.close()

    asyncio.run(scenario())
    assert metric(gw, "rtgw_config_generation") == 2
    assert metric(gw, 'rtgw_config_reloads_total{result="ok"}') == 1
    assert metric(gw, 'rtgw_config_reloads_total{result="error"}') == 0
    line = wait_log(gw, r"config reload \(POST /admin/reload\): generation 2")
    assert line and "auth.keys[team-c]: added" in line, gw.stderr()[-3000:]
    assert TEAM_C_KEY not in gw.stderr() and ADMIN_KEY not in gw.stderr()


@pytest.mark.parametrize("bad", ["syntax", "check"])
def test_a_bad_file_is_refused_and_the_running_config_stays(bad, fake_upstream, gateway_factory,
                                                           tmp_path):
    config = reload_config(fake_upstream, str(tmp_path / "usage.jsonl"))
    gw = gateway_factory(config)
    if bad == "syntax":
        text = json.dumps(dict(config, listen=gw.config["listen"]))
        write_text(gw, text[:-1] + ',, "auth": }')  # not JSON
    else:
        # Parses, but fails a --check-config check: an interface that does not exist, and a key
        # removed in the same file (which must not take effect).
        new = copy.deepcopy(config)
        new["webrtc"] = {"ice_interfaces": ["rtgw-no-such0"]}
        new["auth"]["keys"] = [k for k in new["auth"]["keys"] if k["name"] != "team-a"]
        write_config(gw, new)
    expected = check_config_message(os.environ["RTGW_BINARY"], gw.config_path)
    assert expected

    reply = post_reload(gw)
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert error["code"] == "invalid_config" and error["type"] == "invalid_request_error", error
    assert error["message"] == expected, (error, expected)
    line = wait_log(gw, r"config reload \(POST /admin/reload\) refused")
    assert line and expected in line, gw.stderr()[-3000:]
    assert metric(gw, "rtgw_config_generation") == 1
    assert metric(gw, 'rtgw_config_reloads_total{result="error"}') == 1
    assert metric(gw, 'rtgw_config_reloads_total{result="ok"}') == 0
    # The running config serves on: team-a's key, the old model.
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL,
                            send_events=[{"type": "test.echo", "payload": "still"}],
                            until=lambda r: r.events_of("test.echoed"), duration=8)
    assert result.upgraded and result.events_of("test.echoed"), result.to_dict()


def test_reload_is_for_admins_only(fake_upstream, gateway_factory, tmp_path):
    gw = gateway_factory(reload_config(fake_upstream, str(tmp_path / "usage.jsonl")))
    reply = post_reload(gw, GATEWAY_KEY)
    assert reply.status == 403, reply.body
    assert reply.json()["error"]["code"] == "admin_required"
    assert post_reload(gw, None).status == 401
    assert post_reload(gw, "sk-not-a-key-at-all").status == 401
    assert metric(gw, "rtgw_config_generation") == 1
    assert metric(gw, 'rtgw_config_reloads_total{result="ok"}') == 0
    reply = post_reload(gw)
    assert reply.status == 200, reply.body
    assert reply.json() == {"generation": 2, "changed": [], "restart_required": []}


def test_restart_only_keys_are_reported_and_left(fake_upstream, gateway_factory, tmp_path):
    log = str(tmp_path / "usage.jsonl")
    config = reload_config(fake_upstream, log)
    gw = gateway_factory(config)
    new = copy.deepcopy(config)
    new["usage"] = {"log": str(tmp_path / "other.jsonl")}
    new["webrtc"] = {"stun_server": "stun:127.0.0.1:3478"}
    new["cors_origins"] = ["https://app.example.com"]
    write_config(gw, new)
    reply = post_reload(gw)
    assert reply.status == 200, reply.body
    answer = reply.json()
    assert sorted(answer["restart_required"]) == ["usage.log", "webrtc.stun_server"], answer
    assert answer["changed"] == ["cors_origins"], answer
    line = wait_log(gw, r"need a restart and keep their running value: ")
    assert line and "usage.log" in line and "webrtc.stun_server" in line, gw.stderr()[-3000:]
    # usage.log kept its running value: the next turn goes to the first log.
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model=MODEL,
                            send_events=[{"type": "response.create"}],
                            until=lambda r: r.events_of("response.done"), duration=8)
    assert result.events_of("response.done"), result.to_dict()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not read_usage_log(log):
        time.sleep(0.1)
    assert len(read_usage_log(log)) == 1
    assert not os.path.exists(tmp_path / "other.jsonl")
    # The CORS origin did apply.
    reply = http_request("OPTIONS", gw.url + "/v1/realtime/calls", None,
                         {"Origin": "https://app.example.com",
                          "Access-Control-Request-Method": "POST"})
    assert reply.headers.get("Access-Control-Allow-Origin") == "https://app.example.com", reply


def test_a_removed_worker_finishes_its_live_calls_and_new_ones_go_elsewhere(
        fake_upstream, gateway_factory, tmp_path):
    other = start_fake_upstream(str(tmp_path))
    try:
        config = reload_config(fake_upstream, str(tmp_path / "usage.jsonl"))
        gw = gateway_factory(config)

        async def scenario():
            old = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
            await old.connect()
            assert old.connected and await echo(old, "on-first")
            assert len(fake_upstream.ws_sessions()) == 1
            call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
            await call.connect()
            assert call.connected, call.result.error_body
            assert await call_echo(call, "call-on-first")
            assert len(fake_upstream.calls()) == 1
            new = copy.deepcopy(config)
            new["models"][0]["workers"] = [{"url": other.url, "api_key": other.api_key,
                                            "provider": "openai", "name": "second"}]
            write_config(gw, new)
            reply = await asyncio.to_thread(post_reload, gw)
            assert reply.status == 200, reply.body
            changed = reply.json()["changed"]
            assert f"models[gpt-realtime].workers: added {other.url}" in changed, changed
            assert f"models[gpt-realtime].workers: removed {fake_upstream.url}" in changed, changed
            assert wait_log(gw, r"removed: no new calls, 2 live call"), gw.stderr()[-3000:]
            # The live session and call still relay through the removed worker.
            assert await echo(old, "still-on-first"), old.result.to_dict()
            assert await call_echo(call, "call-still-on-first")
            # New sessions go to the new worker only.
            for i in range(3):
                fresh = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
                await fresh.connect()
                assert fresh.connected and await echo(fresh, f"on-second-{i}")
                await fresh.close()
            assert len(fake_upstream.ws_sessions()) == 1
            assert len(other.ws_sessions()) == 3
            assert len(fake_upstream.calls()) == 1 and not other.calls()
            assert await echo(old, "last-on-first")
            assert call.connected and await call_echo(call, "call-last-on-first")
            await old.close()
            await call.close()

        asyncio.run(scenario())
        # The removed worker left /metrics with the pool; the new one is there.
        text = http_request("GET", gw.url + "/metrics").body
        workers = [line for line in text.splitlines()
                   if line.startswith("rtgw_worker_live_calls{")]
        assert workers == ['rtgw_worker_live_calls{worker="second"} 0'], workers
    finally:
        other.stop()


def test_sighup_reloads_and_a_bad_file_is_logged_as_check_config_says(fake_upstream,
                                                                       gateway_factory, tmp_path):
    config = reload_config(fake_upstream, str(tmp_path / "usage.jsonl"))
    gw = gateway_factory(config)
    new = copy.deepcopy(config)
    new["auth"]["keys"].append({"name": "team-c", "key": TEAM_C_KEY, "models": ["*"]})
    write_config(gw, new)
    gw.proc.send_signal(signal.SIGHUP)
    line = wait_log(gw, r"config reload \(SIGHUP\): generation 2")
    assert line and "auth.keys[team-c]: added" in line, gw.stderr()[-3000:]
    result = run_ws_session(gw.url, key=TEAM_C_KEY, model=MODEL,
                            send_events=[{"type": "test.echo", "payload": "c"}],
                            until=lambda r: r.events_of("test.echoed"), duration=8)
    assert result.upgraded and result.events_of("test.echoed"), result.to_dict()
    # A duplicate key name: refused, logged with --check-config's words.
    bad = copy.deepcopy(new)
    bad["auth"]["keys"].append({"name": "team-c", "key": "sk-reload-dup-0004", "models": ["*"]})
    write_config(gw, bad)
    expected = check_config_message(os.environ["RTGW_BINARY"], gw.config_path)
    gw.proc.send_signal(signal.SIGHUP)
    line = wait_log(gw, r"config reload \(SIGHUP\) refused, generation 2 stays: ")
    assert line and line.endswith(expected), (line, expected)
    assert metric(gw, "rtgw_config_generation") == 2
    assert metric(gw, 'rtgw_config_reloads_total{result="error"}') == 1
    assert gw.running()


def test_a_wildcard_key_reaches_a_model_added_by_reload(fake_upstream, gateway_factory, tmp_path):
    config = reload_config(fake_upstream, str(tmp_path / "usage.jsonl"))
    config["auth"]["keys"].append({"name": "wild", "key": TEAM_C_KEY,
                                   "models": ["gpt-realtime*"]})
    gw = gateway_factory(config)
    refused = run_ws_session(gw.url, key=TEAM_C_KEY, model="gpt-realtime-2", duration=1)
    assert refused.status in (400, 404), refused.to_dict()
    new = copy.deepcopy(config)
    new["models"].append({"name": "gpt-realtime-2", "upstream_model": "gpt-realtime",
                          "workers": new["models"][0]["workers"]})
    write_config(gw, new)
    reply = post_reload(gw)
    assert reply.status == 200 and "models[gpt-realtime-2]: added" in reply.json()["changed"]
    models = http_request("GET", gw.url + "/v1/models", None,
                          {"Authorization": f"Bearer {TEAM_C_KEY}"}).json()
    assert "gpt-realtime-2" in [m["id"] for m in models["data"]], models
    result = run_ws_session(gw.url, key=TEAM_C_KEY, model="gpt-realtime-2",
                            send_events=[{"type": "test.echo", "payload": "wild"}],
                            until=lambda r: r.events_of("test.echoed"), duration=8)
    assert result.upgraded and result.events_of("test.echoed"), result.to_dict()


def test_a_new_policy_applies_to_new_sessions_and_live_ones_keep_theirs(fake_upstream,
                                                                        gateway_factory, tmp_path):
    config = reload_config(fake_upstream, str(tmp_path / "usage.jsonl"))
    gw = gateway_factory(config)

    async def scenario():
        live = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
        await live.connect()
        assert live.connected and await echo(live, "before")
        new = copy.deepcopy(config)
        new["policy"] = {"deny_client_events": [{"type": "test.echo"}]}
        write_config(gw, new)
        reply = await asyncio.to_thread(post_reload, gw)
        assert reply.status == 200 and "policy" in reply.json()["changed"], reply.body
        assert await echo(live, "after"), "the live session keeps the policy it started with"
        fresh = WsClient(gw.url, key=GATEWAY_KEY, model=MODEL)
        await fresh.connect()
        assert fresh.connected
        assert await fresh.wait_for(lambda r: r.events_of("session.created"), 10)
        await fresh.send({"type": "test.echo", "payload": "denied"})
        assert await fresh.wait_for(lambda r: r.events_of("error"), 10), fresh.result.to_dict()
        assert not fresh.result.events_of("test.echoed")
        assert fresh.result.events_of("error")[0]["error"]["code"] == "policy_violation"
        await fresh.close()
        await live.close()

    asyncio.run(scenario())


def test_a_worker_added_by_reload_is_health_checked(fake_upstream, gateway_factory, tmp_path):
    from peers.common import free_port
    config = reload_config(fake_upstream, str(tmp_path / "usage.jsonl"))
    gw = gateway_factory(config)
    new = copy.deepcopy(config)
    new["models"][0]["workers"].append({"url": f"http://127.0.0.1:{free_port()}",
                                        "provider": "openai", "name": "gone",
                                        "health_interval_seconds": 1})
    write_config(gw, new)
    reply = post_reload(gw)
    assert reply.status == 200, reply.body
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and metric(gw, 'rtgw_worker_healthy{worker="gone"}') != 0:
        time.sleep(0.2)
    assert metric(gw, 'rtgw_worker_healthy{worker="gone"}') == 0, "no health check ran"
    assert wait_log(gw, r"worker gone: unhealthy"), gw.stderr()[-3000:]
