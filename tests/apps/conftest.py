"""Shared fixtures for the apps tests: throwaway modules on sys.path and an in-process ASGI call."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qactuar.types import ASGI_VERSION, ASGIApp, Message, Scope

WriteModule = Callable[[str, str], Path]


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WriteModule]:
    """Write ``name`` (dots make packages) under tmp_path, importable; forget it afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)

    def write(name: str, source: str) -> Path:
        *packages, leaf = name.split(".")
        folder = tmp_path.joinpath(*packages)
        folder.mkdir(parents=True, exist_ok=True)
        for depth in range(len(packages)):
            tmp_path.joinpath(*packages[: depth + 1], "__init__.py").touch()
        path = folder / f"{leaf}.py"
        path.write_text(textwrap.dedent(source))
        return path

    yield write
    for name in set(sys.modules) - before:
        del sys.modules[name]


@dataclass
class Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    chunks: int = 0

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


def _http_scope(
    path: str, *, root_path: str = "", method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None
) -> Scope:
    """An http scope as the server builds it: ``path`` is the full path, nothing stripped."""
    raw, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": dict(ASGI_VERSION),
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw,
        "raw_path": raw.encode(),
        "query_string": query.encode(),
        "root_path": root_path,
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }


async def _call_app(app: ASGIApp, scope: Scope, body_chunks: tuple[bytes, ...] = (b"",)) -> Response:
    """Run one http request through ``app`` in-process and collect the response."""
    requests: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": index < len(body_chunks) - 1}
        for index, chunk in enumerate(body_chunks)
    ]
    response = Response()

    async def receive() -> Message:
        return requests.pop(0) if requests else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")
            response.chunks += 1

    await app(scope, receive, send)
    return response


HttpScope = Callable[..., Scope]
CallApp = Callable[..., Awaitable[Response]]


@pytest.fixture
def http_scope() -> HttpScope:
    return _http_scope


@pytest.fixture
def call_app() -> CallApp:
    return _call_app
