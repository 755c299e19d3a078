"""Logs: a JSON option, a call id on every call line, never an SDP body or a key."""
from __future__ import annotations

import json

from conftest import GATEWAY_KEY, UPSTREAM_KEY, default_gateway_config
from peers.aiortc_client import run_call_sync


def test_json_logs_carry_call_ids_and_no_secrets(fake_upstream, gateway_factory):
    gw = gateway_factory(default_gateway_config(fake_upstream), env={"RTGW_LOG_JSON": "1"})
    result = run_call_sync(gw.url, GATEWAY_KEY, model="gpt-realtime",
                           send_events=[{"type": "test.echo", "payload": "x"}], duration=1.0)
    assert result.status == 201
    gw.stop()
    text = gw.stderr()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all({"time", "level", "message"} <= set(l) for l in lines)
    call_lines = [l for l in lines if l.get("call_id") == result.call_id]
    assert len(call_lines) >= 3, lines
    assert not [l for l in lines if l["message"].startswith("[rtc_")], "call id left in message"
    for secret in (GATEWAY_KEY, UPSTREAM_KEY, "v=0", "a=fingerprint", "ice-pwd"):
        assert secret not in text, f"{secret!r} appears in the logs"
