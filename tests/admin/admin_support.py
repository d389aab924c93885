"""A fake AdminBackend that records every call, raw-socket helpers, and an admin server on its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qactuar.admin import AdminLimits, AdminServer, BackendError, LogFilter, LogRecord
from qactuar.admin.protocol import Codec, Message, Signal
from qactuar.config import Config

FAST = AdminLimits(auth_timeout=0.5, idle_timeout=2.0, stats_interval=0.05, lockout=0.6, failure_window=5.0)


def record(seq: int, level: str = "INFO", message: str = "hello", **extra: Any) -> LogRecord:
    return {
        "seq": seq,
        "time": 1_700_000_000.25 + seq,
        "level": level,
        "logger": "qt_server",
        "message": message,
        "pid": 100,
        "request_id": "-",
        "route": None,
        "exc_text": None,
        **extra,
    }


class FakeBackend:
    """Answers like a small prefork master; ``calls`` lists every method called, with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.records = [record(1), record(2, "WARNING", "disk low"), record(3, "ERROR", "boom", route="/api")]
        self.listeners: list[Callable[[LogRecord], None]] = []
        self.secret_config: dict[str, Any] = {}
        self.reload_gate: asyncio.Event | None = None  # set: reload waits for it
        self.huge_logs = False

    def status(self) -> dict[str, Any]:
        self.calls.append(("status",))
        return {
            "version": "0.3.0",
            "mode": "prefork",
            "uptime": 3725.0,
            "generation": 2,
            "listen": ["http://127.0.0.1:8000"],
            "totals": {"requests": 1234, "in_flight": 1, "error_rate": 0.015},
        }

    def processes(self) -> list[dict[str, Any]]:
        self.calls.append(("processes",))
        return [
            {"pid": 100, "role": "master", "generation": 0, "state": "running", "requests": 0, "in_flight": 0,
             "cpu_percent": 0.5, "rss_bytes": 31457280, "started_at": 1_700_000_000.0},
            {"pid": 10234, "role": "worker", "generation": 2, "state": "serving", "requests": 1234,
             "in_flight": 1, "cpu_percent": 12.25, "rss_bytes": 52428800, "started_at": 1_700_003_000.0},
        ]  # fmt: skip

    def apps(self) -> list[dict[str, Any]]:
        self.calls.append(("apps",))
        return [
            {"route": "/", "spec": "site.main:app", "source": "config", "state": "loaded", "error": None,
             "requests": 1200, "req_per_s": 12.5, "error_rate": 0.0, "p50_ms": 1.5, "p99_ms": 20.0},
            {"route": "/api", "spec": "api:app", "source": "git", "state": "failed",
             "error": "ImportError: no module named 'api'\nTraceback ...\x1b[31mred", "requests": 0,
             "req_per_s": 0.0, "error_rate": 0.0, "p50_ms": None, "p99_ms": None},
        ]  # fmt: skip

    def stats(self, seconds: int, route: str | None) -> dict[str, Any]:
        self.calls.append(("stats", seconds, route))
        return {"seconds": seconds, "route": route, "totals": []}

    def logs(self, n: int, filters: LogFilter) -> list[LogRecord]:
        self.calls.append(("logs", n, filters))
        if self.huge_logs:
            return [record(i, message="x" * 1000) for i in range(2000)]
        return [r for r in self.records if filters.matches(r)][-n:]

    def config(self) -> dict[str, Any]:
        self.calls.append(("config",))
        return {"PORT": 8000, "WORKERS": 2, "SSL_KEY_PASSWORD": "", **self.secret_config}

    async def reload(self) -> dict[str, Any]:
        self.calls.append(("reload",))
        if self.reload_gate is not None:
            await self.reload_gate.wait()
        return {"generation": 3}

    async def kill(self, pid: int) -> dict[str, Any]:
        self.calls.append(("kill", pid))
        return {"pid": pid, "signal": "SIGTERM"}

    async def scale(self, n: int) -> dict[str, Any]:
        self.calls.append(("scale", n))
        if n == 13:
            raise BackendError("13 workers is unlucky")
        if n == 14:
            raise RuntimeError("a bug in the master")
        return {"workers": n}

    async def set_setting(self, key: str, value: object) -> dict[str, Any]:
        self.calls.append(("set", key, value))
        return {key: value}

    def subscribe_logs(self, callback: Callable[[LogRecord], None]) -> Callable[[], None]:
        self.calls.append(("subscribe_logs",))
        self.listeners.append(callback)
        return lambda: self.listeners.remove(callback)

    def emit(self, rec: LogRecord) -> None:
        self.records.append(rec)
        for listener in list(self.listeners):
            listener(rec)


def admin_config(state: Path, **settings: Any) -> Config:
    return Config(**{"ADMIN_HOST": "127.0.0.1", "ADMIN_PORT": 0, "STATE_DIR": str(state), **settings})


def token_of(config: Config) -> str:
    return config.admin_token_file().read_text().strip()


# --- raw sockets -------------------------------------------------------------------------------------------


def frame(obj: Any) -> bytes:
    payload = json.dumps(obj).encode()
    return struct.pack(">I", len(payload)) + payload


def hello(token: str) -> bytes:
    return frame({"type": "hello", "version": 1, "token": token, "client": "test"})


class Raw:
    """A bare TCP or Unix connection to the admin server, speaking bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.codec = Codec("client")

    @classmethod
    async def open(cls, address: str) -> Raw:
        if address.startswith("unix:"):
            reader, writer = await asyncio.open_unix_connection(address.removeprefix("unix:"))
        else:
            host, _, port = address.rpartition(":")
            reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def messages(self, timeout: float = 5.0) -> list[Message]:
        """Every message until the server closes the connection (fails the test if it does not)."""
        messages: list[Message] = []
        async with asyncio.timeout(timeout):
            while True:
                data = await self.reader.read(65536)
                self.codec.receive_data(data)
                while not isinstance(message := self.codec.next_message(), Signal):
                    messages.append(message)
                if not data:
                    return messages

    async def next(self, timeout: float = 5.0) -> Message:
        async with asyncio.timeout(timeout):
            while isinstance(message := self.codec.next_message(), Signal):
                data = await self.reader.read(65536)
                assert data, "the server closed the connection"
                self.codec.receive_data(data)
            return message

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


# --- an admin server on a thread, for code that blocks (the CLI) --------------------------------------------


class ThreadedAdmin:
    """An AdminServer in its own event loop on a daemon thread."""

    def __init__(self, backend: FakeBackend, config: Config) -> None:
        self.backend = backend
        self.server = AdminServer(backend, config, limits=FAST)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.addresses: list[str] = []

    def start(self) -> ThreadedAdmin:
        self.thread.start()
        self.addresses = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def call(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` on the server's loop (log listeners must be called there)."""
        self.loop.call_soon_threadsafe(function, *args)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
