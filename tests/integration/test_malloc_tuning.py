"""glibc's per-thread malloc cache is capped at start-up (src/app/malloc_tuning.h): the gateway
re-executes itself once with glibc.malloc.tcache_max in GLIBC_TUNABLES (glibc reads tunables only
at exec), keeps its PID, and an operator's own setting or RTGW_MALLOC_TCACHE_MAX=glibc wins."""
from __future__ import annotations

import os

import pytest

SANITIZED = os.environ.get("RTGW_SANITIZE", "none") not in ("", "none")
pytestmark = pytest.mark.skipif(SANITIZED, reason="a sanitizer's allocator is not glibc's")
CONFIG = {"models": [{"name": "echo", "workers": [{"provider": "echo"}]}]}


def environ(pid: int) -> dict:
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = f.read().split(b"\0")
    return dict(i.decode(errors="replace").split("=", 1) for i in items if b"=" in i)


def exe_image_env(gw) -> dict:
    """The environment the running image was exec'd with: what glibc read its tunables from."""
    return environ(gw.proc.pid)


def test_default_caps_tcache_at_64_bytes_in_the_same_process(gateway_factory):
    env = {"GLIBC_TUNABLES": "", "RTGW_MALLOC_TCACHE_MAX": ""}
    gw = gateway_factory(CONFIG, env=env)
    seen = exe_image_env(gw)  # the PID we started answers /healthz: the re-exec kept it
    assert seen.get("GLIBC_TUNABLES") == "glibc.malloc.tcache_max=64", seen.get("GLIBC_TUNABLES")
    assert seen.get("RTGW_MALLOC_REEXEC") == "1"
    assert "malloc: per-thread cache tcache_max 64 bytes" in gw.stderr()


def test_other_tunables_are_kept_and_the_cap_is_configurable(gateway_factory):
    gw = gateway_factory(CONFIG, env={"GLIBC_TUNABLES": "glibc.malloc.arena_test=4",
                                  "RTGW_MALLOC_TCACHE_MAX": "128"})
    # glibc cuts the exec'd copy in /proc/PID/environ at the first ':' once it has parsed it
    # (`ld.so --list-tunables` shows both applied), so the image's own view is read from its log.
    assert exe_image_env(gw).get("RTGW_MALLOC_REEXEC") == "1"
    assert "malloc: per-thread cache tcache_max 128 bytes" in gw.stderr()


def test_an_operators_tcache_setting_wins_and_glibc_keeps_its_default(gateway_factory):
    own = gateway_factory(CONFIG, env={"GLIBC_TUNABLES": "glibc.malloc.tcache_count=3"})
    seen = exe_image_env(own)
    assert seen.get("GLIBC_TUNABLES") == "glibc.malloc.tcache_count=3"
    assert "RTGW_MALLOC_REEXEC" not in seen  # nothing to change: no re-exec
    off = gateway_factory(CONFIG, env={"GLIBC_TUNABLES": "", "RTGW_MALLOC_TCACHE_MAX": "glibc"})
    assert not exe_image_env(off).get("GLIBC_TUNABLES")
    assert "malloc: per-thread cache glibc's default" in off.stderr()


def test_a_bad_cap_is_reported_and_the_default_used(gateway_factory):
    gw = gateway_factory(CONFIG, env={"GLIBC_TUNABLES": "", "RTGW_MALLOC_TCACHE_MAX": "64k"})
    assert exe_image_env(gw).get("GLIBC_TUNABLES") == "glibc.malloc.tcache_max=64"
    assert 'RTGW_MALLOC_TCACHE_MAX="64k" is not a byte count' in gw.stderr()
