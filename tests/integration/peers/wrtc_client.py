#!/usr/bin/python3
"""Python wrapper around wrtc_client.mjs (libwebrtc via the npm package @roamhq/wrtc).

    result = run_wrtc_call(base_url, key, model="gpt-realtime", duration=3)

The node script sends ``send_events`` once the data channel opens (default: one
``{"type":"test.echo","payload":"wrtc-hello"}``), keeps the call up for ``duration`` seconds,
reads getStats, ends the call per ``close`` and prints one JSON result line. Received audio is
counted with ``RTCAudioSink`` (``audio_frames_received`` counts 10 ms frames).

The npm dependency lives in this folder (package.json + package-lock.json);
``ensure_wrtc_installed()`` runs ``npm ci`` here when node_modules is missing.
The subprocess run and the install check are shared with werift_client (peers.node_client).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional

from peers.common import PEERS_DIR, CallResult, Event
from peers.node_client import (CLOSE_MODES, NODE, NPM, ensure_node_deps,  # noqa: F401
                               node_package_installed, run_node_client)

SCRIPT = os.path.join(PEERS_DIR, "wrtc_client.mjs")
PACKAGE = "@roamhq/wrtc"


def wrtc_installed() -> bool:
    return node_package_installed(PACKAGE)


def ensure_wrtc_installed(timeout: float = 300.0) -> None:
    """Install the locked npm dependencies (``npm ci``) if they are not there yet.
    Raises RuntimeError with npm's output when that fails."""
    ensure_node_deps(PACKAGE, timeout)


def run_wrtc_call(base_url: str, key: Optional[str], model: Optional[str] = None,
                  session: Optional[Dict[str, Any]] = None,
                  send_events: Optional[Iterable[Event]] = None, duration: float = 3.0,
                  close: str = "close", http_timeout: float = 15.0) -> CallResult:
    """Run one wrtc call in a node subprocess (bounded) and return its CallResult.
    ``send_events=None`` keeps the script's default test.echo; ``[]`` sends nothing."""
    return run_node_client(SCRIPT, "wrtc", base_url, key, model, session, send_events, duration,
                           close, http_timeout, package_dir_marker=PACKAGE)
