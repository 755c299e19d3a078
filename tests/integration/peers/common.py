"""Helpers shared by the test peers (clients and fake upstream).

Nothing in here talks to anything but the addresses it is given; the HTTP servers of the test
suite bind 127.0.0.1 only.
"""
from __future__ import annotations

import asyncio
import fractions
import json
import math
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

PEERS_DIR = os.path.dirname(os.path.abspath(__file__))

# Realtime events are JSON objects; tests may also send raw strings (e.g. invalid JSON).
Event = Union[Dict[str, Any], str]


# --------------------------------------------------------------------------- small utilities

def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (racy by nature, good enough for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail_file(path: str, limit: int = 20000) -> str:
    """The last ``limit`` bytes of a log file, for failure reports (never raises)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"


def new_id(prefix: str, nbytes: int = 12) -> str:
    """OpenAI-looking ids: ``event_…``, ``resp_…``, ``rtc_…``."""
    return f"{prefix}_{uuid.uuid4().hex[: nbytes * 2]}"


def openai_error(code: str, message: str, type_: str = "invalid_request_error") -> Dict[str, Any]:
    """The OpenAI error body shape: ``{"error": {"type", "code", "message"}}``."""
    return {"error": {"type": type_, "code": code, "message": message}}


def encode_event(event: Event) -> str:
    """Events given as dicts are JSON-encoded; strings are sent verbatim."""
    return event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))


def decode_event(raw: Union[str, bytes]) -> Dict[str, Any]:
    """Parse a received event; non-JSON (or non-object) messages become ``{"_raw": text}``."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", "replace")
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


# --------------------------------------------------------------------------- signalling

@dataclass
class HttpReply:
    """What an HTTP request returned (any status; network errors give status None)."""
    status: Optional[int]
    headers: Dict[str, str]
    body: str
    error: Optional[str] = None  # transport-level failure (connection refused, timeout)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def build_multipart(fields: Dict[str, str]) -> tuple:
    """(body bytes, content type) for a multipart/form-data body of plain text fields."""
    boundary = "----rtgwtest" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode("utf-8") + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def http_request(method: str, url: str, body: Optional[bytes] = None,
                 headers: Optional[Dict[str, str]] = None, timeout: float = 15.0) -> HttpReply:
    """One bounded HTTP request with urllib (no proxies: everything is local)."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    # Loopback test servers only: HTTPS ones use throwaway self-signed certificates.
    import ssl
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return HttpReply(resp.status, dict(resp.headers.items()),
                             resp.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as e:  # non-2xx: still an answer
        with e:
            return HttpReply(e.code, dict(e.headers.items()), e.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError) as e:
        return HttpReply(None, {}, "", error=f"{type(e).__name__}: {e}")


def post_offer(base_url: str, key: Optional[str], sdp: str, model: Optional[str] = None,
               session: Optional[Dict[str, Any]] = None, timeout: float = 15.0,
               content_type: Optional[str] = None,
               extra_headers: Optional[Dict[str, str]] = None,
               path: str = "/v1/realtime/calls") -> HttpReply:
    """POST an offer to ``{base_url}/v1/realtime/calls`` (or ``path``: the legacy beta route
    is ``/v1/realtime``) the way OpenAI clients do.

    Without ``session``: ``Content-Type: application/sdp`` body. With ``session``:
    ``multipart/form-data`` with fields ``sdp`` and ``session`` (JSON). ``model`` goes in the
    query string. ``content_type`` overrides the header (for negative tests).
    """
    url = base_url.rstrip("/") + path
    if model:
        url += "?" + urllib.parse.urlencode({"model": model})
    if session is not None:
        body, ctype = build_multipart({"sdp": sdp, "session": json.dumps(session)})
    else:
        body, ctype = sdp.encode("utf-8"), "application/sdp"
    headers = {"Content-Type": content_type or ctype}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    headers.update(extra_headers or {})
    return http_request("POST", url, body, headers, timeout)


def post_hangup(base_url: str, key: Optional[str], location: str,
                timeout: float = 10.0) -> HttpReply:
    """POST ``{location}/hangup`` (location as returned in the 201's Location header)."""
    url = urllib.parse.urljoin(base_url.rstrip("/") + "/", location.lstrip("/")) + "/hangup"
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return http_request("POST", url, b"", headers, timeout)


# --------------------------------------------------------------------------- call results

@dataclass
class CallResult:
    """What a client saw during one call. Fields a given client cannot measure stay None."""
    client: str                                   # "aiortc" | "chromium" | "wrtc"
    status: Optional[int] = None                  # HTTP status of the POST (None: no answer)
    headers: Dict[str, str] = field(default_factory=dict)
    location: Optional[str] = None                # Location header of the 201
    call_id: Optional[str] = None                 # last path segment of location
    offer_sdp: str = ""
    answer_sdp: str = ""
    error_body: Optional[str] = None              # raw HTTP body when status != 201
    error: Optional[str] = None                   # client-side failure description
    channel_opened: bool = False                  # oai-events reached "open"
    remote_closed: bool = False                   # the peer ended it (channel/DTLS closed)
    events: List[Dict[str, Any]] = field(default_factory=list)   # parsed received events
    raw_events: List[str] = field(default_factory=list)          # received events, verbatim
    sent_events: List[str] = field(default_factory=list)         # what we sent, verbatim
    audio_frames_received: Optional[int] = None   # decoded frames (aiortc 20 ms, wrtc 10 ms)
    audio_frames_sent: Optional[int] = None
    audio_packets_received: Optional[int] = None  # inbound-rtp packetsReceived (getStats)
    audio_packets_sent: Optional[int] = None      # outbound-rtp packetsSent (getStats)
    # RtpRecorder.summary() of the received audio (aiortc), or for Chromium the inbound-rtp
    # figures of getStats: {"packets", "payload_types": {pt: packets}, ...}
    rtp_received: Optional[Dict[str, Any]] = None
    connection_states: List[str] = field(default_factory=list)
    hangup_status: Optional[int] = None           # status of POST …/hangup when close="hangup"
    elapsed: float = 0.0

    @property
    def error_json(self) -> Any:
        if self.error_body is None:
            return None
        try:
            return json.loads(self.error_body)
        except ValueError:
            return None

    def events_of(self, type_: str) -> List[Dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type_]

    def event_types(self) -> List[str]:
        return [str(e.get("type")) for e in self.events]

    def apply_reply(self, reply: HttpReply) -> None:
        """Copy the signalling outcome into the result."""
        self.status, self.headers = reply.status, reply.headers
        if reply.error:
            self.error = reply.error
        if reply.status == 201:
            self.answer_sdp = reply.body
            self.location = header(reply.headers, "Location")
            if self.location:
                self.call_id = self.location.rstrip("/").rsplit("/", 1)[-1]
        else:
            self.error_body = reply.body

    def to_dict(self) -> Dict[str, Any]:
        d = dict(self.__dict__)
        d["event_types"] = self.event_types()
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "CallResult":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def header(headers: Dict[str, str], name: str) -> Optional[str]:
    """Case-insensitive header lookup."""
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``pred`` until true or ``timeout`` seconds pass (sync)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


# --------------------------------------------------------------------------- aiortc media
# Imported lazily so that modules which only need signalling don't pay for aiortc/av.

def make_tone_track(freq: float = 400.0, sample_rate: int = 48000, frame_ms: int = 20,
                    amplitude: float = 0.3):
    """An aiortc audio track producing a paced sine tone (s16 mono, ``frame_ms`` frames).

    ``track.frames_sent`` counts frames handed to the encoder.
    """
    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    samples = sample_rate * frame_ms // 1000

    class ToneTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.frames_sent = 0
            self._pts = 0
            self._start: Optional[float] = None

        async def recv(self):
            if self.readyState != "live":
                raise MediaStreamError
            now = time.monotonic()
            if self._start is None:
                self._start = now
            else:  # real-time pacing
                wait = self._start + self._pts / sample_rate - now
                if wait > 0:
                    await asyncio.sleep(wait)
            frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
            pcm = bytearray()
            for i in range(samples):  # continuous phase across frames
                v = int(32767 * amplitude *
                        math.sin(2 * math.pi * freq * (self._pts + i) / sample_rate))
                pcm += v.to_bytes(2, "little", signed=True)
            frame.planes[0].update(bytes(pcm))
            frame.pts = self._pts
            frame.sample_rate = sample_rate
            frame.time_base = fractions.Fraction(1, sample_rate)
            self._pts += samples
            self.frames_sent += 1
            return frame

    return ToneTrack()


def make_echo_track(max_queued: int = 25):
    """An aiortc audio track that sends back the frames ``feed`` is given (the frames a call
    receives), re-stamped on its own clock: an audio loopback, so a caller can time the audio
    round trip. Frames beyond ``max_queued`` (0.5 s at 20 ms) drop the oldest, so a stalled
    sender does not grow the queue. ``frames_sent`` counts frames handed to the encoder."""
    import av  # noqa: F401 - the frames are av.AudioFrame
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class EchoTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.frames_sent = 0
            self._queue: asyncio.Queue = asyncio.Queue()
            self._pts = 0

        def feed(self, frame) -> None:
            if self._queue.qsize() >= max_queued:
                self._queue.get_nowait()
            self._queue.put_nowait(frame)

        async def recv(self):
            if self.readyState != "live":
                raise MediaStreamError
            frame = await self._queue.get()
            frame.pts = self._pts  # the decoder's timestamps are the peer's; ours run on
            self._pts += frame.samples
            self.frames_sent += 1
            return frame

    return EchoTrack()


def make_mute_track():
    """An aiortc audio track that never yields a frame: its sender sends no RTP at all (only
    RTCP), like a client that is connected but silent. ``frames_sent`` stays 0."""
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class MuteTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.frames_sent = 0

        async def recv(self):
            while self.readyState == "live":
                await asyncio.sleep(0.5)
            raise MediaStreamError

    return MuteTrack()


class RtpRecorder:
    """Records the RTP packets an aiortc receiver gets, before aiortc looks at the payload type
    (aiortc silently drops a packet whose payload type it did not negotiate): per payload type
    and SSRC how many arrived, and how many arrived out of order (a sequence number not after the
    previous one of its SSRC, modulo 2^16). ``attach(pc)`` wraps every receiver of ``pc``; call
    it after the remote description is set."""

    def __init__(self) -> None:
        self.packets = 0
        self.payload_types: Dict[int, int] = {}
        self.ssrcs: Dict[int, int] = {}
        self.out_of_order = 0
        self.gaps = 0                      # packets missing between consecutive ones (loss)
        self._last_seq: Dict[int, int] = {}

    def attach(self, pc) -> None:
        for transceiver in pc.getTransceivers():
            receiver = transceiver.receiver
            if getattr(receiver, "_rtp_recorder", None) is self:
                continue
            original = receiver._handle_rtp_packet

            async def handle(packet, arrival_time_ms, _original=original):
                self.record(packet.payload_type, packet.ssrc, packet.sequence_number)
                await _original(packet, arrival_time_ms)
            receiver._handle_rtp_packet = handle
            receiver._rtp_recorder = self

    def record(self, pt: int, ssrc: int, seq: int) -> None:
        self.packets += 1
        self.payload_types[pt] = self.payload_types.get(pt, 0) + 1
        self.ssrcs[ssrc] = self.ssrcs.get(ssrc, 0) + 1
        last = self._last_seq.get(ssrc)
        if last is not None:
            step = (seq - last) & 0xFFFF
            if step == 0 or step >= 0x8000:   # a repeat or a step backwards
                self.out_of_order += 1
                return
            self.gaps += step - 1
        self._last_seq[ssrc] = seq

    def summary(self) -> Dict[str, Any]:
        return {"packets": self.packets,
                "payload_types": {str(k): v for k, v in self.payload_types.items()},
                "ssrcs": sorted(self.ssrcs), "out_of_order": self.out_of_order, "gaps": self.gaps}


def lie_about_fingerprint(sdp: str) -> str:
    """The same SDP naming another certificate: the last hex digit of every ``a=fingerprint``
    changed (the same way on every line, so the description stays self-consistent)."""
    out = []
    for line in sdp.splitlines(keepends=True):
        if line.startswith("a=fingerprint:"):
            body = line.rstrip("\r\n")
            last = body[-1]
            body = body[:-1] + ("0" if last.upper() != "0" else "1")
            line = body + line[len(line.rstrip("\r\n")):]
        out.append(line)
    return "".join(out)


def opus_payload_type(sdp: str) -> Optional[int]:
    """The payload type of the first ``a=rtpmap:<pt> opus/48000`` line of ``sdp``."""
    for line in sdp.splitlines():
        if line.startswith("a=rtpmap:") and "opus/48000" in line.lower():
            return int(line[len("a=rtpmap:"):].split()[0])
    return None


class AudioCounter:
    """Consumes a received aiortc track in a task and counts the decoded frames."""

    def __init__(self, on_frame: Optional[Callable[[Any], None]] = None) -> None:
        self.frames = 0
        self.last_frame_at: Optional[float] = None   # time.time() of the last frame
        self._on_frame = on_frame  # e.g. an echo track's feed
        self._tasks: List[asyncio.Task] = []

    def consume(self, track) -> None:
        self._tasks.append(asyncio.ensure_future(self._run(track)))

    async def _run(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError
        try:
            while True:
                frame = await track.recv()
                if self._on_frame is not None:
                    self._on_frame(frame)
                self.frames += 1
                self.last_frame_at = time.time()
        except (MediaStreamError, asyncio.CancelledError):
            pass

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except BaseException:  # noqa: BLE001 - teardown must not raise
                pass
        self._tasks.clear()


def aiortc_configuration():
    """RTCConfiguration with no ICE servers: aiortc would otherwise ask a public STUN server.

    ``RTGW_PEERS_ICE_ADDRESSES`` (comma list, e.g. ``127.0.0.1``) restricts the host candidates
    aiortc gathers (aioice otherwise uses every non-loopback address of the machine).
    """
    from aiortc import RTCConfiguration

    addrs = os.environ.get("RTGW_PEERS_ICE_ADDRESSES", "").strip()
    if addrs:
        import aioice.ice
        chosen = [a.strip() for a in addrs.split(",") if a.strip()]
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(chosen)
    return RTCConfiguration(iceServers=[])


def abandon_aiortc_pc(pc) -> None:
    """Make an aiortc peer connection vanish silently: close its UDP sockets without sending
    DTLS close_notify or an SCTP ABORT. The remote only notices through ICE consent / timeouts.
    Call ``pc.close()`` afterwards to free the tasks (its sends then go nowhere)."""
    for transceiver in pc.getTransceivers():
        _close_ice_sockets(transceiver.receiver.transport)
    if pc.sctp is not None:
        _close_ice_sockets(pc.sctp.transport)


def _close_ice_sockets(dtls_transport) -> None:
    if dtls_transport is None:
        return
    connection = getattr(dtls_transport.transport, "_connection", None)  # aioice.Connection
    for protocol in list(getattr(connection, "_protocols", []) or []):
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            transport.close()
