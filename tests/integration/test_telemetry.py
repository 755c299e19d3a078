"""OpenTelemetry traces (SPEC "Telemetry, recording, transcripts"; docs/operations.md, "Traces
(OpenTelemetry)"): a collector on loopback receives the OTLP/HTTP JSON the gateway posts.

A Chromium call and a WebSocket session each get one span, child of the caller's
`traceparent`, with the set-up steps as its children and one event per response.done; a
malformed traceparent starts a new trace; a down collector costs dropped spans (counted), never
the call.
"""
from __future__ import annotations

import asyncio
import http.server
import json
import os
import secrets
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

from cleanstate import metric, metrics
from conftest import GATEWAY_KEY, default_gateway_config
from peers.aiortc_client import AiortcCall
from peers.common import free_port, post_offer, wait_until
from peers.ws_client import WsClient
from test_calls import aiortc_offer
from test_spend import PRICING, TURN_USD

MODEL = "gpt-realtime"
SPAN_NAME = f"realtime {MODEL}"
# The fake upstream's response.done: 37 input and 20 output tokens per turn.
TURN_INPUT, TURN_OUTPUT = 37, 20
COLLECTOR_KEY = "collector-secret-0001"


def any_value(v: Dict[str, Any]) -> Any:
    """An OTLP/JSON AnyValue as Python (intValue is a string in the JSON mapping)."""
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        assert isinstance(v["intValue"], str), v  # int64 travel as strings
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    raise AssertionError(f"unexpected AnyValue {v}")


def attrs(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {a["key"]: any_value(a["value"]) for a in items}


class Collector:
    """An OTLP/HTTP collector on 127.0.0.1: records every POST /v1/traces (headers, body)."""

    def __init__(self) -> None:
        self.posts: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with collector.lock:
                    collector.posts.append({"path": self.path, "headers": dict(self.headers),
                                            "body": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> List[Dict[str, Any]]:
        """Every span received, flattened, with its resource's attributes and decoded
        attributes (`attrs`)."""
        out = []
        with self.lock:
            posts = list(self.posts)
        for post in posts:
            assert post["path"] == "/v1/traces", post["path"]
            for rs in post["body"]["resourceSpans"]:
                resource = attrs(rs["resource"]["attributes"])
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        out.append(dict(span, attrs=attrs(span.get("attributes", [])),
                                        resource=resource, headers=post["headers"]))
        return out

    def wait_span(self, predicate, timeout: float = 20.0) -> Optional[Dict[str, Any]]:
        found: List[Dict[str, Any]] = []

        def look():
            found[:] = [s for s in self.spans() if predicate(s)]
            return bool(found)
        wait_until(look, timeout)
        return found[0] if found else None


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def traced_gateway(fake_upstream, gateway_factory, endpoint: str, **telemetry):
    config = default_gateway_config(fake_upstream)
    config["models"][0]["pricing"] = PRICING
    config["telemetry"] = dict({"otlp_endpoint": endpoint, "service_name": "gw-under-test",
                                "headers": {"X-Collector-Key": "env:RTGW_TEST_COLLECTOR_KEY"}},
                               **telemetry)
    return gateway_factory(config, env={"RTGW_TEST_COLLECTOR_KEY": COLLECTOR_KEY})


def new_traceparent():
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent_id}-01", trace_id, parent_id


def children_of(collector: Collector, span: Dict[str, Any], names: List[str], timeout=10.0):
    """The span's children once every name in `names` is among them (bounded wait)."""
    def kids():
        return [s for s in collector.spans() if s.get("parentSpanId") == span["spanId"]]
    wait_until(lambda: set(names) <= {k["name"] for k in kids()}, timeout)
    return kids()


def save_spans(name: str, spans: List[Dict[str, Any]]) -> None:
    """The spans as received, and a one-line-per-span summary (ms from the call's start), to
    $RTGW_TEST_OUTPUT for a reader."""
    out = os.environ.get("RTGW_TEST_OUTPUT")
    if not out or not spans:
        return
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump([{k: v for k, v in s.items() if k not in ("headers", "attrs")} for s in spans],
                  f, indent=1)
    t0 = int(spans[0]["startTimeUnixNano"])
    with open(os.path.join(out, name + ".txt"), "w") as f:
        for s in spans:
            start = (int(s["startTimeUnixNano"]) - t0) / 1e6
            end = (int(s["endTimeUnixNano"]) - t0) / 1e6
            leg = s["attrs"].get("rtgw.leg", "")
            f.write(f"{s['name']:<24} {leg:<9} {start:9.1f} -> {end:9.1f} ms "
                    f"({end - start:.1f} ms)\n")


def check_nested(span: Dict[str, Any], kids: List[Dict[str, Any]]) -> None:
    start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
    assert start <= end
    for k in kids:
        assert k["traceId"] == span["traceId"], k
        assert k["kind"] == 1, k  # INTERNAL
        k_start, k_end = int(k["startTimeUnixNano"]), int(k["endTimeUnixNano"])
        assert start <= k_start <= k_end <= end, (k["name"], start, k_start, k_end, end)


def test_chromium_call_span_children_and_response_events(fake_upstream, gateway_factory,
                                                         collector):
    from peers.browser_client import BrowserCall

    gw = traced_gateway(fake_upstream, gateway_factory, collector.url)
    traceparent, trace_id, parent_id = new_traceparent()
    with BrowserCall(gw.url, GATEWAY_KEY, model=MODEL,
                     extra_headers={"traceparent": traceparent}) as call:
        result = call.connect()
        assert result.status == 201, (result.status, result.error_body, result.error)
        assert call.wait_for(lambda r: r.events_of("session.created"), 20), call.result.error
        for turn in (1, 2):
            call.send({"type": "response.create"})
            assert call.wait_for(lambda r, n=turn: len(r.events_of("response.done")) >= n, 20), \
                call.result.event_types()
        result = call.close("hangup")
    call_id = result.call_id
    assert call_id

    span = collector.wait_span(lambda s: s["attrs"].get("rtgw.call.id") == call_id)
    assert span, collector.spans()
    assert span["name"] == SPAN_NAME
    assert span["kind"] == 2  # SERVER
    # The caller's traceparent parents the call's span.
    assert span["traceId"] == trace_id
    assert span["parentSpanId"] == parent_id
    assert len(span["spanId"]) == 16 and span["spanId"] != parent_id
    assert span["resource"]["service.name"] == "gw-under-test"
    assert span["headers"].get("X-Collector-Key") == COLLECTOR_KEY
    a = span["attrs"]
    assert a["gen_ai.operation.name"] == "realtime"
    assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == MODEL
    assert a["gen_ai.usage.input_tokens"] == 2 * TURN_INPUT
    assert a["gen_ai.usage.output_tokens"] == 2 * TURN_OUTPUT
    assert a["rtgw.key.name"] == "team-a"
    assert a["rtgw.transport"] == "webrtc"
    assert a["rtgw.worker"]
    assert a["rtgw.outcome"] == "completed"
    assert a["rtgw.end_reason"]
    assert a["rtgw.turns"] == 2
    assert abs(a["rtgw.cost_usd"] - 2 * TURN_USD) < 1e-9, a["rtgw.cost_usd"]
    assert span.get("status", {}).get("code", 0) != 2, span.get("status")
    # One event per response.done, with its usage and cost; no content by default.
    events = span.get("events", [])
    assert [e["name"] for e in events] == ["gen_ai.response", "gen_ai.response"], events
    for e in events:
        ea = attrs(e["attributes"])
        assert ea["gen_ai.usage.input_tokens"] == TURN_INPUT
        assert ea["gen_ai.usage.output_tokens"] == TURN_OUTPUT
        assert abs(ea["rtgw.cost_usd"] - TURN_USD) < 1e-9
        assert ea["gen_ai.response.id"]
        assert not any(k.startswith("rtgw.content") for k in ea), ea
        assert int(span["startTimeUnixNano"]) <= int(e["timeUnixNano"]) <= \
            int(span["endTimeUnixNano"])

    steps = ["rtgw.auth", "rtgw.offer_checks", "rtgw.admission", "rtgw.client_offer",
             "rtgw.upstream_offer", "rtgw.upstream_answer", "rtgw.client_answer", "rtgw.ice",
             "rtgw.dtls", "rtgw.fingerprint_check"]
    kids = children_of(collector, span, steps)
    save_spans("telemetry-chromium-call", [span] + kids)
    names = [k["name"] for k in kids]
    assert set(steps) <= set(names), names
    check_nested(span, kids)
    for leg_step in ("rtgw.ice", "rtgw.dtls", "rtgw.fingerprint_check"):
        legs = sorted(k["attrs"].get("rtgw.leg") for k in kids if k["name"] == leg_step)
        assert legs == ["client", "upstream"], (leg_step, legs)
    for k in kids:
        if k["name"] == "rtgw.fingerprint_check":
            assert k["attrs"]["rtgw.dtls.result"] == "verified"
    # The steps follow each other: auth before the offer checks, before admission.
    by_name = {k["name"]: k for k in kids}
    assert int(by_name["rtgw.auth"]["endTimeUnixNano"]) <= \
        int(by_name["rtgw.offer_checks"]["startTimeUnixNano"])
    assert int(by_name["rtgw.offer_checks"]["endTimeUnixNano"]) <= \
        int(by_name["rtgw.admission"]["startTimeUnixNano"])
    assert by_name["rtgw.upstream_answer"]["attrs"]["rtgw.worker"] == a["rtgw.worker"]


def test_websocket_session_span_and_a_malformed_traceparent(fake_upstream, gateway_factory,
                                                            collector):
    gw = traced_gateway(fake_upstream, gateway_factory, collector.url)
    traceparent, trace_id, parent_id = new_traceparent()

    async def session(headers):
        async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL, headers=headers) as client:
            assert client.connected, client.result
            await client.wait_for(lambda r: r.events_of("session.created"), 10)
            await client.send({"type": "response.create"})
            assert await client.wait_for(lambda r: r.events_of("response.done"), 10)
            return client.result

    asyncio.run(session({"traceparent": traceparent}))
    span = collector.wait_span(lambda s: s["attrs"].get("rtgw.transport") == "websocket")
    assert span, collector.spans()
    assert span["name"] == SPAN_NAME and span["kind"] == 2
    assert span["traceId"] == trace_id and span["parentSpanId"] == parent_id
    a = span["attrs"]
    assert a["rtgw.call.id"].startswith("ws_")
    assert a["rtgw.key.name"] == "team-a"
    assert a["rtgw.turns"] == 1
    assert a["gen_ai.usage.input_tokens"] == TURN_INPUT
    assert abs(a["rtgw.cost_usd"] - TURN_USD) < 1e-9
    assert [e["name"] for e in span.get("events", [])] == ["gen_ai.response"]
    kids = children_of(collector, span, ["rtgw.auth", "rtgw.admission"])
    check_nested(span, kids)

    # A malformed traceparent (upper-case hex) is ignored: a new trace, a root span.
    bad = f"00-{trace_id.upper()}-{parent_id.upper()}-01"
    asyncio.run(session({"traceparent": bad}))
    other = collector.wait_span(lambda s: s["attrs"].get("rtgw.transport") == "websocket"
                                and s["attrs"]["rtgw.call.id"] != a["rtgw.call.id"])
    assert other, collector.spans()
    assert other["traceId"] != trace_id and len(other["traceId"]) == 32
    assert not other.get("parentSpanId"), other


def test_failed_setup_span_is_an_error(fake_upstream, gateway_factory, collector):
    """A call whose worker refuses it still gets its span: status ERROR, the set-up failure as
    its outcome, the request's steps as children."""
    gw = traced_gateway(fake_upstream, gateway_factory, collector.url)
    fake_upstream.config(status=503, body={"error": {"code": "busy", "message": "m",
                                                     "type": "t"}})
    traceparent, trace_id, parent_id = new_traceparent()
    reply = post_offer(gw.url, GATEWAY_KEY, aiortc_offer(), MODEL,
                       extra_headers={"traceparent": traceparent})
    assert reply.status >= 500, reply
    span = collector.wait_span(lambda s: s["traceId"] == trace_id and s["kind"] == 2)
    assert span, collector.spans()
    assert span["parentSpanId"] == parent_id
    assert span["attrs"]["rtgw.outcome"] == "upstream_error", span["attrs"]
    assert span["attrs"]["rtgw.turns"] == 0
    assert span["status"]["code"] == 2 and "upstream_error" in span["status"]["message"]
    kids = children_of(collector, span, ["rtgw.auth", "rtgw.offer_checks", "rtgw.admission"])
    check_nested(span, kids)


def test_down_collector_drops_spans_and_the_call_goes_on(fake_upstream, gateway_factory):
    port = free_port()  # nothing listens there
    gw = traced_gateway(fake_upstream, gateway_factory, f"http://127.0.0.1:{port}")

    async def one_call():
        call = AiortcCall(gw.url, GATEWAY_KEY, model=MODEL)
        try:
            result = await call.connect()
            assert result.status == 201, (result.status, result.error_body)
            assert await call.wait_for(lambda r: r.channel_opened, 20), call.result
            call.send({"type": "response.create"})
            assert await call.wait_for(lambda r: r.events_of("response.done"), 20), \
                call.result.event_types()
            assert await call.hangup() == 200
        finally:
            await call.close()

    for _ in range(2):
        asyncio.run(one_call())
    # Each call's span and its children are dropped and counted, once the batch fails.
    assert wait_until(lambda: (metric(metrics(gw), "rtgw_telemetry_dropped_total",
                                      '{reason="export_failed"}') or 0) >= 2, 20), \
        metrics(gw)
    assert (metric(metrics(gw), "rtgw_telemetry_exported_total") or 0) == 0
    assert gw.running()


def test_include_content_adds_the_response_transcript_bounded(fake_upstream, gateway_factory,
                                                              collector):
    """telemetry.include_content: a response.done's transcript rides on its event, cut at
    4096 bytes on a character boundary; without it (the other tests) there is none."""
    gw = traced_gateway(fake_upstream, gateway_factory, collector.url, include_content=True)
    usage = {"total_tokens": 3, "input_tokens": 1, "output_tokens": 2}
    short = {"type": "response.done", "event_id": "evt_a", "response": {
        "id": "resp_short", "object": "realtime.response", "status": "completed", "usage": usage,
        "output": [{"type": "message", "role": "assistant", "content": [
            {"type": "output_audio", "transcript": "Hello from the trace."}]}]}}
    long_text = "é" * 3000  # 6000 bytes
    long = {"type": "response.done", "event_id": "evt_b", "response": {
        "id": "resp_long", "object": "realtime.response", "status": "completed", "usage": usage,
        "output": [{"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": long_text}]}]}}

    async def session():
        async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL) as client:
            assert client.connected, client.result
            await client.wait_for(lambda r: r.events_of("session.created"), 10)
            await client.send({"type": "test.emit", "events": [short, long]})
            assert await client.wait_for(lambda r: len(r.events_of("response.done")) >= 2, 10)

    asyncio.run(session())
    span = collector.wait_span(lambda s: s["attrs"].get("rtgw.transport") == "websocket")
    assert span, collector.spans()
    events = {attrs(e["attributes"])["gen_ai.response.id"]: attrs(e["attributes"])
              for e in span.get("events", [])}
    assert set(events) == {"resp_short", "resp_long"}, events
    assert events["resp_short"]["rtgw.content.transcript"] == "Hello from the trace."
    cut = events["resp_long"]["rtgw.content.transcript"]
    assert len(cut.encode()) <= 4096 and long_text.startswith(cut) and len(cut) == 2048, len(cut)


def test_spans_of_the_last_session_leave_at_shutdown(fake_upstream, gateway_factory, collector):
    """SIGTERM right after a session ended: its span is sent before the gateway exits, not left
    for the next batch tick (1 s), which an exiting gateway would never reach."""
    gw = traced_gateway(fake_upstream, gateway_factory, collector.url)

    async def session():
        async with WsClient(gw.url, key=GATEWAY_KEY, model=MODEL) as client:
            assert client.connected, client.result
            await client.wait_for(lambda r: r.events_of("session.created"), 10)

    asyncio.run(session())
    assert wait_until(lambda: metric(metrics(gw), "rtgw_live_websocket_sessions",
                                     f'{{model="{MODEL}"}}') in (None, 0.0), 10)
    assert gw.stop() == 0
    assert any(s["attrs"].get("rtgw.transport") == "websocket" for s in collector.spans()), \
        collector.posts
