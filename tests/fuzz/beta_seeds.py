#!/usr/bin/python3
"""Writes the seeds of the `beta` and `http_headers` fuzz targets, and the beta/policy session
seeds of `call_request` (tests/fuzz/README.md).

Beta events and sessions are the ones tests/integration/test_beta_clients.py exchanges with the
gateway (a beta client's session.update, the GA session and server events the fake upstream
plays, the legacy route bodies), plus events written from OpenAI's beta Realtime reference
(client and server events of `OpenAI-Beta: realtime=v1`) for the shapes that test does not
send. Host values are what browsers and HTTP clients send to a loopback gateway, and the
rebinding forms the check refuses.

Run from the repository root: /usr/bin/python3 tests/fuzz/beta_seeds.py
"""
from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import test_beta_clients as t  # noqa: E402  (the constants only; no test runs)


def write(target: str, name: str, data: str | bytes) -> None:
    path = os.path.join(CORPUS, target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def j(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def beta() -> None:
    # What a beta client sends (test_beta_clients.py).
    write("beta", "client-session-update", j({"type": "session.update", "session": t.BETA_SESSION}))
    write("beta", "client-response-create", j({"type": "response.create"}))
    write("beta", "beta-session", j(t.BETA_SESSION))
    write("beta", "ga-session", j(t.GA_SESSION))
    write("beta", "legacy-sessions-body", j(dict(
        t.BETA_SESSION, model=t.MODEL,
        client_secret={"expires_after": {"anchor": "created_at", "seconds": 120}})))
    write("beta", "legacy-transcription-body", j({
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": t.TRANSCRIBE_MODEL, "language": "en"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 400},
        "input_audio_noise_reduction": {"type": "near_field"},
        "include": ["item.input_audio_transcription.logprobs"]}))
    # What the worker says (GA), to be translated for the beta client.
    for i, event in enumerate(t.GA_EVENTS):
        write("beta", f"server-{i:02d}-{event['type']}", j(event))
    write("beta", "server-session-updated", j({"type": "session.updated", "session": dict(
        t.GA_SESSION, id="sess_1", object="realtime.session", model=t.MODEL)}))
    write("beta", "server-transcription-session-updated", j({
        "type": "session.updated", "session": {
            "type": "transcription", "id": "sess_2",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                "transcription": {"model": t.TRANSCRIBE_MODEL},
                                "noise_reduction": None}}}}))
    # From OpenAI's beta reference: shapes the test does not send.
    write("beta", "client-response-create-beta", j({
        "type": "response.create", "response": {
            "modalities": ["text"], "instructions": "Answer in one word.", "voice": "sage",
            "output_audio_format": "g711_alaw", "temperature": 0.8,
            "max_response_output_tokens": "inf"}}))
    write("beta", "client-item-create-assistant", j({
        "type": "conversation.item.create", "previous_item_id": None, "item": {
            "id": "msg_001", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "Hello"}, {"type": "audio", "transcript": "hi"}]}}))
    write("beta", "client-item-create-user", j({
        "type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "What is the weather?"},
                        {"type": "input_audio", "audio": "AAAA"}]}}))
    write("beta", "client-transcription-session-update", j({
        "type": "transcription_session.update", "session": {
            "input_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "gpt-4o-transcribe", "prompt": "",
                                          "language": "en"},
            "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
            "input_audio_noise_reduction": {"type": "far_field"},
            "include": ["item.input_audio_transcription.logprobs"], "modalities": ["text"]}}))
    write("beta", "server-content-part-added", j({
        "type": "response.content_part.added", "response_id": "resp_1", "item_id": "msg_007",
        "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": ""}}))
    write("beta", "server-output-item-added", j({
        "type": "response.output_item.added", "response_id": "resp_1", "output_index": 0,
        "item": {"id": "msg_007", "object": "realtime.item", "type": "message",
                 "status": "in_progress", "role": "assistant",
                 "content": [{"type": "output_audio", "transcript": ""}]}}))
    write("beta", "server-input-audio-append", j({"type": "input_audio_buffer.append",
                                                   "audio": "UklGRg=="}))
    write("beta", "format-pcm16", "pcm16")
    write("beta", "format-ga", j({"type": "audio/pcmu"}))


def call_request() -> None:
    # The initial session of a beta call and one the policy acts on, as multipart like
    # aiortc-multipart (its SDP, another session).
    with open(os.path.join(CORPUS, "call_request", "aiortc-multipart"), "rb") as f:
        base = f.read()
    header, _, rest = base.partition(b"\n")
    boundary = header.split(b"boundary=")[1].strip()
    sdp = rest.split(b'name="sdp"\r\n\r\n', 1)[1].split(b"\r\n--" + boundary, 1)[0]

    def multipart(session) -> bytes:
        b = b"--" + boundary
        return (header + b"\n" + b + b'\r\nContent-Disposition: form-data; name="sdp"\r\n\r\n' +
                sdp + b"\r\n" + b + b'\r\nContent-Disposition: form-data; name="session"\r\n\r\n' +
                j(session).encode() + b"\r\n" + b + b"--\r\n")

    write("call_request", "session-beta", multipart(dict(t.BETA_SESSION, model=t.MODEL)))
    write("call_request", "session-ga-tiers", multipart(dict(
        t.GA_SESSION, model=t.MODEL, service_tier="flex")))
    write("call_request", "session-priority", multipart({
        "type": "realtime", "model": "gpt-realtime-mini", "service_tier": "priority",
        "audio": {"output": {"voice": "marin"}}}))


def http_headers() -> None:
    for name, host in [("localhost", "localhost"), ("localhost-port", "localhost:8080"),
                       ("ipv4", "127.0.0.1:8443"), ("ipv6", "[::1]:8080"),
                       ("sub-localhost", "app.localhost:3000"), ("fqdn-dot", "localhost.:80"),
                       ("rebinding", "evil.example:8080"), ("decimal", "2130706433"),
                       ("mapped", "[::ffff:127.0.0.1]"), ("ipv6-long", "[0:0:0:0:0:0:0:1]")]:
        write("http_headers", name, host)


if __name__ == "__main__":
    beta()
    call_request()
    http_headers()
