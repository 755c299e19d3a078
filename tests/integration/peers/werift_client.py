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
The subprocess run and the install check are shared with wrtc_client (peers.node_client).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional

from peers.common import PEERS_DIR, CallResult, Event
from peers.node_client import (CLOSE_MODES, NODE, NPM, ensure_node_deps,  # noqa: F401
                               node_package_installed, run_node_client)

SCRIPT = os.path.join(PEERS_DIR, "werift_client.mjs")
PACKAGE = "werift"


def werift_installed() -> bool:
    return node_package_installed(PACKAGE)


def ensure_werift_installed(timeout: float = 300.0) -> None:
    """Install the locked npm dependencies (``npm ci``) if werift is not there yet.
    Raises RuntimeError with npm's output when that fails."""
    ensure_node_deps(PACKAGE, timeout)


def run_werift_call(base_url: str, key: Optional[str], model: Optional[str] = None,
                    session: Optional[Dict[str, Any]] = None,
                    send_events: Optional[Iterable[Event]] = None, duration: float = 3.0,
                    close: str = "close", http_timeout: float = 15.0) -> CallResult:
    """Run one werift call in a node subprocess (bounded) and return its CallResult.
    ``send_events=None`` keeps the script's default test.echo; ``[]`` sends nothing."""
    return run_node_client(SCRIPT, "werift", base_url, key, model, session, send_events,
                           duration, close, http_timeout, package_dir_marker=PACKAGE)
