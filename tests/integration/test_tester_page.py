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

