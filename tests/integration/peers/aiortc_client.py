#!/usr/bin/python3
"""An aiortc caller that talks to a gateway exactly as an OpenAI WebRTC client would.

The offer is aiortc 1.4's own, unmodified: ``a=group:BUNDLE`` with a different ice-ufrag per
m-line and the old ``DTLS/SCTP 5000`` + ``a=sctpmap`` data-channel syntax. That is deliberate:
the gateway must cope with it.

Async API:
    result = await run_call(base_url, key, model="gpt-realtime", send_events=[...], duration=3)
or, for tests that act while the call is up:
    call = AiortcCall(base_url, key, model=...)
    await call.connect()            # offer, POST, answer; result.status tells if it worked
    await call.wait_for(lambda r: r.events_of("session.created"), timeout=5)
    call.send({"type": "test.echo", "payload": "x"})
    await call.close("close")       # "close" | "hangup" | "leave"
    call.result                     # CallResult

CLI (prints the CallResult as one JSON object):
    /usr/bin/python3 tests/integration/peers/aiortc_client.py --base-url URL --key K \
        --model gpt-realtime --duration 3 --event '{"type":"test.echo","payload":"hi"}'
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, Optional

if __package__ in (None, ""):  # run as a script: make "peers" importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402

from peers.common import (AudioCounter, CallResult, Event, RtpRecorder,  # noqa: E402
                          abandon_aiortc_pc, aiortc_configuration, decode_event, encode_event,
                          make_mute_track, make_tone_track, post_hangup, post_offer)

CLOSE_MODES = ("close", "hangup", "leave")


class AiortcCall:
    """One call from an aiortc peer. All waits are bounded."""

    def __init__(self, base_url: str, key: Optional[str], model: Optional[str] = None,
                 session: Optional[Dict[str, Any]] = None,
                 send_events: Iterable[Event] = (),
                 on_event: Optional[Callable[[Dict[str, Any], "AiortcCall"], None]] = None,
                 http_timeout: float = 15.0, label: str = "oai-events",
                 path: str = "/v1/realtime/calls", send_audio: bool = True,
                 mangle_offer: Optional[Callable[[str], str]] = None) -> None:
        self.base_url, self.key, self.model, self.session = base_url, key, model, session
        # Rewrites the offer before it is posted (tests: an offer that lies, e.g. about the
        # DTLS fingerprint); the peer connection keeps its own.
        self.mangle_offer = mangle_offer
        self.path = path  # "/v1/realtime": the legacy (beta) WebRTC route
        self.http_timeout = http_timeout
        self.on_event = on_event
        self.result = CallResult(client="aiortc")
        self._pending = [encode_event(e) for e in send_events]  # sent once the channel opens
        self._started = time.monotonic()
        self.pc = RTCPeerConnection(configuration=aiortc_configuration())
        # sendrecv audio transceiver; send_audio=False: its track never yields a frame (no RTP)
        self.tone = make_tone_track() if send_audio else make_mute_track()
        self.audio = AudioCounter()
        self.rtp = RtpRecorder()      # payload types and order of the RTP we receive
        self.pc.addTrack(self.tone)
        self.channel = self.pc.createDataChannel(label)
        self.channel.on("open", self._on_open)
        self.channel.on("message", self._on_message)
        self.channel.on("close", self._on_remote_close)
        self.pc.on("track", lambda track: self.audio.consume(track)
                   if track.kind == "audio" else None)
        self.pc.on("connectionstatechange",
                   lambda: self.result.connection_states.append(self.pc.connectionState))
        self._closed = False

    # -- events -------------------------------------------------------------------------------
    def _on_open(self) -> None:
        self.result.channel_opened = True
        pending, self._pending = self._pending, []
        for raw in pending:
            self._send_raw(raw)

    def _on_remote_close(self) -> None:
        """Data channel or DTLS closed while we were not closing: the peer ended the call."""
        if not self._closed:
            self.result.remote_closed = True

    def _on_dtls_state(self) -> None:
        if self.pc.sctp is not None and self.pc.sctp.transport.state in ("closed", "failed"):
            self._on_remote_close()

    def _on_message(self, message) -> None:
        raw = message if isinstance(message, str) else bytes(message).decode("utf-8", "replace")
        event = decode_event(raw)
        self.result.raw_events.append(raw)
        self.result.events.append(event)
        if self.on_event is not None:
            self.on_event(event, self)

    def _send_raw(self, raw: str) -> None:
        self.result.sent_events.append(raw)
        self.channel.send(raw)

    def send(self, event: Event) -> None:
        """Send now if the channel is open, else when it opens."""
        if self.channel.readyState == "open":
            self._send_raw(encode_event(event))
        else:
            self._pending.append(encode_event(event))

    # -- call ---------------------------------------------------------------------------------
    async def connect(self) -> CallResult:
        """Offer (gathering completes inside setLocalDescription), POST, set the answer."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.result.offer_sdp = self.pc.localDescription.sdp
        if self.mangle_offer is not None:
            self.result.offer_sdp = self.mangle_offer(self.result.offer_sdp)
        reply = await asyncio.to_thread(post_offer, self.base_url, self.key,
                                        self.result.offer_sdp, self.model, self.session,
                                        self.http_timeout, path=self.path)
        self.result.apply_reply(reply)
        if reply.status == 201:
            try:
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(self.result.answer_sdp, "answer"))
                self.rtp.attach(self.pc)
                if self.pc.sctp is not None:
                    self.pc.sctp.transport.on("statechange", self._on_dtls_state)
            except Exception as e:  # noqa: BLE001 - reported, not raised
                self.result.error = f"setRemoteDescription failed: {e!r}"
        return self.result

    @property
    def connected(self) -> bool:
        return self.result.status == 201 and self.result.error is None

    async def wait_for(self, predicate: Callable[[CallResult], Any], timeout: float) -> bool:
        """Poll ``predicate(result)`` (with live counters) until truthy or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self._update_counters()
            if predicate(self.result):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    def _update_counters(self) -> None:
        self.result.audio_frames_received = self.audio.frames
        self.result.audio_frames_sent = self.tone.frames_sent
        self.result.rtp_received = self.rtp.summary()
        self.result.elapsed = time.monotonic() - self._started

    async def hangup(self) -> int:
        """POST {location}/hangup but keep the peer connection (to watch the gateway end it).
        Returns the HTTP status (also in ``result.hangup_status``)."""
        reply = await asyncio.to_thread(post_hangup, self.base_url, self.key,
                                        self.result.location or "/v1/realtime/calls/none")
        self.result.hangup_status = reply.status
        return reply.status

    async def close(self, mode: str = "close") -> CallResult:
        """End the call: ``close`` = pc.close() (DTLS close_notify, SCTP abort);
        ``hangup`` = POST {location}/hangup, then close; ``leave`` = vanish silently (sockets
        closed without telling the peer; the gateway must notice by itself)."""
        if mode not in CLOSE_MODES:
            raise ValueError(f"close mode must be one of {CLOSE_MODES}")
        if self._closed:
            return self.result
        self._closed = True
        self._update_counters()
        if mode == "hangup" and self.result.location:
            await self.hangup()
        if mode == "leave":
            abandon_aiortc_pc(self.pc)
        self.tone.stop()
        await self.audio.stop()
        try:
            await asyncio.wait_for(self.pc.close(), 5)
        except Exception:  # noqa: BLE001 - teardown must not raise
            pass
        return self.result


async def run_call(base_url: str, key: Optional[str], model: Optional[str] = None,
                   session: Optional[Dict[str, Any]] = None,
                   send_events: Iterable[Event] = (), duration: float = 3.0,
                   until: Optional[Callable[[CallResult], Any]] = None,
                   on_event: Optional[Callable[[Dict[str, Any], AiortcCall], None]] = None,
                   close: str = "close", http_timeout: float = 15.0,
                   path: str = "/v1/realtime/calls") -> CallResult:
    """Place one call, keep it up for ``duration`` seconds (or until ``until(result)`` is
    truthy), then end it with ``close`` ("close" | "hangup" | "leave")."""
    call = AiortcCall(base_url, key, model, session, send_events, on_event, http_timeout,
                      path=path)
    try:
        await call.connect()
        if call.connected:
            await call.wait_for(until or (lambda r: False), duration)
    finally:
        await call.close(close)
    return call.result


def run_call_sync(*args, **kwargs) -> CallResult:
    """``run_call`` for synchronous tests (starts its own event loop)."""
    return asyncio.run(run_call(*args, **kwargs))


async def _announced_call(args) -> None:
    call = AiortcCall(args.base_url, args.key, args.model,
                      json.loads(args.session) if args.session else None,
                      [json.loads(e) for e in args.event], send_audio=not args.no_audio)
    try:
        await call.connect()
        if not call.connected:
            print(f"FAILED {call.result.status} {call.result.error}", flush=True)
            sys.exit(1)
        if not await call.wait_for(lambda r: r.channel_opened, 15):
            print("FAILED channel not open", flush=True)
            sys.exit(1)
        print(f"CALL {call.result.location}", flush=True)
        await call.wait_for(lambda r: False, args.duration)
    finally:
        await call.close(args.close)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="aiortc OpenAI-style WebRTC caller")
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--key")
    ap.add_argument("--model")
    ap.add_argument("--session", help="session JSON (sends multipart sdp+session)")
    ap.add_argument("--event", action="append", default=[],
                    help="event JSON to send once the channel is open (repeatable)")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--close", choices=CLOSE_MODES, default="close")
    ap.add_argument("--no-audio", action="store_true",
                    help="send no RTP (the audio track never yields a frame)")
    ap.add_argument("--announce", action="store_true",
                    help='print "CALL <location>" once the data channel is open (then keep '
                         'the call up for --duration); for tests that kill this process')
    args = ap.parse_args(argv)
    if args.announce:
        asyncio.run(_announced_call(args))
        return
    session = json.loads(args.session) if args.session else None
    result = run_call_sync(args.base_url, args.key, args.model, session,
                           [json.loads(e) for e in args.event], args.duration,
                           close=args.close)
    print(json.dumps(result.to_dict()))
    sys.exit(0 if result.status == 201 and not result.error else 1)


if __name__ == "__main__":
    main()
