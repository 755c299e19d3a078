"""Bounded outgoing queues (issue 11, finding 10): a WebSocket client that stops reading while
the gateway has a lot to send it cannot grow the gateway's memory without bound.

The client here is a raw socket (a tiny receive buffer, no permessage-deflate) so that it can
really stop reading while it keeps sending. It asks the built-in echo worker for far more than
the configured `limits.max_outgoing_buffer_bytes` (each 27-byte `response.create` brings about
700 bytes back: response.created, a delta, response.done), then stops reading. The gateway must close the session:
a `slow_consumer` error event, then a close frame with 1008, both queued behind what the client
has not read yet, and its RSS must stay far below what the unread replies would take.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time

from conftest import GATEWAY_KEY

LIMIT = 256 << 10             # the configured bound (bytes)
MESSAGES = 60_000             # response.create: ~40 MB of replies asked for, ~1.6 MB sent
REPLY_BYTES = 650             # at least, per response.create


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def client_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


class RawWebSocket:
    """Just enough of RFC 6455 for a client that decides when it reads."""

    def __init__(self, port: int, path: str, key: str, rcvbuf: int = 4096):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: Bearer {key}\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed during the handshake"
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _need(self, n: int) -> bool:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read_frame(self):
        """(opcode, payload) or None at EOF."""
        if not self._need(2):
            return None
        b0, b1 = self.buffer[0], self.buffer[1]
        n, offset = b1 & 0x7F, 2
        if n == 126:
            if not self._need(4):
                return None
            n, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif n == 127:
            if not self._need(10):
                return None
            n, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
        if not self._need(offset + n):
            return None
        payload = self.buffer[offset:offset + n]
        self.buffer = self.buffer[offset + n:]
        return b0 & 0x0F, payload


def test_a_websocket_client_that_stops_reading_is_closed_with_1008(gateway_factory):
    gw = gateway_factory({
        "listen": "127.0.0.1:0",
        "auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]},
        "models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
        "policy": {"max_event_bytes": 1 << 20},
        "limits": {"max_outgoing_buffer_bytes": LIMIT},
    })
    ws = RawWebSocket(gw.port, "/v1/realtime?model=echo", GATEWAY_KEY)
    opcode, payload = ws.read_frame()
    assert opcode == 1 and json.loads(payload)["type"] == "session.created"
    rss_before = rss_kib(gw.proc.pid)

    batch = client_frame('{"type":"response.create"}') * 1000
    sent = {"messages": 0, "error": None}
    stop = threading.Event()

    def flood():
        try:
            ws.sock.settimeout(30)
            for _ in range(MESSAGES // 1000):
                if stop.is_set():
                    break
                ws.sock.sendall(batch)
                sent["messages"] += 1000
                time.sleep(0.1)  # paced: what piles up is the replies, not unread requests
        except OSError as e:  # the gateway closed while we were still sending: expected
            sent["error"] = repr(e)
    sender = threading.Thread(target=flood, daemon=True)
    sender.start()

    # Not reading: wait for the gateway to give up on us (its log says so).
    deadline = time.monotonic() + 60
    while "does not read" not in gw.stderr():
        assert gw.running(), gw.stderr()[-3000:]
        assert time.monotonic() < deadline, (
            f"no overflow after {sent['messages']} messages sent; RSS grew "
            f"{(rss_kib(gw.proc.pid) - rss_before) // 1024} MiB:\n{gw.stderr()[-3000:]}")
        time.sleep(0.1)
    # Stop sending: a socket closed with unread requests in it is reset, and a reset loses
    # what the client has not read yet.
    stop.set()
    overflow_at = time.monotonic()
    time.sleep(0.3)
    grown_mib = (rss_kib(gw.proc.pid) - rss_before) / 1024
    # Without the bound the replies it asked for (~37 MiB) all wait in the gateway: its RSS
    # grew by 110-170 MiB here. With it, the session ends once 256 KiB wait beyond what the
    # kernel buffers hold; what remains is the requests still in the event path (more of them
    # when the machine is busy).
    assert MESSAGES * REPLY_BYTES > 35 << 20
    # ASan keeps freed memory in quarantine (256 MiB by default): RSS means nothing there; the
    # overflow itself (above) and the close (below) are still checked.
    if os.environ.get("RTGW_SANITIZE", "none") in ("", "none"):
        assert grown_mib < 60, (f"RSS grew {grown_mib:.1f} MiB while the client did not read "
                                f"({sent['messages']} requests sent)")

    # Reading again: what was queued, then the error event, then the close frame.
    ws.sock.settimeout(20)
    errors, close = [], None
    while True:
        frame = ws.read_frame()
        if frame is None:
            break
        opcode, payload = frame
        if opcode == 1:
            event = json.loads(payload)
            if event.get("type") == "error":
                errors.append(event)
        elif opcode == 8:
            close = (struct.unpack("!H", payload[:2])[0], payload[2:].decode())
            break
    assert close is not None, (f"no close frame ({time.monotonic() - overflow_at:.1f} s after "
                               f"the overflow; {sent}; errors {errors})")
    assert close[0] == 1008, close
    assert "does not read" in close[1], close
    assert [e["error"]["code"] for e in errors] == ["slow_consumer"], errors
    assert "does not read" in errors[0]["error"]["message"]
    ws.sock.close()
    sender.join(35)
    # The gateway serves on.
    from peers.common import http_request
    assert http_request("GET", gw.url + "/healthz", timeout=5).status == 200
    assert gw.running()
