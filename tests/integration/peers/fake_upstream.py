#!/usr/bin/python3
"""A fake OpenAI-Realtime-compatible upstream worker for the gateway's integration tests.

Run:    /usr/bin/python3 tests/integration/peers/fake_upstream.py --host 127.0.0.1 --port 0 \
            --api-key KEY            # prints "LISTENING <port>" once ready
Import: ``FakeUpstream(api_key).start(host, port)`` inside an asyncio loop.

Endpoints
  POST /v1/realtime/calls               offer (application/sdp, or multipart sdp+session) ->
                                        201 application/sdp answer, Location /v1/realtime/calls/rtc_…
  POST /v1/realtime/calls/{id}/hangup   close that call
  GET  /v1/realtime?model=M             WebSocket (Authorization: Bearer KEY, or api-key: KEY);
                                        the same event script as a call's data channel
  GET  /openai/realtime?deployment=D    the same, Azure's shape
  POST /v1/realtime/translations/calls  a translation call (no ?model=: the multipart session's
                                        model; the gateway always sends one of type "translation")
  GET  /v1/realtime/translations?model=M  a translation session over a WebSocket
  GET  /v1/models                       model list (health checks)
  GET  /_test/state                     recorded requests, calls and ws_sessions (see ``state()``)
  POST /_test/config                    {"status","body","delay_ms","times","usage","turn_ms",
                                        "no_ice","opus_pt","lie_fingerprint"} fault injection (calls and WebSocket
                                        handshakes alike; "no_ice": answer calls with no
                                        candidates and drop the peer connection, so ICE never
                                        connects; "opus_pt": N: this worker uses Opus as payload
                                        type N whatever the offer says, as a worker with its own
                                        payload type numbering would; null: the offer's;
                                        "lie_fingerprint": the answer's a=fingerprint has one
                                        hex digit changed, as an impostor's would)
  POST /_test/reset                     close all calls and sockets, forget everything, clear config

Per call (aiortc answers; the gateway is the offerer and creates the data channel):
  * sends its own 400 Hz tone back on the audio transceiver and counts frames it receives;
  * on the data channel: session.created on open; session.update -> session.updated;
    input_audio_buffer.commit -> input_audio_buffer.committed + conversation.item.input_audio_
    transcription.completed (token-billed usage); test.transcribe {"usage": U} -> the same with
    usage U (e.g. {"type": "duration", "seconds": 2.5}; null: no usage);
    response.create -> response.created, 3 transcript deltas and their
    response.output_audio_transcript.done, response.done with deterministic
    usage (a turn of config "turn_ms" more, which response.cancel cuts short: status
    "cancelled", usage still there); test.echo -> test.echoed with the same payload;
    ``{"type":"test.emit","events":[...]}`` -> those events sent as they are (server events a
    test needs, e.g. GA ones the script does not play); every received event is recorded. Fault
    events (data channel and WebSocket alike):
    test.close_channel -> closes the data channel only (the peer connection stays up);
    test.send_raw {"raw": TEXT} -> sends TEXT verbatim (e.g. malformed JSON);
    test.send_large {"bytes": N} -> sends a valid test.large event of about N bytes.

Translation sessions (session type "translation": a translation call's session, or the
translation WebSocket route): no responses. ``test.translate {"usage": U}`` -> the three
translation server events, session.input_transcript.delta, session.output_audio.delta and
session.output_transcript.delta, the last carrying ``usage`` U (default
DEFAULT_TRANSLATION_USAGE; null: none), as a translation worker reports continuously;
session.input_audio_buffer.append is recorded; session.close -> session.closed;
response.create (or any conversation/response event) -> an ``error`` (translation has none).

Per WebSocket session: the same script over text messages (session.created once upgraded);
also ``{"type":"test.close","code":4001,"reason":"bye"}`` -> this side closes the socket with
that code and reason. Fault injection answers the handshake with the configured status and JSON
body instead of upgrading (``delay_ms`` delays the answer, ``times`` counts calls and handshakes
together); a wrong key gets 401 JSON. Each session is in ``state()["ws_sessions"][id]``: ``id``,
``model`` (from ?model=), ``authorization_ok``, ``openai_beta`` (the OpenAI-Beta header or
null), ``subprotocols`` (offered), ``protocol`` (answered: "realtime" when offered), ``events``
(every received message's raw text, in order; binary ones decoded too), ``binary_received``,
``sent_events``, ``closed``, ``close_code`` (the peer's close frame code, 1006 when the
connection dropped without one, or the code this side closed with), ``close_reason``,
``closed_by`` ("peer" | "upstream"), ``created``, ``closed_at``. The handshake is recorded in
``requests`` (method GET, status 101 when upgraded, ``ws_id``).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import faulthandler
import json
import logging
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):  # run as a script: make "peers" importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiohttp import WSMsgType, web  # noqa: E402
from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402

from peers.common import (AudioCounter, RtpRecorder, aiortc_configuration,  # noqa: E402
                          lie_about_fingerprint,
                          decode_event, encode_event, make_echo_track, make_tone_track, new_id,
                          openai_error)

log = logging.getLogger("fake_upstream")

# Bounds: nothing in this process grows without limit.
MAX_REQUESTS_KEPT = 500
MAX_CALLS_KEPT = 200          # call records (closed ones are dropped oldest first)
MAX_LIVE_CALLS = 32           # live peer connections; beyond this: 503
MAX_EVENTS_PER_CALL = 2000
MAX_WS_SESSIONS_KEPT = 200    # WebSocket session records (closed ones dropped oldest first)
MAX_LIVE_WS_SESSIONS = 64     # live sockets; beyond this: 503
MAX_WS_MESSAGE_BYTES = 16 << 20
MAX_BODY_BYTES = 1 << 20
MAX_DELAY_MS = 60_000
DEFAULT_MODEL = "gpt-realtime"

# Deterministic usage reported in every response.done (overridable via /_test/config "usage").
DEFAULT_USAGE = {
    "total_tokens": 57,
    "input_tokens": 37,
    "output_tokens": 20,
    "input_token_details": {"text_tokens": 12, "audio_tokens": 25, "image_tokens": 0,
                            "cached_tokens": 0},
    "output_token_details": {"text_tokens": 5, "audio_tokens": 15},
}
TRANSCRIPT_DELTAS = ["Hello ", "from the ", "fake upstream."]
# The usage of the transcription an input_audio_buffer.commit gets (token-billed).
DEFAULT_TRANSCRIPTION_USAGE = {
    "type": "tokens", "input_tokens": 14, "output_tokens": 6, "total_tokens": 20,
    "input_token_details": {"audio_tokens": 12, "text_tokens": 2},
}


# The usage a translation report carries (continuous usage: tokens and the audio seconds covered).
DEFAULT_TRANSLATION_USAGE = {
    "input_tokens": 30, "output_tokens": 45, "total_tokens": 75,
    "input_token_details": {"audio_tokens": 30, "text_tokens": 0},
    "output_token_details": {"audio_tokens": 30, "text_tokens": 15},
    "seconds": 3.0,
}
TRANSLATION_AUDIO_DELTA = "AAAA" * 100  # a little PCM16 silence, base64


class RealtimeSession:
    """The realtime event script, shared by a data-channel ``Call`` and a ``WsSession``.

    Subclasses provide ``_transmit(raw) -> bool`` (send one text message now or in order) and
    may handle extra event types in ``_on_other_event``.
    """

    def __init__(self, upstream: "FakeUpstream", model: str,
                 session: Optional[Dict[str, Any]]) -> None:
        self.upstream = upstream
        self.model = model
        self.session: Dict[str, Any] = {
            "id": new_id("sess"), "object": "realtime.session", "type": "realtime",
            **(session or {}), "model": model,
        }
        self.events: collections.deque = collections.deque(maxlen=MAX_EVENTS_PER_CALL)
        self.sent: collections.deque = collections.deque(maxlen=MAX_EVENTS_PER_CALL)
        self.cancelled = asyncio.Event()  # set by response.cancel
        self.closed = False
        self.created = time.time()
        self._tasks: set = set()

    # -- sending ------------------------------------------------------------------------------
    def _transmit(self, raw: str) -> bool:
        raise NotImplementedError

    def send(self, event: Dict[str, Any]) -> None:
        raw = encode_event(event)
        if self._transmit(raw):
            self.sent.append(raw)

    def send_session_created(self) -> None:
        self.send({"type": "session.created", "event_id": new_id("event"),
                   "session": self.session})

    # -- receiving ----------------------------------------------------------------------------
    def handle_message(self, raw: str) -> None:
        """Record one received event and play the script's answer."""
        self.events.append(raw)
        event = decode_event(raw)
        kind = event.get("type")
        if self.session.get("type") == "translation" and self._translation_event(kind, event):
            return
        if kind == "session.update":
            update = event.get("session")
            if isinstance(update, dict):
                self.session.update(update)
            self.send({"type": "session.updated", "event_id": new_id("event"),
                       "session": self.session})
        elif kind == "response.create":
            self._spawn(self._respond(event))
        elif kind == "response.cancel":
            self.cancelled.set()
        elif kind == "test.echo":
            self.send({"type": "test.echoed", "event_id": new_id("event"),
                       "payload": event.get("payload")})
        elif kind == "test.emit":
            for scripted in event.get("events") or []:
                if isinstance(scripted, dict):
                    self.send(scripted)
        elif kind == "input_audio_buffer.commit":
            self._transcribe(json.loads(json.dumps(DEFAULT_TRANSCRIPTION_USAGE)))
        elif kind == "test.transcribe":  # a transcription with the given usage (or none)
            self._transcribe(event.get("usage"))
        elif kind == "test.send_raw":
            raw_out = str(event.get("raw", ""))
            if self._transmit(raw_out):
                self.sent.append(raw_out)
        elif kind == "test.send_large":
            size = max(0, min(int(event.get("bytes") or 0), 1 << 20))
            self.send({"type": "test.large", "event_id": new_id("event"), "pad": "x" * size})
        else:
            self._on_other_event(kind, event)

    def _translation_event(self, kind: Any, event: Dict[str, Any]) -> bool:
        """A translation session's own events; False: the common script handles it."""
        if kind == "test.translate":
            usage = event.get("usage", json.loads(json.dumps(DEFAULT_TRANSLATION_USAGE)))
            elapsed = 200 * sum(1 for e in self.sent if '"session.output_transcript.delta"' in e)
            self.send({"type": "session.input_transcript.delta", "event_id": new_id("event"),
                       "delta": "Hola ", "elapsed_ms": elapsed})
            self.send({"type": "session.output_audio.delta", "event_id": new_id("event"),
                       "delta": TRANSLATION_AUDIO_DELTA, "format": "pcm16",
                       "sample_rate": 24000, "channels": 1, "elapsed_ms": elapsed})
            out = {"type": "session.output_transcript.delta", "event_id": new_id("event"),
                   "delta": "Hello ", "elapsed_ms": elapsed}
            if usage is not None:
                out["usage"] = usage
            self.send(out)
            return True
        if kind == "session.input_audio_buffer.append":
            return True
        if kind == "session.close":
            self.send({"type": "session.closed", "event_id": new_id("event")})
            return True
        if isinstance(kind, str) and kind.split(".")[0] in ("response", "conversation",
                                                             "input_audio_buffer"):
            self.send({"type": "error", "event_id": new_id("event"),
                       "error": openai_error("unknown_event",
                                             f"translation sessions have no {kind}")["error"]})
            return True
        return False

    def _transcribe(self, usage: Any) -> None:
        """input_audio_buffer.committed, then the item's transcription.completed (with
        ``usage`` when it is not None: token-billed or duration-billed)."""
        item_id = new_id("item")
        self.send({"type": "input_audio_buffer.committed", "event_id": new_id("event"),
                   "previous_item_id": None, "item_id": item_id})
        completed = {"type": "conversation.item.input_audio_transcription.completed",
                     "event_id": new_id("event"), "item_id": item_id, "content_index": 0,
                     "transcript": "Hello from the fake upstream."}
        if usage is not None:
            completed["usage"] = usage
        self.send(completed)

    def _on_other_event(self, kind: Any, event: Dict[str, Any]) -> None:
        """Hook for transport-specific test events (ignored by default)."""

    async def _respond(self, request: Dict[str, Any]) -> None:
        """A scripted turn with small gaps so first-token latency and duration are non-zero."""
        resp_id, item_id = new_id("resp"), new_id("item")
        self.cancelled.clear()
        response = {"id": resp_id, "object": "realtime.response", "status": "in_progress",
                    "output": [], "usage": None}
        tier = (request.get("response") or {}).get("service_tier") \
            if isinstance(request.get("response"), dict) else None
        if tier is not None:
            response["service_tier"] = tier
        self.send({"type": "response.created", "event_id": new_id("event"),
                   "response": dict(response)})
        for delta in TRANSCRIPT_DELTAS:
            await asyncio.sleep(0.02)
            self.send({"type": "response.output_audio_transcript.delta",
                       "event_id": new_id("event"), "response_id": resp_id, "item_id": item_id,
                       "output_index": 0, "content_index": 0, "delta": delta})
        # The turn's whole transcript, as OpenAI sends it after the deltas.
        self.send({"type": "response.output_audio_transcript.done", "event_id": new_id("event"),
                   "response_id": resp_id, "item_id": item_id, "output_index": 0,
                   "content_index": 0, "transcript": "".join(TRANSCRIPT_DELTAS)})
        await asyncio.sleep(0.02)
        # A long turn (config "turn_ms") that response.cancel cuts short.
        status = "completed"
        if self.upstream.turn_ms:
            try:
                await asyncio.wait_for(self.cancelled.wait(), self.upstream.turn_ms / 1000)
                status = "cancelled"
            except asyncio.TimeoutError:
                pass
        response.update(status=status, usage=json.loads(json.dumps(self.upstream.usage)))
        self.send({"type": "response.done", "event_id": new_id("event"), "response": response})

    # -- lifecycle ----------------------------------------------------------------------------
    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()


class Call(RealtimeSession):
    """One answered call: its peer connection, data channel and what was observed."""

    def __init__(self, upstream: "FakeUpstream", call_id: str, model: str,
                 session: Optional[Dict[str, Any]]) -> None:
        super().__init__(upstream, model, session)
        self.id = call_id
        self.pc = RTCPeerConnection(configuration=aiortc_configuration())
        self.tone = make_echo_track() if upstream.echo_audio else make_tone_track()
        self.audio = AudioCounter(on_frame=self.tone.feed if upstream.echo_audio else None)
        self.rtp = RtpRecorder()  # payload types and order of the RTP the gateway sends us
        self.channel = None
        self.channel_label: Optional[str] = None
        self.hangup = False
        self.remote_closed = False      # DTLS/SCTP closed by the peer, or ICE failed
        self.states: List[str] = []
        self.answer_sdp = ""
        self.channel_closed_by_us = False

        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)

    # -- signalling ---------------------------------------------------------------------------
    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        self.pc.addTrack(self.tone)  # attaches to the offered audio transceiver -> sendrecv
        await self.pc.setLocalDescription(await self.pc.createAnswer())  # gathers candidates
        self.answer_sdp = self.pc.localDescription.sdp
        self.rtp.attach(self.pc)
        for t in self.pc.getTransceivers():  # notice the peer closing DTLS
            if t.receiver.transport is not None:
                t.receiver.transport.on("statechange", self._on_dtls_state)
        return self.answer_sdp

    # -- media --------------------------------------------------------------------------------
    def _on_track(self, track) -> None:
        if track.kind == "audio":
            self.audio.consume(track)

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        self.states.append(state)
        if state == "failed":
            self.remote_closed = True
            await self.close()

    def _on_dtls_state(self) -> None:
        for t in self.pc.getTransceivers():
            tr = t.receiver.transport
            if tr is not None and tr.state in ("closed", "failed") and not self.closed:
                self.remote_closed = True
                self._spawn(self.close())

    # -- data channel -------------------------------------------------------------------------
    def _on_datachannel(self, channel) -> None:
        self.channel, self.channel_label = channel, channel.label
        channel.on("message", self._on_message)
        channel.on("close", self._on_channel_close)
        if channel.readyState == "open":
            self._on_open()
        else:
            channel.on("open", self._on_open)

    def _on_open(self) -> None:
        self.send_session_created()

    def _on_channel_close(self) -> None:
        if not self.closed and not self.channel_closed_by_us:
            self.remote_closed = True

    def _on_other_event(self, kind: Any, event: Dict[str, Any]) -> None:
        if kind == "test.close_channel" and self.channel is not None:
            self.channel_closed_by_us = True
            self.channel.close()

    def _transmit(self, raw: str) -> bool:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(raw)
            return True
        return False

    def _on_message(self, message) -> None:
        raw = message if isinstance(message, str) else bytes(message).decode("utf-8", "replace")
        self.handle_message(raw)

    # -- lifecycle ----------------------------------------------------------------------------
    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.tone.stop()
        await self.audio.stop()
        self._cancel_tasks()
        try:
            await asyncio.wait_for(self.pc.close(), 5)
        except Exception as e:  # noqa: BLE001 - closing must not fail the server
            log.warning("call %s: close failed: %r", self.id, e)

    def state(self) -> Dict[str, Any]:
        return {
            "model": self.model,
            "session": self.session,
            "events": list(self.events),
            "sent_events": list(self.sent),
            "audio_frames_received": self.audio.frames,
            "audio_last_received_at": self.audio.last_frame_at,
            "audio_frames_sent": self.tone.frames_sent,
            "rtp_received": self.rtp.summary(),
            "connection_state": self.pc.connectionState,
            "connection_states": list(self.states),
            "channel_label": self.channel_label,
            "channel_state": self.channel.readyState if self.channel else None,
            "hangup": self.hangup,
            "closed": self.closed,
            "remote_closed": self.remote_closed,
            "created": self.created,
            "answer_sdp": self.answer_sdp,
        }


class WsSession(RealtimeSession):
    """One ``GET /v1/realtime`` WebSocket session (the gateway is the client).

    Text messages play the same script as a call's data channel; ``test.close`` makes this side
    close the socket with the given code and reason (after everything queued before it).
    Outgoing messages go through one writer task, so they leave in order.
    """

    def __init__(self, upstream: "FakeUpstream", ws: web.WebSocketResponse, model: str,
                 request: web.Request, authorization_ok: bool) -> None:
        super().__init__(upstream, model, None)
        self.id = new_id("ws", 16)
        self.ws = ws
        self.authorization_ok = authorization_ok
        self.openai_beta: Optional[str] = request.headers.get("OpenAI-Beta")
        self.subprotocols = _offered_subprotocols(request)
        self.protocol: Optional[str] = None          # the one this side answered with
        self.binary_received = 0
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.closed_by: Optional[str] = None         # "peer" | "upstream"
        self.closed_at: Optional[float] = None
        self.peer_close_code: Optional[int] = None   # from the peer's close frame, if any
        self.peer_close_reason: Optional[str] = None
        self._queue: "asyncio.Queue" = asyncio.Queue()
        self._writer = asyncio.ensure_future(self._write_loop())

    # -- sending ------------------------------------------------------------------------------
    def _transmit(self, raw: str) -> bool:
        if self.closed or self.closed_by is not None or self.ws.closed:
            return False
        self._queue.put_nowait(("text", raw))
        return True

    async def _write_loop(self) -> None:
        while True:
            kind, *args = await self._queue.get()
            try:
                if kind == "text":
                    await self.ws.send_str(args[0])
                elif kind == "close":
                    await self._close_now(*args)
                    return
            except (ConnectionError, RuntimeError, asyncio.TimeoutError) as e:
                log.info("ws %s: send failed: %r", self.id, e)  # the peer went away
                return

    # -- receiving ----------------------------------------------------------------------------
    def handle_binary(self, data: bytes) -> None:
        self.binary_received += 1
        self.events.append(bytes(data).decode("utf-8", "replace"))

    def _on_other_event(self, kind: Any, event: Dict[str, Any]) -> None:
        if kind == "test.close":
            code = event.get("code", 1000)
            reason = str(event.get("reason", ""))
            self.request_close(int(code) if isinstance(code, int) else 1000, reason)

    # -- closing ------------------------------------------------------------------------------
    def request_close(self, code: int, reason: str = "") -> None:
        """Close from this side once everything queued so far has been sent."""
        if self.closed_by is None:
            self.closed_by = "upstream"
            self.close_code, self.close_reason = code, reason
            self._queue.put_nowait(("close", code, reason))

    async def _close_now(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()[:123]), 5)
        except Exception as e:  # noqa: BLE001 - the peer may be gone already
            log.info("ws %s: close failed: %r", self.id, e)

    async def flush_close(self) -> None:
        """When this side is closing, let the writer finish its close frame (bounded)."""
        if self.closed_by == "upstream" and not self._writer.done():
            await asyncio.wait({self._writer}, timeout=5)

    async def close(self, code: int = 1001, reason: str = "going away") -> None:
        """Close from this side now (reset, shutdown) and wait a little for it."""
        if not self.closed:
            self.request_close(code, reason)
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        self.finish()

    def finish(self) -> None:
        """The socket is gone: record who closed it and stop the tasks."""
        if self.closed:
            return
        self.closed = True
        self.closed_at = time.time()
        if self.closed_by is None:  # the gateway closed (or the connection dropped: 1006)
            self.closed_by = "peer"
            self.close_code = self.peer_close_code if self.peer_close_code is not None else 1006
            self.close_reason = self.peer_close_reason
        self._cancel_tasks()
        if not self._writer.done():
            self._writer.cancel()

    def state(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "session": self.session,
            "authorization_ok": self.authorization_ok,
            "openai_beta": self.openai_beta,
            "subprotocols": self.subprotocols,
            "protocol": self.protocol,
            "events": list(self.events),
            "sent_events": list(self.sent),
            "binary_received": self.binary_received,
            "closed": self.closed,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
            "closed_by": self.closed_by,
            "created": self.created,
            "closed_at": self.closed_at,
        }


def _offered_subprotocols(request: web.Request) -> List[str]:
    header = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in header.split(",") if p.strip()]


def renumber_opus(sdp: str, new_pt: int) -> str:
    """``sdp`` with its Opus payload type replaced by ``new_pt`` (m-line, rtpmap, fmtp, rtcp-fb).
    aiortc then answers, sends and expects Opus as ``new_pt``: a worker whose payload type
    differs from the client's, so the gateway must rewrite every packet's payload type."""
    old = None
    for line in sdp.splitlines():
        if line.startswith("a=rtpmap:") and "opus/48000" in line.lower():
            old = line[len("a=rtpmap:"):].split()[0]
            break
    if old is None:
        return sdp
    out = []
    for line in sdp.splitlines():
        if line.startswith("m=audio "):
            parts = line.split(" ")
            line = " ".join(parts[:3] + [str(new_pt) if p == old else p for p in parts[3:]])
        for attr in ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"):
            if line.startswith(f"{attr}{old} "):
                line = f"{attr}{new_pt} " + line[len(f"{attr}{old} "):]
        out.append(line)
    return "\r\n".join(out) + "\r\n"


class FakeUpstream:
    """The fake worker. ``await start(host, port)`` returns the bound port."""

    def __init__(self, api_key: str, max_call_seconds: float = 300.0,
                 max_live_calls: int = MAX_LIVE_CALLS, echo_audio: bool = False) -> None:
        self.api_key = api_key
        self.max_live_calls = max_live_calls
        # Send back the audio each call receives (decoded and re-encoded) instead of a tone: the
        # load benchmark times the audio round trip through a relay with it.
        self.echo_audio = echo_audio
        self.max_call_seconds = max_call_seconds
        self.requests: collections.deque = collections.deque(maxlen=MAX_REQUESTS_KEPT)
        self.calls: "collections.OrderedDict[str, Call]" = collections.OrderedDict()
        self.ws_sessions: "collections.OrderedDict[str, WsSession]" = collections.OrderedDict()
        self.models_requests = 0
        self._runner: Optional[web.AppRunner] = None
        self._reaper: Optional[asyncio.Task] = None
        self._reset_config()

    def _reset_config(self) -> None:
        self.fail_status: Optional[int] = None
        self.fail_body: Optional[Dict[str, Any]] = None
        self.fail_times: Optional[int] = None   # None: every request until changed
        self.delay_ms = 0
        self.turn_ms = 0  # extra time between the last delta and response.done
        self.no_ice = False  # answer without candidates and drop the peer connection
        self.opus_pt: Optional[int] = None  # our own Opus payload type (None: the offer's)
        self.lie_fingerprint = False  # answer naming a certificate other than ours
        self.usage = json.loads(json.dumps(DEFAULT_USAGE))

    # -- app ----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.add_routes([
            web.post("/v1/realtime/calls", self.handle_call),
            web.post("/v1/realtime/calls/{call_id}/hangup", self.handle_hangup),
            # Azure OpenAI's shape: deployment in the path, api-version in the query.
            web.post("/openai/deployments/{deployment}/realtime/calls", self.handle_call),
            web.post("/openai/deployments/{deployment}/realtime/calls/{call_id}/hangup",
                     self.handle_hangup),
            web.get("/v1/realtime", self.handle_ws),
            web.post("/v1/realtime/translations/calls", self.handle_call),
            web.get("/v1/realtime/translations", self.handle_ws),
            web.get("/openai/realtime", self.handle_ws),  # Azure's WebSocket shape
            web.get("/v1/models", self.handle_models),
            web.get("/_test/state", self.handle_state),
            web.post("/_test/config", self.handle_config),
            web.post("/_test/reset", self.handle_reset),
        ])
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, ssl_context=None) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        self._reaper = asyncio.ensure_future(self._reap())
        return site._server.sockets[0].getsockname()[1]  # the real port when port == 0

    async def stop(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        await self.close_all()
        if self._runner:
            await self._runner.cleanup()

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close() for c in list(self.calls.values())),
                             *(w.close() for w in list(self.ws_sessions.values())),
                             return_exceptions=True)

    async def _reap(self) -> None:
        """Bound call lifetimes and the number of kept records."""
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            for call in list(self.calls.values()):
                if not call.closed and now - call.created > self.max_call_seconds:
                    await call.close()
            while len(self.calls) > MAX_CALLS_KEPT:
                oldest = next(iter(self.calls.values()))
                await oldest.close()
                self.calls.pop(oldest.id, None)
            for ws in list(self.ws_sessions.values()):
                if not ws.closed and now - ws.created > self.max_call_seconds:
                    await ws.close(1000, "fake upstream: session too old")
            self._trim_ws_sessions()

    def _trim_ws_sessions(self) -> None:
        """Keep at most MAX_WS_SESSIONS_KEPT records, dropping closed ones oldest first."""
        excess = len(self.ws_sessions) - MAX_WS_SESSIONS_KEPT
        for sid in [sid for sid, w in self.ws_sessions.items() if w.closed][:max(0, excess)]:
            self.ws_sessions.pop(sid, None)

    # -- helpers ------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        # OpenAI style (Bearer) or Azure style (api-key header).
        return (request.headers.get("Authorization", "") == f"Bearer {self.api_key}"
                or request.headers.get("api-key", "") == self.api_key)

    @staticmethod
    def _error(status: int, code: str, message: str, type_: str = "invalid_request_error"):
        return web.json_response(openai_error(code, message, type_), status=status)

    def _injected_failure(self) -> Optional[web.Response]:
        """The configured failure (``/_test/config`` status/body/times), consumed; or None."""
        if self.fail_status is None:
            return None
        status = self.fail_status
        body = self.fail_body or openai_error("injected_failure",
                                              f"fake upstream configured to fail ({status})",
                                              "server_error")
        if self.fail_times is not None:
            self.fail_times -= 1
            if self.fail_times <= 0:
                self.fail_status, self.fail_body, self.fail_times = None, None, None
        return web.json_response(body, status=status)

    async def _parse_offer(self, request: web.Request, record: Dict[str, Any]):
        """Fill ``record`` with sdp/session from the body; returns an error response or None."""
        ctype = request.content_type
        if ctype == "application/sdp":
            record["sdp"] = await request.text()
        elif ctype == "multipart/form-data":
            try:
                form = await request.post()
            except Exception as e:  # noqa: BLE001
                return self._error(400, "invalid_multipart", f"bad multipart body: {e}")
            sdp, session = form.get("sdp"), form.get("session")
            record["sdp"] = sdp if isinstance(sdp, str) else (
                sdp.file.read().decode() if sdp is not None else None)
            if isinstance(session, str):
                record["session_raw"] = session
                try:
                    record["session"] = json.loads(session)
                except ValueError:
                    return self._error(400, "invalid_session", "session is not JSON")
        else:
            return self._error(400, "invalid_content_type", f"unsupported type {ctype!r}")
        if not record["sdp"]:
            return self._error(400, "invalid_sdp", "missing SDP offer")
        if "m=audio" not in record["sdp"] or "opus/48000" not in record["sdp"].lower():
            return self._error(400, "invalid_sdp", "the offer has no Opus audio m-line")
        return None

    # -- handlers -----------------------------------------------------------------------------
    async def handle_call(self, request: web.Request) -> web.StreamResponse:
        record: Dict[str, Any] = {
            "time": time.time(), "method": "POST", "path": request.path,
            "query": dict(request.query), "content_type": request.headers.get("Content-Type"),
            "authorization": request.headers.get("Authorization"),
            "api_key_header": request.headers.get("api-key"),
            "sdp": None, "session": None, "status": None, "call_id": None,
        }
        self.requests.append(record)
        resp = await self._handle_call(request, record)
        record["status"] = resp.status
        return resp

    async def _handle_call(self, request: web.Request, record: Dict[str, Any]):
        if self.delay_ms:
            await asyncio.sleep(min(self.delay_ms, MAX_DELAY_MS) / 1000)
        error = await self._parse_offer(request, record)  # read the body even when refusing
        if not self._authorized(request):
            return self._error(401, "invalid_api_key", "Incorrect API key provided.")
        injected = self._injected_failure()
        if injected is not None:
            return injected
        if error is not None:
            return error
        if sum(not c.closed for c in self.calls.values()) >= self.max_live_calls:
            return self._error(503, "no_capacity", "fake upstream is full", "server_error")

        session = record["session"] if isinstance(record["session"], dict) else None
        model = (session or {}).get("model") or request.query.get("model") or DEFAULT_MODEL
        call = Call(self, new_id("rtc", 16), model, session)
        try:
            offer = record["sdp"]
            if self.opus_pt is not None:
                offer = renumber_opus(offer, int(self.opus_pt))
            answer = await asyncio.wait_for(call.answer(offer), 15)
        except Exception as e:  # noqa: BLE001 - a bad offer is the caller's problem
            await call.close()
            return self._error(400, "invalid_sdp", f"could not answer the offer: {e!r}")
        self.calls[call.id] = call
        record["call_id"] = call.id
        if self.no_ice:  # an answer whose ICE never connects: no candidates, nobody behind it
            answer = "".join(line for line in answer.splitlines(keepends=True)
                             if not line.startswith("a=candidate:")
                             and not line.startswith("a=end-of-candidates"))
            await call.close()
        if self.lie_fingerprint:
            answer = lie_about_fingerprint(answer)
        return web.Response(status=201, body=answer.encode(), content_type="application/sdp",
                            headers={"Location": f"/v1/realtime/calls/{call.id}"})

    async def handle_hangup(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        record = {"time": time.time(), "method": "POST", "path": request.path,
                  "query": dict(request.query),
                  "content_type": request.headers.get("Content-Type"),
                  "authorization": request.headers.get("Authorization"),
                  "sdp": None, "session": None, "status": None, "call_id": call_id}
        self.requests.append(record)
        if not self._authorized(request):
            resp = self._error(401, "invalid_api_key", "Incorrect API key provided.")
        elif call_id not in self.calls:
            resp = self._error(404, "not_found", f"no call {call_id}")
        else:
            call = self.calls[call_id]
            call.hangup = True
            await call.close()
            resp = web.json_response({"id": call_id, "status": "hung_up"})
        record["status"] = resp.status
        return resp

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/realtime?model=M``: the realtime protocol over a WebSocket."""
        record: Dict[str, Any] = {
            "time": time.time(), "method": "GET", "path": request.path,
            "query": dict(request.query), "content_type": request.headers.get("Content-Type"),
            "authorization": request.headers.get("Authorization"),
            "api_key_header": request.headers.get("api-key"),
            "openai_beta": request.headers.get("OpenAI-Beta"),
            "upgrade": request.headers.get("Upgrade"),
            "subprotocols": _offered_subprotocols(request),
            "sdp": None, "session": None, "status": None, "call_id": None, "ws_id": None,
        }
        self.requests.append(record)
        if self.delay_ms:
            await asyncio.sleep(min(self.delay_ms, MAX_DELAY_MS) / 1000)
        authorized = self._authorized(request)
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=MAX_WS_MESSAGE_BYTES,
                                   protocols=("realtime",), timeout=5.0)
        refusal: Optional[web.Response] = None
        if not authorized:
            refusal = self._error(401, "invalid_api_key", "Incorrect API key provided.")
        else:
            refusal = self._injected_failure()
        if refusal is None and not ws.can_prepare(request).ok:
            refusal = self._error(426, "websocket_required", "this endpoint needs a WebSocket")
        if refusal is None and sum(not w.closed for w in self.ws_sessions.values()) \
                >= MAX_LIVE_WS_SESSIONS:
            refusal = self._error(503, "no_capacity", "fake upstream is full", "server_error")
        if refusal is not None:
            record["status"] = refusal.status
            return refusal

        model = (request.query.get("model") or request.query.get("deployment")
                 or DEFAULT_MODEL)
        gone = web.Response(status=499)  # written nowhere: aiohttp drops it quietly
        if request.transport is None or request.transport.is_closing():
            record["status"] = "client_gone"  # e.g. the gateway timed out during delay_ms
            return gone
        session = WsSession(self, ws, model, request, authorized)
        if request.path == "/v1/realtime/translations":
            session.session.update(type="translation", object="realtime.translation_session")
        try:
            await ws.prepare(request)
        except Exception as e:  # noqa: BLE001 - the peer left during the handshake
            record["status"] = "client_gone"
            log.info("ws handshake failed: %r", e)
            session.finish()
            return gone
        record["status"], record["ws_id"] = 101, session.id
        session.protocol = ws.ws_protocol
        self.ws_sessions[session.id] = session
        self._trim_ws_sessions()
        session.send_session_created()
        try:
            while True:
                msg = await ws.receive()
                if msg.type == WSMsgType.TEXT:
                    session.handle_message(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    session.handle_binary(msg.data)
                elif msg.type == WSMsgType.CLOSE:  # (autoclose answered it already)
                    session.peer_close_code, session.peer_close_reason = msg.data, msg.extra
                    continue
                else:  # CLOSING, CLOSED, ERROR
                    break
        finally:
            await session.flush_close()
            session.finish()
        return ws

    async def handle_models(self, request: web.Request) -> web.StreamResponse:
        self.models_requests += 1
        if not self._authorized(request):
            return self._error(401, "invalid_api_key", "Incorrect API key provided.")
        return web.json_response({"object": "list", "data": [
            {"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "fake-upstream"}]})

    async def handle_state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state())

    async def handle_config(self, request: web.Request) -> web.StreamResponse:
        try:
            cfg = await request.json()
            if not isinstance(cfg, dict):
                raise ValueError("config must be an object")
        except ValueError as e:
            return self._error(400, "invalid_config", str(e))
        if "status" in cfg:
            self.fail_status = cfg["status"]
            self.fail_body = cfg.get("body")
            self.fail_times = cfg.get("times")
        if "delay_ms" in cfg:
            self.delay_ms = int(cfg["delay_ms"] or 0)
        if "usage" in cfg:
            self.usage = cfg["usage"] or json.loads(json.dumps(DEFAULT_USAGE))
        if "turn_ms" in cfg:
            self.turn_ms = int(cfg["turn_ms"] or 0)
        if "no_ice" in cfg:
            self.no_ice = bool(cfg["no_ice"])
        if "opus_pt" in cfg:
            self.opus_pt = cfg["opus_pt"]
        if "lie_fingerprint" in cfg:
            self.lie_fingerprint = bool(cfg["lie_fingerprint"])
        return web.json_response(self.config())

    async def handle_reset(self, request: web.Request) -> web.StreamResponse:
        await self.close_all()
        self.calls.clear()
        self.ws_sessions.clear()
        self.requests.clear()
        self.models_requests = 0
        self._reset_config()
        return web.json_response({"ok": True})

    # -- state --------------------------------------------------------------------------------
    def config(self) -> Dict[str, Any]:
        return {"status": self.fail_status, "body": self.fail_body, "times": self.fail_times,
                "delay_ms": self.delay_ms, "usage": self.usage, "turn_ms": self.turn_ms,
                "no_ice": self.no_ice, "opus_pt": self.opus_pt,
                "lie_fingerprint": self.lie_fingerprint}

    def state(self) -> Dict[str, Any]:
        return {
            "requests": list(self.requests),
            "calls": {cid: c.state() for cid, c in self.calls.items()},
            "ws_sessions": {sid: w.state() for sid, w in self.ws_sessions.items()},
            "models_requests": self.models_requests,
            "config": self.config(),
        }


async def serve(host: str, port: int, api_key: str, max_call_seconds: float,
                tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
                max_live_calls: int = MAX_LIVE_CALLS, echo_audio: bool = False) -> None:
    upstream = FakeUpstream(api_key, max_call_seconds, max_live_calls, echo_audio)
    ssl_context = None
    if tls_cert:  # HTTPS, for the gateway's per-worker TLS settings
        import ssl
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(tls_cert, tls_key)
    real_port = await upstream.start(host, port, ssl_context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"LISTENING {real_port}", flush=True)
    await stop.wait()
    await upstream.stop()


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--api-key", default="upstream-secret")
    ap.add_argument("--max-call-seconds", type=float, default=300.0)
    ap.add_argument("--max-live-calls", type=int, default=MAX_LIVE_CALLS,
                    help="live peer connections before 503 (the load benchmark raises it)")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--tls-key", help="its private key (PEM)")
    ap.add_argument("--echo-audio", action="store_true",
                    help="send each call's received audio back instead of a tone (audio round trip)")
    ap.add_argument("--log-level", default=os.environ.get("FAKE_UPSTREAM_LOG", "WARNING"))
    args = ap.parse_args(argv)
    faulthandler.enable()  # a native crash (av, srtp, ...) still leaves a trace on stderr
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args.host, args.port, args.api_key, args.max_call_seconds, args.tls_cert,
                      args.tls_key, args.max_live_calls, args.echo_audio))


if __name__ == "__main__":
    main()
