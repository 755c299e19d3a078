"""The ICE knobs end to end across a network the test builds itself (network namespaces + veth,
created and removed here; root needed, else skipped).

  root namespace (gateway)                     client namespace
  veth "vh"   198.51.100.1/24  <──────────>    veth "vc" 198.51.100.2/24
  decoy veth  198.51.100.201/32 (not in ice_interfaces: must never be advertised)
  NAT address 203.0.113.10 exists nowhere: the client's namespace DNATs it to 198.51.100.1,
  so the client can only reach the gateway's media through the advertised NAT address.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time

import pytest

from conftest import GATEWAY_KEY, PYTHON, _terminate, default_gateway_config
from peers.common import free_port, http_request

HERE = os.path.dirname(os.path.abspath(__file__))
NAT_IP = "203.0.113.10"
HOST_IP, CLIENT_IP, DECOY_IP = "198.51.100.1", "198.51.100.2", "198.51.100.201"
CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ (\S+)", re.M)


def sh(*args, ns=None, check=True):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"):
        pytest.skip("needs root, iproute2 and iptables")
    tag = secrets.token_hex(3)
    ns, vh, vc, dh, dc = f"rtgw{tag}", f"rtvh{tag}", f"rtvc{tag}", f"rtdh{tag}", f"rtdc{tag}"
    try:
        sh("ip", "netns", "add", ns)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot create a network namespace here: {e.stderr}")
    try:
        sh("ip", "link", "add", vh, "type", "veth", "peer", "name", vc)
        sh("ip", "link", "set", vc, "netns", ns)
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", vh)
        sh("ip", "link", "set", vh, "up")
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "addr", "add", f"{CLIENT_IP}/24", "dev", vc, ns=ns)
        sh("ip", "link", "set", vc, "up", ns=ns)
        sh("ip", "route", "add", "203.0.113.0/24", "dev", vc, ns=ns)
        sh("iptables", "-t", "nat", "-A", "OUTPUT", "-d", NAT_IP, "-j", "DNAT",
           "--to-destination", HOST_IP, ns=ns)
        # media straight from the gateway's real address is dropped: only replies within a flow
        # the client opened to the NAT address (conntrack state DNAT) get in
        sh("iptables", "-A", "INPUT", "-p", "udp", "-s", HOST_IP, "-m", "conntrack", "!",
           "--ctstate", "DNAT", "-j", "DROP", ns=ns)
        # a decoy interface (think docker0) the gateway must never advertise
        sh("ip", "link", "add", dh, "type", "veth", "peer", "name", dc)
        sh("ip", "addr", "add", f"{DECOY_IP}/32", "dev", dh)
        sh("ip", "link", "set", dh, "up")
        sh("ip", "link", "set", dc, "up")
        yield {"ns": ns, "host_if": vh, "decoy_if": dh}
    finally:
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", vh, check=False)
        sh("ip", "link", "del", dh, check=False)


def start_gateway(tmp_path, config):
    port = free_port()
    config = dict(config, listen=f"0.0.0.0:{port}")
    path = tmp_path / "netns-config.json"
    path.write_text(json.dumps(config))
    log = open(tmp_path / "netns-gateway.log", "wb")
    proc = subprocess.Popen([os.environ["RTGW_BINARY"], "--config", str(path)], stdout=log,
                            stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while http_request("GET", f"http://127.0.0.1:{port}/healthz", timeout=1).status != 200:
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "netns-gateway.log").read_text()
        time.sleep(0.1)
    return proc, port


def client_in_ns(ns, port, duration=2.5):
    out = sh(PYTHON, os.path.join(HERE, "peers", "aiortc_client.py"), "--base-url",
             f"http://{HOST_IP}:{port}", "--key", GATEWAY_KEY, "--model", "gpt-realtime",
             "--duration", str(duration), "--event", '{"type":"test.echo","payload":"netns"}',
             ns=ns, check=False)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_client_reaches_media_only_through_the_nat_address(netns, fake_upstream, tmp_path):
    if not os.environ.get("RTGW_BINARY"):
        pytest.skip("RTGW_BINARY is not set")
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = {"nat_1to1_ips": [NAT_IP], "ice_interfaces": [netns["host_if"]],
                        "ice_tcp": False, "udp_port_min": 47300, "udp_port_max": 47320}
    proc, port = start_gateway(tmp_path, config)
    try:
        results = [client_in_ns(netns["ns"], port) for _ in range(2)]
    finally:
        assert _terminate(proc, 15) == 0
    for r in results:
        assert r["status"] == 201, r
        cands = CANDIDATE.findall(r["answer_sdp"])
        assert cands, r["answer_sdp"]
        for transport, address, cport, typ in cands:
            assert address == NAT_IP, cands          # only the advertised address
            assert 47300 <= int(cport) <= 47320, cands  # inside the port range
        assert HOST_IP not in r["answer_sdp"] and DECOY_IP not in r["answer_sdp"]
        assert [e for e in r["events"] if e.get("type") == "test.echoed"], r["event_types"]
        assert r["audio_frames_received"] > 40, r["audio_frames_received"]
    up = [req for req in fake_upstream.requests() if req["path"] == "/v1/realtime/calls"]
    assert len(up) == 2 and all(DECOY_IP not in req["sdp"] for req in up)
