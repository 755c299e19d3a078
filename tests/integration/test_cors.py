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
    # SPEC: an allowed origin may send any header it asks for (SDKs add their own, e.g.
    # X-OpenAI-Agents-SDK, and new ones with new versions).
    wanted = SDK_HEADERS + ", X-OpenAI-Agents-SDK, x-sdk-of-next-year"
    reply = preflight(gw.url, APP, wanted)
    assert reply.status == 204
    assert header(reply.headers, "Access-Control-Allow-Origin") == APP
    assert "POST" in header(reply.headers, "Access-Control-Allow-Methods")
    allowed = {h.strip().lower() for h in header(reply.headers, "Access-Control-Allow-Headers").split(",")}
    assert allowed == {h.strip().lower() for h in wanted.split(",")}
    call = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), model="gpt-realtime",
                      extra_headers={"Origin": APP})
    assert call.status == 201, call.body
    assert header(call.headers, "Access-Control-Allow-Origin") == APP
    assert "Location" in header(call.headers, "Access-Control-Expose-Headers")
    # errors carry the CORS headers too, so a browser can read them
    bad = post_offer(gw.url, "sk-wrong-key", aiortc_offer(), model="gpt-realtime",
                     extra_headers={"Origin": APP})
    assert bad.status == 401 and header(bad.headers, "Access-Control-Allow-Origin") == APP


def test_preflight_refuses_a_header_list_that_is_not_tokens(fake_upstream, gateway_factory):
    gw = cors_gateway(fake_upstream, gateway_factory, [APP])
    for bad in ("authorization, x-a b", "authorization, x(a)", 'x-"quoted"', "x-a;b"):
        reply = preflight(gw.url, APP, bad)
        assert reply.status == 204
        assert header(reply.headers, "Access-Control-Allow-Origin") == APP
        assert header(reply.headers, "Access-Control-Allow-Headers") is None, bad


def test_unlisted_origin_is_refused(fake_upstream, gateway_factory):
    gw = cors_gateway(fake_upstream, gateway_factory, [APP])
    reply = preflight(gw.url, "https://evil.example", SDK_HEADERS + ", x-openai-agents-sdk")
    assert header(reply.headers, "Access-Control-Allow-Origin") is None
    assert header(reply.headers, "Access-Control-Allow-Headers") is None
    assert header(reply.headers, "Access-Control-Allow-Methods") is None
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
