"""``--reload``: watch the app directory and the config file; on a change, ask for a reload.

A reload is the same generation handover as SIGHUP, so an edit that breaks an import leaves
the last good generation serving and the error in the log.  watchfiles is used when it is
installed; otherwise the files' modification times are polled once a second.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from qactuar.config import Config

server_log = logging.getLogger("qt_server")

WATCHED_SUFFIXES = (".py", ".toml", ".json")
POLL_INTERVAL = 1.0


def _watched_paths(config: Config) -> list[Path]:
    paths = [Path(config.APP_DIR)]
    if config.CONFIG_FILE:
        paths.append(Path(config.CONFIG_FILE))
    return paths


def snapshot(paths: list[Path]) -> dict[str, float]:
    """Modification time of every watched file under ``paths`` (hidden directories skipped)."""
    seen: dict[str, float] = {}
    for root in paths:
        if root.is_file():
            seen[str(root)] = root.stat().st_mtime
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
            for name in files:
                if name.endswith(WATCHED_SUFFIXES):
                    path = os.path.join(folder, name)
                    try:
                        seen[path] = os.stat(path).st_mtime
                    except OSError:
                        continue
    return seen


async def watch_for_changes(config: Config, on_change: Callable[[], None]) -> None:
    paths = _watched_paths(config)
    server_log.info("Watching %s for changes", ", ".join(map(str, paths)))
    try:
        import watchfiles
    except ImportError:
        await _poll(paths, on_change)
        return
    async for changes in watchfiles.awatch(
        *paths, watch_filter=lambda _, path: path.endswith(WATCHED_SUFFIXES)
    ):
        server_log.info("Changed: %s; reloading", ", ".join(sorted({path for _, path in changes})))
        on_change()


async def _poll(paths: list[Path], on_change: Callable[[], None]) -> None:
    before = snapshot(paths)
    while True:
        await asyncio.sleep(POLL_INTERVAL)
        now = snapshot(paths)
        if now != before:
            changed = sorted(path for path in now.keys() | before.keys() if now.get(path) != before.get(path))
            server_log.info("Changed: %s; reloading", ", ".join(changed[:5]))
            before = now
            on_change()
