#!/usr/bin/python3
"""Captures seed inputs for the fuzz corpora from real clients (tests/fuzz/README.md).

Offers: a loopback HTTP server stands in for the gateway and records what each real caller
posts to /v1/realtime/calls (then answers 400, so the caller stops): Chromium (selenium), aiortc,
libwebrtc (@roamhq/wrtc) and werift, each once with `application/sdp` and once multipart with a
`session`. Written as:
  corpus/sdp/offer-<peer>.sdp               the offer
  corpus/call_request/<peer>-{sdp,multipart} Content-Type line + body (fuzz_call_request)
  corpus/multipart/<peer>                    0x01 + Content-Type parameters line + body

Events (with --gateway BINARY): runs the gateway with its built-in `echo` worker, places calls
with aiortc and a WebSocket session, and records both directions as JSON lines:
  corpus/event/echo-<peer>.jsonl, corpus/websocket/client-events.jsonl

Tokens (with --gateway): the same gateway with a key and the token secret fuzz_token uses mints
tokens through POST /v1/realtime/client_secrets:
  corpus/token/minted-<n>                    the `ek_` token (verifies in fuzz_token)
  corpus/token/session-<n>                   the session JSON it binds (the mint path's input)

Run from the repository root: /usr/bin/python3 tests/fuzz/capture_seeds.py [--gateway build/src/realtime-gateway]
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS = os.path.join(ROOT, "tests", "integration", "peers")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
PY = "/usr/bin/python3"
SESSION = {"type": "realtime", "model": "gpt-realtime", "instructions": "Be brief.",
           "audio": {"output": {"voice": "marin"}}}

CLIENT_EVENTS = [
    {"type": "session.update", "event_id": "evt_c1",
     "session": {"type": "realtime", "instructions": "Be brief.", "service_tier": "flex"}},
    {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                  "content": [{"type": "input_text",
                                                               "text": "hello"}]}},
    {"type": "input_audio_buffer.append", "audio": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
    {"type": "input_audio_buffer.commit"},
    {"type": "response.create", "event_id": "evt_c2", "response": {"service_tier": "priority"}},
    {"type": "test.unknown", "payload": "x"},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder(http.server.BaseHTTPRequestHandler):
    posts: list = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        Recorder.posts.append((self.headers.get("Content-Type") or "", body))
        reply = b'{"error":{"type":"invalid_request_error","code":"capture","message":"seed"}}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(data)} bytes)")


def capture_offers(peers: list) -> None:
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    commands = {
        "chromium": [PY, os.path.join(PEERS, "browser_client.py"), "--base-url", base, "--key",
                     "k", "--duration", "0"],
        "aiortc": [PY, os.path.join(PEERS, "aiortc_client.py"), "--base-url", base, "--key", "k",
                   "--duration", "0"],
        "wrtc": ["node", os.path.join(PEERS, "wrtc_client.mjs"), base, "k", "gpt-realtime", "0"],
        "werift": ["node", os.path.join(PEERS, "werift_client.mjs"), base, "k", "gpt-realtime",
                   "0"],
    }
    for peer in peers:
        for form in ("sdp", "multipart"):
            cmd = list(commands[peer])
            if form == "multipart":
                cmd += ["--session", json.dumps(SESSION)]
            Recorder.posts.clear()
            subprocess.run(cmd, cwd=PEERS, timeout=120, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            if not Recorder.posts:
                print(f"{peer} {form}: nothing posted", file=sys.stderr)
                continue
            ctype, body = Recorder.posts[0]
            write(os.path.join(CORPUS, "call_request", f"{peer}-{form}"),
                  ctype.encode() + b"\n" + body)
            if form == "sdp":
                write(os.path.join(CORPUS, "sdp", f"offer-{peer}.sdp"), body)
            else:
                params = ctype.split(";", 1)[1].strip() if ";" in ctype else ""
                write(os.path.join(CORPUS, "multipart", peer), b"\x01" + params.encode() + b"\n" +
                      body)
    server.shutdown()


def capture_events(binary: str) -> None:
    port = free_port()
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    gw = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        events = [a for e in CLIENT_EVENTS for a in ("--event", json.dumps(e))]
        runs = {
            "aiortc": [PY, os.path.join(PEERS, "aiortc_client.py"), "--base-url", base,
                       "--model", "echo", "--duration", "3"] + events,
            "ws": [PY, os.path.join(PEERS, "ws_client.py"), "--base-url", base, "--model", "echo",
                   "--duration", "3"] + events,
        }
        for peer, cmd in runs.items():
            out = subprocess.run(cmd, cwd=PEERS, timeout=120, capture_output=True, text=True)
            try:
                result = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                print(f"{peer}: no result ({out.stderr[-300:]})", file=sys.stderr)
                continue
            received = [e if isinstance(e, str) else json.dumps(e, separators=(",", ":"))
                        for e in result.get("events", [])]
            sent = [json.dumps(e, separators=(",", ":")) for e in CLIENT_EVENTS]
            if not received:
                print(f"{peer}: no events received", file=sys.stderr)
                continue
            # The client's events, then the replies, in the order each side saw them.
            stream = "\n".join(sent + received).encode() + b"\n"
            write(os.path.join(CORPUS, "event", f"echo-{peer}.jsonl"), stream)
        # What a client sends the echo worker (the same from every peer).
        write(os.path.join(CORPUS, "websocket", "client-events.jsonl"),
              "\n".join(json.dumps(e, separators=(",", ":")) for e in CLIENT_EVENTS).encode() +
              b"\n")
    finally:
        gw.terminate()
        gw.wait(timeout=10)


TOKEN_SECRET = "fuzz-token-secret-0123456789abcdef"  # as in fuzz_token.cpp
TOKEN_SESSIONS = [
    {"type": "realtime", "model": "echo"},
    {"type": "realtime", "model": "echo", "instructions": "Speak slowly.",
     "audio": {"output": {"voice": "marin"}, "input": {"turn_detection": {"type": "server_vad"}}},
     "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]},
]


def capture_tokens(binary: str) -> None:
    import tempfile
    import urllib.request
    port = free_port()
    config = {"listen": f"127.0.0.1:{port}",
              "auth": {"keys": [{"name": "team-a", "key": "sk-seed-key", "models": ["*"]}],
                       "token_secret": TOKEN_SECRET},
              "models": [{"name": "echo", "workers": [{"provider": "echo"}]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    gw = subprocess.Popen([binary, "--config", f.name], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        for n, session in enumerate(TOKEN_SESSIONS):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/realtime/client_secrets", method="POST",
                data=json.dumps({"session": session,
                                 "expires_after": {"anchor": "created_at",
                                                   "seconds": 7200}}).encode(),
                headers={"Authorization": "Bearer sk-seed-key", "Content-Type": "application/json"})
            try:
                reply = json.load(urllib.request.urlopen(req, timeout=10))
            except OSError as e:
                print(f"client_secrets: {e}", file=sys.stderr)
                continue
            write(os.path.join(CORPUS, "token", f"minted-{n}"), reply["value"].encode())
            write(os.path.join(CORPUS, "token", f"session-{n}"),
                  json.dumps(reply.get("session", session)).encode())
    finally:
        gw.terminate()
        gw.wait(timeout=10)
        os.unlink(f.name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", default="chromium,aiortc,wrtc,werift")
    ap.add_argument("--gateway", help="gateway binary: also record echo event streams")
    args = ap.parse_args()
    if args.peers:
        capture_offers(args.peers.split(","))
    if args.gateway:
        capture_events(args.gateway)
        capture_tokens(args.gateway)


if __name__ == "__main__":
    main()
