"""Fixtures: a fake backend and an in-process admin server on 127.0.0.1, port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from admin_support import FAST, FakeBackend, ThreadedAdmin, admin_config, token_of

from qactuar.admin import AdminServer, Location
from qactuar.admin.statefiles import parse_address
from qactuar.config import Config


@dataclass
class Running:
    server: AdminServer
    backend: FakeBackend
    config: Config
    address: str
    token: str

    @property
    def location(self) -> Location:
        return Location(parse_address(self.address), self.token)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return admin_config(tmp_path / "state")


@pytest.fixture
async def admin(backend: FakeBackend, config: Config) -> AsyncIterator[Running]:
    server = AdminServer(backend, config, limits=FAST)
    [address] = await server.start()
    yield Running(server, backend, config, address, token_of(config))
    await server.close()


@pytest.fixture
def admin_thread(config: Config) -> Iterator[ThreadedAdmin]:
    """An admin server on its own thread, for blocking clients."""
    threaded = ThreadedAdmin(FakeBackend(), config).start()
    yield threaded
    threaded.stop()
