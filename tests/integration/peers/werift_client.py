#!/usr/bin/python3
"""Python wrapper around werift_client.mjs (werift, the pure TypeScript WebRTC stack).

    result = run_werift_call(base_url, key, model="gpt-realtime", duration=3)

Same command line, result line and options as ``run_wrtc_call``. The node script sends
``send_events`` once the data channel opens (default: one
``{"type":"test.echo","payload":"werift-hello"}``), sends one Opus RTP packet every 20 ms once
connected, keeps the call up for ``duration`` seconds, ends the call per ``close`` and prints one
JSON result line. werift does not decode audio: ``audio_packets_received`` counts the RTP packets
received on the remote audio track (``audio_frames_received`` stays None);
``audio_frames_sent`` counts the 20 ms Opus packets handed to the sender and
``audio_packets_sent`` is the sender's outbound-rtp ``packetsSent``.

The npm dependency lives in this folder (package.json + package-lock.json);
``ensure_werift_installed()`` runs ``npm ci`` here when node_modules lacks werift.
"""
from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, Iterable, Optional

from peers.common import PEERS_DIR, CallResult, Event, decode_event
from peers.wrtc_client import CLOSE_MODES, NODE, NPM

SCRIPT = os.path.join(PEERS_DIR, "werift_client.mjs")


def werift_installed() -> bool:
    return os.path.isfile(os.path.join(PEERS_DIR, "node_modules", "werift", "package.json"))


def ensure_werift_installed(timeout: float = 300.0) -> None:
    """Install the locked npm dependencies (``npm ci``) if werift is not there yet.
    Raises RuntimeError with npm's output when that fails."""
    if werift_installed():
        return
    proc = subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=PEERS_DIR,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not werift_installed():
        raise RuntimeError(f"npm ci in {PEERS_DIR} failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")


def run_werift_call(base_url: str, key: Optional[str], model: Optional[str] = None,
                    session: Optional[Dict[str, Any]] = None,
                    send_events: Optional[Iterable[Event]] = None, duration: float = 3.0,
                    close: str = "close", http_timeout: float = 15.0) -> CallResult:
    """Run one werift call in a node subprocess (bounded) and return its CallResult.
    ``send_events=None`` keeps the script's default test.echo; ``[]`` sends nothing."""
    if close not in CLOSE_MODES:
        raise ValueError(f"close mode must be one of {CLOSE_MODES}")
    ensure_werift_installed()
    cmd = [NODE, SCRIPT, base_url, key or "", model or "", str(duration),
           "--close", close, "--http-timeout", str(http_timeout)]
    if session is not None:
        cmd += ["--session", json.dumps(session)]
    if send_events is not None:
        cmd += ["--events", json.dumps(list(send_events))]
    try:
        proc = subprocess.run(cmd, cwd=PEERS_DIR, capture_output=True, text=True,
                              timeout=duration + http_timeout + 30)
    except subprocess.TimeoutExpired as e:
        return CallResult(client="werift", error=f"werift_client.mjs timed out: {e.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return CallResult(client="werift", error=f"werift_client.mjs exited {proc.returncode} "
                                                  f"without a result:\n{proc.stderr[-4000:]}")
    result = CallResult.from_dict(json.loads(lines[-1]))
    result.events = [decode_event(raw) for raw in result.raw_events]
    return result
