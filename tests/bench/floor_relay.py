#!/usr/bin/python3
"""The floor of a webrtcbin relay: what load_bench.py's "floor" phase measures the gateway against.

A minimal relay with nothing of the gateway in it: per call one GstPipeline holding two webrtcbins
(client leg answers, upstream leg offers), the audio src pad of each linked straight to the other's
audio sink pad (no queue, no identity, no payload-type rewrite: the callers' Opus payload type is
offered to the upstream, which keeps it in its answer), and the `oai-events` data channel relayed
by a plain `on-message-string` -> `send-string` callback. No policy, no metering, no stats, no
main loop, no bus watch. It speaks the same `POST /v1/realtime/calls` SDP exchange as the gateway
(offer in, answer out; the upstream leg's offer POSTed to an upstream) and the same set-up order:
the client's offer is applied, then both legs gather at once, the upstream's answer is applied, and
the client gets its answer when both are done.

  /usr/bin/python3 tests/bench/floor_relay.py --port 0 --upstream URL[,URL...] --upstream-key K
      [--model M] [--latency 20] [--no-clocksync]

Prints `LISTENING <port>` on stdout once it serves. Each call logs, like the gateway,
`[ID] answered in X ms (upstream answer Y ms)` on stderr. Several upstream URLs: each new call goes
to the one with the fewest live calls (as the gateway's worker pool does). Only for the benchmark:
no auth, no limits, loopback only.
"""
from __future__ import annotations

import argparse
import http.server
import itertools
import re
import sys
import threading
import time
import urllib.request
from typing import Dict, List, Optional

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402

Gst.init(None)
LABEL = "oai-events"
TIMEOUT = 20.0
KEEP: list = []  # see FloorCall.__init__


def log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def wait_promise(promise: Gst.Promise, what: str) -> Optional[Gst.Structure]:
    if promise.wait() != Gst.PromiseResult.REPLIED:
        raise RuntimeError(f"{what}: no reply")
    return promise.get_reply()


def opus_pt(sdp: str) -> int:
    m = re.search(r"a=rtpmap:(\d+) opus/48000", sdp, re.I)
    if not m:
        raise ValueError("no Opus in the offer")
    return int(m.group(1))


class Channel:
    """One side of the data-channel relay: sends to `channel` once it is open, buffers before."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.channel = None
        self.is_open = False
        self.pending: List[str] = []

    def attach(self, channel) -> None:
        with self.lock:
            self.channel = channel
        channel.connect("on-open", lambda ch: self._opened())
        if channel.get_property("ready-state") == GstWebRTC.WebRTCDataChannelState.OPEN:
            self._opened()

    # Never call into webrtcbin with self.lock held: its threads call back into us with their own
    # locks held (a deadlock seen at 30 calls).
    def _opened(self) -> None:
        with self.lock:
            self.is_open = True
            pending, self.pending = self.pending, []
            channel = self.channel
        for text in pending:
            channel.emit("send-string", text)

    def send(self, text: str) -> None:
        with self.lock:
            if not self.is_open:
                if len(self.pending) < 1000:
                    self.pending.append(text)
                return
            channel = self.channel
        channel.emit("send-string", text)


class FloorCall:
    def __init__(self, call_id: str, latency: int, no_clocksync: bool = False) -> None:
        self.id = call_id
        self.pipeline = Gst.Pipeline.new(call_id)
        if no_clocksync:  # a cut to measure: webrtcbin's send-side clocksync not waiting
            self.pipeline.connect("deep-element-added", self._on_element)
        self.client = Gst.ElementFactory.make("webrtcbin", "client")
        self.upstream = Gst.ElementFactory.make("webrtcbin", "upstream")
        for bin_ in (self.client, self.upstream):
            bin_.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
            bin_.set_property("latency", latency)
            # Debian's libnice waits 200 ms for UPnP on every gathering unless told not to (the
            # gateway does the same).
            # webrtcbin's ICE object is a GstObject whose floating reference PyGObject sinks and
            # drops with its wrapper: keep the wrappers (this process is killed, never unloaded).
            ice = bin_.get_property("ice-agent")
            agent = ice.get_property("agent")
            agent.set_property("upnp", False)
            KEEP.extend((ice, agent))
            self.pipeline.add(bin_)
        self.sinks: Dict[str, Gst.Pad] = {}
        self.to_client, self.to_upstream = Channel(), Channel()
        self.gathered = {"client": threading.Event(), "upstream": threading.Event()}
        self.worker_url: Optional[str] = None
        self.upstream_location: Optional[str] = None
        for name, bin_ in (("client", self.client), ("upstream", self.upstream)):
            bin_.connect("notify::ice-gathering-state", self._on_gathering, name)
            bin_.connect("pad-added", self._on_pad_added, name)
        self.client.connect("on-data-channel", self._on_client_channel)

    @staticmethod
    def _on_element(_bin, _sub, element) -> None:
        factory = element.get_factory()
        if factory is not None and factory.get_name() == "clocksync":
            element.set_property("sync", False)

    # ---- signals (webrtcbin's threads)
    def _on_gathering(self, bin_, _pspec, name: str) -> None:
        if bin_.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            self.gathered[name].set()

    def _on_pad_added(self, _bin, pad: Gst.Pad, name: str) -> None:
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        other = self.sinks.get("upstream" if name == "client" else "client")
        if other is None or pad.link(other) != Gst.PadLinkReturn.OK:
            log(f"[{self.id}] cannot link {name}'s audio")

    def _on_client_channel(self, _bin, channel) -> None:
        if channel.get_property("label") != LABEL:
            return
        self.to_client.attach(channel)
        channel.connect("on-message-string", lambda _ch, text: self.to_upstream.send(text))

    # ---- set-up (the HTTP thread)
    def _request_sink(self, bin_, caps: str) -> Gst.Pad:
        pad = bin_.request_pad_simple("sink_%u")
        trans = pad.get_property("transceiver")
        trans.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDRECV)
        trans.set_property("codec-preferences", Gst.Caps.from_string(caps))
        return pad

    def _local(self, bin_, offer: bool) -> str:
        p = Gst.Promise.new()
        bin_.emit("create-offer" if offer else "create-answer", None, p)
        reply = wait_promise(p, "create-offer" if offer else "create-answer")
        desc = reply.get_value("offer" if offer else "answer")
        bin_.emit("set-local-description", desc, None)
        return desc

    def set_remote(self, bin_, sdp: str, kind) -> None:
        _, msg = GstSdp.SDPMessage.new_from_text(sdp)
        p = Gst.Promise.new()
        bin_.emit("set-remote-description", GstWebRTC.WebRTCSessionDescription.new(kind, msg), p)
        reply = wait_promise(p, "set-remote-description")
        if reply is not None and reply.has_field("error"):
            raise RuntimeError(f"set-remote-description: {reply.get_value('error').message}")

    def start(self, offer_sdp: str) -> None:
        pt = opus_pt(offer_sdp)
        self.pipeline.set_state(Gst.State.PLAYING)
        self.set_remote(self.client, offer_sdp, GstWebRTC.WebRTCSDPType.OFFER)
        self.sinks["client"] = self._request_sink(
            self.client, "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000")
        self._local(self.client, False)
        self.sinks["upstream"] = self._request_sink(
            self.upstream, "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,"
            f"encoding-params=(string)2,payload={pt},minptime=(string)10,"
            "useinbandfec=(string)1")
        opts = Gst.Structure.new_from_string("options,ordered=true")
        channel = self.upstream.emit("create-data-channel", LABEL, opts)
        self.to_upstream.attach(channel)
        channel.connect("on-message-string", lambda _ch, text: self.to_client.send(text))
        self._local(self.upstream, True)

    def local_sdp(self, name: str) -> str:
        if not self.gathered[name].wait(TIMEOUT):
            raise RuntimeError(f"{name}: ICE gathering did not complete")
        bin_ = self.client if name == "client" else self.upstream
        return bin_.get_property("local-description").sdp.as_text()

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)


class Floor:
    def __init__(self, upstreams: List[str], key: str, model: str, latency: int,
                 no_clocksync: bool = False) -> None:
        self.no_clocksync = no_clocksync
        self.upstreams = upstreams
        self.key = key
        self.model = model
        self.latency = latency
        self.calls: Dict[str, FloorCall] = {}
        self.live = {u: 0 for u in upstreams}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def answer(self, offer_sdp: str) -> (str, str):
        t0 = time.monotonic()
        call = FloorCall(f"floor_{next(self.ids)}", self.latency, self.no_clocksync)
        try:
            call.start(offer_sdp)
            offer = call.local_sdp("upstream")
            with self.lock:
                url = min(self.upstreams, key=lambda u: self.live[u])
                self.live[url] += 1
            call.worker_url = url
            t1 = time.monotonic()
            req = urllib.request.Request(
                f"{url}/v1/realtime/calls?model={self.model}", data=offer.encode(),
                method="POST", headers={"Authorization": f"Bearer {self.key}",
                                        "Content-Type": "application/sdp"})
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                answer = resp.read().decode()
                call.upstream_location = resp.headers.get("Location")
            upstream_ms = (time.monotonic() - t1) * 1000
            call.set_remote(call.upstream, answer, GstWebRTC.WebRTCSDPType.ANSWER)
            client_answer = call.local_sdp("client")
        except Exception:
            self.release(call)
            raise
        total_ms = (time.monotonic() - t0) * 1000
        log(f"[{call.id}] answered in {total_ms:.1f} ms (upstream answer {upstream_ms:.1f} ms)")
        with self.lock:
            self.calls[call.id] = call
        return call.id, client_answer

    def release(self, call: FloorCall) -> None:
        if call.worker_url:
            with self.lock:
                self.live[call.worker_url] -= 1
            if call.upstream_location:
                try:
                    urllib.request.urlopen(urllib.request.Request(
                        call.worker_url + call.upstream_location + "/hangup", data=b"",
                        method="POST", headers={"Authorization": f"Bearer {self.key}"}),
                        timeout=5).read()
                except OSError:
                    pass
        threading.Thread(target=call.stop, daemon=True).start()

    def hangup(self, call_id: str) -> bool:
        with self.lock:
            call = self.calls.pop(call_id, None)
        if call is None:
            return False
        self.release(call)
        return True


def make_handler(floor: Floor):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args) -> None:
            pass

        def _reply(self, status: int, body: bytes = b"", ctype: str = "text/plain",
                   headers: Optional[Dict[str, str]] = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            path = self.path.split("?", 1)[0]
            m = re.fullmatch(r"/v1/realtime/calls/([^/]+)/hangup", path)
            if m:
                self._reply(200 if floor.hangup(m.group(1)) else 404)
            elif path == "/v1/realtime/calls":
                try:
                    call_id, answer = floor.answer(body)
                except Exception as e:  # a benchmark tool: report, do not hide
                    log(f"call failed: {e}")
                    self._reply(502, str(e).encode())
                    return
                self._reply(201, answer.encode(), "application/sdp",
                            {"Location": f"/v1/realtime/calls/{call_id}"})
            else:
                self._reply(404)

    return Handler


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--upstream", required=True, help="base URL(s), comma-separated")
    ap.add_argument("--upstream-key", required=True)
    ap.add_argument("--model", default="gpt-realtime")
    ap.add_argument("--latency", type=int, default=20, help="webrtcbin latency (gateway: 20)")
    ap.add_argument("--no-clocksync", action="store_true",
                    help="set sync=false on webrtcbin's send-side clocksync elements")
    args = ap.parse_args()
    floor = Floor(args.upstream.split(","), args.upstream_key, args.model, args.latency,
                  args.no_clocksync)
    server = http.server.HTTPServer((args.host, args.port), make_handler(floor))
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
