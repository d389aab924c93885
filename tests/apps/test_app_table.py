from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest

from qactuar.apps.asgi2 import ASGI2Adapter
from qactuar.apps.router import Mount
from qactuar.apps.table import AppTable
from qactuar.types import Receive, Scope, Send

GOOD_APP = """
async def app(scope, receive, send):
    pass
"""

STARTUP: dict[str, Any] = {"mode": "auto", "startup_timeout": 2.0, "shutdown_timeout": 2.0}


def test_one_bad_app_is_one_bad_mount(write_module: Any, caplog: pytest.LogCaptureFixture) -> None:
    write_module("qt_table_good", GOOD_APP)
    with caplog.at_level(logging.DEBUG, logger="qt_server"):
        table = AppTable.load(
            {"/": "qt_table_good:app", "/broken": "qt_table_missing:app"}, app_dir=".", factory=False
        )
    good, bad = table.mounts
    assert not good.failed and good.app is not None
    assert bad.failed and bad.app is None
    assert bad.error is not None and bad.error.startswith('Could not import module "qt_table_missing"')
    assert table.match("/broken/x") is bad
    assert table.match("/other") is good
    assert not table.all_failed and not table.empty
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.name == "qt_server"
    assert '"/broken"' in record.getMessage() and "qt_table_missing" in record.getMessage()
    assert table.describe() == [
        {"route": "/", "spec": "qt_table_good:app", "state": "loaded", "error": None},
        {"route": "/broken", "spec": "qt_table_missing:app", "state": "failed", "error": bad.error},
    ]


def test_all_failed_and_empty(write_module: Any) -> None:
    table = AppTable.load({"/a": "qt_table_nope:app", "/b": "bad format"}, app_dir=".", factory=False)
    assert table.all_failed and not table.empty
    empty = AppTable.load({}, app_dir=".", factory=False)
    assert empty.empty and not empty.all_failed


def test_invalid_route_is_a_failed_mount_outside_the_router(write_module: Any) -> None:
    write_module("qt_table_good", GOOD_APP)
    table = AppTable.load({"api/": "qt_table_good:app"}, app_dir=".", factory=False)
    [mount] = table.mounts
    assert mount.error == "invalid route: route 'api/' must start with '/'"
    assert table.router.mounts == ()
    assert table.match("/api") is None


def test_app_dir_is_put_on_the_path(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, write_module: Any
) -> None:
    # write_module is used for its sys.modules clean-up only.
    app_dir = tmp_path / "apps_dir"
    (app_dir / "qt_in_app_dir").mkdir(parents=True)
    (app_dir / "qt_in_app_dir" / "__init__.py").write_text(GOOD_APP)
    monkeypatch.setattr(sys, "path", list(sys.path))
    table = AppTable.load({"/": "qt_in_app_dir:app"}, app_dir=str(app_dir), factory=False)
    assert not table.all_failed


def test_factory_flag_is_passed_on(write_module: Any) -> None:
    write_module("qt_table_factory", GOOD_APP + "def create():\n    return app\n")
    table = AppTable.load({"/": "qt_table_factory:create"}, app_dir=".", factory=True)
    assert not table.all_failed


def test_explicit_app_object_takes_the_root(write_module: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def explicit(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    with caplog.at_level(logging.DEBUG, logger="qt_server"):
        table = AppTable.load({"/": "qt_table_ignored:app"}, app_dir=".", factory=False, app=explicit)
    [mount] = table.mounts
    assert mount.route == "/" and mount.app is explicit and mount.spec == repr(explicit)
    assert 'Ignoring APPS entry "/"' in caplog.text


def test_explicit_asgi2_app_is_wrapped_and_bad_object_fails() -> None:
    class Asgi2:
        def __init__(self, scope: Scope) -> None:
            self.scope = scope

    table = AppTable.load({}, app_dir=".", factory=False, app=Asgi2)  # type: ignore[arg-type]
    assert isinstance(table.mounts[0].app, ASGI2Adapter)
    broken = AppTable.load({}, app_dir=".", factory=False, app=42)  # type: ignore[arg-type]
    assert broken.all_failed and "is not an ASGI app" in str(broken.mounts[0].error)


class Rendezvous:
    """Lifespan apps whose startup only completes once every one of them has started."""

    def __init__(self, count: int) -> None:
        self.started: list[asyncio.Event] = [asyncio.Event() for _ in range(count)]
        self.shutdowns: list[int] = []

    def app(self, index: int) -> Any:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await receive()
            self.started[index].set()
            for event in self.started:
                await event.wait()  # deadlocks (and times out) if startups ran one after another
            scope["state"]["index"] = index
            await send({"type": "lifespan.startup.complete"})
            await receive()
            self.shutdowns.append(index)
            await send({"type": "lifespan.shutdown.complete"})

        return app


async def test_startups_run_concurrently_and_state_is_per_app() -> None:
    apps = Rendezvous(2)
    table = AppTable([Mount("/a", "a", apps.app(0)), Mount("/b", "b", apps.app(1))])
    await table.startup(**STARTUP)
    assert not any(mount.failed for mount in table.mounts)
    assert [mount.state for mount in table.mounts] == [{"index": 0}, {"index": 1}]
    await table.shutdown()
    assert sorted(apps.shutdowns) == [0, 1]


async def test_failed_startup_fails_only_its_mount(caplog: pytest.LogCaptureFixture) -> None:
    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    apps = Rendezvous(1)
    table = AppTable([Mount("/", "good", apps.app(0)), Mount("/db", "db", fails)])
    with caplog.at_level(logging.DEBUG, logger="qt_server"):
        await table.startup(**STARTUP)
    good, bad = table.mounts
    assert not good.failed
    assert bad.error == "lifespan startup failed: no database"
    assert 'App "db" at "/db" failed: lifespan startup failed: no database' in caplog.text
    assert table.match("/db/x") is bad  # still routed, so the server answers 503 there
    await table.shutdown()
    assert apps.shutdowns == [0]


async def test_failed_import_mounts_get_no_lifespan() -> None:
    table = AppTable([Mount("/", "bad", None, error="boom")])
    await table.startup(**STARTUP)
    await table.shutdown()
    assert table.mounts[0].lifespan is None and table.all_failed
