"""webrtc.dtls_certificate (issue 28): the gateway's DTLS certificate is GStreamer's RSA-2048 one
("rsa", the default) or its own ECDSA P-256 one ("ecdsa").

webrtcbin 1.22 would put a wrong a=fingerprint in the SDP for a certificate given through the
DTLS element's `pem` (it hashes the private key too); the gateway writes the true one. Every peer
here checks the certificate it gets against the SDP's fingerprint: Chromium and aiortc as callers,
the fake upstream (aiortc) on the upstream leg, and the gateway itself (media trust). A call that
carries events through both legs therefore proves both fingerprints; Chromium's getStats shows
which key the gateway presented.
"""
from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import default_gateway_config
from peers.aiortc_client import run_call_sync
from peers.browser_client import BrowserCall
from peers.common import http_request

# The certificate the gateway presented to Chromium (the DTLS transport's remote certificate).
REMOTE_CERTIFICATE_JS = """
const done = arguments[arguments.length - 1];
window.rtgw.pc.getStats().then((stats) => {
  let transport = null;
  stats.forEach((s) => { if (s.type === "transport" && s.remoteCertificateId) transport = s; });
  const cert = transport && stats.get(transport.remoteCertificateId);
  done(cert ? {der: cert.base64Certificate, algorithm: cert.fingerprintAlgorithm,
               fingerprint: cert.fingerprint} : null);
}, (e) => done({error: String(e)}));
"""


def sdp_fingerprints(sdp: str):
    return {line.split(":", 1)[1].strip() for line in sdp.splitlines()
            if line.startswith("a=fingerprint:")}


def gateway_with(kind, fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = {"dtls_certificate": kind}
    return gateway_factory(config)


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_chromium_gets_the_configured_certificate_under_the_sdp_fingerprint(
        kind, fake_upstream, gateway_factory):
    gw = gateway_with(kind, fake_upstream, gateway_factory)
    with BrowserCall(gw.url, gw.key, model="gpt-realtime") as call:
        result = call.connect()
        assert call.connected, result
        assert call.wait_for(lambda r: r.events_of("session.created"), timeout=20), result
        cert = call.driver.execute_async_script(REMOTE_CERTIFICATE_JS)
        state = http_request("GET", f"{gw.url}/v1/realtime/calls/{result.call_id}",
                             headers={"Authorization": f"Bearer {gw.key}"}).json()
        call.close("hangup")
    assert cert and "der" in cert, cert
    der = base64.b64decode(cert["der"])
    digest = hashlib.sha256(der).hexdigest().upper()
    ours = "sha-256 " + ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    assert sdp_fingerprints(result.answer_sdp) == {ours}, (result.answer_sdp, ours)
    key = x509.load_der_x509_certificate(der).public_key()
    if kind == "ecdsa":
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1", key
    else:
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048, key

    # The upstream leg: the fake upstream got an offer naming the same certificate and
    # connected (it checked it), and the gateway checked the upstream's.
    (req,) = [r for r in fake_upstream.requests() if r["path"] == "/v1/realtime/calls"]
    assert sdp_fingerprints(req["sdp"]) == {ours}, req["sdp"]
    assert state["dtls"]["client"] == state["dtls"]["upstream"] == "verified", state["dtls"]


def test_aiortc_calls_through_the_ecdsa_certificate(fake_upstream, gateway_factory):
    gw = gateway_with("ecdsa", fake_upstream, gateway_factory)
    result = run_call_sync(gw.url, gw.key, "gpt-realtime",
                           send_events=[{"type": "response.create"}], duration=20,
                           until=lambda r: r.events_of("response.done"), close="hangup")
    assert result.channel_opened and result.events_of("response.done"), result
    assert len(sdp_fingerprints(result.answer_sdp)) == 1, result.answer_sdp


def test_an_unknown_certificate_kind_is_refused_at_start(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    config["webrtc"] = {"dtls_certificate": "ed25519"}
    gw = gateway_factory(config, wait_healthy=False)
    assert gw.proc.wait(15) != 0
    assert "webrtc.dtls_certificate" in gw.stderr() and '"rsa" or "ecdsa"' in gw.stderr(), \
        gw.stderr()[-2000:]
