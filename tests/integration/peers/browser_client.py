#!/usr/bin/python3
"""Headless Chromium as a WebRTC caller (fake microphone), driven through selenium.

Chromium builds the offer in a small page (browser_page.html, served from a throwaway HTTP
server on 127.0.0.1 — a secure context, so getUserMedia works without CORS on the gateway);
Python does the signalling (POST to the gateway) and hands the answer back to the page.

Sync API (selenium is synchronous):
    result = run_browser_call(base_url, key, model="gpt-realtime",
                              send_events=[{"type": "test.echo", "payload": "hi"}], duration=3)
or, to act while the call is up:
    with BrowserCall(base_url, key, model=...) as call:
        call.connect()
        call.wait_for(lambda r: r.events_of("session.created"), timeout=5)
        call.send({...})
        call.close("close")        # "close" | "hangup" | "leave"
    call.result                    # CallResult (audio_packets_received / _sent from getStats)

CLI: /usr/bin/python3 tests/integration/peers/browser_client.py --base-url URL --key K ...
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterable, Optional

if __package__ in (None, ""):  # run as a script: make "peers" importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

from peers.common import (PEERS_DIR, CallResult, Event, decode_event,  # noqa: E402
                          encode_event, post_hangup, post_offer)

CHROMIUM = os.environ.get("RTGW_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RTGW_CHROMEDRIVER", "/usr/bin/chromedriver")
PAGE = os.path.join(PEERS_DIR, "browser_page.html")
CLOSE_MODES = ("close", "hangup", "leave")
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
]


class _PageServer:
    """Serves browser_page.html on 127.0.0.1:<ephemeral> in a daemon thread."""

    def __init__(self) -> None:
        with open(PAGE, "rb") as f:
            page = f.read()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                body, status = (page, 200) if self.path.split("?")[0] in ("/", "/index.html") \
                    else (b"not found", 404)
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_chromium(script_timeout: float = 30.0, env: Optional[Dict[str, str]] = None,
                   capture_logs: bool = False) -> tuple:
    """(driver, profile_dir): headless Chromium with a fresh profile and a fake microphone.
    ``env``: the browser's environment (e.g. a HOME whose ~/.pki/nssdb trusts a test CA).
    ``capture_logs``: keep the console ("browser") and DevTools network ("performance") logs,
    read with ``driver.get_log(...)``."""
    profile = tempfile.mkdtemp(prefix="rtgw-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    if capture_logs:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=env), options=opts)
    except Exception:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    driver.set_script_timeout(script_timeout)
    driver.set_page_load_timeout(script_timeout)
    return driver, profile


# execute_async_script wrapper: call rtgw.<method>(arg) and hand back {ok} or {error}.
_ASYNC_CALL = """
const done = arguments[arguments.length - 1];
Promise.resolve().then(() => window.rtgw[arguments[0]](arguments[1]))
  .then((v) => done({ok: v === undefined ? null : v}),
        (e) => done({error: String(e && e.stack || e)}));
"""


class BrowserCall:
    """One call from headless Chromium. Use as a context manager (always quits the driver)."""

    def __init__(self, base_url: str, key: Optional[str], model: Optional[str] = None,
                 session: Optional[Dict[str, Any]] = None, send_events: Iterable[Event] = (),
                 http_timeout: float = 15.0, label: str = "oai-events",
                 path: str = "/v1/realtime/calls", record_rtp: bool = False,
                 extra_headers: Optional[Dict[str, str]] = None) -> None:
        self.base_url, self.key, self.model, self.session = base_url, key, model, session
        self.extra_headers = dict(extra_headers or {})  # on the offer's POST (e.g. traceparent)
        self.path = path  # "/v1/realtime": the legacy (beta) WebRTC route
        self.http_timeout, self.label = http_timeout, label
        # record_rtp: the page records each received packet's payload type and sequence number
        # (encoded insertable streams) into result.rtp_received
        self.record_rtp = record_rtp
        self.result = CallResult(client="chromium")
        self._send_events = [encode_event(e) for e in send_events]
        self._server: Optional[_PageServer] = None
        self.driver = None
        self._profile: Optional[str] = None
        self._started = time.monotonic()
        self._closed = False

    def __enter__(self) -> "BrowserCall":
        return self

    def __exit__(self, *exc) -> None:
        self.quit()

    def _js(self, method: str, arg: Any = None) -> Any:
        reply = self.driver.execute_async_script(_ASYNC_CALL, method, arg)
        if "error" in reply:
            raise RuntimeError(f"rtgw.{method}: {reply['error']}")
        return reply["ok"]

    def connect(self) -> CallResult:
        """Start Chromium, build the offer, POST it, set the answer."""
        self._server = _PageServer()
        self.driver, self._profile = start_chromium()
        self.driver.get(self._server.url)
        try:
            self.result.offer_sdp = self._js("offer", {"label": self.label,
                                                      "sendEvents": self._send_events,
                                                      "recordRtp": self.record_rtp})
        except RuntimeError as e:
            self.result.error = str(e)
            return self.result
        reply = post_offer(self.base_url, self.key, self.result.offer_sdp, self.model,
                           self.session, self.http_timeout,
                           extra_headers=self.extra_headers, path=self.path)
        self.result.apply_reply(reply)
        if reply.status == 201:
            try:
                self._js("answer", self.result.answer_sdp)
            except RuntimeError as e:
                self.result.error = str(e)
        return self.result

    @property
    def connected(self) -> bool:
        return self.result.status == 201 and self.result.error is None

    def send(self, event: Event) -> None:
        self.driver.execute_script("window.rtgw.send(arguments[0])", encode_event(event))

    def mute(self) -> None:
        """Stop sending audio (replaceTrack(null) on the audio sender)."""
        self._js("mute")

    def refresh(self) -> CallResult:
        """Pull events, channel and connection state from the page into ``result``."""
        snap = self.driver.execute_script("return window.rtgw.snapshot(arguments[0])",
                                          len(self.result.raw_events))
        for raw in snap["events"]:
            self.result.raw_events.append(raw)
            self.result.events.append(decode_event(raw))
        self.result.sent_events = list(snap["sent"])
        self.result.channel_opened = bool(snap["opened"])
        self.result.remote_closed = bool(snap["remoteClosed"])
        self.result.connection_states = list(snap["states"])
        if snap["errors"] and not self.result.error:
            self.result.error = "; ".join(snap["errors"])
        self.result.elapsed = time.monotonic() - self._started
        return self.result

    def refresh_stats(self) -> CallResult:
        stats = self._js("stats")
        self.result.audio_packets_received = stats["audio_packets_received"]
        self.result.audio_packets_sent = stats["audio_packets_sent"]
        if self.record_rtp:
            self.result.rtp_received = dict(stats.get("rtp") or {},
                                            stats_payload_types=stats["inbound_payload_types"])
        return self.result

    def wait_for(self, predicate: Callable[[CallResult], Any], timeout: float,
                 interval: float = 0.2) -> bool:
        """Poll the page until ``predicate(result)`` is truthy or ``timeout`` passes.
        Stats are refreshed on every poll, so predicates may use the packet counters."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            self.refresh_stats()
            if predicate(self.result):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def close(self, mode: str = "close") -> CallResult:
        """``close``: pc.close() in the page; ``hangup``: POST …/hangup then close;
        ``leave``: quit the browser without closing the peer connection."""
        if mode not in CLOSE_MODES:
            raise ValueError(f"close mode must be one of {CLOSE_MODES}")
        if self._closed or self.driver is None:
            return self.result
        self._closed = True
        try:
            self.refresh()
            self.refresh_stats()
        except Exception as e:  # noqa: BLE001 - a dead page still yields a result
            self.result.error = self.result.error or f"final snapshot failed: {e}"
        if mode == "hangup" and self.result.location:
            self.result.hangup_status = post_hangup(self.base_url, self.key,
                                                    self.result.location).status
        if mode in ("close", "hangup"):
            try:
                self.driver.execute_script("return window.rtgw.close()")
            except Exception:  # noqa: BLE001
                pass
        self.quit()
        return self.result

    def quit(self) -> None:
        """Quit Chromium and the page server; idempotent."""
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:  # noqa: BLE001
                pass
            self.driver = None
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None
        if self._server is not None:
            self._server.close()
            self._server = None


def run_browser_call(base_url: str, key: Optional[str], model: Optional[str] = None,
                     session: Optional[Dict[str, Any]] = None,
                     send_events: Iterable[Event] = (), duration: float = 3.0,
                     until: Optional[Callable[[CallResult], Any]] = None,
                     close: str = "close", http_timeout: float = 15.0) -> CallResult:
    """Place one call from Chromium, keep it up ``duration`` s (or until ``until(result)``),
    end it with ``close``. ``result.audio_packets_received`` / ``audio_packets_sent`` come
    from getStats (inbound-rtp / outbound-rtp, audio)."""
    with BrowserCall(base_url, key, model, session, send_events, http_timeout) as call:
        call.connect()
        if call.connected:
            call.wait_for(until or (lambda r: False), duration)
        call.close(close)
    return call.result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="headless Chromium OpenAI-style WebRTC caller")
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--key")
    ap.add_argument("--model")
    ap.add_argument("--session", help="session JSON (sends multipart sdp+session)")
    ap.add_argument("--event", action="append", default=[], help="event JSON (repeatable)")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--close", choices=CLOSE_MODES, default="close")
    args = ap.parse_args(argv)
    result = run_browser_call(args.base_url, args.key, args.model,
                              json.loads(args.session) if args.session else None,
                              [json.loads(e) for e in args.event], args.duration,
                              close=args.close)
    print(json.dumps(result.to_dict()))
    sys.exit(0 if result.status == 201 and not result.error else 1)


if __name__ == "__main__":
    main()
