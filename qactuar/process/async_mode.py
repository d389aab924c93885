"""Async mode: one process, one event loop, no fork. For development and small hosts."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import time
from typing import Any

from qactuar.admin.server import AdminServer
from qactuar.apps.loader import add_app_dir
from qactuar.apps.table import AppTable
from qactuar.config import Config
from qactuar.loops import new_event_loop
from qactuar.net import BindError, bind_tcp, listen_url
from qactuar.process.admin_backend import HostBackend
from qactuar.process.exits import EXIT_ERROR, EXIT_NOTHING_TO_SERVE, EXIT_OK
from qactuar.process.logforward import RingHandler
from qactuar.process.serving import StopRequest, serve_until, start_apps
from qactuar.server import Server
from qactuar.stats.aggregate import StatsAggregator
from qactuar.stats.logring import LogRing
from qactuar.stats.models import ProcessInfo
from qactuar.stats.recorder import StatsRecorder
from qactuar.tls import TLSConfigError, make_ssl_context
from qactuar.types import ASGIApp

server_log = logging.getLogger("qt_server")


def run(config: Config, app: ASGIApp | None = None) -> int:
    try:
        ssl_context = make_ssl_context(config)
    except TLSConfigError as exc:
        server_log.error("%s", exc)
        return EXIT_ERROR
    try:
        sock = bind_tcp(config.HOST, config.PORT, config.BACKLOG)
    except BindError as exc:
        server_log.error("%s", exc)
        return EXIT_ERROR
    add_app_dir(config.APP_DIR)
    table = AppTable.load(config.APPS, app_dir=config.APP_DIR, factory=config.FACTORY, app=app)
    if table.empty:
        server_log.error("No app to serve: give one (qactuar serve module:app) or mount some under [apps]")
        sock.close()
        return EXIT_NOTHING_TO_SERVE
    loop = new_event_loop(config.USE_UVLOOP)
    try:
        return loop.run_until_complete(_main(config, table, sock, ssl_context))
    finally:
        sock.close()
        loop.close()


async def _main(
    config: Config, table: AppTable, sock: socket.socket, ssl_context: ssl.SSLContext | None
) -> int:
    host = AsyncHost(config, table, [sock])
    admin = AdminServer(HostBackend(host), config)
    await admin.start()
    ring_handler = host.capture_logs()
    ticker = asyncio.ensure_future(host.tick_forever())
    try:
        return await _serve(config, table, sock, ssl_context, host)
    finally:
        ticker.cancel()
        ring_handler.detach()
        await admin.close()


async def _serve(
    config: Config, table: AppTable, sock: socket.socket, ssl_context: ssl.SSLContext | None, host: AsyncHost
) -> int:
    if not await start_apps(config, table):
        await table.shutdown()
        return EXIT_NOTHING_TO_SERVE
    stop = StopRequest()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_stop_signal, stop, sig)

    def announce(server: Server) -> None:
        host.server = server
        server_log.info("Qactuar serving %d app(s) in async mode (pid %d)", len(table.mounts), os.getpid())
        server_log.info("Listening on %s", listen_url(sock, "https" if server.ssl_context else "http"))

    await serve_until(
        config,
        table,
        [sock],
        stop,
        ssl_context=ssl_context,
        on_response=host.recorder.record,
        on_serving=announce,
    )
    await table.shutdown()
    server_log.info("Stopped")
    return EXIT_OK


class AsyncHost:
    """The admin backend's view of async mode: one process that is its own master and worker."""

    def __init__(self, config: Config, table: AppTable, sockets: list[socket.socket]) -> None:
        self.config = config
        self.table = table
        self.sockets = sockets
        self.started_at = time.time()
        self.stats = StatsAggregator()
        self.logs = LogRing()
        self.overrides: dict[str, Any] = {}
        self.recorder = StatsRecorder(role="worker", generation=0)
        self.server: Server | None = None

    def capture_logs(self) -> RingHandler:
        return RingHandler(self.logs)

    async def tick_forever(self) -> None:
        """Feed this process's own counters to the aggregator, as workers do over the channel."""
        last_tick = 0.0
        while True:
            server = self.server
            if server is not None:
                self.recorder.connections(len(server.connections))
                self.recorder.in_flight(server.active_requests)
            if self.recorder.changed_since_last_snapshot:
                self.stats.update(self.recorder.snapshot())
            now = time.time()
            if now - last_tick >= 1.0:
                last_tick = now
                self.stats.tick(now)
            await asyncio.sleep(0.25)

    def app_rows(self) -> list[dict[str, Any]]:
        return self.table.describe()

    def supervising_rows(self) -> list[ProcessInfo]:
        return []

    def serving_pids(self) -> list[int]:
        return [os.getpid()]

    def generation_status(self) -> dict[str, Any]:
        return {"generation": None, "generation_pid": None, "generations": []}

    async def reload(self) -> bool:
        server_log.warning("Reload needs generations: run async mode with --reload, or prefork/postfork")
        return False

    def scale(self, workers: int) -> None:
        server_log.warning("Scaling applies to prefork mode only")


def _on_stop_signal(stop: StopRequest, sig: signal.Signals) -> None:
    if not stop.is_set():
        server_log.info("Received %s: finishing in-flight requests, then stopping", sig.name)
    stop.request(close_idle=True)
