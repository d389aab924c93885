"""TLS for the listening sockets: one ``ssl.SSLContext`` made from the SSL_* settings.

OpenSSL reports most mistakes as "[SSL] PEM lib" with a traceback from deep inside the
``ssl`` module.  ``make_ssl_context`` turns each of them into a ``TLSConfigError`` whose
one-line message names the setting, the file and the reason -- a missing or unreadable file,
a certificate file with no certificate in it, a key that is not a key, a key that does not
match the certificate, an encrypted key without SSL_KEY_PASSWORD (or with a wrong one), a
cipher string OpenSSL rejects, client verification without a CA.  The process models log
that line and exit non-zero before anything is served.

Choices:

* TLS 1.2 is the minimum; SSL_CIPHERS applies to TLS 1.2 (TLS 1.3 suites are OpenSSL's).
* ALPN offers ``http/1.1`` only: this server speaks no HTTP/2.
* An encrypted key is never unlocked by prompting: without SSL_KEY_PASSWORD OpenSSL would
  read the password from the terminal, which hangs a server started by a supervisor.
* SSL_CA_PATH is a PEM file of CA certificates, or a directory in OpenSSL's hashed layout.
  It is loaded whenever it is given, so a wrong path fails at start even with verification
  off; client certificates are requested only with SSL_VERIFY_CLIENT ``optional`` (checked
  when sent) or ``required`` (the handshake fails without one).
"""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qactuar.config import Config

_VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


class TLSConfigError(Exception):
    """The TLS settings cannot make a working context; the message says which file and why."""


def make_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server's SSLContext, or None when TLS is off (no SSL_CERT_PATH and no SSL_KEY_PATH)."""
    cert, key = config.SSL_CERT_PATH, config.SSL_KEY_PATH
    if not cert and not key:
        return None
    if not cert or not key:
        raise TLSConfigError("TLS needs SSL_CERT_PATH and SSL_KEY_PATH together (or neither)")
    _check_readable("SSL_CERT_PATH", cert)
    _check_readable("SSL_KEY_PATH", key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_certificate(context, cert, key, config.SSL_KEY_PASSWORD)
    try:
        context.set_ciphers(config.SSL_CIPHERS)
    except ssl.SSLError:
        raise TLSConfigError(
            f"SSL_CIPHERS {config.SSL_CIPHERS!r}: OpenSSL selects no cipher from this list"
        ) from None
    verify = config.SSL_VERIFY_CLIENT
    if config.SSL_CA_PATH:
        _load_ca(context, config.SSL_CA_PATH)
    elif verify != "none":
        raise TLSConfigError(
            f"SSL_VERIFY_CLIENT = {verify!r} needs SSL_CA_PATH (the CA that signs client certificates)"
        )
    context.verify_mode = _VERIFY_MODES[verify]
    context.set_alpn_protocols(["http/1.1"])
    return context


def _check_readable(setting: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TLSConfigError(f"{setting} {path}: cannot read the file: {reason}") from None


def _load_certificate(context: ssl.SSLContext, cert: str, key: str, password: str) -> None:
    # A scratch context says whether the certificate file alone is usable, so that a failure
    # of load_cert_chain below can be blamed on the right file.
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError:
        raise TLSConfigError(f"SSL_CERT_PATH {cert}: no PEM certificate in the file") from None
    asked = False

    def key_password() -> str:
        nonlocal asked
        asked = True
        if not password:
            raise TLSConfigError(
                f"SSL_KEY_PATH {key}: the private key is encrypted and SSL_KEY_PASSWORD is not set"
            )
        return password

    try:
        context.load_cert_chain(cert, key, password=key_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            reason = f"the private key does not match the certificate in SSL_CERT_PATH {cert}"
        elif asked:
            reason = "SSL_KEY_PASSWORD does not decrypt the private key"
        else:
            reason = "no PEM private key in the file"
        raise TLSConfigError(f"SSL_KEY_PATH {key}: {reason}") from None


def _load_ca(context: ssl.SSLContext, path: str) -> None:
    try:
        if os.path.isdir(path):
            context.load_verify_locations(capath=path)
        else:
            context.load_verify_locations(cafile=path)
    except FileNotFoundError:
        raise TLSConfigError(f"SSL_CA_PATH {path}: no such file or directory") from None
    except ssl.SSLError:
        raise TLSConfigError(f"SSL_CA_PATH {path}: no PEM CA certificate in the file") from None
    except OSError as exc:
        raise TLSConfigError(f"SSL_CA_PATH {path}: cannot read it: {exc.strerror or exc}") from None
