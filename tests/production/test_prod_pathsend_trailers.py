"""ASGI extensions: http.response.pathsend (os.sendfile) and http.response.trailers (chunked trailers)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from pathlib import Path
from unittest import mock

import h11
import httpx
import pytest
from modes import SERVING_MODES, mode_settings
from server_process import read_until_close
from testapps.production import pathsend

from qactuar.apps.router import Mount
from qactuar.apps.table import AppTable
from qactuar.config import Config
from qactuar.server import Server

FIFTY_MIB = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("pathsend") / "big.bin"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(FIFTY_MIB // (1024 * 1024)):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            out.write(block)
    return path, digest.hexdigest()


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_pathsend_50_mib_byte_for_byte(start_server, big_file: tuple[Path, str], mode: str) -> None:
    path, expected = big_file
    model, extra = mode_settings(mode)
    server = start_server({"/": "production:pathsend"}, mode=model, settings=extra)
    digest = hashlib.sha256()
    with httpx.stream("GET", server.url + "/", params={"path": str(path)}, timeout=30) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-length"] == str(FIFTY_MIB)
        for chunk in reply.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == expected
    head = httpx.head(server.url + "/", params={"path": str(path)})
    assert (head.status_code, head.headers["content-length"], head.content) == (200, str(FIFTY_MIB), b"")


def test_pathsend_lengths_errors_and_a_client_leaving(
    start_server, tmp_path: Path, big_file: tuple[Path, str]
) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"0123456789")
    server = start_server({"/": "production:pathsend"})
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(f"GET /?path={big_file[0]} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    # The client left 50 MiB early; the server carries on.
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/", params={"path": str(small), "length": "4"}).content == b"0123"
        assert (
            client.get("/", params={"path": str(small), "length": "11"}).status_code == 500
        )  # file too short
        assert client.get("/", params={"path": "small.txt"}).status_code == 500  # not absolute
        assert client.get("/", params={"path": str(tmp_path / "missing")}).status_code == 500
        assert client.get("/", params={"path": str(tmp_path)}).status_code == 500  # a directory
        assert client.get("/", params={"path": str(small)}).content == b"0123456789"  # still serving
    assert "http.response.pathsend cannot open" in server.output()


async def test_pathsend_uses_os_sendfile_on_a_plain_socket(big_file: tuple[Path, str]) -> None:
    path, expected = big_file
    server = Server(Config(USE_UVLOOP=False), AppTable([Mount("/", "pathsend", pathsend)]))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    await server.start([listener])
    with mock.patch("os.sendfile", wraps=os.sendfile) as spy:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /?path={path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
    await server.drain(1.0)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert hashlib.sha256(body).hexdigest() == expected
    assert spy.call_count >= 1


def h11_get(host: str, port: int, headers: list[tuple[str, str]]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """GET /trailers with an h11 client: (body, trailer fields)."""
    client = h11.Connection(h11.CLIENT)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(client.send(h11.Request(method="GET", target="/", headers=[("Host", "t"), *headers])))
        sock.sendall(client.send(h11.EndOfMessage()))
        body = b""
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200
                assert (b"transfer-encoding", b"chunked") in list(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return body, list(event.headers)


@pytest.mark.parametrize("mode", ["async", "prefork", "postfork"])
def test_trailers_received_by_an_h11_client(start_server, mode: str) -> None:
    server = start_server({"/": "production:trailers"}, mode=mode)
    body, trailers = h11_get(server.host, server.port, [("TE", "trailers")])
    assert body == b"one two three"
    assert trailers == [(b"x-checksum", b"abc123"), (b"x-count", b"3")]
    # Without TE: trailers the client did not ask for them: the body ends without them.
    assert h11_get(server.host, server.port, []) == (b"one two three", [])


def test_trailers_over_http_1_0_are_dropped(start_server) -> None:
    server = start_server({"/": "production:trailers"})
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n")
        reply = read_until_close(sock)
    assert reply.endswith(b"\r\n\r\none two three")
    assert b"x-checksum: abc123" not in reply
