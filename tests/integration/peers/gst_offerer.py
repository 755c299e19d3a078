#!/usr/bin/python3
"""A GStreamer webrtcbin *offerer* shaped like the gateway's upstream leg (test-only).

It lets the suite check the fake upstream against the peer it really faces: webrtcbin 1.22
offering one sendrecv Opus m-line (PT 96) plus an ``oai-events`` SCTP data channel, BUNDLE,
all candidates inline (non-trickle). It sends a live 600 Hz tone, counts received RTP packets,
sends the given events once the channel opens and collects what comes back.

Runs in its own process (GLib threads and asyncio don't mix in pytest):
    result = run_gst_offer_call(base_url, key, model, send_events=[...], duration=2)
CLI: /usr/bin/python3 tests/integration/peers/gst_offerer.py --base-url URL --key K ...
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Optional

if __package__ in (None, ""):  # run as a script: make "peers" importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from peers.common import CallResult, Event, decode_event, encode_event, post_offer  # noqa: E402

PIPELINE = (
    "webrtcbin name=webrtc bundle-policy=max-bundle latency=50 "
    "audiotestsrc is-live=true wave=sine freq=600 ! audioconvert ! audioresample ! "
    "opusenc ! rtpopuspay pt=96 ! "
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=96,clock-rate=48000 ! webrtc."
)


def _wait_promise(Gst, emit) -> Optional[Any]:
    """Emit an action with a promise and wait for its reply (never on the pc thread)."""
    promise = Gst.Promise.new()
    emit(promise)
    promise.wait()
    return promise.get_reply()


def run_in_process(base_url: str, key: Optional[str], model: Optional[str],
                   send_events: List[str], duration: float) -> CallResult:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstWebRTC", "1.0")
    gi.require_version("GstSdp", "1.0")
    from gi.repository import Gst, GstSdp, GstWebRTC

    Gst.init(None)
    result = CallResult(client="webrtcbin", audio_packets_received=0)
    lock = threading.Lock()
    pipe = Gst.parse_launch(PIPELINE)
    webrtc = pipe.get_by_name("webrtc")
    opened = threading.Event()

    def on_pad_added(_element, pad):  # streaming thread: count received RTP packets
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("async", False)
        pipe.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

        def count(_pad, _info):
            with lock:
                result.audio_packets_received += 1
            return Gst.PadProbeReturn.OK
        pad.add_probe(Gst.PadProbeType.BUFFER, count)

    webrtc.connect("pad-added", on_pad_added)
    pipe.set_state(Gst.State.PLAYING)
    # The pad requested by parse_launch carries the transceiver: make it sendrecv.
    for pad in webrtc.sinkpads:
        pad.get_property("transceiver").set_property(
            "direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDRECV)

    channel = webrtc.emit("create-data-channel", "oai-events", None)
    # pc-thread callbacks only record; sending happens from this thread.
    channel.connect("on-open", lambda _c: opened.set())
    channel.connect("on-message-string",
                    lambda _c, msg: result.raw_events.append(msg))

    try:
        reply = _wait_promise(Gst, lambda p: webrtc.emit("create-offer", None, p))
        offer = reply.get_value("offer")
        _wait_promise(Gst, lambda p: webrtc.emit("set-local-description", offer, p))
        deadline = time.monotonic() + 5
        while (webrtc.get_property("ice-gathering-state")
               != GstWebRTC.WebRTCICEGatheringState.COMPLETE and time.monotonic() < deadline):
            time.sleep(0.02)
        result.offer_sdp = webrtc.get_property("local-description").sdp.as_text()

        result.apply_reply(post_offer(base_url, key, result.offer_sdp, model))
        if result.status != 201:
            return result
        _, sdp = GstSdp.SDPMessage.new_from_text(result.answer_sdp)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        _wait_promise(Gst, lambda p: webrtc.emit("set-remote-description", answer, p))

        end = time.monotonic() + duration
        if opened.wait(max(0.0, end - time.monotonic())):
            result.channel_opened = True
            for raw in send_events:
                channel.emit("send-string", raw)
                result.sent_events.append(raw)
        time.sleep(max(0.0, end - time.monotonic()))
        result.events = [decode_event(raw) for raw in list(result.raw_events)]
        return result
    finally:
        pipe.set_state(Gst.State.NULL)


def run_gst_offer_call(base_url: str, key: Optional[str], model: Optional[str] = None,
                       send_events: Iterable[Event] = (), duration: float = 2.0,
                       timeout: float = 40.0) -> CallResult:
    """Run one webrtcbin offerer call in a subprocess; returns its CallResult."""
    cmd = ["/usr/bin/python3", os.path.abspath(__file__), "--base-url", base_url,
           "--duration", str(duration)]
    if key is not None:
        cmd += ["--key", key]
    if model:
        cmd += ["--model", model]
    for event in send_events:
        cmd += ["--raw-event", encode_event(event)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + timeout)
    except subprocess.TimeoutExpired as e:
        return CallResult(client="webrtcbin", error=f"gst_offerer timed out: {e.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return CallResult(client="webrtcbin",
                          error=f"gst_offerer exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    result = CallResult.from_dict(json.loads(lines[-1]))
    result.events = [decode_event(raw) for raw in result.raw_events]
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="webrtcbin offerer (the gateway's upstream leg)")
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--key")
    ap.add_argument("--model")
    ap.add_argument("--raw-event", action="append", default=[],
                    help="event text sent verbatim once the channel is open (repeatable)")
    ap.add_argument("--duration", type=float, default=2.0)
    args = ap.parse_args(argv)
    result = run_in_process(args.base_url, args.key, args.model, args.raw_event, args.duration)
    sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    sys.stdout.flush()
    os._exit(0 if result.status == 201 else 1)  # don't wait for GLib threads


if __name__ == "__main__":
    main()
