#!/usr/bin/python3
"""Python wrapper around wrtc_client.mjs (libwebrtc via the npm package @roamhq/wrtc).

    result = run_wrtc_call(base_url, key, model="gpt-realtime", duration=3)

The node script sends ``send_events`` once the data channel opens (default: one
``{"type":"test.echo","payload":"wrtc-hello"}``), keeps the call up for ``duration`` seconds,
reads getStats, ends the call per ``close`` and prints one JSON result line. Received audio is
counted with ``RTCAudioSink`` (``audio_frames_received`` counts 10 ms frames).

The npm dependency lives in this folder (package.json + package-lock.json);
``ensure_wrtc_installed()`` runs ``npm ci`` here when node_modules is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any, Dict, Iterable, Optional

from peers.common import PEERS_DIR, CallResult, Event, decode_event

SCRIPT = os.path.join(PEERS_DIR, "wrtc_client.mjs")
NODE = os.environ.get("RTGW_NODE") or shutil.which("node") or "/usr/bin/node"
NPM = os.environ.get("RTGW_NPM") or shutil.which("npm") or "/usr/bin/npm"
CLOSE_MODES = ("close", "hangup", "leave")


def wrtc_installed() -> bool:
    return os.path.isfile(os.path.join(PEERS_DIR, "node_modules", "@roamhq", "wrtc",
                                       "package.json"))


def ensure_wrtc_installed(timeout: float = 300.0) -> None:
    """Install the locked npm dependencies (``npm ci``) if they are not there yet.
    Raises RuntimeError with npm's output when that fails."""
    if wrtc_installed():
        return
    proc = subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=PEERS_DIR,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not wrtc_installed():
        raise RuntimeError(f"npm ci in {PEERS_DIR} failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")


def run_wrtc_call(base_url: str, key: Optional[str], model: Optional[str] = None,
                  session: Optional[Dict[str, Any]] = None,
                  send_events: Optional[Iterable[Event]] = None, duration: float = 3.0,
                  close: str = "close", http_timeout: float = 15.0) -> CallResult:
    """Run one wrtc call in a node subprocess (bounded) and return its CallResult.
    ``send_events=None`` keeps the script's default test.echo; ``[]`` sends nothing."""
    if close not in CLOSE_MODES:
        raise ValueError(f"close mode must be one of {CLOSE_MODES}")
    ensure_wrtc_installed()
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
        return CallResult(client="wrtc", error=f"wrtc_client.mjs timed out: {e.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return CallResult(client="wrtc", error=f"wrtc_client.mjs exited {proc.returncode} "
                                                f"without a result:\n{proc.stderr[-4000:]}")
    result = CallResult.from_dict(json.loads(lines[-1]))
    result.events = [decode_event(raw) for raw in result.raw_events]
    return result
