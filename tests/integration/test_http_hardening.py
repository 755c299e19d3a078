"""The HTTP server against hostile clients (issue 11): bodies bounded whatever the framing, no
socket leak, header/idle/connection limits, keyless mode only for loopback Host values, and
error bodies that stay valid JSON whatever bytes a URL carries.

Everything here talks raw HTTP over sockets where a library would hide what is measured (when
the server answers, whether it closed the connection)."""
from __future__ import annotations

import http.client
import json
import os
import socket
import time
from typing import Dict, Optional, Tuple

import pytest

from conftest import GATEWAY_KEY
from peers.common import http_request
from peers.ws_client import run_ws_session

MB = 1 << 20


def echo_config(keys=True, **limits):
    config = {"models": [{"name": "echo", "workers": [{"provider": "echo"}]}]}
    if keys:
        config["auth"] = {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]}
    if limits:
        config["limits"] = limits
    return config


def proc_status(pid: int, field: str) -> int:
    """A /proc/PID/status field in kB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connect(gw, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=timeout)


def read_response(sock: socket.socket, timeout: float = 10.0) -> Tuple[int, Dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length framed) from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_by_server(sock: socket.socket, timeout: float) -> Optional[float]:
    """Seconds until the server closed the connection (EOF or reset), None if it did not within
    ``timeout``. Whatever it sends first is skipped."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < timeout:
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def error_code(body: bytes) -> str:
    return json.loads(body.decode("utf-8"))["error"]["code"]


# --------------------------------------------------------------------------- bodies

def test_chunked_body_is_counted_as_it_arrives_even_on_healthz(gateway_factory):
    gw = gateway_factory(echo_config())
    peak_before = proc_status(gw.proc.pid, "VmHWM")
    sock = connect(gw)
    sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n")
    chunk = b"%x\r\n" % (64 * 1024) + b"a" * (64 * 1024) + b"\r\n"
    sent, dropped, start = 0, False, time.monotonic()
    sock.settimeout(5)
    try:
        while sent < 60 * MB:
            sock.sendall(chunk)
            sent += 64 * 1024
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        dropped = True
    status = None
    try:
        status, _, body = read_response(sock, timeout=5)
    except OSError:
        dropped = True
    elapsed = time.monotonic() - start
    sock.close()
    peak_growth_mb = (proc_status(gw.proc.pid, "VmHWM") - peak_before) / 1024
    assert status == 413 or dropped, f"the 60 MB chunked body was accepted ({status})"
    if status == 413:
        assert error_code(body) == "body_too_large"
    assert sent < 60 * MB or status == 413
    assert elapsed < 20, elapsed
    assert peak_growth_mb < 20, f"peak RSS grew by {peak_growth_mb:.1f} MB for a refused body"
    assert gw.running()
    assert http_request("GET", gw.url + "/healthz", timeout=5).status == 200


def test_content_length_above_the_limit_is_refused_before_the_body(gateway_factory):
    gw = gateway_factory(echo_config())
    rss_before = proc_status(gw.proc.pid, "VmRSS")
    sock = connect(gw)
    sock.sendall(b"POST /v1/realtime/calls?model=echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Authorization: Bearer " + GATEWAY_KEY.encode() + b"\r\n"
                 b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % (100 * MB)
                 + b"v=0\r\n" * 1000)
    # The answer comes without the client sending the other 99.99 MB.
    status, headers, body = read_response(sock, timeout=5)
    assert status == 413
    assert error_code(body) == "body_too_large"
    assert headers.get("connection", "").lower() == "close"
    assert closed_by_server(sock, 10) is not None
    sock.close()
    assert (proc_status(gw.proc.pid, "VmRSS") - rss_before) / 1024 < 20


def test_body_within_the_limit_still_works_chunked(gateway_factory):
    gw = gateway_factory(echo_config())
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    body = json.dumps({"session": {"type": "realtime", "model": "echo"}}).encode()
    conn.request("POST", "/v1/realtime/client_secrets", body=iter([body[:10], body[10:]]),
                 headers={"Authorization": f"Bearer {GATEWAY_KEY}",
                          "Content-Type": "application/json"}, encode_chunked=True)
    reply = conn.getresponse()
    assert reply.status == 200, reply.read()
    assert json.loads(reply.read())["value"].startswith("ek_")


# --------------------------------------------------------------------------- connections

def test_connections_the_client_closes_leave_no_socket_behind(gateway_factory):
    gw = gateway_factory(echo_config())
    time.sleep(0.5)
    before = open_fds(gw.proc.pid)
    for _ in range(50):
        sock = connect(gw)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # keep-alive asked
        status, _, _ = read_response(sock)
        assert status == 200
        sock.close()
    deadline = time.monotonic() + 5
    while open_fds(gw.proc.pid) - before > 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds(gw.proc.pid) - before <= 2, (
        f"{open_fds(gw.proc.pid) - before} fds more after 50 client-closed connections")


def test_a_finished_connection_is_closed_by_the_server(gateway_factory):
    # No keep-alive connection stays idle: the response says so and the server closes it.
    gw = gateway_factory(echo_config(idle_timeout_seconds=2))
    sock = connect(gw)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _ = read_response(sock)
    assert status == 200
    assert headers.get("connection", "").lower() == "close"
    assert closed_by_server(sock, 5) is not None
    sock.close()


def test_a_stalled_body_is_closed_after_the_idle_timeout(gateway_factory):
    gw = gateway_factory(echo_config(idle_timeout_seconds=2, header_timeout_seconds=30))
    sock = connect(gw)
    sock.sendall(b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Authorization: Bearer " + GATEWAY_KEY.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sess")
    after = closed_by_server(sock, 12)
    sock.close()
    assert after is not None, "a body that stopped arriving kept its connection open"
    assert 1.0 <= after <= 8, after


def test_slowloris_headers_are_cut_at_the_header_deadline(gateway_factory):
    gw = gateway_factory(echo_config(header_timeout_seconds=2))
    sock = connect(gw)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    start = time.monotonic()
    closed_at = None
    sock.settimeout(1.0)
    while time.monotonic() - start < 12:
        try:
            sock.sendall(b"X")  # one byte of a header line per second
            data = sock.recv(4096)
            if not data:
                closed_at = time.monotonic() - start
                break
        except socket.timeout:
            continue
        except OSError:
            closed_at = time.monotonic() - start
            break
    sock.close()
    assert closed_at is not None, "a client trickling its headers kept its connection for 12 s"
    assert 1.0 <= closed_at <= 7, closed_at
    assert http_request("GET", gw.url + "/healthz", timeout=5).status == 200


def test_a_silent_connection_is_closed_at_the_header_deadline(gateway_factory):
    gw = gateway_factory(echo_config(header_timeout_seconds=2))
    sock = connect(gw)
    after = closed_by_server(sock, 12)
    sock.close()
    assert after is not None and 1.0 <= after <= 7, after


def test_connections_beyond_max_connections_are_refused(gateway_factory):
    gw = gateway_factory(echo_config(max_connections=4, header_timeout_seconds=60))
    time.sleep(0.6)  # the health checks' connections are gone
    held = [connect(gw) for _ in range(4)]
    time.sleep(0.3)
    extra = connect(gw)
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        status, _, body = read_response(extra, timeout=5)
        assert status == 503 and error_code(body) == "too_many_connections", (status, body)
    except OSError:
        pass  # closed without an answer: refused too
    assert closed_by_server(extra, 5) is not None
    extra.close()
    # The connections opened before the limit still work.
    held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_response(held[0])[0] == 200
    for sock in held:
        sock.close()
    # Once they are gone, new connections are served again.
    deadline = time.monotonic() + 5
    while http_request("GET", gw.url + "/healthz", timeout=2).status != 200:
        assert time.monotonic() < deadline, "connections were not given back"
        time.sleep(0.2)


def test_headers_larger_than_the_bound_are_refused(gateway_factory):
    gw = gateway_factory(echo_config(max_header_bytes=8192))
    sock = connect(gw)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 +
                 b"\r\n\r\n")
    try:
        status, _, body = read_response(sock, timeout=5)
        assert status == 431, status
        assert error_code(body) == "headers_too_large"
    except OSError:
        pass  # dropped: refused too
    assert closed_by_server(sock, 5) is not None
    sock.close()
    # A request just under the bound is served.
    ok = http_request("GET", gw.url + "/healthz", headers={"X-Big": "a" * 6000}, timeout=5)
    assert ok.status == 200


def test_websocket_sessions_outlive_the_http_deadlines(gateway_factory):
    gw = gateway_factory(echo_config(header_timeout_seconds=1, idle_timeout_seconds=1))
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model="echo",
                            send_events=[3.5, {"type": "session.update",
                                               "session": {"type": "realtime",
                                                           "instructions": "hi"}}],
                            until=lambda r: r.events_of("session.updated"), duration=10)
    assert result.status == 101, result.handshake_body
    assert result.events_of("session.updated"), result.event_types()


# --------------------------------------------------------------------------- keyless mode

def keyless_request(gw, method, path, host, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host)
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, data


def test_keyless_mode_answers_only_loopback_host_names(gateway_factory):
    gw = gateway_factory(echo_config(keys=False))
    secrets = json.dumps({"session": {"type": "realtime", "model": "echo"}}).encode()
    for method, path, body, headers in [
            ("POST", "/v1/realtime/calls?model=echo", b"v=0\r\n",
             {"Content-Type": "application/sdp"}),
            ("POST", "/v1/realtime/client_secrets", secrets, {"Content-Type": "application/json"}),
            ("GET", "/v1/models", None, {}),
            ("GET", "/", None, {})]:
        for host in ("evil.example", f"evil.example:{gw.port}", f"127.0.0.1.nip.io:{gw.port}"):
            status, data = keyless_request(gw, method, path, host, body, headers)
            assert status == 403, (method, path, host, status, data)
            assert error_code(data) == "invalid_host"
    for host in (f"localhost:{gw.port}", f"127.0.0.1:{gw.port}", "localhost"):
        status, data = keyless_request(gw, "GET", "/v1/models", host)
        assert status == 200, (host, data)
        assert any(m["id"] == "echo" for m in json.loads(data)["data"])
        status, data = keyless_request(gw, "POST", "/v1/realtime/client_secrets", host, secrets,
                                       {"Content-Type": "application/json"})
        assert status == 200, (host, data)


def test_the_anonymous_caller_is_not_an_admin(gateway_factory):
    gw = gateway_factory(echo_config(keys=False))
    status, data = keyless_request(gw, "GET", "/debug/calls", f"127.0.0.1:{gw.port}")
    assert status in (401, 403), (status, data)
    assert "error" in json.loads(data)
    status, data = keyless_request(gw, "GET", "/debug/calls/rtc_x/pipeline.dot",
                                   f"127.0.0.1:{gw.port}")
    assert status in (401, 403), (status, data)


def test_keyed_gateways_do_not_check_the_host(gateway_factory):
    gw = gateway_factory(echo_config())
    status, data = keyless_request(gw, "GET", "/v1/models", "gateway.example.com",
                                   headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
    assert status == 200, data


# --------------------------------------------------------------------------- UTF-8

@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/realtime/calls/%FF%FE"),
    ("POST", "/v1/realtime/calls/%C3%28/hangup"),
    ("GET", "/no/such/%FF%C0%80"),
    ("POST", "/v1/realtime/calls?model=%C3%28"),
])
def test_invalid_utf8_in_a_url_still_makes_valid_json(gateway_factory, method, path):
    gw = gateway_factory(echo_config())
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    body = b"v=0\r\n" if method == "POST" else None
    conn.request(method, path, body=body,
                 headers={"Authorization": f"Bearer {GATEWAY_KEY}",
                          "Content-Type": "application/sdp"})
    reply = conn.getresponse()
    raw = reply.read()
    conn.close()
    assert reply.status >= 400
    text = raw.decode("utf-8")  # strict: raises on invalid UTF-8
    assert "error" in json.loads(text), text


# --------------------------------------------------------------------------- slow bodies, slots

def trickle_until_closed(sock: socket.socket, interval: float, timeout: float) -> Optional[float]:
    """Sends one body byte every ``interval`` s; seconds until the server closed the connection
    (EOF, reset or a refused write), None if it did not within ``timeout``."""
    start = time.monotonic()
    sock.settimeout(interval)
    while time.monotonic() - start < timeout:
        try:
            sock.sendall(b"a")
            if not sock.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def slow_post(gw, path: str = "/healthz", key: Optional[str] = None) -> socket.socket:
    """A POST whose headers are in and whose 100-byte body has only begun."""
    sock = connect(gw)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
                 "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode())
    return sock


def test_a_trickled_body_is_cut_at_the_body_deadline(gateway_factory):
    """Issue 21 item 3: a byte every half second reset the idle deadline for ever."""
    gw = gateway_factory(echo_config(body_timeout_seconds=3, min_body_bytes_per_second=0,
                                     idle_timeout_seconds=60, header_timeout_seconds=60))
    sock = slow_post(gw, "/v1/realtime/client_secrets", key=GATEWAY_KEY)
    after = trickle_until_closed(sock, 0.5, 15)
    sock.close()
    assert after is not None, "a trickled body held its connection for 15 s"
    assert 2.0 <= after <= 8, after
    assert http_request("GET", gw.url + "/healthz", timeout=5).status == 200


def test_a_body_below_the_minimum_rate_is_cut(gateway_factory):
    gw = gateway_factory(echo_config(body_timeout_seconds=60, min_body_bytes_per_second=100,
                                     idle_timeout_seconds=60, header_timeout_seconds=60))
    sock = slow_post(gw)
    after = trickle_until_closed(sock, 0.5, 15)  # 2 bytes/s, against 100 after a 2 s grace
    sock.close()
    assert after is not None, "a body at 2 bytes/s held its connection for 15 s"
    assert 1.5 <= after <= 8, after
    # a body at the rate goes through
    sock = connect(gw)
    body = b'{"session": {"type": "realtime", "model": "echo"}}' + b" " * 350
    sock.sendall(b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Authorization: Bearer " + GATEWAY_KEY.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    for i in range(0, len(body), 50):  # 50 bytes every 0.2 s: 250 bytes/s, 1.6 s in all
        sock.sendall(body[i:i + 50])
        time.sleep(0.2)
    status, _, reply = read_response(sock)
    sock.close()
    assert status == 200, reply


def test_unauthenticated_slow_bodies_leave_the_reserved_connections(gateway_factory):
    """Issue 21 item 3: slow unauthenticated POSTs held every slot and /healthz got 503. They now
    get at most max_connections - reserved_connections; a keyed request and a probe still pass."""
    gw = gateway_factory(echo_config(max_connections=12, reserved_connections=4,
                                     body_timeout_seconds=60, min_body_bytes_per_second=0,
                                     idle_timeout_seconds=60, header_timeout_seconds=60))
    time.sleep(0.6)  # the health checks' connections are gone
    held, refused = [], 0
    for _ in range(12):
        sock = slow_post(gw)  # POST /healthz with a body: no probe
        sock.settimeout(0.5)
        try:
            data = sock.recv(65536)
            assert not data or b" 503 " in data.split(b"\r\n")[0], data
            if data:
                assert b"too_many_connections" in data, data
            refused += 1
            sock.close()
        except socket.timeout:
            held.append(sock)  # no answer: the body is awaited
    try:
        assert len(held) == 8 and refused == 4, (len(held), refused)
        assert http_request("GET", gw.url + "/healthz", timeout=5).status == 200
        assert http_request("GET", gw.url + "/readyz", timeout=5).status == 200
        reply = http_request("GET", gw.url + "/v1/models", timeout=5,
                             headers={"Authorization": f"Bearer {GATEWAY_KEY}"})
        assert reply.status == 200, reply.body
        # an unauthenticated request is refused at once, a wrong key too
        reply = http_request("GET", gw.url + "/v1/models", timeout=5,
                             headers={"Authorization": "Bearer sk-wrong"})
        assert reply.status == 503 and reply.json()["error"]["code"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while http_request("GET", gw.url + "/v1/models", timeout=2).status != 401:
        assert time.monotonic() < deadline, "the unauthenticated share was not given back"
        time.sleep(0.2)


def test_a_burst_of_connects_does_not_wait_for_syn_retransmits(gateway_factory):
    """Issue 21 item 3: a listen backlog of 10 dropped the SYNs of a burst, which then waited 1 s
    for their retransmit. The listener uses the system's backlog."""
    import threading
    gw = gateway_factory(echo_config())
    count = 150
    barrier = threading.Barrier(count)
    connect_times, statuses, lock = [], [], threading.Lock()

    def one():
        barrier.wait()
        start = time.monotonic()
        try:
            sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        except OSError:
            with lock:
                connect_times.append(99.0)
            return
        took = time.monotonic() - start
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status = read_response(sock, timeout=20)[0]
        except OSError:
            status = None
        sock.close()
        with lock:
            connect_times.append(took)
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(connect_times) == count
    slowest = max(connect_times)
    assert slowest < 0.9, f"a connect took {slowest:.2f} s (SYN dropped by a full backlog)"
    assert statuses.count(200) == count, statuses
