"""The app table a generation serves: every mount, loaded or failed, and their lifespans.

One bad app is one bad mount. Nothing here raises because of an app: an import error, an invalid
route or a failed lifespan startup turns that mount into a failed one (``mount.error`` says why,
logged to ``qt_server`` at ERROR) and the server answers 503 on its route. A mount whose route is
invalid cannot be matched, so it is listed (and described) but left out of the route table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from qactuar.apps.asgi2 import as_asgi3
from qactuar.apps.lifespan import Lifespan, LifespanFailure
from qactuar.apps.loader import AppImportError, add_app_dir, import_app
from qactuar.apps.router import Mount, RouteTable, validate_route
from qactuar.types import ASGIApp

logger = logging.getLogger("qt_server")


class AppTable:
    """Every mount of one generation; built by :meth:`load`, or directly from mounts in tests."""

    def __init__(self, mounts: Iterable[Mount]) -> None:
        self.mounts: tuple[Mount, ...] = tuple(mounts)
        self.router = RouteTable(mount for mount in self.mounts if _route_error(mount.route) is None)

    @classmethod
    def load(
        cls,
        apps: Mapping[str, str],
        *,
        app_dir: str,
        factory: bool,
        app: ASGIApp | None = None,
    ) -> AppTable:
        """Import every app of ``apps`` (route → import string); ``app`` is mounted at ``/``."""
        mounts: list[Mount] = []
        if app is not None:
            mounts.append(_object_mount(app))
        if apps:
            add_app_dir(app_dir)
        for route, spec in apps.items():
            if app is not None and route == "/":
                logger.warning('Ignoring APPS entry "/" = %r: an app object is mounted at "/"', spec)
                continue
            mounts.append(_import_mount(route, spec, factory=factory))
        return cls(mounts)

    @property
    def empty(self) -> bool:
        return not self.mounts

    @property
    def all_failed(self) -> bool:
        """True when there are mounts and none of them can serve: the server should exit non-zero."""
        return bool(self.mounts) and all(mount.failed for mount in self.mounts)

    def match(self, path: str) -> Mount | None:
        return self.router.match(path)

    async def startup(self, *, mode: str, startup_timeout: float, shutdown_timeout: float) -> None:
        """Run every loaded mount's lifespan startup concurrently; failures fail their mount."""
        for mount in self.mounts:
            if mount.app is not None and mount.error is None:
                mount.lifespan = Lifespan(
                    mount.app,
                    mode=mode,
                    startup_timeout=startup_timeout,
                    shutdown_timeout=shutdown_timeout,
                    state=mount.state,
                    name=f'app "{mount.spec}" at "{mount.route}"',
                )
        await asyncio.gather(*(_start(mount) for mount in self.mounts if mount.lifespan is not None))

    async def shutdown(self) -> None:
        """Run every started lifespan's shutdown concurrently (each logs its own problems)."""
        await asyncio.gather(
            *(mount.lifespan.shutdown() for mount in self.mounts if mount.lifespan is not None)
        )

    def describe(self) -> list[dict[str, Any]]:
        """Plain data about every mount, for the admin socket and logs."""
        return [
            {
                "route": mount.route,
                "spec": mount.spec,
                "state": "failed" if mount.failed else "loaded",
                "error": mount.error,
            }
            for mount in self.mounts
        ]


async def _start(mount: Mount) -> None:
    assert mount.lifespan is not None
    try:
        await mount.lifespan.startup()
    except LifespanFailure as exc:
        mount.error = f"lifespan startup failed: {exc}"
        _log_failure(mount)


def _object_mount(app: ASGIApp) -> Mount:
    spec = repr(app)
    if not callable(app):
        return _failed_mount("/", spec, f"{spec} is not an ASGI app: it is not callable.")
    return Mount("/", spec, as_asgi3(app))


def _import_mount(route: str, spec: str, *, factory: bool) -> Mount:
    error = _route_error(route)
    if error is not None:
        return _failed_mount(route, spec, f"invalid route: {error}")
    try:
        return Mount(route, spec, import_app(spec, factory=factory))
    except AppImportError as exc:
        return _failed_mount(route, spec, str(exc))


def _route_error(route: str) -> str | None:
    try:
        validate_route(route)
    except ValueError as exc:
        return str(exc)
    return None


def _failed_mount(route: str, spec: str, error: str) -> Mount:
    mount = Mount(route, spec, None, error=error)
    _log_failure(mount)
    return mount


def _log_failure(mount: Mount) -> None:
    logger.error('App "%s" at "%s" failed: %s', mount.spec, mount.route, mount.error)
