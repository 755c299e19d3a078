"""The tester page at GET /: a person's first call, driven in headless Chromium.

Starts the gateway as the README does (no config: echo worker), opens the page, starts a call
with the (fake) microphone, asks for a response, and checks what the page shows: the event log,
the usage row of the turn and the call stats. A screenshot is kept in the test output folder.
"""
from __future__ import annotations

import os
import shutil
import time

from peers.browser_client import start_chromium
from peers.common import http_request


def wait_text(driver, element_id, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        text = driver.find_element("id", element_id).text
        if predicate(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_tester_page_makes_a_call_and_shows_usage(default_gateway, tmp_path):
    page = http_request("GET", default_gateway + "/")
    assert page.status == 200 and "Realtime Gateway tester" in page.body
    driver, profile = start_chromium()
    try:
        driver.get(default_gateway + "/")
        assert wait_text(driver, "model", lambda t: "echo" in t) .strip() == "echo"
        driver.find_element("id", "start").click()
        log = wait_text(driver, "log", lambda t: "data channel open" in t and "session.created" in t)
        assert "session.created" in log, log
        time.sleep(1.5)  # speak a little (fake microphone)
        driver.find_element("id", "respond").click()
        usage = wait_text(driver, "usage", lambda t: "completed" in t)
        assert "completed" in usage, usage
        stats = wait_text(driver, "stats", lambda t: "gateway: active" in t)
        assert "audio packets in" in stats and "gateway: active" in stats, stats
        packets_in = int(stats.split("audio packets in ")[1].split(" ")[0])
        assert packets_in > 20, stats
        out_dir = os.environ.get("RTGW_TEST_OUTPUT", str(tmp_path))
        os.makedirs(out_dir, exist_ok=True)
        driver.save_screenshot(os.path.join(out_dir, "tester-page.png"))
        driver.find_element("id", "hangup").click()
        assert wait_text(driver, "state", lambda t: t == "idle") == "idle"
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_cross_origin_page_calls_with_a_minted_token(fake_upstream, gateway_factory, tmp_path):
    """The page served from another origin: CORS lets it mint a token with the key and call
    with the token; the call reaches the upstream."""
    import functools
    import http.server
    import threading

    from conftest import GATEWAY_KEY, default_gateway_config
    from peers.common import free_port

    page_port = free_port()
    page_origin = f"http://127.0.0.1:{page_port}"
    config = default_gateway_config(fake_upstream)
    config["cors_origins"] = [page_origin]
    gw = gateway_factory(config)
    data_dir = os.path.join(os.path.dirname(__file__), "..", "..", "data")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=data_dir)
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver, profile = start_chromium()
    try:
        driver.get(f"{page_origin}/index.html?gateway={gw.url}")
        driver.find_element("id", "key").send_keys(GATEWAY_KEY)
        driver.execute_script("loadModels()")
        assert "gpt-realtime" in wait_text(driver, "model", lambda t: "gpt-realtime" in t)
        driver.find_element("id", "start").click()
        log = wait_text(driver, "log", lambda t: "session.created" in t or "Error" in t)
        assert "token ek_" in log and "session.created" in log, log
        driver.find_element("id", "respond").click()
        assert "completed" in wait_text(driver, "usage", lambda t: "completed" in t)
        driver.find_element("id", "hangup").click()
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        server.shutdown()
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert req["session"]["model"] == "gpt-realtime"



# --------------------------------------------------------------------------- the grown-up page

# The echo worker behind a gateway with a key, priced so that a turn costs something.
ECHO_PRICES = {"per_million_tokens": {"text_input": 4.0, "audio_input": 32.0,
                                      "text_output": 16.0, "audio_output": 64.0}}
SILENCE_DB = -60.0  # a meter above this heard something (digital silence is -inf)


def keyed_echo_config():
    from conftest import GATEWAY_KEY
    return {"auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]},
            "models": [{"name": "echo", "pricing": ECHO_PRICES,
                        "workers": [{"provider": "echo"}]}]}


class BrowserLogs:
    """What the page did, read from Chromium's console log and DevTools network log (both are
    drained by each read, so they are kept here)."""

    def __init__(self, driver):
        self.driver, self.console, self.responses = driver, [], []

    def read(self):
        import json
        self.console += self.driver.get_log("browser")
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.responseReceived":
                response = message["params"]["response"]
                self.responses.append((response["status"], response["url"]))
        return self

    def errors(self):
        return [e for e in self.console if e.get("level") == "SEVERE"]


def wait_for(predicate, timeout=15.0, every=0.2):
    """predicate() until truthy or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def screenshot(driver, tmp_path, name):
    out_dir = os.environ.get("RTGW_TEST_OUTPUT", str(tmp_path))
    os.makedirs(out_dir, exist_ok=True)
    driver.save_screenshot(os.path.join(out_dir, name))


def test_page_is_told_whether_the_gateway_needs_a_key(gateway_factory):
    """The gateway serving the page fills in its rtgw-auth marker, so the page asks nothing
    that needs a key before one is typed."""
    keyed = gateway_factory(keyed_echo_config())
    keyless = gateway_factory({"models": [{"name": "echo", "workers": [{"provider": "echo"}]}]})
    for gw, expected in ((keyed, "key"), (keyless, "none")):
        page = http_request("GET", gw.url + "/")
        assert page.status == 200, page
        assert f'<meta name="rtgw-auth" content="{expected}">' in page.body, page.body[:800]


def test_page_on_a_keyed_gateway_asks_for_the_key_then_meters_costs_and_timed_log(
        gateway_factory, tmp_path):
    """Opens without an error or a 401 before a key is typed; typing the key fills the model
    list; during a call both level meters move (fake microphone beep, echoed back by the echo
    worker), the gateway's running cost and turn count show after a response, and the event log
    has each event's direction, type and increasing time since the call started."""
    from conftest import GATEWAY_KEY
    gw = gateway_factory(keyed_echo_config())
    driver, profile = start_chromium(capture_logs=True)
    logs = BrowserLogs(driver)
    try:
        driver.set_window_size(1100, 1600)  # the whole page in the screenshots
        driver.get(gw.url + "/")
        time.sleep(1.0)  # room for any request the page would make on its own
        logs.read()
        screenshot(driver, tmp_path, "tester-page-opened.png")
        assert logs.errors() == [], logs.errors()
        assert [r for r in logs.responses if r[0] >= 400] == [], logs.responses
        assert [r for r in logs.responses if "/v1/" in r[1]] == [], logs.responses
        status = wait_text(driver, "auth-status", lambda t: "Type the gateway key" in t)
        assert "Type the gateway key" in status, status
        assert driver.find_element("id", "model").text.strip() == ""
        assert "err" not in driver.find_element("id", "auth-status").get_attribute("class")

        driver.find_element("id", "key").send_keys(GATEWAY_KEY)  # no click elsewhere
        assert wait_text(driver, "model", lambda t: "echo" in t).strip() == "echo"

        driver.find_element("id", "start").click()
        log = wait_text(driver, "log", lambda t: "data channel open" in t and "session.created" in t)
        assert "session.created" in log, log

        # The meters: samples of the page's state while the call runs.
        samples = []

        def both_heard():
            m = driver.execute_script("return window.tester.meters")
            if m["mic"] and m["remote"]:
                samples.append((m["mic"]["db"], m["remote"]["db"]))
            return (any(s[0] is not None and s[0] > SILENCE_DB for s in samples)
                    and any(s[1] is not None and s[1] > SILENCE_DB for s in samples)
                    and len(samples) >= 10)
        assert wait_for(both_heard, timeout=20.0, every=0.1), samples[-20:]
        print(f"meters over {len(samples)} samples: mic max "
              f"{max(s[0] or -999 for s in samples):.1f} dB, return max "
              f"{max(s[1] or -999 for s in samples):.1f} dB")
        mic_levels = {round(s[0], 1) for s in samples if s[0] is not None}
        assert len(mic_levels) > 1, samples  # it moves, not a constant
        mic_bar = float(driver.find_element("id", "mic-meter").get_attribute("value"))
        assert 0.0 <= mic_bar <= 1.0

        driver.find_element("id", "respond").click()
        assert "completed" in wait_text(driver, "usage", lambda t: "completed" in t)
        turns = wait_text(driver, "turns", lambda t: t == "1")
        cost = wait_text(driver, "cost", lambda t: t.startswith("$"))
        assert turns == "1" and cost.startswith("$") and float(cost[1:]) > 0, (turns, cost)
        assert wait_text(driver, "usage", lambda t: "$" in t).count("$") == 1

        events = driver.execute_script("return window.tester.events")
        times = [e["ms"] for e in events]
        assert times == sorted(times) and times[-1] > times[0], events
        kinds = {(e["dir"], e["type"]) for e in events}
        assert ("<", "session.created") in kinds and (">", "response.create") in kinds, kinds
        assert ("<", "response.done") in kinds, kinds
        lines = driver.find_element("id", "log").text.splitlines()
        shown = [int(line.split("ms")[0].strip().lstrip("+")) for line in lines]
        assert shown == sorted(shown) and shown[-1] > 0, lines
        assert any(" < session.created " in line for line in lines), lines
        screenshot(driver, tmp_path, "tester-page-call.png")

        driver.find_element("id", "hangup").click()
        assert wait_text(driver, "state", lambda t: t == "idle") == "idle"
        logs.read()
        assert logs.errors() == [], logs.errors()
        assert [r for r in logs.responses if r[0] == 401] == [], logs.responses
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_keyless_page_lists_models_without_typing_and_keeps_the_last_500_log_entries(
        default_gateway):
    """Keyless loopback gateway: the model list fills with no typing and no console error.
    The log is bounded: the page keeps the last 500 lines and state entries."""
    driver, profile = start_chromium(capture_logs=True)
    try:
        driver.get(default_gateway + "/")
        assert wait_text(driver, "model", lambda t: "echo" in t).strip() == "echo"
        logs = BrowserLogs(driver).read()
        assert logs.errors() == [], logs.errors()
        assert [r for r in logs.responses if r[0] >= 400] == [], logs.responses
        kept = driver.execute_script(
            "for (let i = 0; i < 700; i++) log('<', 'test.event', String(i));"
            "return [document.getElementById('log').childElementCount, window.tester.events.length,"
            "        document.getElementById('log').lastElementChild.textContent];")
        assert kept[0] == 500 and kept[1] == 500 and kept[2].endswith("test.event 699"), kept
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
