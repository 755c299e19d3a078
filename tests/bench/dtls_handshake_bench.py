#!/usr/bin/python3
"""DTLS handshake cost by certificate kind (issue 28's ECDSA lever), in one process, one run.

Times N full DTLS handshakes through GStreamer's own DTLS elements (dtlsenc/dtlsdec: the
GstDtlsAgent/OpenSSL code webrtcbin 1.22 uses) for each kind of the gateway's certificate,
alternating blocks of the kinds to cancel drift, and prints CPU (all threads of this process)
and wall time per handshake and the ECDSA / RSA ratio, also with the same pipelines' cost
without a handshake taken off.

Each handshake: a fresh pipeline with two peers wired back to back,
    client: dtlsenc(is-client) -> server: dtlsdec      server: dtlsenc -> client: dtlsdec
done when both dtlsencs report their SRTP key (on-key-received). The "server" plays the
gateway, with the certificate under test: GStreamer's RSA-2048 one ("rsa", what webrtc.
dtls_certificate="rsa" uses) or an ECDSA P-256 one ("ecdsa"); the "client" plays the browser or
worker, with an ECDSA P-256 certificate in both cases (Chromium's and aiortc's default).
Both ends run in this process, so the figure is the handshake's whole cost, both sides.

    /usr/bin/python3 tests/bench/dtls_handshake_bench.py [--handshakes 200] [--block 20]
"""
from __future__ import annotations

import argparse
import datetime
import resource
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def ecdsa_pem(name: str) -> str:
    """A self-signed ECDSA P-256 certificate then its key, PEM (the layout GstDtlsCertificate
    reads, and the one src/webrtc/dtls_certificate.cpp makes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode()
            + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode())


class Handshake:
    counter = 0

    def __init__(self, server_pem, client_pem):
        Handshake.counter += 1
        n = Handshake.counter
        self.pipeline = Gst.Pipeline.new(f"hs{n}")
        make = Gst.ElementFactory.make
        c_dec, c_enc = make("dtlsdec"), make("dtlsenc")
        s_dec, s_enc = make("dtlsdec"), make("dtlsenc")
        # pem before connection-id: the connection is made with the agent of that certificate
        # (server_pem None: GStreamer's process-wide RSA-2048 one).
        if server_pem:
            s_dec.set_property("pem", server_pem)
        c_dec.set_property("pem", client_pem)
        c_dec.set_property("connection-id", f"c{n}")
        s_dec.set_property("connection-id", f"s{n}")
        c_enc.set_property("connection-id", f"c{n}")
        c_enc.set_property("is-client", True)
        s_enc.set_property("connection-id", f"s{n}")
        s_enc.set_property("is-client", False)
        for e in (c_dec, c_enc, s_dec, s_enc):
            self.pipeline.add(e)
        c_enc.link(s_dec)
        s_enc.link(c_dec)
        # The client starts its handshake when it starts: only once the rest is PLAYING, so
        # its first flight is not pushed into a peer that is still flushing.
        c_enc.set_locked_state(True)
        self.client = c_enc
        self.keys = 0
        self.done = threading.Event()
        self.lock = threading.Lock()
        for enc in (c_enc, s_enc):
            enc.connect("on-key-received", self.on_key)

    def on_key(self, *_):
        with self.lock:
            self.keys += 1
            if self.keys == 2:
                self.done.set()

    def run(self, timeout=10.0, handshake=True):
        """handshake=False: the same pipeline up and down without the handshake (the floor
        the handshake figures are read against)."""
        self.pipeline.set_state(Gst.State.PLAYING)
        self.pipeline.get_state(Gst.CLOCK_TIME_NONE)
        ok = True
        if handshake:
            self.client.set_locked_state(False)
            self.client.sync_state_with_parent()
            ok = self.done.wait(timeout)
        self.pipeline.set_state(Gst.State.NULL)
        if not ok:
            raise RuntimeError("handshake did not complete")


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--handshakes", type=int, default=200, help="per kind")
    ap.add_argument("--block", type=int, default=20, help="handshakes per alternation block")
    args = ap.parse_args()
    Gst.init(None)
    client = ecdsa_pem("client")
    kinds = {"rsa": None, "ecdsa": ecdsa_pem("server"), "none": None}
    for kind, pem in kinds.items():  # warm-up: the RSA key is generated on first use
        for _ in range(3):
            Handshake(pem, client).run(handshake=kind != "none")
    cpu = {k: 0.0 for k in kinds}
    wall = {k: 0.0 for k in kinds}
    done = {k: 0 for k in kinds}
    while min(done.values()) < args.handshakes:
        for kind, pem in kinds.items():
            for _ in range(min(args.block, args.handshakes - done[kind])):
                c0, w0 = cpu_seconds(), time.perf_counter()
                Handshake(pem, client).run(handshake=kind != "none")
                cpu[kind] += cpu_seconds() - c0
                wall[kind] += time.perf_counter() - w0
                done[kind] += 1
    print(f"{args.handshakes} handshakes per kind, alternating blocks of {args.block}; "
          "both ends in this process; client certificate ECDSA P-256")
    print(f"{'server certificate':<22}{'CPU ms/handshake':>18}{'wall ms/handshake':>19}")
    names = {"rsa": "RSA-2048 (GStreamer)", "ecdsa": "ECDSA P-256",
             "none": "(no handshake)"}
    per = {k: (1000 * cpu[k] / done[k], 1000 * wall[k] / done[k]) for k in kinds}
    for kind in kinds:
        print(f"{names[kind]:<22}{per[kind][0]:>18.3f}{per[kind][1]:>19.3f}")
    print(f"ECDSA / RSA: CPU {cpu['ecdsa'] / cpu['rsa']:.3f}, wall "
          f"{wall['ecdsa'] / wall['rsa']:.3f}")
    hs = {k: per[k][0] - per["none"][0] for k in ("rsa", "ecdsa")}
    print(f"handshake alone (minus the no-handshake floor): RSA {hs['rsa']:.3f} ms, ECDSA "
          f"{hs['ecdsa']:.3f} ms CPU, ratio {hs['ecdsa'] / hs['rsa']:.3f}")


if __name__ == "__main__":
    main()
