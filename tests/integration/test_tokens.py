"""Ephemeral tokens: POST /v1/realtime/client_secrets, then a call made with the token."""
from __future__ import annotations

import json
import time

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import run_call_sync
from peers.common import http_request, post_offer
from test_calls import aiortc_offer

SESSION = {"type": "realtime", "model": "gpt-realtime", "instructions": "from the token"}


def mint(gw, key=GATEWAY_KEY, session=SESSION, seconds=None):
    body = {"session": session}
    if seconds is not None:
        body["expires_after"] = {"anchor": "created_at", "seconds": seconds}
    return http_request("POST", gw.url + "/v1/realtime/client_secrets", json.dumps(body).encode(),
                        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})


def token_gateway(fake_upstream, gateway_factory, secret="shared-secret"):
    config = default_gateway_config(fake_upstream)
    config["auth"]["token_secret"] = secret
    return gateway_factory(config)


def test_token_call_takes_model_and_session_from_the_token(fake_upstream, gateway_factory):
    gw = token_gateway(fake_upstream, gateway_factory)
    reply = mint(gw)
    assert reply.status == 200, reply.body
    minted = reply.json()
    assert minted["value"].startswith("ek_")
    assert abs(minted["expires_at"] - (time.time() + 600)) < 5  # the configured default TTL
    assert minted["session"]["model"] == "gpt-realtime"
    assert minted["session"]["instructions"] == "from the token"
    result = run_call_sync(gw.url, minted["value"], model=None,
                           send_events=[{"type": "test.echo", "payload": "t"}], duration=2.0,
                           until=lambda r: r.events_of("test.echoed"))
    assert result.status == 201, result.error_body
    assert result.events_of("test.echoed")
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert req["session"]["instructions"] == "from the token"
    assert req["authorization"] == f"Bearer {fake_upstream.api_key}"


def test_token_is_bound_to_its_model(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["models"].append({"name": "other", "workers": [{"provider": "echo"}]})
    gw = gateway_factory(config)
    token = mint(gw).json()["value"]
    reply = post_offer(gw.url, token, aiortc_offer(), model="other")
    assert reply.status == 403 and reply.json()["error"]["code"] == "model_not_allowed"


def test_tampered_and_foreign_tokens_are_invalid(fake_upstream, gateway_factory):
    gw = token_gateway(fake_upstream, gateway_factory)
    token = mint(gw).json()["value"]
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    reply = post_offer(gw.url, tampered, aiortc_offer())
    assert reply.status == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    other = token_gateway(fake_upstream, gateway_factory, secret="another-secret")
    reply = post_offer(other.url, token, aiortc_offer())
    assert reply.status == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    assert fake_upstream.requests() == []


def test_any_instance_with_the_secret_redeems(fake_upstream, gateway_factory):
    a = token_gateway(fake_upstream, gateway_factory)
    b = token_gateway(fake_upstream, gateway_factory)
    token = mint(a).json()["value"]
    result = run_call_sync(b.url, token, duration=0.5)
    assert result.status == 201, result.error_body


def test_tokens_only_work_on_realtime_endpoints(fake_upstream, gateway_factory):
    gw = token_gateway(fake_upstream, gateway_factory)
    token = mint(gw).json()["value"]
    assert http_request("GET", gw.url + "/v1/models",
                        headers={"Authorization": f"Bearer {token}"}).status == 401
    assert mint(gw, key=token).status == 401  # a token cannot mint tokens


def test_expiry_clamping_and_expired_token(fake_upstream, gateway_factory):
    gw = token_gateway(fake_upstream, gateway_factory)
    now = time.time()
    assert abs(mint(gw, seconds=99999).json()["expires_at"] - (now + 7200)) < 5
    short = mint(gw, seconds=1).json()  # clamped to 10 s
    assert abs(short["expires_at"] - (now + 10)) < 3
    time.sleep(max(0.0, short["expires_at"] - time.time()) + 1.0)
    reply = post_offer(gw.url, short["value"], aiortc_offer())
    assert reply.status == 401 and reply.json()["error"]["code"] == "token_expired"


def test_mint_errors(fake_upstream, gateway_factory):
    gw = token_gateway(fake_upstream, gateway_factory)
    assert mint(gw, session={"type": "realtime"}).json()["error"]["code"] == "missing_model"
    assert mint(gw, session={"model": "nope"}).json()["error"]["code"] == "model_not_found"
    assert mint(gw, key="sk-wrong-key").status == 401


def test_official_openai_sdk_mints_a_token_the_gateway_redeems(fake_upstream, gateway_factory):
    """`openai` (npm) realtime.clientSecrets.create pointed at the gateway; the token places a call."""
    import subprocess

    from peers.node_client import NODE, ensure_node_deps
    from peers.common import PEERS_DIR

    ensure_node_deps("openai")
    gw = token_gateway(fake_upstream, gateway_factory)
    proc = subprocess.run([NODE, "openai_sdk_client_secret.mjs", gw.url, GATEWAY_KEY, "gpt-realtime"],
                          cwd=PEERS_DIR, capture_output=True, text=True, timeout=60)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"], (out, proc.stderr)
    secret = out["secret"]
    assert secret["value"].startswith("ek_") and secret["expires_at"] > time.time()
    result = run_call_sync(gw.url, secret["value"], duration=0.5)
    assert result.status == 201, result.error_body
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert req["session"]["instructions"] == "minted by the openai SDK"
