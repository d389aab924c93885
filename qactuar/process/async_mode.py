"""Async mode: one process, one event loop, no fork. For development and small hosts."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl

from qactuar.apps.loader import add_app_dir
from qactuar.apps.table import AppTable
from qactuar.config import Config
from qactuar.loops import new_event_loop
from qactuar.net import BindError, bind_tcp, listen_url
from qactuar.process.exits import EXIT_ERROR, EXIT_NOTHING_TO_SERVE, EXIT_OK
from qactuar.process.serving import StopRequest, serve_until, start_apps
from qactuar.server import Server
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
    if not await start_apps(config, table):
        await table.shutdown()
        return EXIT_NOTHING_TO_SERVE
    stop = StopRequest()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_stop_signal, stop, sig)

    def announce(server: Server) -> None:
        server_log.info("Qactuar serving %d app(s) in async mode (pid %d)", len(table.mounts), os.getpid())
        server_log.info("Listening on %s", listen_url(sock, "https" if server.ssl_context else "http"))

    await serve_until(config, table, [sock], stop, ssl_context=ssl_context, on_serving=announce)
    await table.shutdown()
    server_log.info("Stopped")
    return EXIT_OK


def _on_stop_signal(stop: StopRequest, sig: signal.Signals) -> None:
    if not stop.is_set():
        server_log.info("Received %s: finishing in-flight requests, then stopping", sig.name)
    stop.request(close_idle=True)
