#!/usr/bin/python3
"""The part the node test peers' Python wrappers (wrtc_client, werift_client) share: the npm
install check and one bounded run of a node client script, parsed into a CallResult.

The npm dependencies live in this folder (package.json + package-lock.json);
``ensure_node_deps(marker)`` runs ``npm ci`` here when ``node_modules/<marker>/package.json`` is
missing. The node scripts share their command line and result line (node_common.mjs).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any, Dict, Iterable, Optional

from peers.common import PEERS_DIR, CallResult, Event, decode_event

NODE = os.environ.get("RTGW_NODE") or shutil.which("node") or "/usr/bin/node"
NPM = os.environ.get("RTGW_NPM") or shutil.which("npm") or "/usr/bin/npm"
CLOSE_MODES = ("close", "hangup", "leave")


def node_package_installed(package_dir_marker: str) -> bool:
    """Whether node_modules holds the npm package ``package_dir_marker`` (e.g. "werift",
    "@roamhq/wrtc")."""
    return os.path.isfile(os.path.join(PEERS_DIR, "node_modules", *package_dir_marker.split("/"),
                                       "package.json"))


def ensure_node_deps(package_dir_marker: str, timeout: float = 300.0) -> None:
    """Install the locked npm dependencies (``npm ci``) if ``package_dir_marker`` is not there
    yet. Raises RuntimeError with npm's output when that fails."""
    if node_package_installed(package_dir_marker):
        return
    proc = subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=PEERS_DIR,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not node_package_installed(package_dir_marker):
        raise RuntimeError(f"npm ci in {PEERS_DIR} failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")


def run_node_client(script: str, client_name: str, base_url: str, key: Optional[str],
                    model: Optional[str] = None, session: Optional[Dict[str, Any]] = None,
                    send_events: Optional[Iterable[Event]] = None, duration: float = 3.0,
                    close: str = "close", http_timeout: float = 15.0,
                    package_dir_marker: Optional[str] = None) -> CallResult:
    """Run one call of the node client ``script`` (a path) in a node subprocess (bounded) and
    return its CallResult; failures to produce a result line come back as ``client_name``'s
    CallResult with ``error`` set. With ``package_dir_marker``, ``ensure_node_deps`` runs first.
    ``send_events=None`` keeps the script's default test.echo; ``[]`` sends nothing."""
    if close not in CLOSE_MODES:
        raise ValueError(f"close mode must be one of {CLOSE_MODES}")
    if package_dir_marker is not None:
        ensure_node_deps(package_dir_marker)
    script_name = os.path.basename(script)
    cmd = [NODE, script, base_url, key or "", model or "", str(duration),
           "--close", close, "--http-timeout", str(http_timeout)]
    if session is not None:
        cmd += ["--session", json.dumps(session)]
    if send_events is not None:
        cmd += ["--events", json.dumps(list(send_events))]
    try:
        proc = subprocess.run(cmd, cwd=PEERS_DIR, capture_output=True, text=True,
                              timeout=duration + http_timeout + 30)
    except subprocess.TimeoutExpired as e:
        return CallResult(client=client_name, error=f"{script_name} timed out: {e.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return CallResult(client=client_name, error=f"{script_name} exited {proc.returncode} "
                                                    f"without a result:\n{proc.stderr[-4000:]}")
    result = CallResult.from_dict(json.loads(lines[-1]))
    result.events = [decode_event(raw) for raw in result.raw_events]
    return result

