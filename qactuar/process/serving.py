"""What every serving process does once its app table is imported: lifespan, serve, drain."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

from qactuar.apps.table import AppTable
from qactuar.config import Config
from qactuar.server import ResponseHook, Server

server_log = logging.getLogger("qt_server")


class StopRequest:
    """Set once to stop serving.

    ``close_idle`` says how idle keep-alive connections end: at once (a shutdown), or
    lazily (a handover or a recycle: each gets ``Connection: close`` on its next response
    or ends at its idle timeout, so a client never races a close it could not see coming).
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.close_idle = True

    def request(self, *, close_idle: bool) -> None:
        if not self.event.is_set():
            self.close_idle = close_idle
            self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


async def start_apps(config: Config, table: AppTable) -> bool:
    """Run lifespan startup for every app; False when no app is left to serve."""
    await table.startup(
        mode=config.LIFESPAN,
        startup_timeout=config.LIFESPAN_STARTUP_TIMEOUT,
        shutdown_timeout=config.LIFESPAN_SHUTDOWN_TIMEOUT,
    )
    if table.all_failed:
        server_log.error("Every mounted app failed to load or start; there is nothing to serve")
        return False
    return True


async def serve_until(
    config: Config,
    table: AppTable,
    sockets: list[socket.socket],
    stop: StopRequest,
    *,
    ssl_context: ssl.SSLContext | None = None,
    on_response: ResponseHook | None = None,
    on_serving: Callable[[Server], None] | None = None,
) -> Server:
    """Serve ``sockets`` until ``stop`` is requested, then drain within GRACEFUL_TIMEOUT."""
    server = Server(config, table, ssl_context=ssl_context, on_response=on_response)
    await server.start(sockets)
    if on_serving is not None:
        on_serving(server)
    await stop.event.wait()
    await server.drain(config.GRACEFUL_TIMEOUT, close_idle=stop.close_idle)
    return server
