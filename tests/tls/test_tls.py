"""TLS end to end: HTTPS and WSS with certificates made by trustme, client certificates, plain
HTTP sent to the TLS port, and every misconfiguration failing at start with one clear line."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from modes import SERVING_MODES, mode_settings
from server_process import ServerProcess, read_until_close
from websockets.sync.client import connect

StartServer = Callable[..., ServerProcess]

APPS = {"/": "basic:scope_app", "/ws": "ws:scope_app", "/echo": "ws:echo"}
PASSWORD = "correct horse"


@dataclass(frozen=True)
class Certs:
    ca: trustme.CA
    ca_path: Path
    cert: Path
    key: Path
    encrypted_key: Path
    other_key: Path
    junk: Path
    client: trustme.LeafCert

    def client_context(self, *, with_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if with_cert:
            self.client.configure_cert(context)
        return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key", "enc", "other", "junk")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    for blob in leaf.cert_chain_pems:
        blob.write_to_path(str(paths["cert"]), append=True)
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    paths["enc"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    ca.issue_cert("localhost").private_key_pem.write_to_path(str(paths["other"]))
    paths["junk"].write_text("this is not a certificate\n")
    return Certs(
        ca=ca,
        ca_path=paths["ca"],
        cert=paths["cert"],
        key=paths["key"],
        encrypted_key=paths["enc"],
        other_key=paths["other"],
        junk=paths["junk"],
        client=ca.issue_cert("client@example.org"),
    )


def tls_settings(certs: Certs, **extra: Any) -> dict[str, Any]:
    return {"ssl_cert_path": str(certs.cert), "ssl_key_path": str(certs.key), **extra}


def start_tls(start_server: StartServer, mode: str, settings: dict[str, Any]) -> ServerProcess:
    mode, extra = mode_settings(mode)
    srv = start_server(APPS, mode=mode, settings={**settings, **extra})
    assert srv.scheme == "https"
    return srv


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_https_and_wss_with_verification(start_server: StartServer, certs: Certs, mode: str) -> None:
    srv = start_tls(start_server, mode, tls_settings(certs))
    context = certs.client_context()
    response = httpx.get(srv.url + "/?q=1", verify=context, timeout=5)
    assert response.status_code == 200
    assert response.json()["scheme"] == "https"
    with connect(f"wss://{srv.host}:{srv.port}/ws", ssl=context, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["scheme"] == "wss"
    with connect(f"wss://{srv.host}:{srv.port}/echo", ssl=context, open_timeout=5) as ws:
        for i in range(50):
            ws.send(f"secure {i}")
            assert ws.recv(timeout=5) == f"secure {i}"
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/", timeout=5)  # the system trust store does not know our CA


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_plain_http_to_the_tls_port_is_refused_and_serving_goes_on(
    start_server: StartServer, certs: Certs, mode: str
) -> None:
    srv = start_tls(start_server, mode, tls_settings(certs))
    for _ in range(3):
        with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = read_until_close(sock, timeout=5)
        assert not answer.startswith(b"HTTP/")  # at most a TLS alert, then the connection ends
    response = httpx.get(srv.url + "/", verify=certs.client_context(), timeout=5)
    assert response.status_code == 200
    assert "Traceback" not in srv.output()


def test_encrypted_key_with_its_password(start_server: StartServer, certs: Certs) -> None:
    srv = start_tls(
        start_server,
        "async",
        tls_settings(certs, ssl_key_path=str(certs.encrypted_key), ssl_key_password=PASSWORD),
    )
    assert httpx.get(srv.url + "/", verify=certs.client_context(), timeout=5).status_code == 200


def test_client_certificates_required(start_server: StartServer, certs: Certs) -> None:
    srv = start_tls(
        start_server,
        "async",
        tls_settings(certs, ssl_ca_path=str(certs.ca_path), ssl_verify_client="required"),
    )
    response = httpx.get(srv.url + "/", verify=certs.client_context(with_cert=True), timeout=5)
    assert response.status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(srv.url + "/", verify=certs.client_context(), timeout=5)


def test_client_certificates_optional(start_server: StartServer, certs: Certs) -> None:
    srv = start_tls(
        start_server,
        "async",
        tls_settings(certs, ssl_ca_path=str(certs.ca_path), ssl_verify_client="optional"),
    )
    for with_cert in (True, False):
        response = httpx.get(srv.url + "/", verify=certs.client_context(with_cert=with_cert), timeout=5)
        assert response.status_code == 200


# (id, settings given the certs, what the one error line must say)
BAD_SETUPS: list[tuple[str, Callable[[Certs], dict[str, Any]], str]] = [
    (
        "missing-cert",
        lambda c: tls_settings(c, ssl_cert_path=str(c.cert.parent / "nope.pem")),
        "SSL_CERT_PATH {dir}/nope.pem: cannot read the file: No such file or directory",
    ),
    (
        "missing-key",
        lambda c: tls_settings(c, ssl_key_path=str(c.key.parent / "nope.pem")),
        "SSL_KEY_PATH {dir}/nope.pem: cannot read the file: No such file or directory",
    ),
    (
        "mismatched-key",
        lambda c: tls_settings(c, ssl_key_path=str(c.other_key)),
        "SSL_KEY_PATH {dir}/other.pem: the private key does not match the certificate in SSL_CERT_PATH",
    ),
    (
        "junk-cert",
        lambda c: tls_settings(c, ssl_cert_path=str(c.junk)),
        "SSL_CERT_PATH {dir}/junk.pem: no PEM certificate in the file",
    ),
    (
        "junk-key",
        lambda c: tls_settings(c, ssl_key_path=str(c.junk)),
        "SSL_KEY_PATH {dir}/junk.pem: no PEM private key in the file",
    ),
    (
        "encrypted-key-no-password",
        lambda c: tls_settings(c, ssl_key_path=str(c.encrypted_key)),
        "SSL_KEY_PATH {dir}/enc.pem: the private key is encrypted and SSL_KEY_PASSWORD is not set",
    ),
    (
        "wrong-password",
        lambda c: tls_settings(c, ssl_key_path=str(c.encrypted_key), ssl_key_password="wrong"),
        "SSL_KEY_PATH {dir}/enc.pem: SSL_KEY_PASSWORD does not decrypt the private key",
    ),
    (
        "bad-ciphers",
        lambda c: tls_settings(c, ssl_ciphers="NO-SUCH-CIPHER"),
        "SSL_CIPHERS 'NO-SUCH-CIPHER': OpenSSL selects no cipher from this list",
    ),
    (
        "verify-without-ca",
        lambda c: tls_settings(c, ssl_verify_client="required"),
        "SSL_VERIFY_CLIENT = 'required' needs SSL_CA_PATH",
    ),
    (
        "missing-ca",
        lambda c: tls_settings(c, ssl_ca_path=str(c.cert.parent / "no-ca.pem")),
        "SSL_CA_PATH {dir}/no-ca.pem: no such file or directory",
    ),
]


def assert_fails_with_one_line(srv: ServerProcess, message: str) -> None:
    code = srv.wait(15)
    output = srv.output()
    assert code != 0
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if message in line]
    assert len(lines) == 1, output
    assert "Listening on" not in output


@pytest.mark.parametrize(
    ("settings", "message"), [case[1:] for case in BAD_SETUPS], ids=[c[0] for c in BAD_SETUPS]
)
def test_bad_tls_setup_fails_at_start(
    start_server: StartServer,
    certs: Certs,
    settings: Callable[[Certs], dict[str, Any]],
    message: str,
) -> None:
    srv = start_server(APPS, mode="async", settings=settings(certs), expect_listening=False)
    assert_fails_with_one_line(srv, message.format(dir=certs.cert.parent))


@pytest.mark.parametrize("mode", [m for m in SERVING_MODES if m != "async"])
def test_bad_tls_setup_fails_at_start_in_every_mode(
    start_server: StartServer, certs: Certs, mode: str
) -> None:
    mode, extra = mode_settings(mode)
    settings = {**tls_settings(certs, ssl_key_path=str(certs.other_key)), **extra}
    srv = start_server(APPS, mode=mode, settings=settings, expect_listening=False)
    assert_fails_with_one_line(srv, f"SSL_KEY_PATH {certs.other_key}: the private key does not match")
