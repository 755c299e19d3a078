"""Per-call recording (config `recording`, src/recording/): each audio direction of a recorded
call to an Ogg/Opus file, fetched with GET /v1/realtime/calls/{id}/recording.

  * a recorded aiortc call, and a Chromium one (audio both ways: the client's and the fake
    worker's tone), leaves
    {dir}/{id}.client.ogg and .upstream.ogg that decode with GStreamer, each lasting the call's
    connected time within 0.5 s, and a {id}.json sidecar naming the owner key;
  * a call whose key and model match no pattern has no recording element in its pipeline;
  * the file goes to its owner and admins; another key gets 404, no key 401, a bad direction 400;
  * the retention sweep at start-up removes recordings older than retention_days, nothing else;
  * a full disk (a tiny tmpfs; needs root to mount it, else skipped) stops the recording, counts
    rtgw_recording_failures_total, and the call goes on with audio both ways;
  * SIGTERM's drain hangs a recorded call up and its files end with an end-of-stream page.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.browser_client import BrowserCall
from peers.common import http_request

ADMIN = "sk-admin-recording"
OTHER = "sk-test-other-key"
MIN_PACKETS = 100
DECODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers", "ogg_opus_info.py")


def recording_config(fake_upstream, rec_dir, keys=("team-a",), models=(), **extra):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"] += [
        {"name": "ops", "key": ADMIN, "models": ["*"], "admin": True},
        {"name": "team-b", "key": OTHER, "models": ["*"]},
    ]
    config["recording"] = {"dir": str(rec_dir), "keys": list(keys), "models": list(models),
                           **extra}
    return config


def get_bytes(url, key=None, timeout=15.0):
    """(status, content type, body bytes): the recording is binary."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers.get("Content-Type"), e.read()


def ogg_info(path):
    """Seconds of audio decoded from an Ogg/Opus file, and its container duration."""
    out = subprocess.run(["/usr/bin/python3", DECODE, path], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, (path, out.stdout, out.stderr)
    return json.loads(out.stdout)


def metric(text, name):
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_until(predicate, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def ended_state(gw, call_id, key=GATEWAY_KEY):
    def ended():
        r = http_request("GET", f"{gw.url}/v1/realtime/calls/{call_id}",
                         headers={"Authorization": f"Bearer {key}"})
        return r.json() if r.status == 200 and r.json().get("state") == "ended" else None
    return wait_until(ended, 15)


async def recorded_call(gw, key=GATEWAY_KEY, seconds=4.0, during=None):
    """An aiortc call with audio both ways for about ``seconds`` after audio flows; ``during``
    (a coroutine function of the call) runs while it is live. Returns (result, during's)."""
    call = AiortcCall(gw.url, key, model="gpt-realtime")
    await call.connect()
    assert call.connected, (call.result.status, call.result.error_body, call.result.error)
    seen = None
    try:
        assert await call.wait_for(lambda r: (r.rtp_received or {}).get("packets", 0) >= 10, 15)
        await asyncio.sleep(seconds)
        if during is not None:
            seen = await during(call)
    finally:
        await call.close()
    return call.result, seen


def test_recorded_call_files_decode_and_last_as_long_as_the_call(fake_upstream, gateway_factory,
                                                                 tmp_path):
    rec_dir = tmp_path / "recordings"  # created by the gateway
    gw = gateway_factory(recording_config(fake_upstream, rec_dir))

    async def during(call):
        dot = http_request("GET", f"{gw.url}/debug/calls/{call.result.call_id}/pipeline.dot",
                           headers={"Authorization": f"Bearer {ADMIN}"})
        live = get_bytes(f"{gw.url}/v1/realtime/calls/{call.result.call_id}/recording"
                         "?direction=client", GATEWAY_KEY)
        return dot, live

    result, (dot, live) = asyncio.run(recorded_call(gw, during=during))
    call_id = result.call_id
    # the recording branch is in the live pipeline, on both directions
    assert dot.status == 200
    for direction in ("client", "upstream"):
        assert f"recording_{direction}_mux" in dot.body and "GstOggMux" in dot.body
    assert live[0] == 200 and live[2][:4] == b"OggS", live[:2]  # a live call's file so far

    state = check_recording(gw, rec_dir, call_id)
    media = state["media"]
    assert media["packets_from_client"] >= MIN_PACKETS and \
        media["packets_from_upstream"] >= MIN_PACKETS, media
    sidecar = json.loads((rec_dir / f"{call_id}.json").read_text())
    assert sidecar["model"] == "gpt-realtime" and sidecar["ended_unix_ms"] >= \
        sidecar["started_unix_ms"] > 0, sidecar
    for direction in ("client", "upstream"):
        # the HTTP route serves the same bytes as the file
        status, ctype, body = get_bytes(
            f"{gw.url}/v1/realtime/calls/{call_id}/recording?direction={direction}", GATEWAY_KEY)
        assert status == 200 and ctype == "audio/ogg"
        assert body == (rec_dir / f"{call_id}.{direction}.ogg").read_bytes()
    assert "CRITICAL" not in gw.stderr()


def check_recording(gw, rec_dir, call_id, key_name="team-a"):
    """Both files of an ended call decode and last its connected time within 0.5 s."""
    state = ended_state(gw, call_id)
    assert state, "the call never ended"
    assert state["recording"] == {"client": "finished", "upstream": "finished"}, state
    timings = state["timings"]
    connected_s = (timings["duration_ms"] - timings["connected_ms"]) / 1000.0
    sidecar = json.loads((rec_dir / f"{call_id}.json").read_text())
    assert sidecar["call_id"] == call_id and sidecar["key"] == key_name, sidecar
    for direction in ("client", "upstream"):
        info = ogg_info(str(rec_dir / f"{call_id}.{direction}.ogg"))
        print(f"{direction}: {info} connected {connected_s:.3f} s")
        assert abs(info["duration_seconds"] - connected_s) <= 0.5, (direction, info, connected_s)
        assert abs(info["decoded_seconds"] - connected_s) <= 0.5, (direction, info, connected_s)
    return state


def test_chromium_recorded_call_files_decode_and_last_as_long_as_the_call(
        fake_upstream, gateway_factory, tmp_path):
    rec_dir = tmp_path / "recordings"
    gw = gateway_factory(recording_config(fake_upstream, rec_dir))
    with BrowserCall(gw.url, GATEWAY_KEY, model="gpt-realtime", record_rtp=True) as call:
        call.connect()
        assert call.connected, (call.result.status, call.result.error_body, call.result.error)
        assert call.wait_for(lambda r: (r.rtp_received or {}).get("packets", 0) >= 200, 20)
        result = call.close("close")
    state = check_recording(gw, rec_dir, result.call_id)
    assert state["media"]["packets_from_client"] >= MIN_PACKETS, state["media"]


def test_unrecorded_call_has_no_recording_elements(fake_upstream, gateway_factory, tmp_path):
    rec_dir = tmp_path / "recordings"
    # team-a's calls are not recorded: only team-b's and another model's would be
    gw = gateway_factory(recording_config(fake_upstream, rec_dir, keys=["team-b"],
                                          models=["other-*"]))

    async def during(call):
        return http_request("GET", f"{gw.url}/debug/calls/{call.result.call_id}/pipeline.dot",
                            headers={"Authorization": f"Bearer {ADMIN}"})

    result, dot = asyncio.run(recorded_call(gw, seconds=1.0, during=during))
    assert dot.status == 200 and dot.body.startswith("digraph")
    for marker in ("recording_", "GstOggMux", "GstFileSink", "GstOpusParse", "GstRTPOpusDepay"):
        assert marker not in dot.body, marker
    state = ended_state(gw, result.call_id)
    assert "recording" not in state
    assert not [f for f in os.listdir(rec_dir) if f.startswith(result.call_id)]
    status, _, body = get_bytes(
        f"{gw.url}/v1/realtime/calls/{result.call_id}/recording?direction=client", GATEWAY_KEY)
    assert status == 404 and json.loads(body)["error"]["code"] == "recording_not_found"


def test_recording_access_owner_admin_other_key(fake_upstream, gateway_factory, tmp_path):
    rec_dir = tmp_path / "recordings"
    gw = gateway_factory(recording_config(fake_upstream, rec_dir, keys=[], models=["gpt-*"]))
    result, _ = asyncio.run(recorded_call(gw, seconds=1.0))
    call_id = result.call_id
    assert ended_state(gw, call_id)
    base = f"{gw.url}/v1/realtime/calls/{call_id}/recording"
    owner = get_bytes(base + "?direction=upstream", GATEWAY_KEY)
    assert owner[0] == 200 and owner[1] == "audio/ogg" and owner[2][:4] == b"OggS"
    admin = get_bytes(base + "?direction=client", ADMIN)
    assert admin[0] == 200 and admin[2][:4] == b"OggS"
    other = get_bytes(base + "?direction=client", OTHER)
    assert other[0] == 404, other[:2]
    assert json.loads(other[2])["error"]["code"] == "recording_not_found"
    assert get_bytes(base + "?direction=client")[0] == 401
    bad = get_bytes(base + "?direction=both", GATEWAY_KEY)
    assert bad[0] == 400 and json.loads(bad[2])["error"]["code"] == "invalid_direction"
    assert get_bytes(base, GATEWAY_KEY)[0] == 400
    assert get_bytes(f"{gw.url}/v1/realtime/calls/rtc_nosuchcall/recording?direction=client",
                     ADMIN)[0] == 404
    assert get_bytes(f"{gw.url}/v1/realtime/calls/..%2F..%2Fetc/recording?direction=client",
                     ADMIN)[0] in (400, 404)
    assert get_bytes(f"{gw.url}/v1/realtime/calls/{call_id}.client.ogg%00/recording"
                     "?direction=client", ADMIN)[0] in (400, 404)
    # the owner survives a restart: it comes from the sidecar
    gw.stop()
    gw2 = gateway_factory(recording_config(fake_upstream, rec_dir, keys=[], models=["gpt-*"]))
    base2 = f"{gw2.url}/v1/realtime/calls/{call_id}/recording"
    assert get_bytes(base2 + "?direction=client", GATEWAY_KEY)[0] == 200
    assert get_bytes(base2 + "?direction=client", OTHER)[0] == 404


def test_retention_sweep_removes_old_recordings_at_start(fake_upstream, gateway_factory,
                                                         tmp_path):
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    old = time.time() - 40 * 86400
    names = {"rtc_old.client.ogg": old, "rtc_old.upstream.ogg": old, "rtc_old.json": old,
             "rtc_new.client.ogg": None, "rtc_new.json": None, "notes.txt": old}
    for name, mtime in names.items():
        (rec_dir / name).write_bytes(b"x")
        if mtime:
            os.utime(rec_dir / name, (mtime, mtime))
    gw = gateway_factory(recording_config(fake_upstream, rec_dir, retention_days=30))
    assert wait_until(lambda: not (rec_dir / "rtc_old.json").exists(), 10), \
        sorted(os.listdir(rec_dir))
    assert sorted(os.listdir(rec_dir)) == ["notes.txt", "rtc_new.client.ogg", "rtc_new.json"]
    assert wait_until(lambda: "removed 3 file(s)" in gw.stderr(), 5), gw.stderr()[-2000:]


def test_check_config_refuses_an_unusable_recording_dir(fake_upstream, tmp_path):
    binary = os.environ.get("RTGW_BINARY")
    if not binary:
        pytest.skip("RTGW_BINARY is not set")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for rec_dir, ok in ((blocker / "sub", False), (tmp_path / "new" / "recordings", True)):
        config = recording_config(fake_upstream, rec_dir)
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        out = subprocess.run([binary, "--config", str(path), "--check-config"],
                             capture_output=True, text=True, timeout=60)
        if ok:
            assert out.returncode == 0, out.stderr
            assert rec_dir.is_dir()
        else:
            assert out.returncode != 0 and "recording.dir" in out.stderr, (out.stdout, out.stderr)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (root only: skipped elsewhere)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs",
                          str(mount_point)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {out.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_full_disk_stops_the_recording_and_the_call_goes_on(fake_upstream, gateway_factory,
                                                           tiny_disk):
    gw = gateway_factory(recording_config(fake_upstream, tiny_disk))

    def df_full():
        st = os.statvfs(tiny_disk)
        return st.f_bavail == 0

    async def during(call):
        # wait for the disk to fill and the failure to be seen, then check the call still
        # relays audio both ways for another second
        def failed():
            text = http_request("GET", gw.url + "/metrics").body
            return (metric(text, "rtgw_recording_failures_total") or 0) >= 1
        assert await asyncio.to_thread(wait_until, failed, 30), \
            (df_full(), os.listdir(tiny_disk), gw.stderr()[-3000:])
        state = http_request("GET", f"{gw.url}/v1/realtime/calls/{call.result.call_id}",
                             headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()
        await call.wait_for(lambda r: True, 0)  # the client's counters, as of now
        before = call.result.rtp_received["packets"]
        upstream_before = state["media"]["packets_from_client"]
        await call.wait_for(lambda r: r.rtp_received["packets"] >= before + 40, 10)
        after = http_request("GET", f"{gw.url}/v1/realtime/calls/{call.result.call_id}",
                             headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).json()
        return state, before, upstream_before, call.result.rtp_received["packets"], after

    result, (state, before, up_before, after_packets, after) = asyncio.run(
        recorded_call(gw, seconds=0.5, during=during))
    assert state["state"] == "active" and "failed" in state["recording"].values(), state
    assert after["state"] == "active", after
    assert after_packets >= before + 40, (before, after_packets)  # the client still hears
    assert after["media"]["packets_from_client"] >= up_before + 40, after["media"]
    ended = ended_state(gw, result.call_id)
    assert ended["end_reason"] != "" and "pipeline error" not in ended["end_reason"], ended
    text = http_request("GET", gw.url + "/metrics").body
    assert metric(text, "rtgw_recording_failures_total") >= 1
    # logged once per stopped branch, not once per packet
    stops = gw.stderr().count("recording ") and len(re.findall(r"recording \S+ stopped:",
                                                                gw.stderr()))
    assert 1 <= stops <= 2, gw.stderr()[-3000:]


def last_ogg_page_flags(path):
    """The header type of the file's last complete Ogg page (0x04: end of stream)."""
    data = open(path, "rb").read()
    at, flags = 0, None
    while at + 27 <= len(data) and data[at:at + 4] == b"OggS":
        segments = data[at + 26]
        if at + 27 + segments > len(data):
            break
        size = 27 + segments + sum(data[at + 27:at + 27 + segments])
        if at + size > len(data):
            break
        flags, at = data[at + 5], at + size
    return flags


def test_sigterm_drain_finishes_the_files(fake_upstream, gateway_factory, tmp_path):
    rec_dir = tmp_path / "recordings"
    config = recording_config(fake_upstream, rec_dir)
    config["limits"] = {"drain_timeout_seconds": 1}
    gw = gateway_factory(config)

    async def during(call):
        gw.proc.send_signal(signal.SIGTERM)  # the drain hangs the live call up after 1 s
        await asyncio.to_thread(gw.proc.wait, 20)

    result, _ = asyncio.run(recorded_call(gw, seconds=1.5, during=during))
    assert gw.proc.returncode == 0, gw.stderr()[-3000:]
    for direction in ("client", "upstream"):
        path = str(rec_dir / f"{result.call_id}.{direction}.ogg")
        assert last_ogg_page_flags(path) is not None and last_ogg_page_flags(path) & 0x04, \
            (direction, "no end-of-stream page")
        assert ogg_info(path)["decoded_seconds"] > 1.0
    sidecar = json.loads((rec_dir / f"{result.call_id}.json").read_text())
    assert sidecar["ended_unix_ms"] > 0, sidecar
