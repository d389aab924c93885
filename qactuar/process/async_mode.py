"""Async mode: one process, one event loop, no fork. For development and small hosts.

Git-deployed apps are served here too, loaded in-process: a deploy builds a new app table from the
mounts that stay plus the new release (imported, its lifespan started), swaps it into the server,
and only then shuts down what it replaced.  Requests already running keep the objects they hold.
The modules of a replaced release are dropped from ``sys.modules`` and its directory from
``sys.path`` first, so an update imports the new code rather than reusing the old (if the new
release fails, the old modules and path come back).  Unlike with generations, an app whose
import crashes or hangs the process takes the server with it; the deploy pipeline's throwaway
import check runs first for that reason.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from qactuar.admin.backend import BackendError
from qactuar.admin.server import AdminServer
from qactuar.apps.loader import add_app_dir
from qactuar.apps.router import Mount
from qactuar.apps.table import AppTable
from qactuar.config import Config
from qactuar.deploy.deployer import Deployer
from qactuar.deploy.modules import mount_deployed
from qactuar.deploy.records import Deployed, restore_deployments, with_sources
from qactuar.listeners import open_listeners
from qactuar.loops import new_event_loop
from qactuar.net import BindError, listen_url
from qactuar.process.admin_backend import HostBackend
from qactuar.process.exits import EXIT_ERROR, EXIT_NOTHING_TO_SERVE, EXIT_OK
from qactuar.process.logforward import RingHandler
from qactuar.process.serving import StopRequest, serve_until, start_apps
from qactuar.process.stop_signals import StopSignals
from qactuar.sdnotify import SystemdNotifier
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
        listeners = open_listeners(config)
    except BindError as exc:
        server_log.error("%s", exc)
        return EXIT_ERROR
    add_app_dir(config.APP_DIR)
    deployed = restore_deployments(config)
    table = _load_table(config, app, deployed)
    if table.empty:
        server_log.error("No app to serve: give one (qactuar serve module:app) or mount some under [apps]")
        listeners.close()
        return EXIT_NOTHING_TO_SERVE
    loop = new_event_loop(config.USE_UVLOOP)
    try:
        return loop.run_until_complete(_main(config, table, deployed, listeners.sockets, ssl_context))
    finally:
        listeners.close()
        loop.close()


def _load_table(config: Config, app: ASGIApp | None, deployed: tuple[Deployed, ...]) -> AppTable:
    """The configured apps and the deployed ones that can be served as themselves (the others fail)."""
    taken = {*config.APPS, *(["/"] if app is not None else [])}
    mounted, refused = mount_deployed(config.APP_DIR, deployed, taken)
    table = AppTable.load({**config.APPS, **mounted}, app_dir=config.APP_DIR, factory=config.FACTORY, app=app)
    return AppTable([*table.mounts, *_refused_mounts(deployed, refused)])


def _refused_mounts(deployed: tuple[Deployed, ...], refused: dict[str, str]) -> list[Mount]:
    return [
        Mount(app.route, app.entry, None, error=refused[app.route])
        for app in deployed
        if app.route in refused
    ]


async def _main(
    config: Config,
    table: AppTable,
    deployed: tuple[Deployed, ...],
    sockets: list[socket.socket],
    ssl_context: ssl.SSLContext | None,
) -> int:
    host = AsyncHost(config, table, sockets, deployed)
    admin = AdminServer(HostBackend(host), config)
    await admin.start()
    ring_handler = host.capture_logs()
    ticker = asyncio.ensure_future(host.tick_forever())
    try:
        return await _serve(config, table, sockets, ssl_context, host)
    finally:
        ticker.cancel()
        ring_handler.detach()
        await admin.close()
        await host.deployer.close()


async def _serve(
    config: Config,
    table: AppTable,
    sockets: list[socket.socket],
    ssl_context: ssl.SSLContext | None,
    host: AsyncHost,
) -> int:
    if not await start_apps(config, table):
        await table.shutdown()
        return EXIT_NOTHING_TO_SERVE
    stop = StopRequest()
    notifier = SystemdNotifier()
    stop_signals = StopSignals(
        asyncio.get_running_loop(),
        functools.partial(_on_stop_signal, stop, notifier=notifier),
        config.GRACEFUL_TIMEOUT,
    )
    stop_signals.install()

    def announce(server: Server) -> None:
        host.server = server
        server_log.info("Qactuar serving %d app(s) in async mode (pid %d)", len(table.mounts), os.getpid())
        for sock in sockets:
            server_log.info("Listening on %s", listen_url(sock, "https" if server.ssl_context else "http"))
        notifier.ready(f"Serving {len(table.mounts)} app(s) in async mode")

    try:
        await serve_until(
            config,
            table,
            sockets,
            stop,
            ssl_context=ssl_context,
            on_response=host.recorder.record,
            on_serving=announce,
        )
        await host.table.shutdown()
    finally:
        stop_signals.uninstall()
    notifier.close()
    server_log.info("Stopped")
    return EXIT_OK


class AsyncHost:
    """The admin backend's view of async mode: one process that is its own master and worker."""

    def __init__(
        self, config: Config, table: AppTable, sockets: list[socket.socket], deployed: tuple[Deployed, ...]
    ) -> None:
        self.config = config
        self.table = table
        self.deployed = deployed
        self.deployer = Deployer(self)
        self.stopping = False  # its swap is in-process: nothing is left behind by a late one
        self.failure = ""
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
        return with_sources(self.table.describe(), self.deployed)

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

    def retire_process(self, pid: int) -> None:
        raise BackendError("async mode is one process: there is no worker to stop")

    # -- deployed apps (what qactuar.deploy.deployer.DeployHost asks of this process) ------------

    async def apply_deployments(self, deployed: tuple[Deployed, ...], must_load: frozenset[str]) -> bool:
        """Swap in a table serving ``deployed``; on failure nothing changes (see the module docstring)."""
        config = self.config
        added = [app for app in deployed if app not in self.deployed]
        removed = [app for app in self.deployed if app not in deployed]
        gone = {app.route for app in removed}
        evicted = _unload([app.path for app in removed])
        configured = {mount.route for mount in self.table.mounts} - {app.route for app in self.deployed}
        mounted, refused = mount_deployed(config.APP_DIR, deployed, configured)
        new_routes = {app.route for app in added}
        fresh = AppTable.load(
            {route: entry for route, entry in mounted.items() if route in new_routes},
            app_dir=config.APP_DIR,
            factory=config.FACTORY,
        )
        await fresh.startup(
            mode=config.LIFESPAN,
            startup_timeout=config.LIFESPAN_STARTUP_TIMEOUT,
            shutdown_timeout=config.LIFESPAN_SHUTDOWN_TIMEOUT,
        )
        new_mounts = [*fresh.mounts, *_refused_mounts(tuple(added), refused)]
        broken = [mount for mount in new_mounts if mount.failed and mount.route in must_load]
        if broken:
            self.failure = "; ".join(f"{mount.route}: {mount.error}" for mount in broken)
            await fresh.shutdown()
            _unload([app.path for app in added])
            sys.modules.update(evicted)
            sys.path.extend(app.path for app in removed)
            return False
        replaced = [mount for mount in self.table.mounts if mount.route in gone]
        kept = [mount for mount in self.table.mounts if mount.route not in gone]
        self.table = AppTable([*kept, *new_mounts])
        if self.server is not None:
            self.server.table = self.table
        self.deployed = deployed
        await asyncio.gather(*(mount.lifespan.shutdown() for mount in replaced if mount.lifespan is not None))
        return True

    def apply_failure(self) -> str:
        return self.failure

    async def retired(self) -> None:
        """Nothing outlives a swap here: the replaced apps' lifespans are shut down by then."""


def _unload(paths: list[str]) -> dict[str, Any]:
    """Take ``paths`` off sys.path and their modules out of sys.modules; returns the modules taken out."""
    roots = [Path(path) for path in paths]
    taken: dict[str, Any] = {}
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if isinstance(origin, str) and any(Path(origin).is_relative_to(root) for root in roots):
            taken[name] = sys.modules.pop(name)
    for path in paths:
        while path in sys.path:
            sys.path.remove(path)
    return taken


def _on_stop_signal(stop: StopRequest, sig: signal.Signals, *, notifier: SystemdNotifier) -> None:
    if not stop.is_set():
        server_log.info("Received %s: finishing in-flight requests, then stopping", sig.name)
        notifier.stopping()
    stop.request(close_idle=True)
