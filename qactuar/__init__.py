"""Qactuar: an ASGI server that hosts many apps, each at its own route, in one of three process models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qactuar._version import __version__
from qactuar.config import Config, ConfigError, load_config
from qactuar.logs import configure_logging

if TYPE_CHECKING:
    from qactuar.types import ASGIApp

__all__ = ["Config", "ConfigError", "__version__", "run"]


def run(
    app: ASGIApp | str | None = None,
    host: str | None = None,
    port: int | None = None,
    conf: Config | None = None,
    **settings: Any,
) -> int:
    """Serve ``app`` (an ASGI callable, or a "module:attr" string served at '/') and return the exit code.

    Settings load as for the command line (config file, environment), with ``conf``'s non-default fields
    just above the file and ``host``, ``port`` and ``settings`` (Config field names, e.g. ``WORKERS=4``) on
    top of everything. Raises ConfigError for a bad setting.
    """
    overrides: dict[str, Any] = {
        name: value for name, value in (("host", host), ("port", port)) if value is not None
    }
    overrides |= settings
    if isinstance(app, str):
        overrides["APPS"] = {"/": app}

    def load() -> Config:
        return load_config(conf=conf, overrides=overrides)

    config = load()
    configure_logging(config)
    from qactuar.process import run_server

    return run_server(config, app=None if isinstance(app, str) else app, reload_config=load)
