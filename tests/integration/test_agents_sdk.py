"""The official Agents SDK (`@openai/agents-realtime`, pinned in peers/package.json) in headless
Chromium, from a page on another origin: an ek_ token minted by the gateway, OpenAIRealtimeWebRTC
with its baseUrl on the gateway, a fake microphone, `response.create`, `response.done` back from
the built-in echo worker. The SDK sends `X-OpenAI-Agents-SDK` on its SDP POST: a preflight that
leaves that header out makes the SDK fail with `TypeError: Failed to fetch`."""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
import time

from conftest import GATEWAY_KEY
from peers.browser_client import start_chromium
from peers.common import PEERS_DIR, free_port, http_request

SDK_BUNDLE = os.path.join(PEERS_DIR, "node_modules", "@openai", "agents-realtime", "dist",
                          "bundle")


class _SdkPageServer:
    """The page at / and the SDK's own browser bundle at /sdk/, on 127.0.0.1:<port>."""

    def __init__(self, port: int) -> None:
        with open(os.path.join(PEERS_DIR, "agents_sdk_page.html"), "rb") as f:
            page = f.read()

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=SDK_BUNDLE, **kw)

            def do_GET(self):  # noqa: N802 - http.server API
                path = self.path.split("?")[0]
                if path == "/":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                elif path.startswith("/sdk/"):
                    self.path = path[len("/sdk"):]
                    super().do_GET()
                else:
                    self.send_error(404)

            def guess_type(self, path):
                return "text/javascript" if str(path).endswith(".mjs") else super().guess_type(path)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.origin = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _snapshot(driver, seen):
    return driver.execute_script("return window.sdk.snapshot(arguments[0])", seen)


def test_agents_sdk_webrtc_from_another_origin(gateway_factory):
    assert os.path.isdir(SDK_BUNDLE), \
        "run `npm ci` in tests/integration/peers (it installs @openai/agents-realtime)"
    page_port = free_port()
    page = _SdkPageServer(page_port)
    gw = gateway_factory({
        "listen": "127.0.0.1:0",
        "cors_origins": [page.origin],
        "auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]},
        "models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
        "usage": {"log": "usage.jsonl"},
    })
    assert page.origin != gw.url
    # The app's server mints the token with its key (never sent to the browser).
    minted = http_request("POST", gw.url + "/v1/realtime/client_secrets",
                          headers={"Authorization": f"Bearer {GATEWAY_KEY}",
                                   "Content-Type": "application/json"},
                          body=json.dumps({"session": {"type": "realtime", "model": "echo"}}).encode())
    assert minted.status == 200, minted.body
    token = minted.json()["value"]
    assert token.startswith("ek_")

    driver, profile = start_chromium(script_timeout=45)
    try:
        driver.get(page.origin + "/")
        deadline = time.monotonic() + 15
        while not driver.execute_script("return window.sdkReady === true"):
            assert time.monotonic() < deadline, "the SDK bundle did not load"
            time.sleep(0.1)
        reply = driver.execute_async_script(
            """const done = arguments[arguments.length - 1];
               window.sdk.connect(arguments[0]).then((s) => done({ok: s}),
                                                     (e) => done({error: String(e && e.stack || e)}));""",
            {"baseUrl": gw.url + "/v1/realtime/calls", "token": token, "model": "echo"})
        assert reply.get("ok") == "connected", reply
        time.sleep(1.0)  # the fake microphone speaks a little
        driver.execute_script("window.sdk.send({type: 'response.create'})")
        events, errors = [], []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            snap = _snapshot(driver, len(events))
            events += [json.loads(e) for e in snap["events"]]
            errors = snap["errors"]
            if any(e.get("type") == "response.done" for e in events):
                break
            time.sleep(0.2)
        types = [e.get("type") for e in events]
        assert "session.updated" in types, (types, errors)
        dones = [e for e in events if e.get("type") == "response.done"]
        assert len(dones) == 1, (types, errors)
        done = dones[0]
        assert done["response"]["status"] == "completed", done
        assert done["response"]["usage"]["input_token_details"]["audio_tokens"] > 0, done
        assert not errors, errors
        driver.execute_script("window.sdk.close()")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        page.close()
    # The turn was metered under the token's key and model.
    with open(os.path.join(gw.workdir, "usage.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    assert [(r["key"], r["model"], r["response_id"]) for r in records] == \
        [("team-a", "echo", done["response"]["id"])], records
