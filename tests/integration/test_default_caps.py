"""Default caps and file descriptors (issue 21, item 9).

- The soft open-file limit is raised to the hard one at start-up (and logged), and the caps an
  operator did not set are sized from it; --check-config shows them.
- Call set-ups (answered, ICE not connected) are capped per key (429 too_many_calls) and overall
  (503 no_capacity); a key without max_concurrent_calls gets a default.
- With a low hard limit, 40+ unfinished set-ups at 8/s are refused cleanly: the process lives,
  /healthz answers and the log does not flood.
- With the descriptor table full, accepting backs off instead of spinning and logging.
- A call takes at most limits.max_sidebands_per_call (4) sidebands: the 5th is 429 before the
  upgrade.
- Half-open set-ups end within webrtc.ice_connect_timeout_seconds, fds and threads back to their
  baseline.
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import threading
import time

from cleanstate import assert_clean, snapshot, wait_for
from conftest import GATEWAY_KEY
from peers.aiortc_client import AiortcCall, run_call_sync
from peers.common import http_request, post_hangup, post_offer
from peers.ws_client import WsClient
from test_calls import aiortc_offer

ADMIN = "sk-admin-caps"
KEY_B = "sk-test-caps-b"
MODEL = "echo"


def rlimit(soft: int, hard: int):
    """A preexec_fn: the gateway starts with this RLIMIT_NOFILE."""
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return apply


def echo_config(**extra):
    config = {"auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]},
                                {"name": "team-b", "key": KEY_B, "models": ["*"]},
                                {"name": "ops", "key": ADMIN, "models": ["*"], "admin": True}]},
              "models": [{"name": MODEL, "workers": [{"provider": "echo"}]}]}
    config.update(extra)
    return config


def open_files_limit(pid: int):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                cols = line.split()
                return int(cols[3]), int(cols[4])
    raise AssertionError("no 'Max open files' line")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_refusal(reply, allowed=(("429", "too_many_calls"), ("503", "no_capacity"))):
    assert reply.status is not None, reply.error
    code = reply.json()["error"]["code"]
    assert (str(reply.status), code) in allowed, (reply.status, reply.body)


def debug_calls(gw):
    reply = http_request("GET", gw.url + "/debug/calls",
                         headers={"Authorization": f"Bearer {ADMIN}"})
    assert reply.status == 200, reply
    return [c for c in reply.json()["data"] if c.get("object") == "realtime.call"]


def warm_up(gw):
    """One connected echo call, ended: GLib's and GStreamer's pools then exist."""
    warm = run_call_sync(gw.url, GATEWAY_KEY, model=MODEL,
                         until=lambda r: r.channel_opened, duration=10)
    assert warm.status == 201, warm.error_body
    assert wait_for(lambda: not debug_calls(gw), 15)
    time.sleep(1)


# --------------------------------------------------------------------------- open-file limit

def test_soft_open_file_limit_is_raised_to_the_hard_one(gateway_factory):
    gw = gateway_factory(echo_config(), preexec_fn=rlimit(1024, 4096))
    assert open_files_limit(gw.proc.pid) == (4096, 4096)
    log = gw.stderr()
    assert "open files: soft limit 1024 raised to 4096 (hard limit 4096)" in log, log[-3000:]
    # the caps were sized from the raised limit, not from 1024 (max_calls 15 there)
    assert "max_calls=63 " in log and "open-file limit 4096" in log, log[-3000:]


def test_check_config_shows_the_default_caps(tmp_path):
    binary = os.environ["RTGW_BINARY"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(echo_config()))

    def check(config_path, limit):
        out = subprocess.run([binary, "--config", str(config_path), "--check-config"],
                             capture_output=True, text=True, timeout=60,
                             preexec_fn=rlimit(*limit))
        assert out.returncode == 0, out.stderr
        return out.stdout

    text = check(path, (1024, 1024))
    assert "open files: soft limit 1024 kept (hard limit 1024)" in text, text
    assert ("caps: max_calls=15 (sized) max_calls_per_key=7 (sized) max_setups=4 (sized) "
            "max_setups_per_key=2 (sized) max_sidebands_per_call=4 max_connections=240 (sized) "
            "(open-file limit 1024)") in text, text
    assert "key: team-a models=*, max_concurrent_calls=7" in text, text
    # configured caps are shown as configured, the rest still sized
    path.write_text(json.dumps(echo_config(limits={"max_calls": 0, "max_setups_per_key": 1,
                                                   "max_sidebands_per_call": 2})))
    text = check(path, (1024, 1024))
    assert ("caps: max_calls=unlimited max_calls_per_key=unlimited (sized) max_setups=4 (sized) "
            "max_setups_per_key=1 max_sidebands_per_call=2") in text, text


# --------------------------------------------------------------------------- set-up caps

def test_default_setup_caps_are_enforced_per_key_then_overall(gateway_factory):
    # 1024 descriptors: 2 set-ups per key, 4 overall (docs/security.md)
    gw = gateway_factory(echo_config(webrtc={"ice_connect_timeout_seconds": 60}),
                         preexec_fn=rlimit(1024, 1024))
    offer = aiortc_offer()
    held = []
    for _ in range(2):
        reply = post_offer(gw.url, GATEWAY_KEY, offer, model=MODEL)
        assert reply.status == 201, reply.body
        held.append((GATEWAY_KEY, reply.headers["Location"]))
    third = post_offer(gw.url, GATEWAY_KEY, offer, model=MODEL)
    assert third.status == 429, third.body
    assert third.json()["error"]["code"] == "too_many_calls"
    assert "max_setups_per_key" in third.json()["error"]["message"]
    for _ in range(2):
        reply = post_offer(gw.url, KEY_B, offer, model=MODEL)
        assert reply.status == 201, reply.body
        held.append((KEY_B, reply.headers["Location"]))
    # a third key finds every set-up slot taken
    full = post_offer(gw.url, ADMIN, offer, model=MODEL)
    assert full.status == 503, full.body
    assert full.json()["error"]["code"] == "no_capacity"
    assert len(debug_calls(gw)) == 4
    # a set-up that ends gives its slot back
    key, location = held.pop(0)
    assert post_hangup(gw.url, key, location).status == 200
    assert wait_for(lambda: len(debug_calls(gw)) == 3, 10), debug_calls(gw)
    again = post_offer(gw.url, GATEWAY_KEY, offer, model=MODEL)
    assert again.status == 201, again.body
    held.append((GATEWAY_KEY, again.headers["Location"]))
    for key, location in held:
        post_hangup(gw.url, key, location)


def test_default_per_key_concurrency_counts_connected_calls(gateway_factory):
    # 256 descriptors: 3 calls, 1 per key
    gw = gateway_factory(echo_config(), preexec_fn=rlimit(256, 256))
    offer = aiortc_offer()

    async def scenario():
        first = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        other = AiortcCall(gw.url, KEY_B, model=MODEL)
        try:
            await first.connect()
            assert first.connected, first.result.error_body
            assert await first.wait_for(lambda r: r.channel_opened, 20)
            second = await asyncio.to_thread(post_offer, gw.url, GATEWAY_KEY, offer, MODEL)
            await other.connect()
            return second, other.result
        finally:
            await other.close("hangup")
            await first.close("hangup")
    second, other = asyncio.run(scenario())
    assert second.status == 429, second.body
    assert second.json()["error"]["code"] == "too_many_calls"
    assert "live calls" in second.json()["error"]["message"]
    assert other.status == 201, other.error_body


# --------------------------------------------------------------------------- low limits

def test_low_hard_limit_unfinished_setups_are_refused_cleanly(gateway_factory):
    gw = gateway_factory(echo_config(webrtc={"ice_connect_timeout_seconds": 4}),
                         preexec_fn=rlimit(256, 256))
    warm_up(gw)  # pools that live for the process belong to the baseline
    base = snapshot(gw)
    lines_before = gw.stderr().count("\n")
    offer = aiortc_offer()
    keys = [GATEWAY_KEY, KEY_B, ADMIN]
    replies, health = [], []
    stop = threading.Event()

    def watch_health():
        while not stop.is_set():
            health.append(http_request("GET", gw.url + "/healthz", timeout=5).status)
            stop.wait(0.5)

    def post(i):
        replies.append(post_offer(gw.url, keys[i % len(keys)], offer, model=MODEL, timeout=20))

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    posters = []
    try:
        for i in range(45):  # 8 per second, unfinished: nobody does ICE
            t = threading.Thread(target=post, args=(i,))
            t.start()
            posters.append(t)
            time.sleep(0.125)
        for t in posters:
            t.join(30)
    finally:
        stop.set()
        watcher.join(10)
    assert gw.running(), f"the gateway died:\n{gw.stderr()[-3000:]}"
    statuses = [r.status for r in replies]
    assert len(replies) == 45 and None not in statuses, [r.error for r in replies if r.error]
    answered = statuses.count(201)
    assert 1 <= answered <= 20, statuses
    for r in replies:
        if r.status != 201:
            assert_refusal(r)
    assert health and all(s == 200 for s in health), health
    assert http_request("GET", gw.url + "/healthz").status == 200
    logged = gw.stderr().count("\n") - lines_before
    assert logged < 1500, f"{logged} log lines for 45 set-ups"
    assert "Too many open files" not in gw.stderr(), gw.stderr()[-3000:]
    print(f"45 set-ups at 8/s under 256 fds: {answered} answered, statuses {sorted(set(statuses))}"
          f", {logged} log lines, {snapshot(gw)} (baseline {base})")
    # they all end at the ICE timeout, leaving nothing behind
    assert_clean(gw, base, ADMIN, timeout=30)


def test_accept_backs_off_when_out_of_descriptors(gateway_factory):
    # A configured connection cap above what 128 descriptors hold: the table fills with idle
    # connections, and accept() fails with EMFILE.
    gw = gateway_factory(echo_config(limits={"max_connections": 1000,
                                             "header_timeout_seconds": 60}),
                         preexec_fn=rlimit(128, 128))
    held = []
    try:
        # connect until the gateway runs out (the rest then waits in the backlog)
        deadline = time.monotonic() + 40
        while "Too many open files" not in gw.stderr() and time.monotonic() < deadline:
            for _ in range(10):
                s = socket.socket()
                s.settimeout(1.0)
                try:
                    s.connect(("127.0.0.1", gw.port))
                    held.append(s)
                except OSError:  # the backlog is full for now
                    s.close()
        assert "Too many open files" in gw.stderr(), (
            len(held), len(os.listdir(f"/proc/{gw.proc.pid}/fd")))
        time.sleep(1)
        lines_before = gw.stderr().count("\n")
        cpu_before = cpu_seconds(gw.proc.pid)
        time.sleep(3)
        cpu = cpu_seconds(gw.proc.pid) - cpu_before
        lines = gw.stderr().count("\n") - lines_before
        assert gw.running(), gw.stderr()[-3000:]
        assert cpu < 0.6, f"the accept loop spins: {cpu:.2f} s of CPU in 3 s"
        assert lines <= 2, f"{lines} log lines in 3 s:\n{gw.stderr()[-3000:]}"
        log = gw.stderr()
        assert "cannot accept a connection: " in log and "Too many open files" in log, log[-3000:]
    finally:
        for s in held:
            s.close()
    # descriptors free again: accepting resumes
    assert wait_for(lambda: http_request("GET", gw.url + "/healthz", timeout=2).status == 200,
                    15), gw.stderr()[-3000:]


# --------------------------------------------------------------------------- sidebands

def test_sidebands_per_call_are_capped_before_the_upgrade(gateway_factory):
    gw = gateway_factory(echo_config())

    async def scenario():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        assert call.connected, call.result.error_body
        call_id = call.result.call_id
        sides = [WsClient(gw.url, key=GATEWAY_KEY, call_id=call_id) for _ in range(4)]
        for side in sides:
            await side.connect()
            assert side.result.upgraded, side.result.handshake_status
        fifth = WsClient(gw.url, key=GATEWAY_KEY, call_id=call_id)
        await fifth.connect()
        refused = (fifth.result.upgraded, fifth.result.handshake_status,
                   fifth.result.handshake_body)
        await fifth.close()
        # one leaves: there is room again
        await sides.pop().close()
        sixth = None
        for _ in range(50):
            sixth = WsClient(gw.url, key=GATEWAY_KEY, call_id=call_id)
            await sixth.connect()
            if sixth.result.upgraded:
                break
            await sixth.close()
            await asyncio.sleep(0.1)
        upgraded = sixth.result.upgraded
        for side in sides + [sixth]:
            await side.close()
        await call.close("hangup")
        return refused, upgraded
    (upgraded, status, body), sixth_upgraded = asyncio.run(scenario())
    assert not upgraded
    assert status == 429, (status, body)
    assert body["error"]["code"] == "too_many_sidebands", body
    assert "max_sidebands_per_call" in body["error"]["message"]
    assert sixth_upgraded


# --------------------------------------------------------------------------- half-open set-ups

def test_half_open_setups_end_at_the_ice_timeout_and_release_everything(gateway_factory):
    timeout = 3
    gw = gateway_factory(echo_config(webrtc={"ice_connect_timeout_seconds": timeout}))
    warm_up(gw)
    base = snapshot(gw)
    offer = aiortc_offer()
    ids = []
    for key in (GATEWAY_KEY, KEY_B, GATEWAY_KEY):
        reply = post_offer(gw.url, key, offer, model=MODEL)
        assert reply.status == 201, reply.body
        ids.append(reply.headers["Location"].rsplit("/", 1)[1])
    posted = time.monotonic()
    grown = snapshot(gw)
    assert grown["fds"] > base["fds"] + 20, (base, grown)  # each holds two webrtcbins
    assert wait_for(lambda: not debug_calls(gw), timeout + 5), debug_calls(gw)
    assert time.monotonic() - posted < timeout + 5
    for call_id in ids:
        state = http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                             headers={"Authorization": f"Bearer {ADMIN}"}).json()
        assert state["state"] == "ended" and "ICE connect timeout" in state["end_reason"], state
    last = assert_clean(gw, base, ADMIN)
    print(f"3 half-open set-ups: {base} -> {grown} -> {last}")
