"""Helpers for the production-feature tests: short socket paths, raw exchanges, a systemd launcher."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from server_process import REPO, read_until_close

EXAMPLE_APPS = REPO / "apps"

# Started instead of `python -m qactuar`: moves the sockets named in QT_TEST_FDS to fds 3, 4, ...
# and sets LISTEN_PID to its own pid before exec (the pid survives exec), as systemd does.
SYSTEMD_LAUNCHER = """
import fcntl, os, sys
fds = [int(fd) for fd in os.environ.pop("QT_TEST_FDS").split(",")]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for index, fd in enumerate(high):
    os.dup2(fd, 3 + index)
    os.close(fd)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "qactuar", *sys.argv[1:]])
"""


@contextmanager
def short_dir() -> Iterator[Path]:
    """A directory with a short path: Unix socket paths must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="qt", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def launcher_args(workdir: Path, qactuar_args: list[str]) -> list[str]:
    script = workdir / "systemd_launcher.py"
    script.write_text(SYSTEMD_LAUNCHER)
    return [sys.executable, str(script), *qactuar_args]


def exchange(host: str, port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes (half-closing after them) and read until the server closes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_until_close(sock, timeout)


def get_json(host: str, port: int, path: str, prefix: bytes = b"", headers: bytes = b"") -> Any:
    """GET path over a fresh connection (after ``prefix``, e.g. a PROXY header); the JSON body."""
    request = (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" + headers + b"\r\n"
    )
    reply = exchange(host, port, prefix + request)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply[:300]
    return json.loads(body)
