"""Malformed requests against a real server: each gets its 4xx (or a clean close), and the
server keeps serving the next client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from modes import SERVING_MODES, mode_settings
from server_process import ServerProcess

H = b"Host: x\r\n"

# (id, raw request, expected status)
CASES: list[tuple[str, bytes, int]] = [
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n", 400),
    ("no-version-http09", b"GET /\r\n\r\n", 400),
    ("http2-version", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http3-version", b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505),
    ("garbage-version", b"GET / HTTP/one\r\n" + H + b"\r\n", 400),
    ("lowercase-http", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    ("double-space-request-line", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("missing-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("duplicate-host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad-host", b"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("no-colon", b"GET / HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: one\r\n two\r\n\r\n", 400),
    ("bare-lf", b"GET / HTTP/1.1\n" + H.replace(b"\r\n", b"\n") + b"\n", 400),
    ("bare-lf-mixed", b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
    ("bare-cr-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("nul-in-target", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("non-ascii-target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("relative-target", b"GET index.html HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("asterisk-not-options", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("authority-form-get", b"GET example.com:80 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    ("fragment-in-target", b"GET /a#frag HTTP/1.1\r\n" + H + b"\r\n", 400),
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te-and-cl",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "conflicting-cl",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    ("cl-list-conflict", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!", 400),
    ("cl-negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-plus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("cl-letters", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    ("cl-huge", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    (
        "te-chunked-identity",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n",
        400,
    ),
    ("te-xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    ("te-identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("te-gzip-chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (
        "te-twice",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    ("te-on-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-tab-value", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\tchunked\x0b\r\n\r\n", 400),
    (
        "chunk-size-0x",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-plus",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-size-space",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5 5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    # h11 accepts any 20-digit chunk size (Python ints do not overflow); the body then
    # stalls and the request timeout ends it.
    (
        "chunk-size-huge",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
        408,
    ),
    (
        "chunk-no-crlf",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        400,
    ),
    ("long-request-line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("long-request-line-no-end", b"GET /" + b"a" * 40000, 414),
    ("too-many-headers", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n" * 101 + b"\r\n", 431),
    ("big-header-one-read", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 17000 + b"\r\n\r\n", 431),
    (
        "big-header-block-one-read",
        b"GET / HTTP/1.1\r\n" + H + (b"X-" + b"h" * 40 + b": " + b"v" * 200 + b"\r\n") * 80 + b"\r\n",
        431,
    ),
    ("headers-never-end", b"GET / HTTP/1.1\r\n" + H + b"X-A: " + b"v" * 30000, 431),
]


@pytest.fixture(scope="module", params=SERVING_MODES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp(f"malformed-{request.param}"),
        {"/": "basic:count_body"},
        mode=mode_settings(request.param)[0],
        settings={"request_timeout": 1.0, **mode_settings(request.param)[1]},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.mark.parametrize(
    ("raw", "status"), [(raw, status) for _, raw, status in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_request_rejected(server: ServerProcess, raw: bytes, status: int) -> None:
    data = server.raw(raw)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:200]
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert b"connection: close" in head
    # ... and the server still serves a normal request
    ok = server.raw(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    assert ok.startswith(b"HTTP/1.1 200 OK")


def test_close_mid_head_is_clean(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    ok = server.raw(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    assert ok.startswith(b"HTTP/1.1 200 OK")


def test_pipelined_request_after_invalid_one_is_not_served(server: ServerProcess) -> None:
    data = server.raw(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 400 ")
    assert data.count(b"HTTP/1.1") == 1


def test_leading_empty_line_is_ignored(server: ServerProcess) -> None:
    data = server.raw(b"\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    assert data.startswith(b"HTTP/1.1 200 OK")
