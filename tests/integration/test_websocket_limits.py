"""Whole WebSocket messages are bounded before libsoup assembles them (issue 21 item 2).

libsoup 3.2.3 bounds each frame, not a message: 200 non-final 1 MiB fragments took the gateway's
RSS from 26 to 235 MB, on client sessions and on the sideband relayed by a non-owner cluster
instance. The client here writes its frames by hand on a raw socket, since a library would
assemble or refuse them itself."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from typing import Optional, Tuple

from conftest import GATEWAY_KEY, default_gateway_config
from peers.common import wait_until
from test_cluster import MODEL, cluster_env, redis, redis_up  # noqa: F401 (redis: a fixture)

MB = 1 << 20


def echo_config(**websocket):
    config = {"models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
              "auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]}}
    if websocket:
        config["websocket"] = websocket
    return config


def vm_rss_kb(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


class RawWebSocket:
    """A client WebSocket written by hand: its frames are whatever the test says."""

    def __init__(self, port: int, path: str, key: str = GATEWAY_KEY, rcvbuf: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connect: the window it advertises stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Authorization: Bearer {key}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\n"
                           "Sec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {data!r}")
            data += chunk
        head, _, self.buffer = data.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        self.headers = head.decode("latin-1").lower()

    @staticmethod
    def frame(opcode: int, fin: bool, payload: bytes) -> bytes:
        """A masked frame with a zero mask (the payload goes as it is)."""
        n = len(payload)
        first = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            length = bytes([0x80 | n])
        elif n < 65536:
            length = bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            length = bytes([0x80 | 127]) + struct.pack(">Q", n)
        return first + length + b"\0\0\0\0" + payload

    def send(self, opcode: int, fin: bool, payload: bytes) -> bool:
        """False once the server stopped taking bytes (reset or closed)."""
        try:
            self.sock.sendall(self.frame(opcode, fin, payload))
            return True
        except OSError:
            return False

    def read_frame(self, timeout: float) -> Optional[Tuple[int, bytes]]:
        """The next server frame (opcode, payload); None at end of stream or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 2:
                n = self.buffer[1] & 0x7F
                at = 2
                if n == 126:
                    at, n = 4, struct.unpack(">H", self.buffer[2:4])[0] if len(self.buffer) >= 4 else -1
                elif n == 127:
                    at, n = 10, struct.unpack(">Q", self.buffer[2:10])[0] if len(self.buffer) >= 10 else -1
                if n >= 0 and len(self.buffer) >= at + n:
                    opcode, payload = self.buffer[0] & 0x0F, self.buffer[at:at + n]
                    self.buffer = self.buffer[at + n:]
                    return opcode, payload
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def close_code(self, timeout: float) -> Optional[Tuple[int, str]]:
        """Reads frames until the server's close frame: (code, reason); None without one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.read_frame(deadline - time.monotonic())
            if f is None:
                return None
            if f[0] == 8:
                code = struct.unpack(">H", f[1][:2])[0] if len(f[1]) >= 2 else 1005
                return code, f[1][2:].decode("utf-8", "replace")
        return None

    def close(self):
        self.sock.close()


def flood_fragments(ws: RawWebSocket, count: int, size: int) -> int:
    """Sends a text message's first ``count`` fragments, none final; returns how many went."""
    payload = b"a" * size
    for i in range(count):
        if not ws.send(1 if i == 0 else 0, False, payload):
            return i
    return count


def assert_fragments_closed_with_1009(ws: RawWebSocket, pid: int, limit: int):
    rss_before = vm_rss_kb(pid)
    sent = flood_fragments(ws, 200, MB)
    closed = ws.close_code(15)
    growth_mb = (vm_rss_kb(pid, "VmHWM") - rss_before) / 1024
    assert closed is not None, f"no close frame after {sent} MiB of fragments"
    assert closed[0] == 1009, closed
    assert str(limit) in closed[1], closed
    assert growth_mb < 40, f"peak RSS grew by {growth_mb:.0f} MB for {sent} MiB of fragments"


# --------------------------------------------------------------------------- client sessions

def test_fragments_past_the_message_limit_are_closed_with_1009(gateway_factory):
    gw = gateway_factory(echo_config(max_message_bytes=MB))
    ws = RawWebSocket(gw.port, "/v1/realtime?model=echo")
    try:
        assert ws.status == 101, ws.status
        # permessage-deflate is not negotiated (libsoup 3.2 inflates frames without bound)
        assert "sec-websocket-extensions" not in ws.headers, ws.headers
        assert_fragments_closed_with_1009(ws, gw.proc.pid, MB)
    finally:
        ws.close()
    assert gw.running()


def test_fragmented_messages_within_the_limit_still_pass(gateway_factory):
    gw = gateway_factory(echo_config(max_message_bytes=64 * 1024))
    ws = RawWebSocket(gw.port, "/v1/realtime?model=echo")
    try:
        assert ws.status == 101
        event = json.dumps({"type": "session.update", "event_id": "evt_frag",
                            "session": {"type": "realtime", "instructions": "x" * 30000}})
        data = event.encode()
        third = len(data) // 3
        assert ws.send(1, False, data[:third])
        assert ws.send(9, True, b"ping")  # a control frame between fragments
        assert ws.send(0, False, data[third:2 * third])
        assert ws.send(0, True, data[2 * third:])
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline:
            f = ws.read_frame(deadline - time.monotonic())
            assert f is not None, f"closed or silent; events seen: {seen}"
            if f[0] == 1:
                seen.append(json.loads(f[1])["type"])
                if "session.updated" in seen:
                    break
        assert "session.updated" in seen, seen
        # the same message one fragment longer than the limit is refused
        assert ws.send(1, False, data[:third])
        assert ws.send(0, False, b"y" * (64 * 1024))
        closed = ws.close_code(10)
        assert closed is not None and closed[0] == 1009, closed
    finally:
        ws.close()


# --------------------------------------------------------------------------- relayed sideband

def test_relayed_sideband_bounds_fragments_and_idles(fake_upstream, gateway_factory, redis):
    """The sideband of a call on instance A opened through instance B: B relays it, and its
    relay took fragments without any bound (max_incoming 0) and never idled."""
    from peers.aiortc_client import AiortcCall
    from peers.ws_client import WsClient

    config = default_gateway_config(fake_upstream)
    config["websocket"] = {"max_message_bytes": MB, "idle_timeout_seconds": 3}
    a = gateway_factory(config, env=cluster_env(redis, "gw-a"))
    b = gateway_factory(config, env=cluster_env(redis, "gw-b"))
    assert wait_until(lambda: redis_up(a) and redis_up(b), 10), "the instances never reached Redis"

    async def scenario():
        call = AiortcCall(a.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        try:
            assert call.connected, call.result.error_body
            assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
            call_id = call.result.call_id
            loop = asyncio.get_running_loop()

            def fragments():
                ws = RawWebSocket(b.port, f"/v1/realtime?call_id={call_id}")
                try:
                    assert ws.status == 101, ws.status
                    assert_fragments_closed_with_1009(ws, b.proc.pid, MB)
                finally:
                    ws.close()
            await loop.run_in_executor(None, fragments)

            # a relayed sideband with no message either way for 3 s is closed
            side = WsClient(b.url, key=GATEWAY_KEY, call_id=call_id)
            await side.connect()
            assert side.connected, (side.result.status, side.result.handshake_body)
            opened = time.monotonic()
            closed = await side.wait_closed(10)
            idle_for = time.monotonic() - opened
            await side.close()
            assert call.connected, "the call ended with its sideband"
            return closed, idle_for, side.result
        finally:
            await call.close("leave")

    closed, idle_for, side = asyncio.run(scenario())
    assert closed, "an idle relayed sideband stayed open"
    assert 2.0 <= idle_for <= 8, idle_for
    assert side.close_code == 1000 and "idle" in (side.close_reason or ""), \
        (side.close_code, side.close_reason)
    assert b.running() and a.running()


def test_relayed_sideband_bounds_what_waits_for_a_client_that_does_not_read(
        fake_upstream, gateway_factory, redis):
    """B relays A's call events to a sideband client that never reads: what waits for it is
    bounded (limits.max_outgoing_buffer_bytes); past it the client gets slow_consumer and 1008,
    and the call goes on. (The relay used to queue everything in libsoup.)"""
    from peers.aiortc_client import AiortcCall

    config = default_gateway_config(fake_upstream)
    a = gateway_factory(config, env=cluster_env(redis, "gw-a"))
    # only B's bound is small (A's data channels keep theirs)
    b = gateway_factory(dict(config, limits={"max_outgoing_buffer_bytes": 65536}),
                        env=cluster_env(redis, "gw-b"))
    assert wait_until(lambda: redis_up(a) and redis_up(b), 10), "the instances never reached Redis"

    async def scenario():
        call = AiortcCall(a.url, GATEWAY_KEY, model=MODEL)
        await call.connect()
        try:
            assert call.connected, call.result.error_body
            assert await call.wait_for(lambda r: r.events_of("session.created"), 10)
            loop = asyncio.get_running_loop()
            ws = await loop.run_in_executor(
                None, lambda: RawWebSocket(b.port, f"/v1/realtime?call_id={call.result.call_id}",
                                           rcvbuf=4096))
            assert ws.status == 101, ws.status
            payload = "p" * 8000
            # 4.8 MB of events towards a client that reads nothing (its window: 4 KB)
            for i in range(600):
                call.send({"type": "test.echo", "payload": f"{i}:{payload}"})
                if i % 10 == 9:
                    await asyncio.sleep(0.1)
            await call.wait_for(lambda r: [e for e in r.events_of("test.echoed")
                                           if e.get("payload", "").startswith("599:")], 60)
            echoed = len(call.result.events_of("test.echoed"))
            # now read what B kept for it: it must end in slow_consumer and a close 1008
            def drain():
                errors, close = [], None
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    f = ws.read_frame(deadline - time.monotonic())
                    if f is None:
                        break
                    if f[0] == 1 and b'"slow_consumer"' in f[1]:
                        errors.append(json.loads(f[1]))
                    if f[0] == 8:
                        close = struct.unpack(">H", f[1][:2])[0] if len(f[1]) >= 2 else 1005
                        break
                ws.close()
                return errors, close
            errors, close = await loop.run_in_executor(None, drain)
            return echoed, errors, close, call.connected
        finally:
            await call.close("leave")

    echoed, errors, close, call_alive = asyncio.run(scenario())
    assert echoed == 600, f"the call itself got {echoed} of its 600 echoes"
    assert close == 1008, (close, errors)
    assert errors, "no slow_consumer error event before the close"
    assert call_alive, "the call ended with its sideband"
    assert b.running()
