"""End-to-end WebSocket behaviour against a real server process, with the websockets client
library (and a raw socket client for what a library will not send), in every serving mode."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from modes import SERVING_MODES, mode_settings
from server_process import ServerProcess, read_response, wait_until
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from wsraw import KEY, FrameReader, close_payload, frame, open_ws, upgrade_request

StartServer = Callable[..., ServerProcess]

MAX_SIZE = 256 * 1024
APPS = {
    "/echo": "ws:echo",
    "/scope": "ws:scope_app",
    "/deny": "ws:deny",
    "/custom": "ws:deny_custom",
    "/close": "ws:server_close",
    "/slow": "ws:slow_reader",
    "/err/after": "ws:raise_after_accept",
    "/err/before": "ws:raise_before_accept",
    "/err/message": "ws:bad_message",
    "/twice": "ws:receive_after_disconnect",
    "/ws": "ws:starlette_app",
    "/hello": "basic:hello",
    "/broken": "broken:app",
}
SETTINGS = {
    "ws_max_size": MAX_SIZE,
    "ws_max_queue": 4,
    # Pings often enough to happen during the slow-app test, rarely enough not to close the raw
    # clients of other tests (which never answer them) on a loaded machine.
    "ws_ping_interval": 1.0,
    "ws_ping_timeout": 1.0,
    "request_timeout": 2.0,
}
MiB = 1024 * 1024


@pytest.fixture(scope="module", params=SERVING_MODES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp(f"ws-{request.param}")
    mode, extra = mode_settings(request.param)
    proc = ServerProcess(workdir, APPS, mode=mode, settings={**SETTINGS, **extra})
    proc.start()
    yield proc
    proc.stop()


def url(server: ServerProcess, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def ws_connect(server: ServerProcess, path: str, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 5)
    return connect(url(server, path), **kwargs)


def read_report(path: Path, timeout: float = 5.0) -> dict[str, Any]:
    assert wait_until(path.exists, timeout), f"the app wrote no report to {path}"
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def tree_rss(pid: int) -> int:
    """RSS of the server and all its processes (workers, per-connection children)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def closed_code(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Wait for the server to close; the code and reason of its close frame."""
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=timeout)
    assert info.value.rcvd is not None, info.value
    return info.value.rcvd.code, info.value.rcvd.reason


def assert_still_serving(server: ServerProcess) -> None:
    with ws_connect(server, "/echo") as ws:
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"


# -- messages --------------------------------------------------------------------------------


def test_echo_1000_text_and_binary_messages_in_order(server: ServerProcess) -> None:
    def message(i: int) -> str | bytes:
        return f"text {i}" if i % 2 else i.to_bytes(4, "big") * (1 + i % 50)

    with ws_connect(server, "/echo") as ws:
        for start in range(0, 1000, 100):
            for i in range(start, start + 100):
                ws.send(message(i))
            for i in range(start, start + 100):
                assert ws.recv(timeout=5) == message(i)


def test_fragmented_messages_are_reassembled(server: ServerProcess) -> None:
    with ws_connect(server, "/echo") as ws:
        ws.send(["frag", "men", "ted"])
        assert ws.recv(timeout=5) == "fragmented"
        ws.send([b"\x00" * 70_000, b"\x01" * 70_000])
        assert ws.recv(timeout=5) == b"\x00" * 70_000 + b"\x01" * 70_000


def test_scope(server: ServerProcess) -> None:
    with ws_connect(
        server, "/scope/a%20b?x=1&y=%20", subprotocols=["one", "two"], additional_headers={"X-Thing": "v"}
    ) as ws:
        scope = json.loads(ws.recv(timeout=5))
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope/a b"
    assert scope["raw_path"] == "/scope/a%20b"
    assert scope["root_path"] == "/scope"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["subprotocols"] == ["one", "two"]
    assert ["x-thing", "v"] in scope["headers"]
    assert ["upgrade", "websocket"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert "websocket.http.response" in scope["extensions"]
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", scope["state"]["request_id"])
    assert "method" not in scope


def test_subprotocol_negotiation(server: ServerProcess) -> None:
    with ws_connect(server, "/echo", subprotocols=["x-other", "chat"]) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["x-echo"] == "yes"
        assert ws.response.headers["server"].startswith("qactuar/")
    with ws_connect(server, "/echo", subprotocols=["x-other"]) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers


# -- accept, deny, refuse --------------------------------------------------------------------


def test_close_before_accept_is_403(server: ServerProcess, tmp_path: Path) -> None:
    report = tmp_path / "deny.json"
    with pytest.raises(InvalidStatus) as info:
        ws_connect(server, f"/deny?report={report}")
    assert info.value.response.status_code == 403
    assert read_report(report) == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def test_denial_response_with_custom_status_headers_and_body(server: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(server, "/custom")
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.body == b"no entry"


@pytest.mark.parametrize(("path", "status"), [("/nowhere", 404), ("/broken", 503)])
def test_no_serving_app_gets_a_plain_http_answer(server: ServerProcess, path: str, status: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(server, path)
    assert info.value.response.status_code == status


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (upgrade_request("/echo", version=b"8"), 426),
        (upgrade_request("/echo", key=b"too-short"), 400),
        (upgrade_request("/echo").replace(b"GET", b"PUT", 1), 400),
    ],
    ids=["version-8", "bad-key", "put"],
)
def test_invalid_handshake_gets_plain_http_error(
    server: ServerProcess, request_bytes: bytes, status: int
) -> None:
    with server.connect() as sock:
        sock.sendall(request_bytes)
        got, headers, _ = read_response(sock)
    assert got == status
    if status == 426:
        assert headers["sec-websocket-version"] == "13"
    assert_still_serving(server)


def test_app_error_before_accept_is_500(server: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(server, "/err/before")
    assert info.value.response.status_code == 500


def test_app_error_after_accept_closes_1011(server: ServerProcess) -> None:
    with ws_connect(server, "/err/after") as ws:
        assert closed_code(ws)[0] == 1011


def test_invalid_app_message_raises_into_the_app(server: ServerProcess) -> None:
    with ws_connect(server, "/err/message") as ws:
        assert ws.recv(timeout=5) == "RuntimeError: websocket.send needs exactly one of 'bytes' and 'text'"
        assert closed_code(ws)[0] == 4000


# -- closing ---------------------------------------------------------------------------------


def test_client_close_code_reaches_the_app(server: ServerProcess, tmp_path: Path) -> None:
    report = tmp_path / "client-close.json"
    with ws_connect(server, f"/echo?report={report}") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        ws.close(4001, "bye now")
    assert read_report(report) == {"type": "websocket.disconnect", "code": 4001, "reason": "bye now"}


def test_server_close_code_reaches_the_client(server: ServerProcess, tmp_path: Path) -> None:
    report = tmp_path / "server-close.json"
    with ws_connect(server, f"/close?report={report}") as ws:
        ws.send("4002 done here")
        assert closed_code(ws) == (4002, "done here")
    assert read_report(report) == {"type": "websocket.disconnect", "code": 4002, "reason": "done here"}


def test_disconnect_is_delivered_exactly_once(server: ServerProcess, tmp_path: Path) -> None:
    report = tmp_path / "twice.json"
    with ws_connect(server, f"/twice?report={report}") as ws:
        ws.close(1000)
    assert read_report(report) == {
        "first": {"type": "websocket.disconnect", "code": 1000, "reason": ""},
        "again": "RuntimeError: receive() called after websocket.disconnect was delivered",
    }


def test_client_vanishing_is_1006(server: ServerProcess, tmp_path: Path) -> None:
    report = tmp_path / "vanish.json"
    sock, _ = open_ws(server.host, server.port, f"/echo?report={report}")
    sock.close()
    assert read_report(report)["code"] == 1006


# -- limits ----------------------------------------------------------------------------------


def test_oversized_message_closes_1009(server: ServerProcess) -> None:
    with ws_connect(server, "/echo", compression=None, max_size=None) as ws:
        ws.send(b"x" * MAX_SIZE)
        assert ws.recv(timeout=5) == b"x" * MAX_SIZE
        with contextlib.suppress(ConnectionClosed):  # the close may arrive while we still send
            ws.send(b"x" * (MAX_SIZE + 1))
        code, reason = closed_code(ws)
    assert code == 1009
    assert str(MAX_SIZE) in reason


def test_oversized_fragmented_text_closes_1009(server: ServerProcess) -> None:
    with ws_connect(server, "/echo", compression=None) as ws:
        with contextlib.suppress(ConnectionClosed):  # closed before the last fragment is sent
            ws.send(["é" * (MAX_SIZE // 4), "é" * (MAX_SIZE // 4 + 1)])  # two bytes per character
        assert closed_code(ws)[0] == 1009


def test_invalid_utf8_closes_1007(server: ServerProcess) -> None:
    sock, rest = open_ws(server.host, server.port, "/echo")
    with sock:
        sock.sendall(frame(0x1, b"fine so far \xc3\x28"))
        assert FrameReader(sock, rest).read_close()[0] == 1007
    assert_still_serving(server)


@pytest.mark.parametrize(
    "data",
    [frame(0x1, b"unmasked", mask=False), frame(0x3, b"reserved opcode"), frame(0x9, b"x", fin=False)],
    ids=["unmasked", "reserved-opcode", "fragmented-ping"],
)
def test_protocol_violations_close_1002(server: ServerProcess, data: bytes) -> None:
    sock, rest = open_ws(server.host, server.port, "/echo")
    with sock:
        sock.sendall(data)
        assert FrameReader(sock, rest).read_close()[0] == 1002
    assert_still_serving(server)


def test_ping_flood_does_not_grow_memory(server: ServerProcess) -> None:
    count = 20_000
    sock, rest = open_ws(server.host, server.port, "/echo")
    with sock:
        reader = FrameReader(sock, rest)
        sock.sendall(frame(0x1, b"warm up"))
        assert reader.read() == (0x1, b"warm up")
        before = tree_rss(server.pid)
        pongs = 0

        def read_until_done() -> None:
            nonlocal pongs
            while True:
                opcode, payload = reader.read()
                if opcode == 0xA:
                    pongs += 1
                elif (opcode, payload) == (0x1, b"done"):
                    return

        thread = threading.Thread(target=read_until_done, daemon=True)
        thread.start()
        ping = frame(0x9, b"p" * 100)
        sock.sendall(ping * count + frame(0x1, b"done"))
        thread.join(30)
        assert not thread.is_alive()
        grown = tree_rss(server.pid) - before
    assert pongs >= count  # keepalive pings are answered too
    assert grown < 16 * MiB, f"RSS grew by {grown / MiB:.1f} MiB"


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_ping_flood_from_a_peer_that_never_reads_stops_being_read(
    start_server: StartServer, mode: str
) -> None:
    # No keepalive here: it would (rightly) close this peer, which never answers, and a closed
    # connection is drained and discarded, which is not what this test looks at.
    mode, extra = mode_settings(mode)
    server = start_server({"/echo": "ws:echo"}, mode=mode, settings={"ws_ping_interval": 0, **extra})
    limit = 200 * MiB  # of pings, hence of pongs: far more than the kernel buffers hold
    chunk = frame(0x9, b"p" * 125) * 1000
    sock, _ = open_ws(server.host, server.port, "/echo")
    with sock:
        before = tree_rss(server.pid)
        sock.settimeout(1.0)
        sent = 0
        with contextlib.suppress(TimeoutError):
            while sent < limit:
                sock.sendall(chunk)
                sent += len(chunk)
        assert sent < limit, "the server kept reading while its pongs piled up unread"
        grown = tree_rss(server.pid) - before
    assert grown < 16 * MiB, f"RSS grew by {grown / MiB:.1f} MiB"
    assert_still_serving(server)


def test_slow_app_pauses_the_client_instead_of_buffering(server: ServerProcess, tmp_path: Path) -> None:
    count, size = 400, 64 * 1024  # 25 MiB, far more than the kernel buffers hold
    go = tmp_path / "go"
    with ws_connect(server, f"/slow?go={go}&count={count}", compression=None) as ws:
        sent = 0
        before = tree_rss(server.pid)

        def send_all() -> None:
            nonlocal sent
            filler = b"x" * (size - 8)
            for i in range(count):
                ws.send(i.to_bytes(8, "big") + filler)
                sent += 1

        thread = threading.Thread(target=send_all, daemon=True)
        thread.start()
        time.sleep(1.2)  # the app reads nothing yet; more than a ping interval passes
        assert thread.is_alive(), "the server read everything while its app was not reading"
        assert sent < count
        grown = tree_rss(server.pid) - before
        go.touch()
        assert grown < 12 * MiB, f"RSS grew by {grown / MiB:.1f} MiB"
        thread.join(30)
        assert json.loads(ws.recv(timeout=10)) == {"bytes": count * size, "in_order": True}


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_keepalive_closes_a_silent_peer_1011_and_keeps_an_answering_one(
    start_server: StartServer, mode: str
) -> None:
    mode, extra = mode_settings(mode)
    settings = {"ws_ping_interval": 0.3, "ws_ping_timeout": 0.3, "request_timeout": 1.0, **extra}
    server = start_server({"/echo": "ws:echo"}, mode=mode, settings=settings)
    sock, rest = open_ws(server.host, server.port, "/echo")
    started = time.monotonic()
    with sock, ws_connect(server, "/echo", ping_interval=None) as answering:
        reader = FrameReader(sock, rest)
        assert reader.read()[0] == 0x9  # a ping, which the raw client never answers
        assert reader.read_close() == (1011, "keepalive ping timeout")
        assert time.monotonic() - started < 5
        # Meanwhile the library client answered every ping it got and is still open.
        answering.send("alive")
        assert answering.recv(timeout=5) == "alive"


# -- compression -----------------------------------------------------------------------------


def test_compression_negotiated_when_offered(server: ServerProcess) -> None:
    text = "compress this sentence, please. " * 5000
    with ws_connect(server, "/echo") as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        ws.send(text)
        assert ws.recv(timeout=5) == text
        ws.send(b"\x00" * 100_000)
        assert ws.recv(timeout=5) == b"\x00" * 100_000
    with ws_connect(server, "/echo", compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send(text)
        assert ws.recv(timeout=5) == text


def test_decompression_bomb_closes_1009_without_inflating(server: ServerProcess) -> None:
    with ws_connect(server, "/echo") as ws:
        ws.send("warm up")
        assert ws.recv(timeout=5) == "warm up"
        before = tree_rss(server.pid)
        with contextlib.suppress(ConnectionClosed):
            ws.send(b"\x00" * (64 * MiB))  # about 64 KiB on the wire
        assert closed_code(ws, timeout=10)[0] == 1009
        grown = tree_rss(server.pid) - before
    assert grown < 16 * MiB, f"RSS grew by {grown / MiB:.1f} MiB"


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_compression_off(start_server: StartServer, mode: str) -> None:
    mode, extra = mode_settings(mode)
    srv = start_server({"/echo": "ws:echo"}, mode=mode, settings={"ws_per_message_deflate": False, **extra})
    with ws_connect(srv, "/echo") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain " * 1000)
        assert ws.recv(timeout=5) == "plain " * 1000


# -- routing beside HTTP apps ----------------------------------------------------------------


def test_starlette_websocket_route_mounted_beside_http_apps(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/ws/", timeout=5).text == "http root_path=/ws"
    assert httpx.get(server.url + "/hello", timeout=5).text == "Hello, world!"
    with ws_connect(server, "/ws/echo") as ws:
        assert ws.recv(timeout=5) == "url=/ws/echo root_path=/ws"
        ws.send("shout")
        assert ws.recv(timeout=5) == "SHOUT"
    with pytest.raises(InvalidStatus) as info:
        ws_connect(server, "/ws/nope")  # Starlette closes an unknown route before accepting
    assert info.value.response.status_code == 403


def test_access_log_has_one_line_per_session(server: ServerProcess) -> None:
    with ws_connect(server, "/echo?log=marker") as ws:
        ws.send("x")
        ws.recv(timeout=5)
    assert wait_until(lambda: '"GET /echo?log=marker HTTP/1.1" 101 ' in server.output(), 5)
    assert server.output().count("/echo?log=marker") == 1


# -- shutdown --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_shutdown_closes_open_websockets_with_1001(
    start_server: StartServer, mode: str, tmp_path: Path
) -> None:
    report = tmp_path / "shutdown.json"
    mode, extra = mode_settings(mode)
    srv = start_server({"/echo": "ws:echo"}, mode=mode, settings={"graceful_timeout": 0.5, **extra})
    with ws_connect(srv, f"/echo?report={report}") as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        srv.signal(signal.SIGTERM)
        started = time.monotonic()
        assert closed_code(ws, timeout=10) == (1001, "server shutting down")
        assert time.monotonic() - started < 5
    assert read_report(report) == {
        "type": "websocket.disconnect",
        "code": 1001,
        "reason": "server shutting down",
    }
    assert srv.wait(10) == 0


def test_raw_client_close_handshake(server: ServerProcess) -> None:
    sock, rest = open_ws(server.host, server.port, "/echo")
    with sock:
        sock.sendall(frame(0x8, close_payload(1000, "done")))
        assert FrameReader(sock, rest).read_close() == (1000, "done")
        sock.settimeout(5)
        assert sock.recv(1) == b""  # the server closes the TCP connection first


def test_frames_sent_with_the_handshake_are_not_lost(server: ServerProcess) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(upgrade_request("/echo") + frame(0x1, b"eager"))
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert KEY not in head
        assert FrameReader(sock, rest).read() == (0x1, b"eager")


@pytest.mark.parametrize("mode", [m for m in SERVING_MODES if not m.startswith("async")])
def test_generation_handover_closes_old_websockets_with_1001(
    start_server: StartServer, mode: str, tmp_path: Path
) -> None:
    report = tmp_path / "handover.json"
    mode, extra = mode_settings(mode)
    srv = start_server({"/echo": "ws:echo"}, mode=mode, settings={"graceful_timeout": 0.5, **extra})
    with ws_connect(srv, f"/echo?report={report}") as old:
        old.send("old generation")
        assert old.recv(timeout=5) == "old generation"
        srv.signal(signal.SIGHUP)
        assert closed_code(old, timeout=15) == (1001, "server shutting down")
    assert read_report(report)["code"] == 1001
    assert_still_serving(srv)
    assert srv.proc is not None and srv.proc.poll() is None
