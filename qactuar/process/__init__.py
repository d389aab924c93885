"""Process models behind one entry point: ``run_server(config, app)`` returns the exit code."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from qactuar.config import Config
from qactuar.types import ASGIApp

# Import strings, resolved lazily so a mode's dependencies load only when it is used.
MODES: dict[str, str] = {
    "async": "qactuar.process.async_mode:run",
}


def run_server(config: Config, app: ASGIApp | None = None) -> int:
    module_name, _, attr = MODES[config.MODE].partition(":")
    runner: Callable[[Config, ASGIApp | None], int] = getattr(importlib.import_module(module_name), attr)
    return runner(config, app)
