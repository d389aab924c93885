"""End-to-end HTTP/1.1 behaviour against a real server process on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from modes import SERVING_MODES, mode_settings
from server_process import ServerProcess, read_response, read_until_close, wait_until

APPS = {
    "/": "basic:scope_app",
    "/hello": "basic:hello",
    "/echo": "basic:echo",
    "/count": "basic:count_body",
    "/ignore": "basic:ignore_body",
    "/stream": "basic:stream",
    "/disc": "basic:stream_until_disconnect",
    "/slow": "basic:slow",
    "/status": "basic:status",
    "/err/before": "basic:raise_before",
    "/err/after-start": "basic:raise_after_start",
    "/err/mid-body": "basic:raise_mid_body",
    "/err/none": "basic:no_response",
    "/err/inject": "basic:header_injection",
    "/err/double": "basic:double_start",
    "/err/type": "basic:bad_type",
    "/broken": "broken:app",
    "/failing": "basic:failing_startup",
    "/lifespan": "basic:lifespan_state",
    "/api": "frameworks:starlette_app",
    "/fast": "frameworks:fastapi_app",
}


@pytest.fixture(scope="module", params=SERVING_MODES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp(f"http-{request.param}")
    mode, extra = mode_settings(request.param)
    proc = ServerProcess(workdir, APPS, mode=mode, settings={"request_timeout": 2.0, **extra})
    proc.start()
    yield proc
    proc.stop()


def get(server: ServerProcess, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(server.url + path, timeout=5, **kwargs)  # type: ignore[arg-type]


def assert_still_serving(server: ServerProcess) -> None:
    response = get(server, "/hello")
    assert response.status_code == 200
    assert response.text == "Hello, world!"


# -- basics ------------------------------------------------------------------------------


def test_hello_headers(server: ServerProcess) -> None:
    response = get(server, "/hello")
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["content-length"] == "13"
    assert response.headers["server"].startswith("qactuar/")
    assert response.headers["date"].endswith("GMT")
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", response.headers["x-request-id"])


def test_scope_fields(server: ServerProcess) -> None:
    response = get(server, "/a%20b/c?x=1&y=%20", headers={"X-Thing": "one", "x-thing": "two"})
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/c"
    assert scope["raw_path"] == "/a%20b/c"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == ""
    assert ["x-thing", "one"] in scope["headers"] and ["x-thing", "two"] in scope["headers"]
    names = [name for name, _ in scope["headers"]]
    assert names == [name.lower() for name in names]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"]["request_id"] == response.headers["x-request-id"]
    assert isinstance(scope["extensions"], dict)


def test_request_id_kept_when_sane_and_replaced_when_not(server: ServerProcess) -> None:
    kept = get(server, "/hello", headers={"X-Request-ID": "trace-123.abc"})
    assert kept.headers["x-request-id"] == "trace-123.abc"
    replaced = get(server, "/hello", headers={"X-Request-ID": "bad id with spaces"})
    assert replaced.headers["x-request-id"] != "bad id with spaces"
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", replaced.headers["x-request-id"])


def test_not_found_outside_mounts(tmp_path: Path, start_server: object) -> None:
    srv = start_server({"/only": "basic:hello"})  # type: ignore[operator]
    assert get(srv, "/only").status_code == 200
    assert get(srv, "/only/deeper").status_code == 200
    assert get(srv, "/onlyx").status_code == 404
    assert get(srv, "/").status_code == 404


def test_head_has_no_body(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"Hello, world!") < 1:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    first, _, second = data.partition(b"\r\n\r\n")
    assert b"content-length: 13" in first
    assert second.startswith(b"HTTP/1.1 200 OK")  # no body bytes between the two responses


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server: ServerProcess, code: int) -> None:
    with server.connect() as sock:
        sock.sendall(f"GET /status/{code}?body HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
        assert status == code and body == b""
        assert "content-length" not in headers and "transfer-encoding" not in headers
        assert read_response(sock)[2] == b"Hello, world!"


def test_chunked_response_when_app_streams(server: ServerProcess) -> None:
    response = get(server, "/stream?n=16")
    assert response.headers["transfer-encoding"] == "chunked"
    assert len(response.content) == 16 * 1024
    assert response.content[:4] == b"0000" and response.content[-1024:-1020] == b"0015"


# -- connections -------------------------------------------------------------------------


def test_keep_alive_100_requests_one_connection(server: ServerProcess) -> None:
    with server.connect() as sock:
        ports = set()
        for i in range(100):
            sock.sendall(f"GET /?i={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _, body = read_response(sock)
            assert status == 200
            scope = json.loads(body)
            assert scope["query_string"] == f"i={i}"
            ports.add(scope["client"][1])
    assert len(ports) == 1


def test_httpx_client_reuses_connection(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, limits=httpx.Limits(max_connections=1)) as client:
        client_ports = {client.get("/").json()["client"][1] for _ in range(20)}
    assert len(client_ports) == 1


def test_pipelining_three_requests_in_one_write(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"GET /slow?s=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /?third HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        first = read_response(sock)
        second = read_response(sock)
        third = read_response(sock)
    assert first[2] == b"slept"
    assert json.loads(second[2])["size"] == 5
    assert json.loads(third[2])["query_string"] == "third"


def test_http10_closes_after_response(server: ServerProcess) -> None:
    data = server.raw(b"GET /hello HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(b"Hello, world!")


def test_connection_close_honoured(server: ServerProcess) -> None:
    data = server.raw(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"connection: close" in data.lower()
    assert data.endswith(b"Hello, world!")


# -- request bodies ------------------------------------------------------------------------


def test_chunked_upload_10_mib(server: ServerProcess) -> None:
    payload = bytes(range(256)) * 4096 * 10  # 10 MiB

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 64 * 1024):
            yield payload[start : start + 64 * 1024]

    response = httpx.post(server.url + "/count", content=chunks(), timeout=30)
    assert response.status_code == 200
    assert response.json() == {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_content_length_upload_echoed(server: ServerProcess) -> None:
    payload = b"abc" * 100_000
    response = httpx.post(server.url + "/echo", content=payload, timeout=30)
    assert response.content == payload


def test_expect_100_continue_sent_when_app_reads(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        sock.settimeout(5)
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"data")
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["size"] == 4


def test_expect_100_continue_not_sent_when_app_ignores_body(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 200 and body == b"ignored"


def test_unread_small_body_keeps_connection(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert read_response(sock)[2] == b"ignored"
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[2] == b"Hello, world!"


# -- disconnects ---------------------------------------------------------------------------


def test_disconnect_delivered_once_while_streaming(server: ServerProcess, tmp_path: Path) -> None:
    marker = tmp_path / "disconnects.txt"
    with server.connect() as sock:
        sock.sendall(f"GET /disc?file={marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(65536)
    assert wait_until(lambda: marker.exists() and marker.read_text(), 5)
    assert marker.read_text() == "disconnects=1\n"
    assert_still_serving(server)


# -- app faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/err/before", "/err/none", "/err/inject", "/err/double", "/err/type"])
def test_app_fault_before_response_gives_500(server: ServerProcess, path: str) -> None:
    data = server.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"pwned" not in data
    assert b"connection: close" in data
    assert_still_serving(server)


@pytest.mark.parametrize("path", ["/err/after-start", "/err/mid-body"])
def test_app_fault_after_response_started_closes(server: ServerProcess, path: str) -> None:
    data = server.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    if path == "/err/after-start":
        # The head was held back, so a clean 500 is still possible.
        assert data.startswith(b"HTTP/1.1 500 ")
    else:
        assert data.startswith(b"HTTP/1.1 200 OK")
        assert not data.endswith(b"0\r\n\r\n")  # no clean chunked terminator: the client sees the failure
    assert_still_serving(server)


def test_exception_logged_with_request_id(server: ServerProcess) -> None:
    response = get(server, "/err/before", headers={"X-Request-ID": "fault-42"})
    assert response.status_code == 500
    assert wait_until(
        lambda: "fault-42" in server.output() and "boom before the response" in server.output(), 5
    )


def test_access_log_line(server: ServerProcess) -> None:
    get(server, "/hello?%1b[31mred", headers={"X-Request-ID": "access-77"})
    assert wait_until(lambda: "access-77" in server.output(), 5)
    line = next(line for line in server.output().splitlines() if "access-77" in line)
    # the raw (still percent-encoded) target is logged: the escape never reaches the terminal
    assert '"GET /hello?%1b[31mred HTTP/1.1" 200 13B' in line
    assert "\x1b" not in line


# -- apps and lifespan ---------------------------------------------------------------------


def test_broken_app_is_503_beside_working_ones(server: ServerProcess) -> None:
    assert get(server, "/broken").status_code == 503
    assert get(server, "/broken/x").status_code == 503
    assert get(server, "/failing").status_code == 503
    assert_still_serving(server)
    assert "this app is broken at import time" in server.output()
    assert "database unreachable" in server.output()


def test_lifespan_state_reaches_requests(server: ServerProcess) -> None:
    state = get(server, "/lifespan").json()
    assert state["greeting"] == "set at startup"


def test_starlette_mounted_with_root_path(server: ServerProcess) -> None:
    data = get(server, "/api/items/5").json()
    assert data == {"item": "5", "url": f"{server.url}/api/items/7", "root_path": "/api"}


def test_fastapi_mounted_with_root_path(server: ServerProcess) -> None:
    data = get(server, "/fast/users/9").json()
    assert data == {"user": 9, "url": f"{server.url}/fast/users/3", "root_path": "/fast"}
    assert get(server, "/fast/users/notanint").status_code == 422


# -- slow clients --------------------------------------------------------------------------


def test_slowloris_does_not_block_others(start_server: object) -> None:
    srv = start_server({"/": "basic:hello"}, settings={"request_timeout": 1.0})  # type: ignore[operator]
    trickling = []
    for _ in range(50):
        sock = srv.connect()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        trickling.append(sock)
    try:
        started = time.monotonic()
        response = get(srv, "/")
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
        for sock in trickling:
            sock.sendall(b"X-a: b\r\n")
        results = [read_until_close(sock, timeout=5) for sock in trickling]
        assert all(result.startswith(b"HTTP/1.1 408 ") for result in results)
    finally:
        for sock in trickling:
            sock.close()
    assert get(srv, "/").status_code == 200


def test_idle_connection_closed_quietly(start_server: object) -> None:
    srv = start_server({"/": "basic:hello"}, settings={"request_timeout": 0.5, "keepalive_timeout": 0.5})  # type: ignore[operator]
    with srv.connect() as sock:
        started = time.monotonic()
        assert read_until_close(sock, timeout=5) == b""
        assert time.monotonic() - started < 3


def test_stalled_body_gets_408(start_server: object) -> None:
    srv = start_server({"/": "basic:count_body"}, settings={"request_timeout": 0.5})  # type: ignore[operator]
    with srv.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        assert read_until_close(sock, timeout=5).startswith(b"HTTP/1.1 408 ")


def test_slow_steady_body_is_not_cut(start_server: object) -> None:
    srv = start_server({"/": "basic:count_body"}, settings={"request_timeout": 0.5})  # type: ignore[operator]
    with srv.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        for _ in range(10):  # 10 bytes over ~1.5 s: slower than the timeout overall, never stalled
            time.sleep(0.15)
            sock.sendall(b"x")
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["size"] == 10


def test_client_not_reading_does_not_stop_others(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /stream?n=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        assert_still_serving(server)


def test_every_app_failed_exits_non_zero_in_async_mode(start_server: object) -> None:
    srv = start_server({"/": "broken:app"}, expect_listening=False)  # type: ignore[operator]
    assert srv.wait(20) != 0
    assert "this app is broken at import time" in srv.output()
    assert "nothing to serve" in srv.output().lower()
