#!/usr/bin/python3
"""A WebSocket client for ``GET /v1/realtime`` (the gateway's, or the fake upstream's), on
aiohttp's ``ClientSession.ws_connect``. Every wait is bounded; the reader stops by itself.

Synchronous tests:
    r = run_ws_session(base_url, key=K, model="gpt-realtime",
                       send_events=[{"type": "test.echo", "payload": "x"}, 0.5, b"\\x00"],
                       until=lambda r: r.events_of("test.echoed"), duration=5)
    r.status              101 when upgraded, else the refusal's HTTP status (None: no answer)
    r.handshake_status    the refusal's HTTP status (None when upgraded), r.handshake_body (JSON)
    r.protocol            the negotiated subprotocol (e.g. "realtime")
    r.events / r.events_of(type) / r.event_types() / r.raw_events / r.binary_messages
    r.close_code, r.close_reason   from the close frame the server sent (1006: the connection
                                   dropped without one); r.closed_by_server
Items of ``send_events``: dict (JSON-encoded), str (sent verbatim), bytes (a binary message),
a number (pause that many seconds). They are sent once the first ``send_after`` event
(default ``session.created``) arrived — or right away with ``send_after=None``.

Async tests that interleave actions (keep a socket open while doing other things):
    ws = WsClient(base_url, key=K, model="gpt-realtime")       # or call_id=..., subprotocol_key=...
    await ws.connect()                     # bounded; ws.connected tells if it upgraded
    await ws.wait_for(lambda r: r.events_of("session.created"), 5)
    await ws.send({"type": "test.echo", "payload": "x"})
    await ws.wait_closed(5)                # the server closed (True) or timeout (False)
    await ws.close(1000, "bye")            # or: await ws.abort()  (no close frame)
    ws.result                              # WsResult
``async with WsClient(...) as ws:`` connects and closes.

Auth: ``key`` -> ``Authorization: Bearer key``; ``subprotocol_key`` -> the browser SDKs'
subprotocols ``["realtime", "openai-insecure-api-key.<key>", "openai-beta.realtime-v1"]``;
``protocols`` sets the offered list outright; ``beta_header=True`` adds
``OpenAI-Beta: realtime=v1``.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

if __package__ in (None, ""):  # run as a script: make "peers" importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiohttp  # noqa: E402
from aiohttp import WSMsgType  # noqa: E402

from peers.common import decode_event, encode_event  # noqa: E402

MAX_MESSAGE_BYTES = 16 << 20
SDK_BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
MAX_KEPT_MESSAGES = 10000   # per result: a misbehaving server cannot grow it without limit

SendItem = Union[Dict[str, Any], str, bytes, int, float]


def sdk_subprotocols(key: str, beta: bool = True) -> List[str]:
    """The subprotocols OpenAI's browser SDKs offer (the key travels in the second one)."""
    protocols = ["realtime", KEY_SUBPROTOCOL_PREFIX + key]
    if beta:
        protocols.append(SDK_BETA_SUBPROTOCOL)
    return protocols


def ws_url(base_url: str, model: Optional[str] = None, call_id: Optional[str] = None,
           path: str = "/v1/realtime", query: Optional[Dict[str, str]] = None) -> str:
    """``ws://host:port/v1/realtime?model=…`` (or ``call_id=…``) from an http(s) base URL."""
    base = base_url.rstrip("/")
    if base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    elif base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    params: Dict[str, str] = {}
    if model is not None:
        params["model"] = model
    if call_id is not None:
        params["call_id"] = call_id
    params.update(query or {})
    return base + path + ("?" + urllib.parse.urlencode(params) if params else "")


@dataclass
class WsResult:
    """What a WebSocket client saw."""
    url: str = ""
    upgraded: bool = False
    handshake_status: Optional[int] = None          # HTTP status when the upgrade was refused
    handshake_headers: Dict[str, str] = field(default_factory=dict)
    handshake_text: Optional[str] = None            # the refusal's body, raw
    handshake_body: Any = None                      # ... parsed as JSON (None if it is not)
    response_headers: Dict[str, str] = field(default_factory=dict)  # of the 101
    protocol: Optional[str] = None                  # negotiated subprotocol
    offered_protocols: List[str] = field(default_factory=list)
    error: Optional[str] = None                     # client-side failure (refused, timeout)
    events: List[Dict[str, Any]] = field(default_factory=list)      # parsed text messages
    raw_events: List[str] = field(default_factory=list)
    event_times: List[float] = field(default_factory=list)          # monotonic, per event
    binary_messages: List[bytes] = field(default_factory=list)
    sent_events: List[str] = field(default_factory=list)            # text messages sent
    sent_binary: int = 0
    closed: bool = False
    closed_by_server: bool = False                  # the server sent a close frame / dropped
    close_frame_received: bool = False
    close_code: Optional[int] = None                # from the server's close frame (1006: none)
    close_reason: Optional[str] = None
    client_close_code: Optional[int] = None         # what we closed with, if we closed first
    opened_at: Optional[float] = None               # monotonic
    closed_at: Optional[float] = None               # monotonic
    last_message_at: Optional[float] = None         # monotonic, last message received
    last_sent_at: Optional[float] = None            # monotonic, last message sent

    @property
    def status(self) -> Optional[int]:
        return 101 if self.upgraded else self.handshake_status

    @property
    def error_code(self) -> Optional[str]:
        """``handshake_body["error"]["code"]`` when there is one."""
        body = self.handshake_body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return body["error"].get("code")
        return None

    def events_of(self, type_: str) -> List[Dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type_]

    def event_types(self) -> List[str]:
        return [str(e.get("type")) for e in self.events]

    def to_dict(self) -> Dict[str, Any]:
        d = dict(self.__dict__)
        d["binary_messages"] = [b.hex() for b in self.binary_messages]
        d["event_types"] = self.event_types()
        d["status"] = self.status
        return d


def _capturing_response_class(sink: Dict[str, Any]):
    """A ClientResponse that keeps the status, headers and (for a refusal) the body of the
    handshake: aiohttp's ws_connect raises without the body."""

    class CapturingResponse(aiohttp.ClientResponse):
        async def start(self, connection):
            await super().start(connection)
            sink["status"] = self.status
            sink["headers"] = {k: v for k, v in self.headers.items()}
            if self.status != 101:
                try:
                    sink["body"] = await asyncio.wait_for(self.read(), 5)
                except Exception as e:  # noqa: BLE001 - the status is what matters most
                    sink["body_error"] = repr(e)
            return self

    return CapturingResponse


class WsClient:
    """One WebSocket session. Create inside a running event loop."""

    def __init__(self, base_url: str, *, key: Optional[str] = None,
                 subprotocol_key: Optional[str] = None, model: Optional[str] = None,
                 call_id: Optional[str] = None, query: Optional[Dict[str, str]] = None,
                 path: str = "/v1/realtime", url: Optional[str] = None,
                 protocols: Optional[Sequence[str]] = None, beta_subprotocol: bool = True,
                 beta_header: bool = False, headers: Optional[Dict[str, str]] = None,
                 connect_timeout: float = 10.0, close_timeout: float = 5.0,
                 max_msg_size: int = MAX_MESSAGE_BYTES,
                 on_event: Optional[Callable[[Dict[str, Any], "WsClient"], None]] = None) -> None:
        self.url = url or ws_url(base_url, model, call_id, path, query)
        self.headers: Dict[str, str] = dict(headers or {})
        if key is not None:
            self.headers["Authorization"] = f"Bearer {key}"
        if beta_header:
            self.headers["OpenAI-Beta"] = "realtime=v1"
        if protocols is not None:
            self.protocols = list(protocols)
        elif subprotocol_key is not None:
            self.protocols = sdk_subprotocols(subprotocol_key, beta_subprotocol)
        else:
            self.protocols = []
        self.connect_timeout, self.close_timeout = connect_timeout, close_timeout
        self.max_msg_size = max_msg_size
        self.on_event = on_event
        self.result = WsResult(url=self.url, offered_protocols=list(self.protocols))
        self._handshake: Dict[str, Any] = {}
        self._session: Optional[aiohttp.ClientSession] = None
        self._ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self._reader: Optional[asyncio.Task] = None
        self._closed_event = asyncio.Event()

    # -- connecting ---------------------------------------------------------------------------
    async def connect(self) -> WsResult:
        """The handshake (bounded by ``connect_timeout``). On a refusal ``result`` holds the
        status and body; on success the reader runs until the socket closes."""
        self._session = aiohttp.ClientSession(
            response_class=_capturing_response_class(self._handshake),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            trust_env=False)
        try:
            self._ws = await asyncio.wait_for(self._session.ws_connect(
                self.url, protocols=self.protocols, headers=self.headers, autoping=True,
                heartbeat=None, timeout=self.close_timeout, max_msg_size=self.max_msg_size,
                ssl=False), self.connect_timeout)
        except aiohttp.WSServerHandshakeError as e:
            self._refused(e.status)
        except asyncio.TimeoutError:
            self.result.error = f"handshake timed out after {self.connect_timeout} s"
        except (aiohttp.ClientError, OSError) as e:
            self.result.error = f"{type(e).__name__}: {e}"
        if self._ws is None:
            self._mark_closed()
            await self._session.close()
            return self.result
        self.result.upgraded = True
        self.result.protocol = self._ws.protocol
        self.result.response_headers = dict(self._handshake.get("headers") or {})
        self.result.opened_at = time.monotonic()
        self._reader = asyncio.ensure_future(self._read_loop())
        return self.result

    def _refused(self, status: Optional[int]) -> None:
        r = self.result
        r.handshake_status = self._handshake.get("status", status)
        r.handshake_headers = dict(self._handshake.get("headers") or {})
        body = self._handshake.get("body")
        if body is not None:
            r.handshake_text = body.decode("utf-8", "replace")
            try:
                r.handshake_body = json.loads(r.handshake_text)
            except ValueError:
                r.handshake_body = None
        if r.handshake_status == 101:  # upgraded, but the handshake itself was wrong
            r.error = "invalid WebSocket handshake response"

    @property
    def connected(self) -> bool:
        return self.result.upgraded

    @property
    def open(self) -> bool:
        return self._ws is not None and not self.result.closed and not self._ws.closed

    # -- receiving ----------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        r = self.result
        try:
            while True:
                msg = await ws.receive()
                now = time.monotonic()
                if msg.type == WSMsgType.TEXT:
                    r.last_message_at = now
                    if len(r.raw_events) < MAX_KEPT_MESSAGES:
                        event = decode_event(msg.data)
                        r.raw_events.append(msg.data)
                        r.events.append(event)
                        r.event_times.append(now)
                        if self.on_event is not None:
                            self.on_event(event, self)
                elif msg.type == WSMsgType.BINARY:
                    r.last_message_at = now
                    if len(r.binary_messages) < MAX_KEPT_MESSAGES:
                        r.binary_messages.append(bytes(msg.data))
                elif msg.type == WSMsgType.CLOSE:  # autoclose has answered it
                    r.close_frame_received = True
                    r.close_code, r.close_reason = msg.data, msg.extra
                    r.closed_by_server = True
                elif msg.type == WSMsgType.ERROR:
                    r.error = r.error or f"websocket error: {msg.data!r}"
                    break
                else:  # CLOSING / CLOSED
                    break
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - reported, not raised
            r.error = r.error or f"reader failed: {type(e).__name__}: {e}"
        if not r.close_frame_received and r.client_close_code is None:
            r.closed_by_server = True   # the connection dropped without a close frame
            r.close_code = 1006
        self._mark_closed()

    def _mark_closed(self) -> None:
        if not self.result.closed:
            self.result.closed = True
            self.result.closed_at = time.monotonic()
        self._closed_event.set()

    # -- sending ------------------------------------------------------------------------------
    async def send(self, event: SendItem) -> bool:
        """A dict (JSON), a str (verbatim) or bytes (binary). False when the socket is closed."""
        if not self.open:
            return False
        ws = self._ws
        assert ws is not None
        try:
            if isinstance(event, (bytes, bytearray)):
                await asyncio.wait_for(ws.send_bytes(bytes(event)), self.close_timeout)
                self.result.sent_binary += 1
            else:
                raw = encode_event(event)
                await asyncio.wait_for(ws.send_str(raw), self.close_timeout)
                self.result.sent_events.append(raw)
        except (ConnectionError, RuntimeError, asyncio.TimeoutError) as e:
            self.result.error = self.result.error or f"send failed: {type(e).__name__}: {e}"
            return False
        self.result.last_sent_at = time.monotonic()
        return True

    async def send_all(self, items: Iterable[SendItem]) -> None:
        """Send in order; numbers are pauses (seconds). Stops when the socket closes."""
        for item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                await asyncio.sleep(float(item))
            elif not await self.send(item):
                return

    # -- waiting ------------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[WsResult], Any], timeout: float,
                       stop_on_close: bool = True) -> bool:
        """Poll ``predicate(result)`` until truthy (True), the socket closed (when
        ``stop_on_close``; then the predicate's last value decides) or ``timeout`` (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self.result):
                return True
            if (stop_on_close and self.result.closed) or time.monotonic() >= deadline:
                return bool(predicate(self.result))
            await asyncio.sleep(0.02)

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until the socket is closed (by either side)."""
        try:
            await asyncio.wait_for(self._closed_event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self.result.closed

    # -- closing ------------------------------------------------------------------------------
    async def close(self, code: int = 1000, reason: str = "") -> WsResult:
        """Close from this side with ``code`` (a proper closing handshake, bounded), then free
        everything. Safe to call more than once and after the server closed."""
        if self._ws is not None and not self._ws.closed and not self.result.closed:
            self.result.client_close_code = code
            await self._stop_reader()
            try:
                await asyncio.wait_for(
                    self._ws.close(code=code, message=reason.encode()[:123]),
                    self.close_timeout + 1)
            except Exception as e:  # noqa: BLE001 - teardown must not raise
                self.result.error = self.result.error or f"close failed: {e!r}"
            if self.result.close_code is None and self._ws.close_code is not None:
                self.result.close_code = self._ws.close_code  # the server's answer
        await self._teardown()
        return self.result

    async def abort(self) -> WsResult:
        """Vanish: drop the TCP connection without a close frame."""
        if self._ws is not None and not self.result.closed:
            self.result.client_close_code = 1006
            transport = getattr(getattr(self._ws, "_writer", None), "transport", None)
            if transport is not None:
                transport.abort()
            await self._stop_reader()
        await self._teardown()
        return self.result

    async def _stop_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            try:
                await self._reader
            except BaseException:  # noqa: BLE001
                pass

    async def _teardown(self) -> None:
        await self._stop_reader()
        if self._ws is not None and not self._ws.closed:
            try:  # the reader was cancelled: close without waiting for anything
                self._ws._response.close()  # noqa: SLF001
            except Exception:  # noqa: BLE001
                pass
        self._mark_closed()
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> "WsClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


async def run_ws(base_url: str, *, send_events: Iterable[SendItem] = (),
                 until: Optional[Callable[[WsResult], Any]] = None, duration: float = 3.0,
                 send_after: Optional[str] = "session.created", first_event_timeout: float = 10.0,
                 close_after: bool = True, close_code: int = 1000, close_reason: str = "",
                 **client_kwargs) -> WsResult:
    """Connect, wait for the first ``send_after`` event, send ``send_events``, then wait up to
    ``duration`` s for ``until(result)`` (or for the server to close), then close with
    ``close_code`` (``close_after=False``: drop the connection without a close frame)."""
    client = WsClient(base_url, **client_kwargs)
    try:
        await client.connect()
        if client.connected:
            if send_after:
                await client.wait_for(lambda r: r.events_of(send_after), first_event_timeout)
            await client.send_all(send_events)
            await client.wait_for(until or (lambda r: False), duration)
    finally:
        if close_after:
            await client.close(close_code, close_reason)
        else:
            await client.abort()
    return client.result


def run_ws_session(base_url: str, *, key: Optional[str] = None,
                   subprotocol_key: Optional[str] = None, model: Optional[str] = None,
                   call_id: Optional[str] = None, send_events: Iterable[SendItem] = (),
                   until: Optional[Callable[[WsResult], Any]] = None, duration: float = 3.0,
                   close_after: bool = True, **kwargs) -> WsResult:
    """``run_ws`` for synchronous tests (starts its own event loop)."""
    return asyncio.run(run_ws(base_url, key=key, subprotocol_key=subprotocol_key, model=model,
                              call_id=call_id, send_events=list(send_events), until=until,
                              duration=duration, close_after=close_after, **kwargs))


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description="WebSocket client for GET /v1/realtime")
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--key")
    ap.add_argument("--subprotocol-key")
    ap.add_argument("--model")
    ap.add_argument("--call-id")
    ap.add_argument("--event", action="append", default=[], help="event JSON (repeatable)")
    ap.add_argument("--duration", type=float, default=3.0)
    args = ap.parse_args(argv)
    result = run_ws_session(args.base_url, key=args.key, subprotocol_key=args.subprotocol_key,
                            model=args.model, call_id=args.call_id,
                            send_events=[json.loads(e) for e in args.event],
                            duration=args.duration,
                            send_after=None if args.call_id else "session.created")
    print(json.dumps(result.to_dict()))
    sys.exit(0 if result.upgraded and not result.error else 1)


if __name__ == "__main__":
    main()
