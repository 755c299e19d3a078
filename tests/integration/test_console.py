"""The operator console (docs/operations.md "The operator console"): GET /console, its assets,
and the live stream GET /console/stream (Server-Sent Events, admin key only).

The page test drives headless Chromium: sign in with the admin key (a non-admin key first gets a
clear message), an aiortc call appears in the live table, selecting it plots its legs' figures
(the plotted series grow and the canvas changes between two samples), its spend appears, the
console's hang-up button ends it and it leaves the table. Screenshots go to $RTGW_TEST_OUTPUT.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import threading
import time
from typing import Any, Dict, List, Optional

from conftest import GATEWAY_KEY, default_gateway_config
from peers.common import http_request, wait_until

ADMIN = "sk-console-admin-01"
TURN_USD = (12 * 4 + 25 * 32 + 5 * 16 + 15 * 64) / 1e6  # the fake upstream's turn (test_spend)
PRICING = {"per_million_tokens": {"text_input": 4.0, "audio_input": 32.0, "text_output": 16.0,
                                  "audio_output": 64.0}}


def console_gateway(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["auth"]["keys"].append({"name": "ops", "key": ADMIN, "models": ["*"], "admin": True})
    config["models"][0]["pricing"] = PRICING
    return gateway_factory(config)


class SseStream:
    """GET /console/stream read incrementally with http.client (bounded waits)."""

    def __init__(self, gw, key: Optional[str], query: str = "", timeout: float = 10.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.conn.request("GET", "/console/stream" + query, headers=headers)
        self.response = self.conn.getresponse()
        self.status = self.response.status

    def body_json(self) -> Dict[str, Any]:
        return json.loads(self.response.read())

    def next_snapshot(self) -> Dict[str, Any]:
        data: List[str] = []
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("the stream ended")
            line = line.decode().rstrip("\n")
            if line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                return json.loads("\n".join(data))

    def close(self) -> None:
        # The response holds the socket (Connection: close): close both, or it stays open.
        self.response.close()
        self.conn.close()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_console_stream_needs_an_admin_key(fake_upstream, gateway_factory):
    gw = console_gateway(fake_upstream, gateway_factory)
    # No key: 401; a key that is not an admin's: 403. Both with the SPEC's JSON error body.
    anonymous = SseStream(gw, None)
    assert anonymous.status == 401
    assert anonymous.body_json()["error"]["code"] == "missing_api_key"
    anonymous.close()
    member = SseStream(gw, GATEWAY_KEY)
    assert member.status == 403
    assert member.body_json()["error"]["code"] == "admin_required"
    member.close()
    wrong = SseStream(gw, "sk-not-a-key")
    assert wrong.status == 401
    wrong.close()

    # The page and its assets need no key and hold no data.
    page = http_request("GET", gw.url + "/console")
    assert page.status == 200 and "Realtime Gateway console" in page.body
    assert "default-src 'none'" in page.headers.get("Content-Security-Policy", "")
    for asset, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        reply = http_request("GET", f"{gw.url}/console/{asset}")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith(kind), asset
    assert "localStorage" not in http_request("GET", gw.url + "/console/console.js").body
    assert http_request("GET", gw.url + "/console/nope.js").status == 404
    assert http_request("POST", gw.url + "/console/stream", body=b"").status == 405

    # An admin's stream: text/event-stream, a snapshot at once and then one per second; the
    # refusals above are in its errors.
    stream = SseStream(gw, ADMIN)
    assert stream.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    first = stream.next_snapshot()
    assert first["rows"] == [] and first["watch"] is None
    codes = [e["code"] for e in first["errors"]]
    assert "missing_api_key" in codes and "admin_required" in codes, first["errors"]
    started = time.monotonic()
    second = stream.next_snapshot()
    assert second["time"] > first["time"]
    assert time.monotonic() - started < 5
    assert second["errors"] == []  # only what is new since the previous snapshot
    stream.close()


def test_console_streams_are_bounded_and_released(fake_upstream, gateway_factory):
    gw = console_gateway(fake_upstream, gateway_factory)
    time.sleep(0.5)
    baseline = open_fds(gw.proc.pid)
    for _round in range(2):
        streams = [SseStream(gw, ADMIN) for _ in range(8)]
        assert [s.status for s in streams] == [200] * 8
        for s in streams:
            s.next_snapshot()
        ninth = SseStream(gw, ADMIN)
        assert ninth.status == 429
        assert ninth.body_json()["error"]["code"] == "too_many_console_streams"
        ninth.close()
        for s in streams:
            s.close()
        # Each closed stream is noticed and its connection let go (the next round's eight
        # open again), and no descriptor stays behind.
        assert wait_until(lambda: open_fds(gw.proc.pid) <= baseline, timeout=10), \
            (open_fds(gw.proc.pid), baseline)
    assert gw.running()


class CallInThread:
    """An aiortc call (audio both ways through the fake upstream) on its own event loop, kept
    up until the gateway ends it or `stop` is set."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.call_id: Optional[str] = None
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.ended = threading.Event()
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from peers.aiortc_client import AiortcCall

        async def scenario():
            call = AiortcCall(self.url, GATEWAY_KEY, model="gpt-realtime",
                              send_events=[{"type": "response.create"}])
            await call.connect()
            self.call_id = call.result.call_id
            self.ready.set()
            deadline = time.monotonic() + 60
            while not self.stop.is_set() and time.monotonic() < deadline:
                if call.pc.connectionState in ("closed", "failed") or call.result.remote_closed:
                    break
                await asyncio.sleep(0.1)
            self.ended.set()
            await call.close()
        try:
            asyncio.run(scenario())
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.ready.set()
            self.ended.set()


def test_console_page_watches_a_call_and_sees_it_end(fake_upstream, gateway_factory, tmp_path):
    from peers.browser_client import start_chromium

    gw = console_gateway(fake_upstream, gateway_factory)
    out_dir = os.environ.get("RTGW_TEST_OUTPUT", str(tmp_path))
    os.makedirs(out_dir, exist_ok=True)
    driver, profile = start_chromium()
    driver.set_window_size(1400, 1900)  # the whole console in the screenshots
    call: Optional[CallInThread] = None

    def js(expr: str):
        return driver.execute_script("return " + expr)

    def wait_js(expr: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            value = js(expr)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.2)

    try:
        driver.get(gw.url + "/console")
        # A key that is not an admin's: a clear message, and still signed out.
        driver.find_element("id", "admin-key").send_keys(GATEWAY_KEY)
        driver.find_element("id", "sign-in-button").click()
        message = wait_js("document.getElementById('sign-in-error').textContent")
        assert "not an admin key" in message, message
        assert js("window.rtgwConsole.signedIn") is False
        assert js("window.rtgwConsole.key") is None

        driver.find_element("id", "admin-key").clear()
        driver.find_element("id", "admin-key").send_keys(ADMIN)
        driver.find_element("id", "sign-in-button").click()
        assert wait_js("window.rtgwConsole.snapshots >= 1"), driver.find_element("id", "status").text
        # Memory only: nothing in storage or cookies.
        assert js("localStorage.length + sessionStorage.length") == 0
        assert js("document.cookie") == ""

        call = CallInThread(gw.url)
        assert call.ready.wait(30) and call.call_id, call.error
        call_id = call.call_id
        assert wait_js(f"window.rtgwConsole.rows.some(r => r.id === '{call_id}' && r.state === 'active')"), \
            js("window.rtgwConsole.rows")
        row = driver.find_element("css selector", f"#live tbody tr[data-id='{call_id}']")
        assert "webrtc" in row.text and "team-a" in row.text and "gpt-realtime" in row.text
        row.click()
        assert wait_js("window.rtgwConsole.series && window.rtgwConsole.series.time.length >= 3")

        # The plot moves: the client leg's received packets grow between two samples, its
        # packet rate is plotted, and the canvas's pixels change.
        def sample():
            return js("[window.rtgwConsole.series.packetsReceived[0], window.rtgwConsole.series.time.length,"
                      " document.getElementById('chart-packets').toDataURL()]")
        before = sample()
        assert wait_js(f"window.rtgwConsole.series.time.length >= {before[1] + 2}", timeout=15)
        after = sample()
        assert after[0] > before[0] > 0, (before[0], after[0])
        assert after[2] != before[2], "the packets plot did not change"
        rates = js("window.rtgwConsole.series.packets[0].filter(v => v > 0).length")
        assert rates >= 1, js("window.rtgwConsole.series.packets")
        # The upstream leg carries the worker's audio back; jitter is measured on both legs.
        assert wait_js("window.rtgwConsole.series.packetsReceived[1] > 0", timeout=10)
        jitter = js("window.rtgwConsole.series.jitter.map(l => l[l.length - 1])")
        assert all(isinstance(v, (int, float)) and v >= 0 for v in jitter), jitter
        # The turn's cost reaches the table and the spend chart (hour window).
        assert wait_js(f"window.rtgwConsole.rows.some(r => r.id === '{call_id}' && r.turns >= 1)")
        spend = wait_js("window.rtgwConsole.spend.hour.length && window.rtgwConsole.spend.hour")
        assert spend and abs(spend[0]["total_usd"] - TURN_USD) < 1e-9, spend
        assert "team-a · gpt-realtime" in driver.find_element("id", "spend-legend").text
        driver.save_screenshot(os.path.join(out_dir, "console-live-call.png"))

        # Hang up from the console: the call leaves the table.
        row = driver.find_element("css selector", f"#live tbody tr[data-id='{call_id}']")
        row.find_element("css selector", "button.hangup").click()
        assert wait_js(f"!window.rtgwConsole.rows.some(r => r.id === '{call_id}')"), \
            js("window.rtgwConsole.rows")
        assert not driver.find_elements("css selector", f"#live tbody tr[data-id='{call_id}']")
        assert wait_js("document.getElementById('call-state').textContent === 'ended'")
        assert call.ended.wait(15), "the aiortc peer did not see the hang-up"
        # The refusal of the first sign-in is listed once, though each stream (one per watched
        # call) sends the ring again.
        seqs = js("window.rtgwConsole.errors.map(e => e.seq)")
        assert len(seqs) == len(set(seqs)), seqs
        codes = js("window.rtgwConsole.errors.map(e => e.code)")
        assert codes.count("admin_required") == 1, codes
        driver.save_screenshot(os.path.join(out_dir, "console-after-hangup.png"))
        # Signing out forgets the key and what it read, and closes the stream.
        driver.find_element("id", "sign-out").click()
        assert js("window.rtgwConsole.key") is None and js("window.rtgwConsole.errors.length") == 0
        snapshots = js("window.rtgwConsole.snapshots")
        time.sleep(2.5)
        assert js("window.rtgwConsole.snapshots") == snapshots
    finally:
        if call:
            call.stop.set()
            call.thread.join(20)
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_console_stream_shows_a_websocket_session_and_its_spend(fake_upstream, gateway_factory):
    from peers.ws_client import WsClient

    gw = console_gateway(fake_upstream, gateway_factory)
    stream = SseStream(gw, ADMIN)
    assert stream.status == 200
    assert stream.next_snapshot()["rows"] == []

    async def scenario():
        async with WsClient(gw.url, key=GATEWAY_KEY, model="gpt-realtime") as client:
            assert client.connected, client.result
            await client.wait_for(lambda r: r.events_of("session.created"), 10)
            await client.send({"type": "response.create"})
            assert await client.wait_for(lambda r: r.events_of("response.done"), 10)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                snap = await asyncio.to_thread(stream.next_snapshot)
                rows = [r for r in snap["rows"] if r["transport"] == "websocket"]
                if rows and rows[0]["turns"] >= 1 and snap["spend"]["hour"]:
                    return rows[0], snap
            raise AssertionError("the session's turn did not reach the stream")
    row, snap = asyncio.run(scenario())
    assert row["id"].startswith("ws_") and row["key"] == "team-a" and row["model"] == "gpt-realtime"
    assert row["state"] and row["age_seconds"] >= 0
    assert abs(row["cost_usd"] - TURN_USD) < 1e-9
    assert row["events_from_client"] >= 1 and row["events_from_upstream"] >= 1
    (spend,) = snap["spend"]["hour"]
    assert (spend["key"], spend["model"]) == ("team-a", "gpt-realtime")
    assert len(spend["buckets"]) == 60 and abs(spend["buckets"][-1] - TURN_USD) < 1e-9
    (day,) = snap["spend"]["day"]
    assert len(day["buckets"]) == 24 and abs(day["total_usd"] - TURN_USD) < 1e-9
    # The session closed: it leaves the rows.
    deadline = time.monotonic() + 10
    while stream.next_snapshot()["rows"]:
        assert time.monotonic() < deadline, "the closed session stayed in the stream"
    stream.close()
