"""Shared fixtures: real server processes on 127.0.0.1, always stopped in teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_process import ServerProcess

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start a server: start_server(apps, mode=..., settings=..., args=...)."""
    started: list[ServerProcess] = []

    def start(apps: dict[str, str], **kwargs: Any) -> ServerProcess:
        expect = kwargs.pop("expect_listening", True)
        workdir = tmp_path / f"server{len(started)}"
        workdir.mkdir()
        server = ServerProcess(workdir, apps, **kwargs)
        started.append(server)
        return server.start(expect_listening=expect)

    yield start
    for server in started:
        server.stop()
