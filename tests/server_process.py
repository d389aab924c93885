"""Start a real Qactuar server process for end-to-end tests, and always stop it.

The server listens on port 0 (a free port chosen by the kernel); its address is read
from the "Listening on" log line.  Output goes to files (no pipe can fill and block).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
TEST_APPS = Path(__file__).resolve().parent / "testapps"
LISTEN_RE = re.compile(r"Listening on (https?)://(\[[^\]]+\]|[^\s:]+):(\d+)")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_config(path: Path, settings: dict[str, Any], apps: dict[str, str]) -> Path:
    lines = [f"{key.lower()} = {toml_value(value)}" for key, value in settings.items()]
    lines.append("[apps]")
    lines.extend(f"{json.dumps(route)} = {json.dumps(spec)}" for route, spec in apps.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def live_descendants(pid: int, depth: int | None = None) -> list[psutil.Process]:
    """Descendants of ``pid`` that are not zombies: ``depth`` 1 = children, 2 = grandchildren,
    None = all.  A process that exits while it is being listed is skipped, not an error."""
    level = [psutil.Process(pid)]
    found: list[psutil.Process] = []
    while level and depth != 0:
        below: list[psutil.Process] = []
        for process in level:
            try:
                below.extend(process.children())
            except psutil.NoSuchProcess:
                continue
        level = []
        for child in below:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    level.append(child)
            except psutil.NoSuchProcess:
                continue
        depth = None if depth is None else depth - 1
        if depth is None or depth == 0:
            found.extend(level)
    return found


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class ServerProcess:
    def __init__(
        self,
        workdir: Path,
        apps: dict[str, str],
        *,
        mode: str = "async",
        settings: dict[str, Any] | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        json_config: bool = False,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.pass_fds = pass_fds
        base: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "mode": mode,
            "app_dir": str(TEST_APPS),
            "use_uvloop": False,
            "admin_port": 0,
            "graceful_timeout": 5.0,
        }
        if mode == "prefork":
            base["workers"] = 2
        base.update(settings or {})
        if json_config:  # JSON takes nested tables (LOGS) that the TOML writer here does not
            self.config_path = workdir / "qactuar.json"
            self.config_path.write_text(json.dumps({**{k.upper(): v for k, v in base.items()}, "APPS": apps}))
        else:
            self.config_path = write_config(workdir / "qactuar.toml", base, apps)
        self.stdout_path = workdir / "server.out"
        self.stderr_path = workdir / "server.err"
        self.args = [
            sys.executable,
            "-m",
            "qactuar",
            "serve",
            "--config",
            str(self.config_path),
            *(args or []),
        ]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.scheme = "http"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 15.0, expect_listening: bool = True) -> ServerProcess:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.workdir,
                stdout=out,
                stderr=err,
                env=self.env,
                start_new_session=True,
                pass_fds=self.pass_fds,
            )
        if expect_listening:
            found = wait_until(
                lambda: self._listen_match() is not None or self.proc.poll() is not None, timeout
            )
            match = self._listen_match()
            if not found or match is None:
                self.stop()
                raise AssertionError(f"server did not start:\n{self.output()}")
            self.scheme, host, port = match.groups()
            self.host = host.strip("[]")
            self.port = int(port)
        return self

    def _listen_match(self) -> re.Match[str] | None:
        return LISTEN_RE.search(self.output())

    def output(self) -> str:
        text = ""
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                text += path.read_text(errors="replace")
        return text

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL of the pid and its whole process group."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return code

    # -- clients -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes, read until the server closes (or the timeout) and return all of it."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            return read_until_close(sock, timeout)


def read_until_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


_LEFTOVER: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one response with a content-length or chunked body.

    Bytes past the end of that response (pipelined responses) are kept for the next call.
    """
    sock.settimeout(timeout)
    buf = _LEFTOVER.pop(sock, b"")

    def more() -> bytes:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed mid response: {buf!r}")
        return chunk

    while b"\r\n\r\n" not in buf:
        buf += more()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        size = int(headers["content-length"])
        while len(rest) < size:
            rest += more()
        _LEFTOVER[sock] = rest[size:]
        return status, headers, rest[:size]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += more()
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += more()
            body += rest[:size]
            rest = rest[size + 2 :]
            if size == 0:
                _LEFTOVER[sock] = rest
                return status, headers, body
    _LEFTOVER[sock] = rest
    return status, headers, b""
