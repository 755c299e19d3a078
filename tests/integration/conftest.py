"""Fixtures for the gateway's integration tests.

  fake_upstream       a running peers/fake_upstream.py (own process) -> FakeUpstreamProc
  gateway_factory     gateway_factory(config_dict, env=None, args=(), wait_healthy=True)
                      starts $RTGW_BINARY -> GatewayProc (skips when RTGW_BINARY is unset)
  gateway             gateway_factory(default_gateway_config(fake_upstream))

Log files of every process a test started (gateway stdout/stderr, fake upstream stderr) are
attached to the report of a failing test.

Run with Debian's interpreter:  /usr/bin/python3 -m pytest -q tests/integration
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from peers.common import free_port, http_request, tail_file  # noqa: E402

PYTHON = "/usr/bin/python3"          # Debian's: the only one that sees python3-aiortc & co.
FAKE_UPSTREAM = os.path.join(HERE, "peers", "fake_upstream.py")
GATEWAY_KEY = "sk-test-a"            # the gateway key of the default config (team-a)
UPSTREAM_KEY = "upstream-secret"     # the fake upstream's key, known only to the gateway
_UNSET = object()


# --------------------------------------------------------------------------- serial tests

# Tests that run alone in the suite's second pass (run.py), never beside another test: they assert
# the gateway's RSS, fds or threads, flood it, measure timeouts in seconds, or change the host's
# network (a decoy interface, fixed UDP port ranges). A file name marks the whole file.
SERIAL_TESTS = (
    "test_soak.py",
    "test_netns.py",
    "test_liveness.py",
    "test_consent.py",
    "test_receive_bypass.py::test_bypass_gives_the_receive_queue_threads_back",
    "test_faults.py::test_client_flooding_events",
    "test_faults.py::test_sigterm_with_many_live_calls",
    "test_calls.py::test_no_fd_or_thread_growth_across_many_calls",
    "test_calls.py::test_concurrent_calls",
    "test_malloc_tuning.py::test_the_cap_lowers_rss_per_call",
    # Budget periods of 4 s: each in-period check must finish within one period.
    "test_budget_periods.py::test_a_key_over_budget_in_one_period_goes_through_in_the_next",
    "test_budget_periods.py::test_cluster_budget_periods_are_one_redis_hash_per_period",
    "test_reload.py::test_reload_under_live_calls_drops_none_and_new_calls_see_new_prices_and_keys",
    "test_ice_config.py::test_udp_port_range_holds_and_exhaustion_is_503",
    "test_http_hardening.py::test_chunked_body_is_counted_as_it_arrives_even_on_healthz",
    "test_http_hardening.py::test_content_length_above_the_limit_is_refused_before_the_body",
    "test_http_hardening.py::test_connections_beyond_max_connections_are_refused",
    "test_strict_json.py::test_large_beta_event_is_refused_before_translation_and_the_loop_stays_free",
    "test_http_hardening.py::test_a_trickled_body_is_cut_at_the_body_deadline",
    "test_http_hardening.py::test_a_body_below_the_minimum_rate_is_cut",
    "test_http_hardening.py::test_unauthenticated_slow_bodies_leave_the_reserved_connections",
    "test_http_hardening.py::test_a_burst_of_connects_does_not_wait_for_syn_retransmits",
    "test_websocket_limits.py::test_fragments_past_the_message_limit_are_closed_with_1009",
    "test_websocket_limits.py::test_relayed_sideband_bounds_fragments_and_idles",
    "test_websocket_limits.py::test_relayed_sideband_bounds_what_waits_for_a_client_that_does_not_read",
    "test_default_caps.py::test_low_hard_limit_unfinished_setups_are_refused_cleanly",
    "test_default_caps.py::test_accept_backs_off_when_out_of_descriptors",
    "test_default_caps.py::test_half_open_setups_end_at_the_ice_timeout_and_release_everything",
    "test_ledger.py::test_a_hung_database_answers_503_reads_down_and_recovers",
    "test_ledger.py::test_shutdown_is_bounded_while_the_database_hangs",
    # a revoke must reach the other instance within 1 s: timed
    "test_virtual_keys.py::test_generate_call_then_revoke_on_a_is_refused_on_b_within_1s_without_redis",
    "test_virtual_keys.py::test_delete_on_a_is_refused_on_b_within_1s_in_cluster_mode",
    "test_virtual_keys.py::test_cluster_revoke_and_generate_reach_b_by_redis_within_1s_with_a_5s_cache",
    # builds the Debian package (a full build of its own) and installs it: once, alone
    "test_service.py::test_package_contents_and_depends",
    "test_service.py::test_package_installs_starts_as_its_user_notifies_and_purges",
    # counts the gateway's descriptors after eight console streams close
    "test_console.py::test_console_streams_are_bounded_and_released",
    # the recordings' durations are compared with the call's within 0.5 s
    "test_recording.py::test_recorded_call_files_decode_and_last_as_long_as_the_call",
    "test_recording.py::test_chromium_recorded_call_files_decode_and_last_as_long_as_the_call",
)


def pytest_configure(config):
    config.addinivalue_line("markers", "serial: runs alone, in the suite's second pass (run.py)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        file = os.path.basename(str(item.fspath))
        name = item.originalname if hasattr(item, "originalname") else item.name
        if file in SERIAL_TESTS or f"{file}::{name}" in SERIAL_TESTS:
            item.add_marker(pytest.mark.serial)


# --------------------------------------------------------------------------- failure logs

def _attach_log(request, name: str, path: str) -> None:
    """Remember a log file; it is printed in the report if the test fails."""
    logs = getattr(request.node, "_rtgw_logs", None)
    if logs is None:
        logs = request.node._rtgw_logs = []
    logs.append((name, path))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, path in getattr(item, "_rtgw_logs", []):
            report.sections.append((f"{name} ({path})", tail_file(path)))


# --------------------------------------------------------------------------- fake upstream

class FakeUpstreamProc:
    """A fake_upstream.py subprocess and its test-control endpoints."""

    def __init__(self, proc: subprocess.Popen, port: int, api_key: str, log_path: str):
        self.proc, self.port, self.api_key, self.log_path = proc, port, api_key, log_path
        self.url = f"http://127.0.0.1:{port}"

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        reply = http_request(method, self.url + path, data,
                             {"Content-Type": "application/json"} if data else {}, timeout=10)
        assert reply.status == 200, (f"fake upstream {method} {path}: {reply} "
                                     f"(process exit code: {self.proc.poll()})")
        return reply.json()

    def state(self) -> Dict[str, Any]:
        """{"requests": [...], "calls": {id: {...}}, "ws_sessions": {id: {...}},
        "models_requests": n, "config": {...}}"""
        return self._json("GET", "/_test/state")

    def calls(self) -> Dict[str, Dict[str, Any]]:
        return self.state()["calls"]

    def ws_sessions(self) -> List[Dict[str, Any]]:
        """The WebSocket sessions (``GET /v1/realtime``) the fake accepted, oldest first:
        {"id", "model", "authorization_ok", "openai_beta", "subprotocols", "protocol",
        "events", "sent_events", "binary_received", "closed", "close_code", "close_reason",
        "closed_by", "created", "closed_at"}."""
        return sorted(self.state()["ws_sessions"].values(), key=lambda w: w["created"])

    def requests(self) -> List[Dict[str, Any]]:
        return self.state()["requests"]

    def config(self, status: Any = _UNSET, body: Any = None, delay_ms: Any = _UNSET,
               times: Optional[int] = None, usage: Any = _UNSET,
               turn_ms: Any = _UNSET, no_ice: Any = _UNSET) -> Dict[str, Any]:
        """Fault injection. ``status=503`` (with optional JSON ``body``) makes call requests
        and WebSocket handshakes fail — the next ``times`` ones, or all when ``times`` is None;
        ``status=None`` clears. ``delay_ms`` delays every call request and handshake. ``usage``
        replaces response.done's usage; ``turn_ms`` lengthens each response (response.cancel
        cuts it short)."""
        cfg: Dict[str, Any] = {}
        if status is not _UNSET:
            cfg.update(status=status, body=body, times=times)
        if delay_ms is not _UNSET:
            cfg["delay_ms"] = delay_ms
        if usage is not _UNSET:
            cfg["usage"] = usage
        if turn_ms is not _UNSET:
            cfg["turn_ms"] = turn_ms
        if no_ice is not _UNSET:
            cfg["no_ice"] = no_ice
        return self._json("POST", "/_test/config", cfg)

    def reset(self) -> None:
        self._json("POST", "/_test/reset", {})

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.1):
        """Poll ``predicate(state)`` until it returns something truthy (returned) or time out
        (returns the last falsy value)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.state())
            if value or time.monotonic() >= deadline:
                return value
            time.sleep(interval)

    def stop(self) -> Optional[int]:
        """SIGTERM (closes every peer connection, then exits 0); SIGKILL after 10 s."""
        return _terminate(self.proc, 10)


def start_fake_upstream(log_dir: str, api_key: str = UPSTREAM_KEY, timeout: float = 20.0,
                        tls: Optional[tuple] = None) -> FakeUpstreamProc:
    """Start fake_upstream.py on a free loopback port; returns once it printed LISTENING."""
    log_path = os.path.join(log_dir, f"fake-upstream-{time.monotonic_ns()}.log")
    log = open(log_path, "wb")
    tls_args = ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else []
    proc = subprocess.Popen([PYTHON, FAKE_UPSTREAM, "--host", "127.0.0.1", "--port", "0",
                             "--api-key", api_key, *tls_args],
                            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + timeout
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline().decode(errors="replace")
            if not line:  # exited
                break
            if line.startswith("LISTENING "):
                upstream = FakeUpstreamProc(proc, int(line.split()[1]), api_key, log_path)
                if tls:  # its public URL is HTTPS; the test controls still go over it too
                    upstream.url = upstream.url.replace("http://", "https://")
                return upstream
    finally:
        sel.close()
    _terminate(proc, 5)
    raise RuntimeError(f"fake upstream did not start:\n{tail_file(log_path)}")


@pytest.fixture
def fake_upstream(request, tmp_path):
    upstream = start_fake_upstream(str(tmp_path))
    _attach_log(request, "fake upstream stderr", upstream.log_path)
    yield upstream
    upstream.stop()


# --------------------------------------------------------------------------- gateway

def default_gateway_config(upstream: FakeUpstreamProc) -> Dict[str, Any]:
    """The config most tests start from: one key (team-a, every model), one model with one
    worker: the fake upstream."""
    return {
        "listen": "127.0.0.1:0",  # replaced by the factory
        "auth": {"keys": [{"name": "team-a", "key": GATEWAY_KEY, "models": ["*"]}]},
        "models": [{
            "name": "gpt-realtime", "upstream_model": "gpt-realtime",
            "workers": [{"url": upstream.url, "api_key": upstream.api_key,
                         "provider": "openai"}],
        }],
    }


class GatewayProc:
    """A running gateway process."""

    def __init__(self, proc: subprocess.Popen, port: int, config: Dict[str, Any],
                 config_path: str, workdir: str, stdout_path: str, stderr_path: str):
        self.proc, self.port, self.config = proc, port, config
        self.config_path, self.workdir = config_path, workdir
        self.stdout_path, self.stderr_path = stdout_path, stderr_path
        self.url = f"http://127.0.0.1:{port}"
        keys = (config.get("auth") or {}).get("keys") or []
        self.key: Optional[str] = keys[0].get("key") if keys else None

    def running(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return tail_file(self.stderr_path, 1 << 20)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code."""
        return _terminate(self.proc, timeout)


def _terminate(proc: subprocess.Popen, timeout: float) -> Optional[int]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


def _wait_healthy(gw: GatewayProc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not gw.running():
            raise RuntimeError(f"gateway exited with {gw.proc.returncode} during start-up:\n"
                               f"{gw.stderr()[-20000:]}")
        if http_request("GET", gw.url + "/healthz", timeout=1.0).status == 200:
            return
        time.sleep(0.1)
    gw.stop()
    raise RuntimeError(f"gateway not healthy after {timeout} s:\n{gw.stderr()[-20000:]}")


@pytest.fixture
def gateway_factory(request, tmp_path):
    """``gateway_factory(config, env=None, args=(), wait_healthy=True, health_timeout=10,
    preexec_fn=None)`` (``preexec_fn``: run in the child before exec, e.g. to set rlimits)
    writes ``config`` (its ``listen`` replaced by a free loopback port) to a JSON file and
    runs ``$RTGW_BINARY --config FILE --listen 127.0.0.1:PORT *args`` in a fresh directory.
    Every gateway it started is stopped at teardown."""
    binary = os.environ.get("RTGW_BINARY")
    if not binary:
        pytest.skip("RTGW_BINARY is not set: build the gateway and export "
                    "RTGW_BINARY=/path/to/realtime-gateway to run the gateway tests")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"RTGW_BINARY={binary} is not an executable file")
    started: List[GatewayProc] = []

    def factory(config: Dict[str, Any], env: Optional[Dict[str, str]] = None,
                args: Sequence[str] = (), wait_healthy: bool = True,
                health_timeout: float = 10.0, preexec_fn=None) -> GatewayProc:
        index = len(started)
        workdir = tmp_path / f"gateway-{index}"
        workdir.mkdir()
        port = free_port()
        config = dict(config, listen=f"127.0.0.1:{port}")
        config_path = str(workdir / "config.json")
        with open(config_path, "w") as f:
            json.dump(config, f, indent=2)
        stdout_path, stderr_path = str(workdir / "stdout.log"), str(workdir / "stderr.log")
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [binary, "--config", config_path, "--listen", f"127.0.0.1:{port}", *args],
                cwd=str(workdir), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env={**os.environ, **(env or {})}, preexec_fn=preexec_fn)
        gw = GatewayProc(proc, port, config, config_path, str(workdir), stdout_path,
                         stderr_path)
        started.append(gw)
        _attach_log(request, f"gateway {index} stderr", stderr_path)
        _attach_log(request, f"gateway {index} stdout", stdout_path)
        if wait_healthy:
            _wait_healthy(gw, health_timeout)
        return gw

    yield factory
    for gw in started:
        gw.stop()


@pytest.fixture
def gateway(fake_upstream, gateway_factory):
    """A gateway with ``default_gateway_config(fake_upstream)``; its key is ``gateway.key``.
    (fake_upstream is requested first so it outlives the gateway at teardown.)"""
    return gateway_factory(default_gateway_config(fake_upstream))


@pytest.fixture
def default_gateway(request, tmp_path):
    """The gateway exactly as the README's run command starts it: no config file (the built-in
    echo model, no keys, loopback). Yields its base URL; SIGTERM at teardown must exit 0."""
    binary = os.environ.get("RTGW_BINARY")
    if not binary:
        pytest.skip("RTGW_BINARY is not set")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    log_path = str(tmp_path / "default-gateway.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}"], stdout=log,
                                stderr=log, stdin=subprocess.DEVNULL, env=env, cwd=str(tmp_path))
    _attach_log(request, "default gateway log", log_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while http_request("GET", url + "/healthz", timeout=1).status != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            _terminate(proc, 5)
            raise RuntimeError(f"default gateway did not start:\n{tail_file(log_path)}")
        time.sleep(0.1)
    yield url
    assert _terminate(proc, 10) == 0

