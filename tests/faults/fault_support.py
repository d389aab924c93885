"""What the fault-injection tests share: which modes a fault applies to, process trees, raw clients.

Modes: a fault in the HTTP path (an app misbehaving, a client that never reads) runs against every
entry of ``SERVING_MODES`` (event loop and parser variants included).  A fault of the process model
(a worker killed, a graceful stop) runs once per process model (``PROCESS_MODELS``: async, prefork,
postfork), because the variants share that code.  A fault of the admin socket or the deploy pipeline
runs once per kind of host (``CONTROL_HOSTS``): the async-mode process, which is its own master, and a
master over generations (pre-fork and post-fork share it; where the generation's part differs, as when a
new app set boots, the test runs in both).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
from modes import SERVING_MODES, mode_settings
from server_process import ServerProcess, live_descendants, read_response, wait_until

StartServer = Callable[..., ServerProcess]

PROCESS_MODELS = list(dict.fromkeys(mode_settings(mode)[0] for mode in SERVING_MODES))
CONTROL_HOSTS = ["async", "prefork"]
MIB = 1024 * 1024


def modes_of(*models: str) -> list[str]:
    """The SERVING_MODES entries whose process model is one of ``models``."""
    return [mode for mode in SERVING_MODES if mode_settings(mode)[0] in models]


def start_mode(
    start_server: StartServer,
    mode: str,
    apps: dict[str, str],
    *,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> ServerProcess:
    """Start a server in a SERVING_MODES entry (or a bare process model) with ``settings``."""
    model, extra = mode_settings(mode)
    return start_server(apps, mode=model, settings={**extra, **settings}, env=env)


# -- processes -------------------------------------------------------------------------------------------


def serving_tree(server: ServerProcess) -> list[psutil.Process]:
    """The server's own process and its live descendants."""
    return [psutil.Process(server.pid), *live_descendants(server.pid)]


def grandchildren(server: ServerProcess) -> set[int]:
    """Pre-fork workers or post-fork connection children (the master's grandchildren)."""
    return {process.pid for process in live_descendants(server.pid, depth=2)}


def rss_of(processes: Iterable[psutil.Process]) -> dict[int, int]:
    found: dict[int, int] = {}
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            found[process.pid] = process.memory_info().rss
    return found


def alive(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    """Those still running (``is_running`` also checks the pid was not reused)."""
    living = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                living.append(process)
        except psutil.NoSuchProcess:
            continue
    return living


def stop_at_once(server: ServerProcess) -> None:
    """SIGKILL the server and its process group: for a server whose own way of stopping is not under test
    (and would wait out GRACEFUL_TIMEOUT for the requests a fault left hanging)."""
    if server.proc is not None and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(10)
    server.stop()  # the process group: generations, workers, children


def kill_all(processes: Iterable[psutil.Process]) -> None:
    for process in alive(processes):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


# -- raw clients -----------------------------------------------------------------------------------------


def get(server: ServerProcess, target: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One GET on a new connection (``Connection: close``): (status, body).  Far cheaper than httpx."""
    with server.connect(timeout) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        status, _, body = read_response(sock, timeout)
    return status, body


def request(sock: socket.socket, target: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One GET on a kept-alive connection: (status, body)."""
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    status, _, body = read_response(sock, timeout)
    return status, body


def pinned_connections(srv: ServerProcess, count: int) -> dict[int, socket.socket]:
    """Keep-alive connections, each served by a different process (pre-fork: worker; post-fork: child)."""
    pinned: dict[int, socket.socket] = {}
    deadline = time.monotonic() + 10
    while len(pinned) < count and time.monotonic() < deadline:
        sock = srv.connect(10)
        status, body = request(sock, "/pid")
        assert status == 200
        if int(body) in pinned:
            sock.close()
        else:
            pinned[int(body)] = sock
    assert len(pinned) == count, f"reached {len(pinned)} of {count} serving processes"
    return pinned


def send_get(server: ServerProcess, target: str, timeout: float = 10.0) -> socket.socket:
    """Connect, send one GET (keep-alive) and return the socket without reading anything."""
    sock = server.connect(timeout)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes | None:
    """Everything the server sends until it closes the connection (FIN or RST); None if it is still
    open after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def reset(sock: socket.socket) -> None:
    """Vanish: close with SO_LINGER 0, so the peer gets a TCP RST instead of an orderly FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- marks: apps in testapps/faults.py write <dir>/<request id> when a request starts ----------------------


def wait_marks(folder: Path, count: int, timeout: float = 10.0) -> list[str]:
    """The texts (pids) of the first ``count`` marks, once that many requests are running."""

    def marks() -> list[str]:
        return [path.read_text() for path in folder.iterdir() if path.stat().st_size]

    assert wait_until(lambda: len(marks()) >= count, timeout), f"{len(marks())} of {count} requests started"
    return marks()
