"""Building the console: one function used by the command line and by every test.

``make_app`` takes where the server is (the command-line options) or a ready backend (a fake, in tests)
and returns the app, so a snapshot test draws exactly the app a user runs.  Finding the server reuses the
``qactuar`` CLI's rules: the configuration a server started here would read (``--config`` /
``QACTUAR_CONFIG`` / ``./qactuar.toml`` / ``QACTUAR_*``), with ``--admin``, ``--socket`` and
``--token-file`` on top.  The configuration is read once; ``locate`` runs again on every connection
attempt, so a server that restarted on a new port (``ADMIN_PORT = 0``) or with a new token is found.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qactuar.admin.client import Location, locate
from qactuar.config import load_config
from qactuar_tui.app import QactuarApp
from qactuar_tui.backend import AdminBackend, Backend
from qactuar_tui.connection import RECONNECT_DELAYS


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Where the server is, as the command line says it (all optional)."""

    admin: tuple[str, int] | None = None
    socket: str | None = None
    token_file: str | None = None
    config: str | None = None


def locator(options: ConnectOptions) -> tuple[Callable[[], Location], str]:
    """How to find the server on each attempt, and what to call it until found.

    ``ConfigError`` (a bad config file) is raised now, not at each attempt: it is the user's to fix.
    """
    settings: dict[str, Any] = {}
    if options.admin is not None:
        settings.update(ADMIN_HOST=options.admin[0], ADMIN_PORT=options.admin[1], ADMIN_SOCKET="")
    if options.socket:
        settings["ADMIN_SOCKET"] = options.socket
    if options.token_file:
        settings["ADMIN_TOKEN_FILE"] = options.token_file
    config = load_config(config_file=options.config, cli=settings)
    if config.ADMIN_SOCKET:
        name = config.ADMIN_SOCKET
    elif config.ADMIN_PORT:
        name = str(Location((config.ADMIN_HOST, config.ADMIN_PORT), token=""))
    else:
        name = f"the server of {config.CONFIG_FILE or 'this directory'}"
    return (lambda: locate(config)), name


def make_app(
    options: ConnectOptions | None = None,
    *,
    backend: Backend | None = None,
    clock: Callable[[], float] = time.time,
    reconnect_delays: tuple[float, ...] = RECONNECT_DELAYS,
) -> QactuarApp:
    """The console for the server ``options`` point at, or for ``backend`` when given."""
    if backend is None:
        find, name = locator(options or ConnectOptions())
        backend = AdminBackend(find, fallback_target=name)
    return QactuarApp(backend, clock=clock, reconnect_delays=reconnect_delays)
