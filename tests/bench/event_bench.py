#!/usr/bin/python3
"""Event benchmark: what the gateway's event path (rteventfilter + rtusagemeter) adds to an
event's trip. Prints figures (no verdict). Issue target: filter + meter add <= 1 ms p50.

  1. latency: one live call through the gateway and one placed with the same client directly
     against the fake upstream. M test.echo events one at a time on each (alternating), waiting
     for each test.echoed: round trip client -> [gateway ->] upstream -> [gateway ->] client.
     The difference of the two is what the gateway adds for two passes (one each way).
  2. throughput: S seconds of test.echo events as fast as the echoes come back, at most
     WINDOW in flight, on each of the two calls; events/s that came back.
  3. the elements alone (no WebRTC, no network): appsrc ! rteventfilter policy=… !
     rtusagemeter ! appsink in this process with the Python GStreamer bindings
     (GST_PLUGIN_PATH=build/plugins/rtevents), 100k events queued up front, then timed
     through; against appsrc ! appsink as a baseline.

  /usr/bin/python3 tests/bench/event_bench.py [--events M] [--seconds S] [--json FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

from peers.aiortc_client import AiortcCall  # noqa: E402
from peers.common import http_request  # noqa: E402

PLUGIN_DIR = os.path.join(bl.ROOT, "build", "plugins", "rtevents")


# --------------------------------------------------------------------------- live calls

class EchoCall:
    """An AiortcCall whose test.echoed events resolve per-payload futures (timestamped in the
    data channel callback, not after the await wakes up) and feed the throughput run."""

    def __init__(self, name: str, base_url: str, key: str) -> None:
        self.name = name
        self.call = AiortcCall(base_url, key, bl.MODEL, on_event=self._on_event)
        self.waiting: Dict[str, asyncio.Future] = {}
        self.seq = 0
        # throughput state
        self.flood_until = 0.0
        self.in_flight = 0
        self.flood_sent = 0
        self.flood_back = 0

    def _on_event(self, event: Dict[str, Any], _call) -> None:
        if event.get("type") != "test.echoed":
            return
        now = time.perf_counter()
        payload = str(event.get("payload"))
        if payload.startswith("f"):                   # throughput run
            self.in_flight -= 1
            if time.perf_counter() < self.flood_until:
                self.flood_back += 1
                self._flood_one()
            return
        fut = self.waiting.pop(payload, None)
        if fut is not None and not fut.done():
            fut.set_result(now)

    async def connect(self) -> None:
        await self.call.connect()
        if not self.call.connected:
            r = self.call.result
            raise RuntimeError(f"{self.name}: POST status {r.status}: {r.error or r.error_body}")
        if not await self.call.wait_for(
                lambda r: r.channel_opened and r.events_of("session.created"), 15.0):
            raise RuntimeError(f"{self.name}: no session.created on the data channel")

    async def round_trip(self, timeout: float = 5.0) -> Optional[float]:
        """One test.echo -> test.echoed; milliseconds, or None on timeout."""
        self.seq += 1
        payload = f"p{self.seq}"
        fut = asyncio.get_running_loop().create_future()
        self.waiting[payload] = fut
        t0 = time.perf_counter()
        self.call.send({"type": "test.echo", "payload": payload})
        try:
            t1 = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self.waiting.pop(payload, None)
            return None
        return (t1 - t0) * 1000.0

    def _flood_one(self) -> None:
        self.flood_sent += 1
        self.in_flight += 1
        self.call.send({"type": "test.echo", "payload": f"f{self.flood_sent}"})

    async def flood(self, seconds: float, window: int) -> Dict[str, float]:
        """Keep ``window`` events in flight for ``seconds``; echoes/s that came back in time."""
        self.flood_sent = self.flood_back = self.in_flight = 0
        t0 = time.perf_counter()
        self.flood_until = t0 + seconds
        for _ in range(window):
            self._flood_one()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - t0
        drain_deadline = time.monotonic() + 10.0      # let the stragglers come back (bounded)
        while self.in_flight > 0 and time.monotonic() < drain_deadline:
            await asyncio.sleep(0.05)
        return {"seconds": elapsed, "sent": self.flood_sent, "echoed": self.flood_back,
                "lost": self.in_flight, "events_per_s": self.flood_back / elapsed}


async def live_bench(gw_url: str, up_url: str, events: int, warmup: int, seconds: float,
                     window: int, gw_pid: int) -> Dict[str, Any]:
    gw = EchoCall("gateway", gw_url, bl.GATEWAY_KEY)
    direct = EchoCall("direct", up_url, bl.UPSTREAM_KEY)
    out: Dict[str, Any] = {}
    try:
        await gw.connect()
        await direct.connect()
        await asyncio.sleep(1.0)                      # both calls settled (audio flowing)
        rtts: Dict[str, List[float]] = {"gateway": [], "direct": []}
        timeouts = {"gateway": 0, "direct": 0}
        for i in range(warmup + events):              # alternate: drift hits both alike
            for c in (gw, direct):
                ms = await c.round_trip()
                if ms is None:
                    timeouts[c.name] += 1
                elif i >= warmup:
                    rtts[c.name].append(ms)
        out["rtt_ms"] = {k: bl.summary(v, (50, 90, 99)) for k, v in rtts.items()}
        out["timeouts"] = timeouts
        # The gateway's own share: how long the last 256 events stayed inside it each way (from
        # the event source's stamp to the main loop's hand-off; builds before it report none).
        state = await asyncio.to_thread(
            http_request, "GET", gw_url + (gw.call.result.location or "/none"),
            headers={"Authorization": "Bearer " + bl.GATEWAY_KEY})
        try:
            out["event_relay_us"] = json.loads(state.body)["timings"]["event_relay_us"]
        except (ValueError, KeyError, TypeError):
            out["event_relay_us"] = None
        out["throughput"] = {}
        for c in (gw, direct):
            cpu = bl.CpuWindow({"gateway": [gw_pid]})
            cpu.start()
            t = out["throughput"][c.name] = await c.flood(seconds, window)
            gw_cpu = cpu.stop()        # includes the drain and the gateway call's audio relay
            t["gateway_cpu_pct"] = gw_cpu["gateway_pct"]
            t["gateway_cpu_us_per_event"] = (gw_cpu["gateway_pct"] / 100 * gw_cpu["seconds"]
                                             / max(1, t["echoed"]) * 1e6)
            await asyncio.sleep(1.0)
        out["audio_frames_received"] = {c.name: c.call.audio.frames for c in (gw, direct)}
    finally:
        await asyncio.gather(gw.call.close("close"), direct.call.close("close"),
                             return_exceptions=True)
    return out


def report_live(live: Dict[str, Any], events: int) -> None:
    g, d = live["rtt_ms"]["gateway"], live["rtt_ms"]["direct"]
    print(f"\n== 1. event round trip, ms ({events} events each, one at a time, alternating)")
    bl.print_table(["path", "n", "p50", "p90", "p99", "max"],
                   [["client -> gateway -> upstream -> gateway -> client", g["n"], g["p50"],
                     g["p90"], g["p99"], g["max"]],
                    ["client -> upstream -> client (no gateway)", d["n"], d["p50"], d["p90"],
                     d["p99"], d["max"]],
                    ["difference (gateway adds, both passes)", "", g["p50"] - d["p50"],
                     g["p90"] - d["p90"], g["p99"] - d["p99"], ""]], digits=3)
    print("target: filter + meter add <= 1 ms p50 (the difference also includes the gateway's "
          "two extra SCTP/DTLS hops and its event loop)")
    relay = live.get("event_relay_us")
    if relay:
        up, down = relay["to_upstream"], relay["to_client"]
        inside_ms = ((up["p50"] or 0) + (down["p50"] or 0)) / 1000.0
        print(f"time inside the gateway per event (timings.event_relay_us, last {min(up['count'], 256)}"
              f" events; source stamp -> main-loop hand-off): to upstream p50 {up['p50']} µs / "
              f"p90 {up['p90']} µs, to client p50 {down['p50']} µs / p90 {down['p90']} µs; "
              f"both ways {inside_ms:.3f} ms of the {g['p50'] - d['p50']:.3f} ms added: the rest is "
              f"the second webrtcbin pair's SCTP/DTLS/ICE path each way")
    else:
        print("time inside the gateway per event: not reported by this build")
    frames = live["audio_frames_received"]
    print(f"(both calls live with audio both ways: the client decoded {frames['gateway']} / "
          f"{frames['direct']} 20 ms frames over the whole run, gateway / direct)")
    if any(live["timeouts"].values()):
        print(f"!! round trips that timed out (5 s): {live['timeouts']}")
    print(f"\n== 2. event throughput (window {live['window']} in flight, "
          f"{live['seconds']:g} s each)")
    bl.print_table(["path", "sent", "echoed in time", "events/s", "not back after 10 s",
                    "gateway CPU %core", "gateway CPU µs/event"],
                   [[name, t["sent"], t["echoed"], t["events_per_s"], t["lost"],
                     t["gateway_cpu_pct"],
                     t["gateway_cpu_us_per_event"] if name == "gateway" else "-"]
                    for name, t in live["throughput"].items()], digits=0)
    print("(gateway CPU on the direct line: the gateway only relays the other call's audio)")
    c = live["cpu"]
    print(f"CPU over runs 1+2 ({c['seconds']:.0f} s), % of one core: gateway "
          f"{c['gateway_pct']:.0f}, fake upstream {c['upstream_pct']:.0f}, this client "
          f"{c['bench_pct']:.0f}, interrupts {c['irq_pct']:.0f}, rest of the machine "
          f"{c['rest_pct']:.0f}; machine "
          f"{c['machine_pct']:.0f} % of {os.cpu_count()} cores")
    if c["rest_pct"] > 20:
        print("!! other processes were busy during the live runs: the figures are disturbed")


# --------------------------------------------------------------------------- elements alone

def event_mix(count: int, audio_chars: int) -> List[bytes]:
    """Client events as the gateway sees them: response.create with various service tiers,
    session.update with a tier, input_audio_buffer.append with ~audio_chars of base64."""
    rnd = random.Random(1)
    audio = base64.b64encode(rnd.randbytes(audio_chars * 3 // 4)).decode()[:audio_chars]
    tiers = ["priority", "flex", " Fast ", "auto", "default", "PRIORITY"]
    events = []
    for i in range(count):
        eid = f"evt_{i:08d}"
        kind = i % 3
        if kind == 0:
            resp: Dict[str, Any] = {"service_tier": tiers[i % len(tiers)],
                                    "instructions": "Answer briefly.", "modalities": ["audio"]}
            if i % 5 == 0:
                resp["model"] = "gpt-realtime-mini"
            ev = {"type": "response.create", "event_id": eid, "response": resp}
        elif kind == 1:
            ev = {"type": "session.update", "event_id": eid,
                  "session": {"type": "realtime", "model": "gpt-realtime",
                              "service_tier": tiers[(i // 3) % len(tiers)],
                              "instructions": "You are a helpful assistant.",
                              "audio": {"output": {"voice": "marin"}}}}
        else:
            ev = {"type": "input_audio_buffer.append", "event_id": eid, "audio": audio}
        events.append(json.dumps(ev, separators=(",", ":")).encode())
    return events


def server_event_mix(count: int, audio_chars: int) -> List[bytes]:
    """Server events for the upstream->client path: a turn every 10 events (response.created,
    audio deltas, transcript deltas, response.done with usage)."""
    rnd = random.Random(2)
    audio = base64.b64encode(rnd.randbytes(audio_chars * 3 // 4)).decode()[:audio_chars]
    usage = {"total_tokens": 57, "input_tokens": 37, "output_tokens": 20,
             "input_token_details": {"text_tokens": 12, "audio_tokens": 25, "image_tokens": 0,
                                     "cached_tokens": 0},
             "output_token_details": {"text_tokens": 5, "audio_tokens": 15}}
    events = []
    for i in range(count):
        turn, step = divmod(i, 10)
        rid, eid = f"resp_{turn:08d}", f"evt_{i:08d}"
        if step == 0:
            ev = {"type": "response.created", "event_id": eid,
                  "response": {"id": rid, "status": "in_progress", "output": []}}
        elif step == 9:
            ev = {"type": "response.done", "event_id": eid,
                  "response": {"id": rid, "status": "completed", "usage": usage}}
        elif step % 2:
            ev = {"type": "response.output_audio.delta", "event_id": eid, "response_id": rid,
                  "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": audio}
        else:
            ev = {"type": "response.output_audio_transcript.delta", "event_id": eid,
                  "response_id": rid, "item_id": "item_1", "output_index": 0,
                  "content_index": 0, "delta": "Hello there "}
        events.append(json.dumps(ev, separators=(",", ":")).encode())
    return events


def gst_available() -> Optional[str]:
    """None when the GStreamer bindings and the plugin are usable, else why not."""
    try:
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst  # noqa: F401
    except (ImportError, ValueError) as e:
        return f"Python GStreamer bindings unavailable ({e}): install python3-gi gir1.2-gstreamer-1.0"
    if not os.path.isdir(PLUGIN_DIR):
        return f"{PLUGIN_DIR} missing: build the gateway first"
    return None


def run_elements(Gst, description: str, payloads: List[bytes],
                 policy: Optional[str] = None) -> Dict[str, Any]:
    """Queue every payload in appsrc while its src pad is blocked, then release it and time
    the streaming thread pushing them through ``description`` (elements named ``filter`` and
    ``meter``; may be empty) to EOS. ``policy`` is set on ``filter``."""
    middle = f"{description} ! " if description else ""
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=application/x-realtime-event "
        f"max-bytes=0 block=false ! {middle}"
        "appsink name=sink sync=false async=false emit-signals=false drop=true max-buffers=1")
    if policy is not None:
        pipeline.get_by_name("filter").set_property("policy", policy)
    src = pipeline.get_by_name("src")
    # appsrc: max-bytes=0 = unlimited queue; its streaming thread is held at a blocking probe
    # on its src pad while the events are queued, so Python is out of the timed part.
    pad = src.get_static_pad("src")
    probe = pad.add_probe(Gst.PadProbeType.BLOCK | Gst.PadProbeType.BUFFER,
                          lambda *_: Gst.PadProbeReturn.OK)
    # Time stamp the EOS event when it reaches appsink's sink pad: by then every buffer has
    # been through the elements and handed to appsink. (appsink posts its EOS message only
    # once the application pulled its last sample, so the bus is not used for this.)
    eos_at: List[float] = []
    eos_seen = threading.Event()

    def on_event(_pad, info):
        if info.get_event().type == Gst.EventType.EOS:
            eos_at.append(time.perf_counter())
            eos_seen.set()
        return Gst.PadProbeReturn.OK
    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(
        Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)
    pipeline.set_state(Gst.State.PLAYING)
    buffers = [Gst.Buffer.new_wrapped(p) for p in payloads]
    for buf in buffers:
        if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
            raise RuntimeError("appsrc refused a buffer")
    src.emit("end-of-stream")
    # everything but the first buffer (held at the blocked pad) is queued in appsrc now
    cpu0, t0 = time.process_time(), time.perf_counter()
    pad.remove_probe(probe)
    done = eos_seen.wait(120.0)
    cpu = time.process_time() - cpu0
    wall = (eos_at[0] if done else time.perf_counter()) - t0
    error = None if done else "EOS did not reach appsink within 120 s"
    msg = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    if msg is not None:
        error = str(msg.parse_error()[0].message)
    counts: Dict[str, int] = {}
    for name, props in (("filter", ("events-in", "events-filtered", "events-blocked")),
                        ("meter", ("turns",))):
        element = pipeline.get_by_name(name)
        if element is not None:
            for prop in props:
                counts[f"{name}.{prop}"] = int(element.get_property(prop))
    pipeline.set_state(Gst.State.NULL)
    n = len(payloads)
    return {"pipeline": description, "events": n, "error": error, "wall_s": wall,
            "events_per_s": n / wall if wall else 0.0, "wall_us_per_event": wall / n * 1e6,
            "cpu_us_per_event": cpu / n * 1e6, "counts": counts}


def elements_bench(count: int, audio_chars: int, repeat: int) -> Dict[str, Any]:
    os.environ["GST_PLUGIN_PATH"] = os.pathsep.join(
        p for p in (PLUGIN_DIR, os.environ.get("GST_PLUGIN_PATH", "")) if p)
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)
    if Gst.ElementFactory.find("rteventfilter") is None:
        return {"skipped": f"rteventfilter not found in {PLUGIN_DIR}"}
    policy = json.dumps(bl.BENCH_POLICY)
    client = event_mix(count, audio_chars)
    server = server_event_mix(count, audio_chars)
    filt = "rteventfilter name=filter key-name=bench model=gpt-realtime"
    # (label, elements between appsrc and appsink, events, policy of `filter`) - the two
    # event paths of pipelines/call.pipeline; the upstream path's filter has no policy.
    runs = [
        ("client events: appsrc ! appsink (baseline)", "", client, None),
        ("client events: filter only", filt, client, policy),
        ("client events: filter + meter (client path)",
         f"{filt} ! rtusagemeter name=meter direction=client", client, policy),
        ("server events: appsrc ! appsink (baseline)", "", server, None),
        ("server events: filter + meter (upstream path)",
         "rteventfilter name=filter ! rtusagemeter name=meter direction=upstream", server, None),
    ]
    results = []
    for label, description, payloads, pol in runs:
        best = None
        for _ in range(repeat):                       # best of `repeat`: least disturbed
            r = run_elements(Gst, description, payloads, pol)
            if best is None or r["wall_s"] < best["wall_s"]:
                best = r
        best["label"] = label
        results.append(best)
    return {"runs": results, "policy": bl.BENCH_POLICY, "gstreamer": Gst.version_string(),
            "avg_client_event_bytes": sum(map(len, client)) / len(client),
            "avg_server_event_bytes": sum(map(len, server)) / len(server)}


def report_elements(el: Dict[str, Any], count: int) -> None:
    print(f"\n== 3. the elements alone, in-process ({el['gstreamer']}; {count} events per run, "
          f"best of the repeats)")
    print(f"mean event size: client mix {el['avg_client_event_bytes']:.0f} B "
          f"(1/3 response.create with service_tier, 1/3 session.update, 1/3 "
          f"input_audio_buffer.append), server mix {el['avg_server_event_bytes']:.0f} B")
    runs = el["runs"]
    bl.print_table(["pipeline between appsrc and appsink", "events/s", "wall µs/event",
                    "CPU µs/event", "filtered", "blocked", "turns"],
                   [[r["label"], round(r["events_per_s"]), r["wall_us_per_event"],
                     r["cpu_us_per_event"], r["counts"].get("filter.events-filtered", ""),
                     r["counts"].get("filter.events-blocked", ""),
                     r["counts"].get("meter.turns", "")] for r in runs], digits=2)
    by = {r["label"]: r for r in runs}
    c = by["client events: filter + meter (client path)"]["wall_us_per_event"] - \
        by["client events: appsrc ! appsink (baseline)"]["wall_us_per_event"]
    s = by["server events: filter + meter (upstream path)"]["wall_us_per_event"] - \
        by["server events: appsrc ! appsink (baseline)"]["wall_us_per_event"]
    print(f"filter + meter over the baseline: client path {c:.2f} µs/event, "
          f"upstream path {s:.2f} µs/event  (target for the pair: <= 1000 µs p50)")
    for r in runs:
        if r["error"]:
            print(f"!! {r['label']}: {r['error']}")


# --------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--events", type=int, default=500, help="M round trips per path")
    ap.add_argument("--warmup", type=int, default=20, help="round trips left out, per path")
    ap.add_argument("--seconds", type=float, default=5.0, help="S, throughput run per path")
    ap.add_argument("--window", type=int, default=50, help="events in flight, throughput run")
    ap.add_argument("--element-events", type=int, default=100_000)
    ap.add_argument("--audio-chars", type=int, default=4096,
                    help="base64 characters in input_audio_buffer.append / audio deltas")
    ap.add_argument("--repeat", type=int, default=3, help="element runs per pipeline (best)")
    ap.add_argument("--no-policy", action="store_true",
                    help="run the gateway without the benchmark policy")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-elements", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="rtgw-event-bench-")
    out: Dict[str, Any] = {"host": bl.host_info(), "args": vars(args)}
    print(f"gateway {bl.gateway_binary()}  ({out['host']['cpus']} CPUs, "
          f"{out['host']['cpu_model']}); logs in {workdir}")
    if not args.skip_live:
        with bl.Processes() as procs:
            upstream = bl.start_fake_upstream(procs, workdir)
            gw = bl.start_gateway(procs, workdir,
                                  bl.gateway_config(upstream.port, policy=not args.no_policy))
            cpu = bl.CpuWindow({"gateway": [gw.pid], "upstream": [upstream.proc.pid],
                                "bench": [os.getpid()]})
            cpu.start()
            live = asyncio.run(live_bench(gw.url, upstream.url, args.events, args.warmup,
                                          args.seconds, args.window, gw.pid))
            live["cpu"] = cpu.stop()
            live.update(window=args.window, seconds=args.seconds)
            out["live"] = live
        report_live(live, args.events)
    if not args.skip_elements:
        why_not = gst_available()
        if why_not:
            print(f"\n== 3. the elements alone: SKIPPED: {why_not}")
            out["elements"] = {"skipped": why_not}
        else:
            out["elements"] = elements_bench(args.element_events, args.audio_chars, args.repeat)
            if "skipped" in out["elements"]:
                print(f"\n== 3. the elements alone: SKIPPED: {out['elements']['skipped']}")
            else:
                report_elements(out["elements"], args.element_events)
    if args.json:
        bl.write_json(args.json, out)
    if not args.keep:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
