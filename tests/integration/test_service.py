"""Running as a service: HTTPS and WSS on the listener, certificate reload under live calls,
the systemd notify protocol, /readyz reasons, and the Debian package (built, checked, installed,
started from its own config as its own user, purged).

The TLS tests make a throwaway CA and server certificates with openssl. Chromium trusts the CA
through an NSS database in a HOME of its own; node through NODE_EXTRA_CA_CERTS.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

import pytest

from conftest import GATEWAY_KEY, default_gateway_config
from peers.browser_client import start_chromium
from peers.common import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NODE = shutil.which("node") or "/usr/bin/node"
PEERS = os.path.join(HERE, "peers")


# --------------------------------------------------------------------------- certificates

def openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A test CA and server certificates for localhost / 127.0.0.1 signed by it."""

    def __init__(self, folder: str) -> None:
        self.dir = folder
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=rtgw test CA",
                cwd=folder)
        with open(os.path.join(folder, "ext.cnf"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        self.ca = os.path.join(folder, "ca.pem")

    def server(self, name: str) -> Dict[str, str]:
        """{"cert": chain (leaf + CA), "key", "leaf"}; the leaf's CN is ``name``."""
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
                cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.leaf.pem", "-days", "2", "-extfile",
                "ext.cnf", cwd=self.dir)
        leaf = os.path.join(self.dir, f"{name}.leaf.pem")
        chain = os.path.join(self.dir, f"{name}.chain.pem")
        with open(chain, "w") as out, open(leaf) as a, open(self.ca) as b:
            out.write(a.read() + b.read())
        return {"cert": chain, "key": os.path.join(self.dir, f"{name}.key"), "leaf": leaf}


@pytest.fixture
def pki(tmp_path):
    return Pki(str(tmp_path))


def served_common_name(port: int, ca: str) -> str:
    """The CN of the certificate a new TLS connection to 127.0.0.1:port gets (verified)."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            subject = dict(x[0] for x in tls.getpeercert()["subject"])
            return subject["commonName"]


def https_get(url: str, ca: str, timeout: float = 5.0):
    import urllib.request
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# --------------------------------------------------------------------------- a TLS gateway

class TlsGateway:
    """The gateway binary with a config file this test may rewrite (for SIGHUP)."""

    def __init__(self, tmp: str, config: dict, ca: str, env: Optional[dict] = None) -> None:
        binary = os.environ.get("RTGW_BINARY")
        if not binary:
            pytest.skip("RTGW_BINARY is not set")
        self.ca = ca
        self.port = free_port()
        self.config_path = os.path.join(tmp, "gateway.json")
        self.config = dict(config, listen=f"127.0.0.1:{self.port}")
        self.write(self.config)
        self.log_path = os.path.join(tmp, "gateway.stderr.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, "--config", self.config_path], cwd=tmp,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=dict(os.environ, **(env or {})))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stderr()
            try:
                if https_get(self.url + "/healthz", ca, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("TLS gateway not healthy:\n" + self.stderr())

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def write(self, config: dict) -> None:
        with open(self.config_path + ".tmp", "w") as f:
            json.dump(config, f)
        os.replace(self.config_path + ".tmp", self.config_path)

    def stderr(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.stderr()
            if text in log:
                return log
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not logged:\n{self.stderr()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def tls_config(upstream, pair: Dict[str, str]) -> dict:
    config = default_gateway_config(upstream)
    config["tls"] = {"cert_file": pair["cert"], "key_file": pair["key"]}
    return config


# --------------------------------------------------------------------------- --check-config

def test_check_config_refuses_unreadable_and_mismatched_pairs(pki, tmp_path):
    binary = os.environ.get("RTGW_BINARY") or pytest.skip("RTGW_BINARY is not set")
    a, b = pki.server("a"), pki.server("b")

    def check(cert: str, key: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, RTGW_TLS_CERT_FILE=cert, RTGW_TLS_KEY_FILE=key)
        return subprocess.run([binary, "--check-config"], env=env, capture_output=True,
                              text=True, timeout=30)

    ok = check(a["cert"], a["key"])
    assert ok.returncode == 0 and "config OK" in ok.stdout, ok.stderr
    mismatched = check(a["cert"], b["key"])
    assert mismatched.returncode != 0
    assert "does not match tls.cert_file" in mismatched.stderr, mismatched.stderr
    missing = check(str(tmp_path / "absent.pem"), a["key"])
    assert missing.returncode != 0 and "absent.pem" in missing.stderr, missing.stderr
    only_cert = subprocess.run([binary, "--check-config"], capture_output=True, text=True,
                               env=dict(os.environ, RTGW_TLS_CERT_FILE=a["cert"]), timeout=30)
    assert only_cert.returncode != 0 and "set both tls.cert_file and tls.key_file" in \
        only_cert.stderr, only_cert.stderr


# --------------------------------------------------------------------------- HTTPS and WSS

def test_https_call_from_chromium_that_trusts_a_test_ca(pki, fake_upstream, tmp_path):
    """The tester page over HTTPS (a secure context on a non-loopback-looking origin) makes a
    WebRTC call; Chromium verifies the chain against the CA in its NSS database, so a page
    that loads at all proves the trust path."""
    if not shutil.which("certutil"):
        pytest.skip("certutil (libnss3-tools) is not installed")
    gw = TlsGateway(str(tmp_path), tls_config(fake_upstream, pki.server("gateway")), pki.ca)
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True,
                   timeout=30)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "rtgw-test-ca", "-t", "C,,",
                    "-i", pki.ca], check=True, timeout=30)
    driver, profile = start_chromium(env=dict(os.environ, HOME=str(home)))
    try:
        driver.get(gw.url + "/")
        assert "Realtime Gateway tester" in driver.page_source, driver.title
        driver.find_element("id", "key").send_keys(GATEWAY_KEY)
        driver.execute_script("loadModels()")
        deadline = time.monotonic() + 15
        while "gpt-realtime" not in driver.find_element("id", "model").text:
            assert time.monotonic() < deadline, driver.find_element("id", "log").text
            time.sleep(0.2)
        driver.find_element("id", "start").click()
        deadline = time.monotonic() + 30
        while "session.created" not in driver.find_element("id", "log").text:
            assert time.monotonic() < deadline, driver.find_element("id", "log").text
            time.sleep(0.2)
        is_secure = driver.execute_script("return window.isSecureContext && location.protocol")
        assert is_secure == "https:"
        fake_upstream.wait_for(lambda s: s["calls"], timeout=10)
        driver.find_element("id", "hangup").click()
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        gw.stop()


def test_plain_http_on_the_tls_port_is_refused_and_redirect_port_points_to_https(
        pki, fake_upstream, tmp_path):
    redirect_port = free_port()
    config = tls_config(fake_upstream, pki.server("gateway"))
    config["tls"]["redirect_http"] = f"127.0.0.1:{redirect_port}"
    gw = TlsGateway(str(tmp_path), config, pki.ca)
    try:
        import http.client
        plain = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        with pytest.raises((http.client.HTTPException, OSError)):
            plain.request("GET", "/healthz")
            plain.getresponse().read()
        conn = http.client.HTTPConnection("127.0.0.1", redirect_port, timeout=5)
        conn.request("POST", "/v1/realtime/calls?model=gpt-realtime", body=b"v=0",
                     headers={"Host": "localhost:8080"})
        reply = conn.getresponse()
        assert reply.status == 308
        assert reply.getheader("Location") == \
            f"https://localhost:{gw.port}/v1/realtime/calls?model=gpt-realtime"
    finally:
        gw.stop()


def run_sdk_session(gw: TlsGateway, ca: str) -> dict:
    env = dict(os.environ, RTGW_SDK_TLS="1", NODE_EXTRA_CA_CERTS=ca)
    proc = subprocess.run([NODE, "openai_sdk_realtime_ws.mjs", gw.url, GATEWAY_KEY,
                           "gpt-realtime"], cwd=PEERS, env=env, capture_output=True, text=True,
                          timeout=60)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1])


def test_wss_session_from_the_openai_node_sdk(pki, fake_upstream, tmp_path):
    gw = TlsGateway(str(tmp_path), tls_config(fake_upstream, pki.server("gateway")), pki.ca)
    try:
        result = run_sdk_session(gw, pki.ca)
        assert result["ok"], result
        assert result["url"].startswith(f"wss://localhost:{gw.port}/v1/realtime"), result
        assert "session.created" in result["types"] and "response.done" in result["types"]
        assert result["usage"] and result["usage"]["total_tokens"] > 0, result
        assert fake_upstream.ws_sessions(), "the session never reached the worker"
    finally:
        gw.stop()


def test_certificate_reload_under_a_live_call(pki, fake_upstream, tmp_path):
    """SIGHUP swaps the pair for new connections; a live WebRTC call (signalled over HTTPS) and
    its events go on; a broken pair on the next SIGHUP is refused and the good one stays."""
    import asyncio

    from peers.aiortc_client import AiortcCall

    first, second = pki.server("first"), pki.server("second")
    config = tls_config(fake_upstream, first)
    gw = TlsGateway(str(tmp_path), config, pki.ca)

    async def echoed(call, payload: str) -> bool:
        call.send({"type": "test.echo", "payload": payload})
        return await call.wait_for(lambda r: any(e.get("payload") == payload
                                                 for e in r.events_of("test.echoed")), 10)

    async def scenario():
        assert served_common_name(gw.port, pki.ca) == "first"
        call = AiortcCall(gw.url, GATEWAY_KEY, model="gpt-realtime")
        await call.connect()
        try:
            assert call.connected, call.result.error_body
            assert await echoed(call, "before-reload")
            config["tls"] = {"cert_file": second["cert"], "key_file": second["key"]}
            gw.write(config)
            gw.proc.send_signal(signal.SIGHUP)
            gw.wait_log("TLS: reloaded")
            assert served_common_name(gw.port, pki.ca) == "second"
            assert await echoed(call, "after-reload")
            # A key that is not the certificate's: refused, the pair in use stays.
            config["tls"] = {"cert_file": second["cert"], "key_file": first["key"]}
            gw.write(config)
            gw.proc.send_signal(signal.SIGHUP)
            gw.wait_log("TLS pair not replaced")
            assert served_common_name(gw.port, pki.ca) == "second"
            assert https_get(gw.url + "/healthz", pki.ca)[0] == 200
            assert await echoed(call, "after-refusal")
            assert call.connected and gw.proc.poll() is None
        finally:
            await call.close()

    try:
        asyncio.run(scenario())
    finally:
        gw.stop()


# --------------------------------------------------------------------------- systemd notify

class NotifySocket:
    """A fake $NOTIFY_SOCKET: collects the datagrams the gateway sends."""

    def __init__(self, folder: str) -> None:
        os.chmod(folder, 0o777)  # the packaged binary runs as its own user
        self.path = os.path.join(folder, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.sock.settimeout(0.2)
        self.messages: List[str] = []

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.messages):
                return True
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return predicate(self.messages)

    def has(self, field: str) -> bool:
        return any(field in m.split("\n") for m in self.messages)

    def close(self) -> None:
        self.sock.close()


def check_notify_lifecycle(argv: List[str], notify: NotifySocket, env: dict, port: int,
                           http_check=None) -> None:
    env = dict(env, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="400000")
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        if not notify.wait_for(lambda m: any(x.startswith("READY=1") for x in m), 20):
            proc.kill()
            raise AssertionError(f"no READY=1 ({notify.messages}); the gateway said:\n" +
                                 proc.communicate(timeout=10)[0].decode(errors="replace")[-3000:])
        ready = next(x for x in notify.messages if x.startswith("READY=1"))
        assert "STATUS=listening on port" in ready, ready
        assert notify.wait_for(lambda m: sum(x == "WATCHDOG=1" for x in m) >= 3, 5), \
            notify.messages
        if http_check:
            http_check()
        proc.send_signal(signal.SIGTERM)
        assert notify.wait_for(lambda m: any(x.startswith("STOPPING=1") for x in m), 10), \
            notify.messages
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        proc.stdout and proc.stdout.close()
        notify.output = out


def test_notify_protocol_ready_watchdog_stopping(tmp_path):
    binary = os.environ.get("RTGW_BINARY") or pytest.skip("RTGW_BINARY is not set")
    notify = NotifySocket(str(tmp_path))
    port = free_port()
    try:
        check_notify_lifecycle([binary, "--listen", f"127.0.0.1:{port}"], notify,
                               dict(os.environ), port)
    finally:
        notify.close()


def test_notify_ready_waits_for_the_first_health_check(tmp_path):
    """READY=1 only after the worker's first health check answered: a slow one holds it."""
    import http.server
    import threading

    binary = os.environ.get("RTGW_BINARY") or pytest.skip("RTGW_BINARY is not set")

    class SlowHealth(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            time.sleep(1.5)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    health = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHealth)
    threading.Thread(target=health.serve_forever, daemon=True).start()
    config = {"models": [{"name": "gpt-realtime", "workers": [{
        "provider": "openai", "url": f"http://127.0.0.1:{health.server_address[1]}",
        "api_key": "upstream-secret", "health_path": "/healthz"}]}]}
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(config))
    notify = NotifySocket(str(tmp_path))
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    started = time.monotonic()
    proc = subprocess.Popen([binary, "--config", str(path), "--listen", f"127.0.0.1:{port}"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert notify.wait_for(lambda m: any(x.startswith("READY=1") for x in m), 20)
        assert time.monotonic() - started >= 1.4, "READY=1 came before the health check answered"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        notify.close()
        health.shutdown()


def test_readyz_is_503_while_the_cluster_store_is_down(fake_upstream, gateway_factory):
    config = default_gateway_config(fake_upstream)
    dead = free_port()  # nothing listens there: Redis is "down"
    config["cluster"] = {"redis_url": f"redis://127.0.0.1:{dead}", "internal_secret": "s" * 32}
    gw = gateway_factory(config)
    from peers.common import http_request
    reply = http_request("GET", gw.url + "/readyz")
    assert reply.status == 503, reply.body
    assert json.loads(reply.body)["status"] == "cluster_store_down", reply.body
    assert http_request("GET", gw.url + "/healthz").status == 200


# --------------------------------------------------------------------------- the package

def dpkg_installed(name: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True,
                       text=True)
    return "install ok installed" in r.stdout


@pytest.fixture(scope="module")
def deb_package():
    """tests/package.sh once (or $RTGW_DEB): the .deb's path. Only in the optimized pass (the
    sanitizer pass would build the same package again) and only as root (dpkg -i)."""
    if os.environ.get("RTGW_SANITIZE", "none") != "none":
        pytest.skip("the package is built and installed once, in the optimized pass")
    if os.geteuid() != 0:
        pytest.skip("installing the package needs root")
    if dpkg_installed("realtime-gateway"):
        pytest.skip("realtime-gateway is installed on this machine: not touching it")
    deb = os.environ.get("RTGW_DEB")
    if not deb:
        out = os.path.join(os.environ.get("RTGW_TEST_OUTPUT") or tempfile.mkdtemp(), "deb")
        proc = subprocess.run([os.path.join(ROOT, "tests", "package.sh"), out],
                              capture_output=True, text=True, timeout=3000)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        deb = proc.stdout.strip().splitlines()[-1]
    assert os.path.isfile(deb), deb
    return deb


def test_package_contents_and_depends(deb_package):
    name = os.path.basename(deb_package)
    version = subprocess.run(["dpkg-deb", "-f", deb_package, "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert name == f"realtime-gateway_{version}_amd64.deb"
    listing = subprocess.run(["dpkg-deb", "-c", deb_package], capture_output=True, text=True,
                             check=True).stdout
    paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for wanted in ("/usr/bin/realtime-gateway",
                   "/usr/lib/x86_64-linux-gnu/realtime-gateway/gstreamer-1.0/libgstrtevents.so",
                   "/usr/share/realtime-gateway/pipelines/call.pipeline",
                   "/usr/share/realtime-gateway/pipelines/session.pipeline",
                   "/usr/share/realtime-gateway/data/index.html",
                   "/usr/share/realtime-gateway/data/console/index.html",
                   "/usr/share/realtime-gateway/data/console/console.js",
                   "/usr/share/realtime-gateway/data/console/console.css",
                   "/etc/realtime-gateway/config.json",
                   "/lib/systemd/system/realtime-gateway.service",
                   "/usr/share/man/man1/realtime-gateway.1.gz"):
        assert wanted in paths, f"{wanted} not in the package:\n{listing}"
    depends = subprocess.run(["dpkg-deb", "-f", deb_package, "Depends"], capture_output=True,
                             text=True, check=True).stdout
    for wanted in ("gstreamer1.0-plugins-bad (>= 1.22.0-4+deb12u8)", "gstreamer1.0-nice",
                   "gstreamer1.0-plugins-good", "gstreamer1.0-plugins-base", "glib-networking",
                   "libsoup-3.0-0", "libgstreamer1.0-0", "libnice10", "libpq5", "libhiredis0.14",
                   "libjson-glib-1.0-0", "adduser"):
        assert wanted in depends, f"{wanted} not in Depends: {depends}"
    control = tempfile.mkdtemp()
    try:
        subprocess.run(["dpkg-deb", "-e", deb_package, control], check=True)
        with open(os.path.join(control, "conffiles")) as f:
            assert "/etc/realtime-gateway/config.json" in f.read().split()
    finally:
        shutil.rmtree(control, ignore_errors=True)
    lintian = subprocess.run(["lintian", "--fail-on", "error,warning", deb_package],
                             capture_output=True, text=True, timeout=600)
    assert lintian.returncode == 0, lintian.stdout + lintian.stderr


def test_package_installs_starts_as_its_user_notifies_and_purges(deb_package, tmp_path):
    subprocess.run(["dpkg", "-i", deb_package], check=True, capture_output=True, timeout=300)
    try:
        assert subprocess.run(["getent", "passwd", "realtime-gateway"],
                              capture_output=True).returncode == 0
        unit = "/lib/systemd/system/realtime-gateway.service"
        verify = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True,
                                text=True, timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        text = open(unit).read()
        for line in ("Type=notify", "User=realtime-gateway", "LimitNOFILE=65536",
                     "WatchdogSec=", "ExecReload=", "TimeoutStopSec=", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                     "StateDirectory=", "LogsDirectory=", "RestrictAddressFamilies="):
            assert line in text, line
        check = subprocess.run(["/usr/bin/realtime-gateway", "--config",
                                "/etc/realtime-gateway/config.json", "--check-config"],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and "config OK" in check.stdout, check.stderr
        # As the unit would run it: its user, its config, its state folder (created here as
        # systemd's StateDirectory= would).
        os.makedirs("/var/lib/realtime-gateway", exist_ok=True)
        shutil.chown("/var/lib/realtime-gateway", "realtime-gateway", "realtime-gateway")
        # pytest's tmp folders are root-only (0700): the service user could not reach a socket
        # there.
        notify_dir = tempfile.mkdtemp(prefix="rtgw-notify-")
        os.chmod(notify_dir, 0o755)
        notify = NotifySocket(notify_dir)
        port = free_port()
        env = {"PATH": "/usr/bin:/bin", "HOME": "/var/lib/realtime-gateway"}

        def page_from_share():
            from peers.common import http_request
            page = http_request("GET", f"http://127.0.0.1:{port}/")
            assert page.status == 200 and "Realtime Gateway tester" in page.body

        try:
            check_notify_lifecycle(
                ["setpriv", "--reuid=realtime-gateway", "--regid=realtime-gateway",
                 "--init-groups", "--", "/usr/bin/realtime-gateway", "--config",
                 "/etc/realtime-gateway/config.json", "--listen", f"127.0.0.1:{port}"],
                notify, env, port, page_from_share)
        finally:
            notify.close()
            shutil.rmtree(notify_dir, ignore_errors=True)
    finally:
        purge = subprocess.run(["dpkg", "--purge", "realtime-gateway"], capture_output=True,
                               text=True, timeout=300)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert subprocess.run(["getent", "passwd", "realtime-gateway"],
                          capture_output=True).returncode != 0
    assert not os.path.exists("/var/lib/realtime-gateway")
    assert not os.path.exists("/etc/realtime-gateway/config.json")
