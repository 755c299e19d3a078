"""service_tier reaches the worker normalized (SPEC "Policy"): trim, lower-case, fast→priority,
with a `pass` rule and with no rule at all, in response.create and session.update, over WebRTC and
WebSocket. OpenAI accepts only auto/default/flex/priority: a verbatim " FAST " would be refused."""
from __future__ import annotations

import json

import pytest

from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import run_call_sync
from peers.ws_client import run_ws_session
from test_websocket import assert_upgraded, of_type, upstream_ws

POLICIES = {
    "pass_rule": {"service_tier": [{"tier": "priority", "action": "pass", "models": ["*"],
                                    "keys": ["*"]}]},
    "no_rule": None,
}
EVENTS = [
    {"type": "session.update", "event_id": "evt_s1", "session": {"service_tier": " Fast"}},
    {"type": "response.create", "event_id": "evt_r1",
     "response": {"service_tier": " FAST ", "instructions": "keep me"}},
    {"type": "response.create", "event_id": "evt_r2", "service_tier": "Default "},
]


def tier_gateway(fake_upstream, gateway_factory, policy):
    config = default_gateway_config(fake_upstream)
    if policy is not None:
        config["policy"] = policy
    return gateway_factory(config)


def assert_normalized(raw_events):
    (update,) = [e for e in map(json.loads, raw_events) if e.get("type") == "session.update"]
    assert update["session"]["service_tier"] == "priority", update
    creates = {e["event_id"]: e for e in map(json.loads, raw_events)
               if e.get("type") == "response.create"}
    assert creates["evt_r1"]["response"] == {"service_tier": "priority",
                                             "instructions": "keep me"}, creates
    assert creates["evt_r2"]["service_tier"] == "default", creates


def two_done(result):
    return len(result.events_of("response.done")) >= 2


@pytest.mark.parametrize("policy", POLICIES, ids=list(POLICIES))
def test_webrtc_tier_reaches_the_worker_normalized(fake_upstream, gateway_factory, policy):
    gw = tier_gateway(fake_upstream, gateway_factory, POLICIES[policy])
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime", send_events=EVENTS,
                           duration=8.0, until=two_done)
    assert two_done(result), result.event_types()
    assert not result.events_of("error"), result.events_of("error")
    calls = fake_upstream.wait_for(
        lambda s: [c for c in s["calls"].values()
                   if len([e for e in c["events"] if '"response.create"' in e]) == 2] or None, 10)
    assert calls, fake_upstream.state()
    assert_normalized(calls[0]["events"])


@pytest.mark.parametrize("policy", POLICIES, ids=list(POLICIES))
def test_websocket_tier_reaches_the_worker_normalized(fake_upstream, gateway_factory, policy):
    gw = tier_gateway(fake_upstream, gateway_factory, POLICIES[policy])
    result = run_ws_session(gw.url, key=GATEWAY_KEY, model="gpt-realtime", send_events=EVENTS,
                            until=two_done, duration=8)
    assert_upgraded(result)
    assert two_done(result), result.event_types()
    up = upstream_ws(fake_upstream)
    assert len(of_type(up["events"], "response.create")) == 2
    assert_normalized(up["events"])
