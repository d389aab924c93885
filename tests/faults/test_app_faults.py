"""Apps that fail at run time: raise, hang, block the event loop, leak memory, end their own process.

What the server does, by process model:

* raises: 500 with ``Connection: close``, the traceback in the log, the server serves on (every mode).
* hangs (awaits forever, even swallowing cancellation): nothing else waits for it; there is no
  per-response deadline, so its client waits until it gives up (the app task goes on: in post-fork its
  child exits GRACEFUL_TIMEOUT after the client left); a graceful stop (SIGTERM) still ends within
  GRACEFUL_TIMEOUT + 2 s: the connection is closed and the request cancelled.
* blocks the event loop: pre-fork and post-fork stop within GRACEFUL_TIMEOUT + 2 s (the generation
  SIGKILLs what did not drain); async mode's watchdog thread ends a blocked process at the same bound.
* leaks memory (5 MiB kept per request): pre-fork workers are bounded by MAX_REQUESTS recycling (to
  about MAX_REQUESTS x the leak, plus what a worker serves while its replacement boots); a post-fork
  child's leak ends with its connection; in async mode nothing bounds it (there is no memory limit
  setting; MAX_REQUESTS needs workers to recycle).
* calls os._exit mid-response: its client sees the connection close after the partial body; pre-fork:
  the worker is replaced; post-fork: only that connection dies; async mode: the server process exits
  with the app's exit status.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_support import (
    PROCESS_MODELS,
    StartServer,
    get,
    grandchildren,
    pinned_connections,
    read_until_closed,
    request,
    send_get,
    start_mode,
    stop_at_once,
    wait_marks,
)
from modes import SERVING_MODES, mode_settings
from server_process import ServerProcess, wait_until

EXIT_CODE = 13  # testapps/faults.py: exit_mid_request
LEAK_CHUNK = 5 * 1024 * 1024  # testapps/faults.py: leak
GRACEFUL = 0.5
APPS = {
    "/pid": "faults:pid",
    "/slow": "faults:slow",
    "/raise": "faults:raises",
    "/hang": "faults:hang",
    "/stubborn": "faults:hang_stubborn",
    "/block": "faults:block",
    "/exit": "faults:exit_mid_request",
    "/leak": "faults:leak",
}


def model(mode: str) -> str:
    return mode_settings(mode)[0]


@pytest.fixture(scope="module", params=SERVING_MODES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server per mode for the faults it survives unchanged."""
    mode, extra = mode_settings(request.param)
    workdir = tmp_path_factory.mktemp(f"app-faults-{request.param}")
    settings = {**extra, "workers": 2, "graceful_timeout": GRACEFUL}
    proc = ServerProcess(workdir, APPS, mode=mode, settings=settings).start()
    yield proc
    stop_at_once(proc)


def test_an_app_that_raises_is_a_500_and_the_server_serves_on(server: ServerProcess) -> None:
    for _ in range(3):
        with send_get(server, "/raise") as sock:
            answer = read_until_closed(sock, timeout=5)
        assert answer is not None and answer.startswith(b"HTTP/1.1 500 ")
        assert b"connection: close" in answer.lower()
    assert get(server, "/pid")[0] == 200
    assert wait_until(lambda: "fault injected: the app raised" in server.output(), 5)


def test_a_hung_app_holds_up_nothing_else(server: ServerProcess, marks: Path) -> None:
    abandoned = send_get(server, f"/hang?mark={marks}")
    waiting = send_get(server, f"/hang?mark={marks}")
    try:
        wait_marks(marks, 2)
        abandoned.close()  # this client gives up; the other one keeps waiting
        with server.connect() as sock:  # kept-alive and new connections are served meanwhile
            for _ in range(3):
                assert request(sock, "/slow?s=0.05")[0] == 200
        assert [get(server, "/pid")[0] for _ in range(3)] == [200] * 3
        assert read_until_closed(waiting, timeout=0.1) is None  # nothing cut it: no per-response deadline
    finally:
        abandoned.close()
        waiting.close()


@pytest.mark.parametrize(
    ("mode", "faults"),
    [
        *((mode, ("stubborn", "block")) for mode in PROCESS_MODELS if mode != "async"),
        ("async", ("stubborn",)),
        ("async", ("block",)),
    ],
    ids=lambda value: "+".join(value) if isinstance(value, tuple) else value,
)
def test_a_graceful_stop_is_bounded_whatever_the_apps_do(
    start_server: StartServer, marks: Path, mode: str, faults: tuple[str, ...]
) -> None:
    """In flight at SIGTERM: a request that swallows its cancellation, one that blocks the event loop.

    Bounds: async mode GRACEFUL_TIMEOUT + 1 s for closes to settle + 1 s for cancelled tasks; pre-fork and
    post-fork the same, or GRACEFUL_TIMEOUT + 2 s (KILL_GRACE) when the generation SIGKILLs a blocked process.
    """
    srv = start_mode(start_server, mode, APPS, workers=len(faults), graceful_timeout=GRACEFUL)
    clients = []
    try:
        for fault in faults:  # one at a time, the loop-blocking one last: a blocked worker accepts nothing
            clients.append(send_get(srv, f"/{fault}?s=30&mark={marks}"))
            wait_marks(marks, len(clients))
        started = time.monotonic()
        srv.signal(signal.SIGTERM)
        assert wait_until(lambda: srv.proc is not None and srv.proc.poll() is not None, GRACEFUL + 3.5)
        assert srv.wait(0) == 0 and time.monotonic() - started < GRACEFUL + 3.5
        assert all(read_until_closed(sock, timeout=1) is not None for sock in clients)
    finally:
        for sock in clients:
            sock.close()
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.kill()  # a failed bound: do not wait out the 30 s block in teardown


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_an_app_that_calls_os_exit_mid_response(start_server: StartServer, marks: Path, mode: str) -> None:
    srv = start_mode(start_server, mode, APPS, workers=2)
    one_process = model(mode) == "async"
    connections = pinned_connections(srv, 1 if one_process else 2)
    doomed_pid, *bystanders = connections
    before = grandchildren(srv)
    bystander_result: list[tuple[int, bytes] | BaseException] = []

    def bystander() -> None:
        try:
            bystander_result.append(request(connections[bystanders[0]], f"/slow?s=1&mark={marks}"))
        except BaseException as exc:
            bystander_result.append(exc)

    thread = threading.Thread(target=bystander)
    try:
        if bystanders:
            thread.start()
            wait_marks(marks, 1)
        doomed = connections[doomed_pid]
        doomed.sendall(b"GET /exit HTTP/1.1\r\nHost: test\r\n\r\n")
        answer = read_until_closed(doomed, timeout=5)
        assert answer is not None, "the client of the process that exited was left hanging"
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"partial\r\n")  # no terminator
    finally:
        if bystanders:
            thread.join(10)
        for sock in connections.values():
            sock.close()

    if one_process:  # the app's os._exit is the server's exit, with the app's status
        assert srv.wait(5) == EXIT_CODE
        return
    assert bystander_result == [(200, str(bystanders[0]).encode())]
    assert get(srv, "/pid")[0] == 200
    if model(mode) == "prefork":
        assert wait_until(
            lambda: len(grandchildren(srv) - before) == 1 and doomed_pid not in grandchildren(srv), 10
        )
        assert wait_until(
            lambda: f"Worker {doomed_pid} exited unexpectedly (exit code {EXIT_CODE})" in srv.output(), 5
        )
    else:
        assert wait_until(
            lambda: f"Connection child {doomed_pid} ended with exit code {EXIT_CODE}" in srv.output(), 5
        )


def leak_rows(srv: ServerProcess, count: int, sock: socket.socket | None = None) -> list[tuple[int, int]]:
    """``count`` requests to the leaking app (on ``sock``, else each on a new connection): (pid, rss)."""
    rows = []
    for _ in range(count):
        status, body = request(sock, "/leak") if sock is not None else get(srv, "/leak")
        assert status == 200
        pid, rss = body.split()
        rows.append((int(pid), int(rss)))
    return rows


def test_a_leaking_app_is_bounded_by_max_requests_in_prefork(start_server: StartServer) -> None:
    """Each worker retires after MAX_REQUESTS: the leak is bounded by MAX_REQUESTS x 5 MiB per worker.

    A worker keeps accepting until its replacement is ready, so under back-to-back requests it serves
    more than MAX_REQUESTS (measured: up to 12 with MAX_REQUESTS 3); here each recycle is waited for,
    which makes the bound exact.  Without MAX_REQUESTS nothing bounds a worker's memory.
    """
    max_requests = 3
    srv = start_mode(start_server, "prefork", APPS, workers=1, max_requests=max_requests)
    rows: list[tuple[int, int]] = []
    for _ in range(4):
        batch = leak_rows(srv, max_requests)
        (worker,) = {pid for pid, _ in batch}
        assert wait_until(lambda w=worker: w not in grandchildren(srv), 10), "the worker was not recycled"
        rows.extend(batch)
    assert len({pid for pid, _ in rows}) == 4
    baseline = min(rss for _, rss in rows)
    assert max(rss for _, rss in rows) < baseline + (max_requests + 1) * LEAK_CHUNK  # not 12 x 5 MiB


def test_a_leaking_app_is_bounded_by_the_connection_in_postfork(start_server: StartServer) -> None:
    """Each connection's child exits with it, and its leak with it; one long connection grows unbounded."""
    srv = start_mode(start_server, "postfork", APPS)
    fresh = leak_rows(srv, 6)
    assert len({pid for pid, _ in fresh}) == 6
    assert max(rss for _, rss in fresh) - min(rss for _, rss in fresh) < LEAK_CHUNK  # each child leaked once
    with srv.connect() as sock:
        kept = leak_rows(srv, 6, sock)
    assert kept[-1][1] - kept[0][1] >= 4 * LEAK_CHUNK


def test_a_leaking_app_is_not_bounded_in_async_mode(start_server: StartServer) -> None:
    """Documents the gap: one process, no recycling, no memory limit setting; it grows and serves on."""
    srv = start_mode(start_server, "async", APPS, max_requests=3)  # set, and without effect: no workers
    rows = leak_rows(srv, 10)
    assert {pid for pid, _ in rows} == {srv.pid}
    assert rows[-1][1] - rows[0][1] >= 8 * LEAK_CHUNK
    assert get(srv, "/pid") == (200, str(srv.pid).encode())
