"""The example apps and the repo's qactuar.toml: they load, start and answer as documented."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from qactuar.apps.router import root_path_for
from qactuar.apps.table import AppTable

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def table(write_module: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app table of the repo's qactuar.toml, started (write_module cleans sys.modules)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    config = tomllib.loads((REPO / "qactuar.toml").read_text())
    loaded = AppTable.load(config["apps"], app_dir=str(REPO / config["app_dir"]), factory=False)
    await loaded.startup(mode="on", startup_timeout=5.0, shutdown_timeout=5.0)
    yield loaded
    await loaded.shutdown()


async def serve(table: AppTable, path: str, http_scope: Any, call_app: Any, **options: Any) -> Any:
    body_chunks = options.pop("body_chunks", (b"",))
    mount = table.match(path.partition("?")[0])
    assert mount is not None and mount.app is not None
    scope = http_scope(path, root_path=root_path_for(mount, ""), **options)
    scope["state"] = dict(mount.state)
    return await call_app(mount.app, scope, body_chunks)


async def test_config_loads_both_apps(table: AppTable) -> None:
    assert [entry["state"] for entry in table.describe()] == ["loaded", "loaded"]
    assert isinstance(table.match("/").state["started_at"], float)  # type: ignore[union-attr]


async def test_hello(table: AppTable, http_scope: Any, call_app: Any) -> None:
    response = await serve(table, "/anything", http_scope, call_app)
    assert (response.status, response.body) == (200, b"Hello, world!")
    assert response.header(b"content-type") == b"text/plain; charset=utf-8"
    post = await serve(table, "/", http_scope, call_app, method="POST")
    assert post.status == 405


async def test_echo_describes_get(table: AppTable, http_scope: Any, call_app: Any) -> None:
    response = await serve(table, "/echo/x?a=1", http_scope, call_app, headers=[(b"x-test", b"yes")])
    assert response.status == 200
    text = response.body.decode()
    for line in ("method: GET", "path: /echo/x", "root_path: /echo", "query: a=1", "  x-test: yes"):
        assert line in text.splitlines()


async def test_echo_streams_the_body_back(table: AppTable, http_scope: Any, call_app: Any) -> None:
    chunks = (b"first,", b"second,", b"last")
    response = await serve(
        table,
        "/echo",
        http_scope,
        call_app,
        method="PUT",
        headers=[(b"content-type", b"application/json")],
        body_chunks=chunks,
    )
    assert response.status == 200
    assert response.body == b"".join(chunks)
    assert response.chunks == len(chunks)
    assert response.header(b"content-type") == b"application/json"
