"""Process models behind one entry point: ``run_server(config, app)`` returns the exit code.

``async`` runs in this process; ``prefork`` and ``postfork`` (and ``async`` with
``--reload``, which needs generations to hand over) run under the master.
"""

from __future__ import annotations

from collections.abc import Callable

from qactuar.config import Config
from qactuar.types import ASGIApp


def run_server(
    config: Config, app: ASGIApp | None = None, reload_config: Callable[[], Config] | None = None
) -> int:
    if config.MODE == "async" and not config.RELOAD:
        from qactuar.process import async_mode

        return async_mode.run(config, app)
    from qactuar.process import master

    return master.run(config, app, reload_config)
