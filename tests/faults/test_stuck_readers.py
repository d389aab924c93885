"""Clients that ask for a large streamed response and never read it.

Each stuck client asks for 256 MiB, chunked, from ``faults:big_stream`` and never calls recv().  The
app's ``send`` waits while the connection's write buffer is above its high-water mark (flow control),
so a stuck client costs the server its socket buffers and one transport buffer, not the response: the
server's memory stays flat and other clients are served.  The app notes in ``<dir>/<request id>`` how
many bytes ``send`` has accepted (and ``closed <n>`` when a ``send`` fails), so the test sees every
stream stall, and sees the server give up on one.

A connection whose client reads nothing for SEND_TIMEOUT is aborted (the app's ``send`` fails), so a
stuck client does not hold its connection (in post-fork its process, one of MAX_PROCESSES) for good.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_support import MIB, get, rss_of, serving_tree, stop_at_once
from modes import SERVING_MODES, mode_settings
from server_process import ServerProcess, wait_until

STUCK = 16
REQUEST_TIMEOUT = 0.5
SEND_TIMEOUT = 4.0  # long enough for the memory test to see every stream stalled
STREAM_MIB = 256


@pytest.fixture(scope="module", params=SERVING_MODES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    mode, extra = mode_settings(request.param)
    workdir = tmp_path_factory.mktemp(f"stuck-{request.param}")
    settings = {
        **extra,
        "workers": 2,
        "request_timeout": REQUEST_TIMEOUT,
        "send_timeout": SEND_TIMEOUT,
        "keepalive_timeout": REQUEST_TIMEOUT,
        "graceful_timeout": 1.0,
    }
    proc = ServerProcess(
        workdir, {"/big": "faults:big_stream", "/pid": "faults:pid"}, mode=mode, settings=settings
    )
    proc.start()
    yield proc
    stop_at_once(proc)


def stuck_client(server: ServerProcess, progress: Path) -> socket.socket:
    """A client with a tiny receive window that asks for the big stream and never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: it sets the window
    sock.settimeout(5)
    sock.connect((server.host, server.port))
    sock.sendall(f"GET /big?mb={STREAM_MIB}&dir={progress} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return sock


def progress_of(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in folder.iterdir()}


def stalled(folder: Path, count: int, timeout: float = 15.0) -> dict[str, str]:
    """The streams' progress once ``count`` have started and none has moved for 0.2 s."""
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = progress_of(folder)
        if len(now) >= count and now == last:
            return now
        last = now
    raise AssertionError(f"the streams never stalled: {last}")


def test_clients_that_never_read_cost_bounded_memory(server: ServerProcess, tmp_path: Path) -> None:
    before = rss_of(serving_tree(server))
    stuck = [stuck_client(server, tmp_path) for _ in range(STUCK)]
    try:
        accepted = stalled(tmp_path, STUCK)
        # every app is paused by flow control, far short of its 256 MiB
        assert all(int(value) < 16 * MIB for value in accepted.values()), accepted
        after = rss_of(serving_tree(server))
        reference = max(before.values())  # post-fork children are new: compare them with the biggest process
        grown = {pid: (rss - before.get(pid, reference)) // MIB for pid, rss in after.items()}
        assert max(grown.values()) < 32, f"MiB grown per process: {grown}"
        started = time.monotonic()
        assert [get(server, "/pid")[0] for _ in range(3)] == [200] * 3
        assert time.monotonic() - started < 2
    finally:
        for sock in stuck:
            sock.close()  # unread data: the kernel sends RST; the apps' sends fail
    assert wait_until(lambda: all(v.startswith("closed") for v in progress_of(tmp_path).values()), 10)


def test_a_client_that_never_reads_is_eventually_cut_off(server: ServerProcess, tmp_path: Path) -> None:
    stuck = [stuck_client(server, tmp_path) for _ in range(2)]
    try:
        stalled(tmp_path, 2)
        # no progress for SEND_TIMEOUT while writing: the connection is aborted and the app's send fails
        assert wait_until(
            lambda: all(v.startswith("closed") for v in progress_of(tmp_path).values()), SEND_TIMEOUT + 3
        )
    finally:
        for sock in stuck:
            sock.close()
