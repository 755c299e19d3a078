"""CORS per SPEC: configurable origins, preflight answered, SDK headers allowed, Location exposed,
unlisted origins refused (and nothing reaches a worker for them)."""
from __future__ import annotations

from conftest import GATEWAY_KEY, default_gateway_config
from peers.common import header, http_request, post_offer
from test_calls import aiortc_offer

APP = "https://app.example.com"
SDK_HEADERS = "authorization, content-type, openai-beta, x-stainless-os, x-stainless-lang"


def cors_gateway(fake_upstream, gateway_factory, origins):
    config = default_gateway_config(fake_upstream)
    config["cors_origins"] = origins
    return gateway_factory(config)


def preflight(url, origin, headers=SDK_HEADERS):
    return http_request("OPTIONS", url + "/v1/realtime/calls", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers})


def test_preflight_and_call_from_a_listed_origin(fake_upstream, gateway_factory):
    gw = cors_gateway(fake_upstream, gateway_factory, [APP])
    reply = preflight(gw.url, APP, SDK_HEADERS + ", x-not-allowed")
    assert reply.status == 204
    assert header(reply.headers, "Access-Control-Allow-Origin") == APP
    assert "POST" in header(reply.headers, "Access-Control-Allow-Methods")
    allowed = {h.strip().lower() for h in header(reply.headers, "Access-Control-Allow-Headers").split(",")}
    assert {"authorization", "content-type", "openai-beta", "x-stainless-os"} <= allowed
    assert "x-not-allowed" not in allowed
    call = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime",
                      extra_headers={"Origin": APP})
    assert call.status == 201, call.body
    assert header(call.headers, "Access-Control-Allow-Origin") == APP
    assert "Location" in header(call.headers, "Access-Control-Expose-Headers")
    # errors carry the CORS headers too, so a browser can read them
    bad = post_offer(gw.url, "sk-wrong-key", aiortc_offer(), model="gpt-realtime",
                     extra_headers={"Origin": APP})
    assert bad.status == 401 and header(bad.headers, "Access-Control-Allow-Origin") == APP


def test_unlisted_origin_is_refused(fake_upstream, gateway_factory):
    gw = cors_gateway(fake_upstream, gateway_factory, [APP])
    reply = preflight(gw.url, "https://evil.example")
    assert header(reply.headers, "Access-Control-Allow-Origin") is None
    call = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime",
                      extra_headers={"Origin": "https://evil.example"})
    assert call.status == 403, call.body
    assert call.json()["error"]["code"] == "origin_not_allowed"
    assert header(call.headers, "Access-Control-Allow-Origin") is None
    assert fake_upstream.requests() == []


def test_default_allows_same_origin_only(gateway, fake_upstream):
    same = f"http://127.0.0.1:{gateway.port}"
    assert http_request("GET", gateway.url + "/healthz", headers={"Origin": same}).status == 200
    assert http_request("GET", gateway.url + "/v1/models",
                        headers={"Origin": "https://app.example.com",
                                 "Authorization": f"Bearer {GATEWAY_KEY}"}).status == 403


def test_wildcard_allows_any_origin(fake_upstream, gateway_factory):
    gw = cors_gateway(fake_upstream, gateway_factory, ["*"])
    reply = preflight(gw.url, "https://anything.example")
    assert reply.status == 204
    assert header(reply.headers, "Access-Control-Allow-Origin") == "https://anything.example"
