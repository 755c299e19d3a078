"""The config schema (docs/config.md, src/config/schema.cpp) as the binary shows it: a boolean
variable that is not true/false/1/0 stops start-up with a precise message (issue 23: three of
them read any unknown value as false), --check-config prints every key as loaded, and
--config-reference is the committed docs/config.md."""
from __future__ import annotations

import os
import subprocess

import pytest


def binary():
    path = os.environ.get("RTGW_BINARY")
    if not path:
        pytest.skip("RTGW_BINARY is not set")
    return path


def run(args, extra_env, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTGW_") or k == "RTGW_BINARY"}
    env.update(extra_env)
    return subprocess.run([binary(), *args], capture_output=True, text=True, timeout=30,
                          cwd=str(cwd), env=env)


@pytest.mark.parametrize("name", ["RTGW_LOG_JSON", "RTGW_WEBRTC_ICE_TCP", "RTGW_WEBRTC_ICE_IPV6",
                                  "RTGW_WEBRTC_JITTERBUFFER"])
def test_a_boolean_variable_that_is_not_a_boolean_stops_start_up(tmp_path, name):
    proc = run(["--check-config"], {name: "yes"}, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (f"config error: environment: {name}: expected true, false, 1 or 0, got 'yes'"
            in proc.stderr), proc.stderr
    ok = run(["--check-config"], {name: "0"}, tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_check_config_prints_every_key_as_loaded(tmp_path):
    proc = run(["--check-config"], {"RTGW_WEBRTC_ICE_TCP": "false", "RTGW_MAX_SIDEBANDS_PER_CALL": "3",
                                    "RTGW_TOKEN_SECRET": "do-not-print-me"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "  webrtc.ice_tcp=false\n" in proc.stdout, proc.stdout
    assert "  limits.max_sidebands_per_call=3\n" in proc.stdout, proc.stdout
    assert "  auth.token_secret=(set)\n" in proc.stdout, proc.stdout
    assert "do-not-print-me" not in proc.stdout + proc.stderr


def test_config_reference_is_the_committed_docs(tmp_path):
    root = os.environ.get("RTGW_SOURCE_ROOT")
    if not root:
        pytest.skip("RTGW_SOURCE_ROOT is not set")
    proc = run(["--config-reference"], {}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(root, "docs", "config.md"), encoding="utf-8") as f:
        assert proc.stdout == f.read(), \
            "docs/config.md is stale: build/src/realtime-gateway --config-reference > docs/config.md"
    help_text = run(["--help"], {}, tmp_path).stdout
    for line in proc.stdout.splitlines():
        if line.startswith("| `") and "`RTGW_" in line:
            var = line.split("`RTGW_", 1)[1].split("`", 1)[0]
            assert f"RTGW_{var} = " in help_text, f"--help does not list RTGW_{var}"
