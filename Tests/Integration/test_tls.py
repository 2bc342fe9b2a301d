"""TLS served by the hub itself (EXAMHUB_TLS_CERT / EXAMHUB_TLS_KEY): `wss://` and `https://` on the one port, TLS 1.2
minimum, certificate reload on SIGHUP without dropping open sockets, and clear errors at start for bad files.

Certificates are made here, at test time, with `cryptography` (self-signed, SAN 127.0.0.1).
"""
from __future__ import annotations

import datetime
import http.client
import json
import os
import signal
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from examkit import exam_def, join, save_ok, wait_until
from hubclient import _CONNECT_KW, Client, _ws_connect, binary_path, clean_env, run_cli

SERIAL_A = 0x0A11CE
SERIAL_B = 0x0B0B0B


def make_cert(directory: Path, name: str, serial: int) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 with subject CN=`name`; returns (cert, key) PEM paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def client_context(cafile: Path | None = None, max_version=None, min_version=None) -> ssl.SSLContext:
    """Trusts `cafile` (hostname 127.0.0.1 checked through the SAN), or nothing at all when None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=str(cafile))
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def peer_serial(sock) -> int:
    der = sock.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def https(hub, method: str, path: str, ctx: ssl.SSLContext, body: bytes | None = None,
          headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPSConnection(hub.host, hub.port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wss(hub, ctx: ssl.SSLContext, **kw) -> Client:
    ws = _ws_connect(f"wss://{hub.host}:{hub.port}/v1/socket", ssl=ctx, subprotocols=["examhub.v1.json"],
                     compression=None, open_timeout=10, close_timeout=3, ping_interval=None,
                     **{**_CONNECT_KW, **kw})
    return Client(ws, label="wss")


@pytest.fixture
def certs(tmp_path):
    a = make_cert(tmp_path, "examhub-test-a", SERIAL_A)
    b = make_cert(tmp_path, "examhub-test-b", SERIAL_B)
    return a, b


@pytest.fixture
def tls_hub(start_hub, certs, tmp_path):
    (cert_a, key_a), _ = certs
    # The hub reads the paths it was given: copies it can be made to re-read after they change.
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    live_cert.write_bytes(cert_a.read_bytes())
    live_key.write_bytes(key_a.read_bytes())
    hub = start_hub({"EXAMHUB_TLS_CERT": str(live_cert), "EXAMHUB_TLS_KEY": str(live_key)})
    hub.live_cert, hub.live_key = live_cert, live_key
    return hub


def test_wss_round_trip_hello_ping_and_a_save(tls_hub, certs):
    (cert_a, _), _ = certs
    ctx = client_context(cafile=cert_a)  # a verified handshake: the SAN and chain are right
    admin = tls_hub.token("admin", "admin-1", "t1")
    definition = exam_def()
    status, _, body = https(tls_hub, "POST", "/v1/exams", ctx, body=json.dumps(definition).encode(),
                            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    assert status == 201, body
    c = wss(tls_hub, ctx)
    try:
        assert peer_serial(c.ws.socket) == SERIAL_A
        assert c.ws.socket.version() in ("TLSv1.2", "TLSv1.3")
        c.hello(tls_hub.token("candidate", "u-tls", "t1"))
        c.ping()
        attempt = join(c, definition["id"])
        saved = save_ok(c, attempt["attemptId"], "q-text", "over TLS")
        assert saved["version"] == 1
    finally:
        c.close()


def test_https_healthz_and_plain_http_is_not_served(tls_hub, certs):
    (cert_a, _), _ = certs
    status, headers, body = https(tls_hub, "GET", "/healthz", client_context(cafile=cert_a))
    assert status == 200 and json.loads(body) == {"status": "ok"}
    # Plain HTTP on the TLS port gets no HTTP answer.
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        tls_hub.http("GET", "/healthz")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_is_refused_and_1_2_accepted(tls_hub):
    ctx = client_context(max_version=ssl.TLSVersion.TLSv1_1, min_version=ssl.TLSVersion.TLSv1)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with socket.create_connection((tls_hub.host, tls_hub.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError) as refused:
            with ctx.wrap_socket(raw) as tls:
                tls.do_handshake()
    # The server answered with a protocol_version alert (not a client that refused to try).
    assert "PROTOCOL_VERSION" in str(refused.value).upper() or "UNSUPPORTED_PROTOCOL" in str(refused.value).upper(), \
        refused.value
    ctx12 = client_context(max_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection((tls_hub.host, tls_hub.port), timeout=10) as raw:
        with ctx12.wrap_socket(raw) as tls:
            assert tls.version() == "TLSv1.2"
    assert tls_hub.running


def test_sighup_reloads_the_certificate_and_open_sockets_stay(tls_hub, certs):
    _, (cert_b, key_b) = certs
    ctx = client_context()
    old = wss(tls_hub, ctx)
    try:
        old.hello(tls_hub.token("proctor", "p-tls", "t1"))
        assert peer_serial(old.ws.socket) == SERIAL_A

        # Swap the files (each written whole, then renamed), then SIGHUP.
        for src, dst in ((cert_b, tls_hub.live_cert), (key_b, tls_hub.live_key)):
            tmp = dst.with_suffix(".new")
            tmp.write_bytes(src.read_bytes())
            os.replace(tmp, dst)
        tls_hub.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS certificate reloaded" in tls_hub.stderr_tail(20000), 10, what="the reload log line")
        assert f"{SERIAL_B:x}".rjust(6, "0") in tls_hub.stderr_tail(20000)

        fresh = wss(tls_hub, ctx)
        try:
            assert peer_serial(fresh.ws.socket) == SERIAL_B
            fresh.hello(tls_hub.token("proctor", "p-tls-2", "t1"))
            fresh.ping()
        finally:
            fresh.close()
        old.ping()  # the socket accepted with the old certificate is still served

        # A broken file: the reload fails, is logged, and the current certificate stays.
        tls_hub.live_cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        tls_hub.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in tls_hub.stderr_tail(20000), 10, what="the failed-reload log line")
        again = wss(tls_hub, ctx)
        try:
            assert peer_serial(again.ws.socket) == SERIAL_B
        finally:
            again.close()
        old.ping()
        assert tls_hub.running
    finally:
        old.close()


def _serve_fails(tmp_path: Path, env: dict[str, str]) -> str:
    """Runs `examhub serve` with `env`; asserts it refuses to start; returns its stderr."""
    import subprocess
    base = {"EXAMHUB_PORT": "0", "EXAMHUB_DEV": "1", "EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite"}
    proc = subprocess.run([str(binary_path()), "serve"], env=clean_env(**base, **env), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout
    assert "listening" not in proc.stdout
    return proc.stderr


@pytest.mark.parametrize("case", ["missing", "bad-pem", "only-cert", "only-key", "wrong-key", "key-as-cert"])
def test_bad_tls_settings_stop_the_start_and_config_check_says_so(tmp_path, certs, case):
    (cert_a, key_a), (_, key_b) = certs
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    env, expected = {
        "missing": ({"EXAMHUB_TLS_CERT": str(tmp_path / "nope.crt"), "EXAMHUB_TLS_KEY": str(key_a)},
                    "EXAMHUB_TLS_CERT: cannot read"),
        "bad-pem": ({"EXAMHUB_TLS_CERT": str(garbage), "EXAMHUB_TLS_KEY": str(key_a)},
                    "is not a PEM certificate"),
        "only-cert": ({"EXAMHUB_TLS_CERT": str(cert_a)}, "EXAMHUB_TLS_CERT is set without EXAMHUB_TLS_KEY"),
        "only-key": ({"EXAMHUB_TLS_KEY": str(key_a)}, "EXAMHUB_TLS_KEY is set without EXAMHUB_TLS_CERT"),
        "wrong-key": ({"EXAMHUB_TLS_CERT": str(cert_a), "EXAMHUB_TLS_KEY": str(key_b)},
                      "the key does not fit the certificate"),
        "key-as-cert": ({"EXAMHUB_TLS_CERT": str(cert_a), "EXAMHUB_TLS_KEY": str(cert_a)},
                        "is not a PEM private key"),
    }[case]
    assert expected in _serve_fails(tmp_path, env)
    check = run_cli("config", "check", env={"EXAMHUB_DEV": "1", **env})
    assert check.returncode == 1 and expected in check.stderr, (check.stdout, check.stderr)


def test_config_check_describes_a_good_certificate(certs):
    (cert_a, key_a), _ = certs
    check = run_cli("config", "check", env={"EXAMHUB_DEV": "1", "EXAMHUB_TLS_CERT": str(cert_a),
                                           "EXAMHUB_TLS_KEY": str(key_a)})
    assert check.returncode == 0, check.stderr
    assert "# TLS:" in check.stdout and "examhub-test-a" in check.stdout and "0a11ce" in check.stdout
