"""Per-worker HTTP settings: TLS (own CA, verification), and the azure provider's URL and key."""
from __future__ import annotations

import subprocess

import pytest

from conftest import GATEWAY_KEY, default_gateway_config, start_fake_upstream
from peers.aiortc_client import run_call_sync


@pytest.fixture
def tls_upstream(tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    upstream = start_fake_upstream(str(tmp_path), tls=(cert, key))
    yield upstream, cert
    upstream.stop()


def one_worker(upstream, **extra):
    config = default_gateway_config(upstream)
    config["models"][0]["workers"][0].update(extra)
    return config


def test_tls_worker_with_its_own_ca(tls_upstream, gateway_factory):
    upstream, cert = tls_upstream
    assert upstream.url.startswith("https://")
    ok = gateway_factory(one_worker(upstream, tls_ca_file=cert))
    result = run_call_sync(ok.url, GATEWAY_KEY, model="gpt-realtime", duration=0.5)
    assert result.status == 201, result.error_body
    # the system CAs do not know the test certificate: the set-up fails, as it must
    strict = gateway_factory(one_worker(upstream, health_interval_seconds=0))
    result = run_call_sync(strict.url, GATEWAY_KEY, model="gpt-realtime", duration=0.3)
    assert result.status == 502 and result.error_json["error"]["code"] == "upstream_error"
    # verification explicitly off
    lax = gateway_factory(one_worker(upstream, tls_verify=False))
    assert run_call_sync(lax.url, GATEWAY_KEY, model="gpt-realtime", duration=0.3).status == 201


def test_azure_provider_url_and_api_key_header(fake_upstream, gateway_factory):
    config = one_worker(fake_upstream, provider="azure", deployment="my-realtime",
                        api_version="2025-08-28", health_interval_seconds=0)
    gw = gateway_factory(config)
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", duration=0.5)
    assert result.status == 201, result.error_body
    (req,) = [r for r in fake_upstream.requests() if "/realtime/calls" in r["path"]
              and not r["path"].endswith("/hangup")]
    assert req["path"] == "/openai/deployments/my-realtime/realtime/calls"
    assert req["query"].get("api-version") == "2025-08-28"
    assert req["api_key_header"] == fake_upstream.api_key and req["authorization"] is None


def test_websocket_session_to_a_tls_worker_and_to_azure(tls_upstream, fake_upstream,
                                                         gateway_factory):
    """GET /v1/realtime opens wss:// to a TLS worker with the worker's own CA (and fails with
    1011 without it), and the azure provider's realtime URL with its `api-key` header."""
    from peers.ws_client import run_ws_session

    upstream, cert = tls_upstream
    events = [{"type": "test.echo", "payload": "over tls"}]

    def echoed(r):
        return r.events_of("test.echoed")

    ok = gateway_factory(one_worker(upstream, tls_ca_file=cert))
    result = run_ws_session(ok.url, key=GATEWAY_KEY, model="gpt-realtime", send_events=events,
                            until=echoed, duration=8)
    assert echoed(result), (result.event_types(), result.close_code, result.close_reason)
    assert any("over tls" in e for e in upstream.ws_sessions()[0]["events"])
    strict = gateway_factory(one_worker(upstream, health_interval_seconds=0))
    result = run_ws_session(strict.url, key=GATEWAY_KEY, model="gpt-realtime",
                            until=lambda r: r.closed_by_server, duration=8)
    assert result.close_code == 1011, (result.close_code, result.close_reason)

    azure = gateway_factory(one_worker(fake_upstream, provider="azure", deployment="my-realtime",
                                       api_version="2025-08-28", health_interval_seconds=0))
    result = run_ws_session(azure.url, key=GATEWAY_KEY, model="gpt-realtime",
                            send_events=events, until=lambda r: r.events_of("test.echoed"),
                            duration=8)
    assert result.events_of("test.echoed"), (result.event_types(), result.close_reason)
    (req,) = [r for r in fake_upstream.requests() if r.get("ws_id")]
    assert req["path"] == "/openai/realtime", req
    assert req["query"].get("api-version") == "2025-08-28"
    assert req["query"].get("deployment") == "my-realtime"
    assert req["authorization"] is None, "azure takes the key in `api-key`, not Authorization"
