"""The master: owns the listening sockets, signals, generations, stats, logs and the admin socket.

It never imports application code, so a broken app can never take the console down.  It
hosts one generation at a time, two during a handover: a reload (HUP, the admin socket, a
deploy, ``--reload``) forks generation n+1 on the same sockets; only when n+1 reports
ready does generation n get SIGUSR2 (stop accepting, drain, exit).  If n+1 fails, n keeps
serving and the reason is logged.

Git-deployed apps (``self.deployed``) are read from the deployment records at start, so a
restart serves the same apps at the same commits; the deployer (``qactuar.deploy``) changes
the set through ``apply_deployments``, which is a handover like a reload with the new set --
and the old set again if the new generation fails.

Signal handlers only enqueue; one loop dispatches ``handle_<signal>`` (gunicorn's arbiter,
uvicorn's multiprocess supervisor).

Listeners come from ``qactuar.listeners`` (TCP, a Unix socket, ``--fd``, systemd socket
activation) and systemd hears READY/RELOADING/STOPPING through ``qactuar.sdnotify``.  On a
shutdown the master closes its own copies of the listening sockets at once: when the generation's
workers close theirs (after SHUTDOWN_DELAY), new connections are refused instead of waiting in a
backlog nobody accepts from.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from qactuar._version import __version__
from qactuar.admin.server import AdminServer
from qactuar.config import Config, ConfigError
from qactuar.deploy.deployer import Deployer
from qactuar.deploy.records import Deployed, restore_deployments
from qactuar.listeners import open_listeners
from qactuar.logs import BufferedStreamHandler, configure_logging
from qactuar.net import BindError, listen_url
from qactuar.process.admin_backend import HostBackend
from qactuar.process.channel import channel_pair, read_messages
from qactuar.process.exits import (
    EXIT_ERROR,
    EXIT_NOTHING_TO_SERVE,
    EXIT_OK,
    describe_exit,
)
from qactuar.process.generation import GenerationSpec, become_generation
from qactuar.process.logforward import RingHandler, effective_levels
from qactuar.process.reloader import watch_for_changes
from qactuar.process.runtime import PROCESS_SIGNALS, fork_with_signals_blocked
from qactuar.process.supervise import KILL_GRACE, kill_quietly
from qactuar.sdnotify import SystemdNotifier
from qactuar.stats.aggregate import StatsAggregator
from qactuar.stats.logring import LogRing, dict_to_record
from qactuar.stats.models import ProcessInfo
from qactuar.types import ASGIApp

CHANNEL_BATCH = 64  # datagrams from serving processes handled per turn of the event loop
server_log = logging.getLogger("qt_server")

GENERATION_BOOT_SLACK = 30.0  # beyond lifespan startup, for imports and forking
MAX_RESTART_BACKOFF = 30.0


@dataclass
class Generation:
    number: int
    pid: int
    channel: socket.socket
    config: Config
    started_at: float = field(default_factory=time.time)
    state: str = "starting"  # starting | ready | draining | failed | exited
    reason: str = ""
    apps: list[dict[str, Any]] = field(default_factory=list)
    workers: set[int] = field(default_factory=set)
    outcome: asyncio.Future[bool] | None = None

    def settle(self, ok: bool, reason: str = "") -> None:
        if reason:
            self.reason = reason
        if self.outcome is not None and not self.outcome.done():
            self.outcome.set_result(ok)


class Master:
    def __init__(
        self, config: Config, app: ASGIApp | None, reload_config: Callable[[], Config] | None
    ) -> None:
        self.config = config
        self.app = app
        self.reload_config = reload_config
        self.sockets: list[socket.socket] = []
        self.generations: dict[int, Generation] = {}
        self.current: Generation | None = None
        self.counter = 0
        self.started_at = time.time()
        self.stats = StatsAggregator()
        self.logs = LogRing()
        self.signals: asyncio.Queue[int] = asyncio.Queue()
        self.reloading: asyncio.Lock = asyncio.Lock()
        self.restarts = 0
        self.stopping = False
        self.background: set[asyncio.Future[object]] = set()
        self.reload_pending = False  # a HUP came in; reload_running: a reload task is working on them
        self.reload_running = False
        # Settings changed at run time (admin `set`, `scale`): kept across reloads of the config.
        self.overrides: dict[str, Any] = {}
        self.deployed: tuple[Deployed, ...] = restore_deployments(config)
        self.deployer = Deployer(self)
        self.failure = ""  # why the last generation failed to start
        self.notifier = SystemdNotifier()

    # -- main loop -----------------------------------------------------------------------

    async def main(self, sockets: list[socket.socket]) -> int:
        self.sockets = sockets
        loop = asyncio.get_running_loop()
        for sig in PROCESS_SIGNALS:
            if sig != signal.SIGUSR2:  # the master has no use for it (it stops a worker lazily)
                loop.add_signal_handler(sig, self.signals.put_nowait, sig)
        admin = AdminServer(HostBackend(self), self.config)
        await admin.start()
        own_records = RingHandler(self.logs)
        try:
            return await self.serve()
        finally:
            own_records.detach()
            await admin.close()
            await self.deployer.close()

    async def serve(self) -> int:
        first = await self.start_generation(self.config)
        if first is None:
            server_log.error("Nothing to serve: the first generation did not start")
            return EXIT_NOTHING_TO_SERVE
        self.current = first
        self.announce(first)
        self.notifier.ready(self.status_line())
        tasks = [asyncio.ensure_future(self.tick_forever())]
        if self.config.RELOAD:
            tasks.append(asyncio.ensure_future(watch_for_changes(self.config, self.request_reload)))
        try:
            while True:
                name = signal.Signals(await self.signals.get()).name.lower()
                if await getattr(self, f"handle_{name}")():
                    return EXIT_OK
        finally:
            for task in tasks:
                task.cancel()

    def announce(self, generation: Generation) -> None:
        config = self.config
        detail = (
            f"{config.worker_count()} worker(s)"
            if config.MODE != "postfork"
            else f"at most {config.MAX_PROCESSES} connection children"
        )
        server_log.info(
            "Qactuar %s serving %d app(s) in %s mode with %s (master pid %d, generation %d pid %d)",
            __version__,
            len(generation.apps),
            config.MODE,
            detail,
            os.getpid(),
            generation.number,
            generation.pid,
        )
        scheme = "https" if config.SSL_CERT_PATH else "http"
        for sock in self.sockets:
            server_log.info("Listening on %s", listen_url(sock, scheme))

    def status_line(self) -> str:
        current = self.current
        if current is None:
            return "No generation serving"
        return f"Generation {current.number} serving {len(current.apps)} app(s) in {self.config.MODE} mode"

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.stats.tick(time.time())
            BufferedStreamHandler.flush_all()  # forwarded access lines of a quiet moment

    # -- what the admin backend reads (see admin_backend.Host) -----------------------------

    def serving_pids(self) -> list[int]:
        return [pid for generation in self.generations.values() for pid in generation.workers]

    def retire_process(self, pid: int) -> None:
        """Admin ``kill``: SIGTERM drains the process; its generation starts a replacement."""
        server_log.info("Stopping serving process %d (admin request)", pid)
        kill_quietly(pid, signal.SIGTERM)

    def app_rows(self) -> list[dict[str, Any]]:
        return self.current.apps if self.current is not None else []

    def supervising_rows(self) -> list[ProcessInfo]:
        rows = [
            ProcessInfo(
                pid=os.getpid(), role="master", generation=0, state="running", started_at=self.started_at
            )
        ]
        rows.extend(
            ProcessInfo(
                pid=generation.pid,
                role="generation",
                generation=generation.number,
                state=generation.state,
                started_at=generation.started_at,
            )
            for generation in self.generations.values()
        )
        return rows

    def generation_status(self) -> dict[str, Any]:
        current = self.current
        return {
            "generation": current.number if current else None,
            "generation_pid": current.pid if current else None,
            "generations": [
                {"number": g.number, "pid": g.pid, "state": g.state} for g in self.generations.values()
            ],
        }

    def in_background(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def request_reload(self) -> None:
        self.signals.put_nowait(signal.SIGHUP)

    # -- signal handlers: return True to exit ----------------------------------------------

    async def handle_sigterm(self) -> bool:
        server_log.info(
            "Shutting down: finishing in-flight requests (GRACEFUL_TIMEOUT %.1fs)",
            self.config.GRACEFUL_TIMEOUT,
        )
        self.begin_shutdown()
        await self.stop_all(signal.SIGTERM, self.config.GRACEFUL_TIMEOUT + 5.0)
        return True

    async def handle_sigint(self) -> bool:
        return await self.handle_sigterm()

    async def handle_sigquit(self) -> bool:
        server_log.info("Fast shutdown")
        self.begin_shutdown()
        await self.stop_all(signal.SIGQUIT, KILL_GRACE + 1.0)
        return True

    def begin_shutdown(self) -> None:
        self.stopping = True
        self.notifier.stopping()
        for sock in self.sockets:  # the serving processes hold their own copies until they drain
            sock.close()
        self.sockets = []

    async def handle_sighup(self) -> bool:
        # In the background: a TERM or QUIT that arrives while the new generation boots is
        # handled at once (stop_all stops the booting generation too), not after the reload.
        # HUPs during a reload ask for one more once it is done (the files may have changed since).
        self.reload_pending = True
        if not self.reload_running:
            self.reload_running = True
            self.in_background(self._reload_while_pending())
        return False

    async def _reload_while_pending(self) -> None:
        try:
            while self.reload_pending and not self.stopping:
                self.reload_pending = False
                await self.reload()
        finally:
            self.reload_running = False

    async def handle_sigttin(self) -> bool:
        if self.current is not None:
            self.scale(self.current.config.worker_count() + 1)
        return False

    async def handle_sigttou(self) -> bool:
        if self.current is not None:
            self.scale(max(1, self.current.config.worker_count() - 1))
        return False

    async def handle_sigusr1(self) -> bool:
        reopen_log_files()
        server_log.info("Log files reopened")
        return False

    async def handle_sigchld(self) -> bool:
        self.reap()
        return False

    # -- generations -----------------------------------------------------------------------

    async def start_generation(
        self, config: Config, must_load: frozenset[str] = frozenset()
    ) -> Generation | None:
        """Fork a generation and wait until it is ready (returned) or has failed (None).

        It must load every route the current generation has loaded, and ``must_load`` too.
        Never once the master is stopping: nobody would stop that generation.
        """
        if self.stopping:
            self.failure = "the server is stopping"
            return None
        self.counter += 1
        master_end, generation_end = channel_pair()
        serving = self.current.apps if self.current is not None else []
        spec = GenerationSpec(
            number=self.counter,
            config=config,
            sockets=self.sockets,
            channel=generation_end,
            app=self.app,
            log_levels=effective_levels(),
            must_load=must_load | {app["route"] for app in serving if app.get("state") == "loaded"},
            deployed=self.deployed,
        )
        pid = fork_with_signals_blocked(PROCESS_SIGNALS)  # the generation unblocks them
        if pid == 0:
            become_generation(spec)  # never returns
        generation_end.close()
        loop = asyncio.get_running_loop()
        generation = Generation(number=self.counter, pid=pid, channel=master_end, config=config)
        generation.outcome = loop.create_future()
        self.generations[generation.number] = generation
        loop.add_reader(master_end.fileno(), self.on_channel, generation)
        timeout = config.LIFESPAN_STARTUP_TIMEOUT * 2 + GENERATION_BOOT_SLACK
        try:
            ok = await asyncio.wait_for(asyncio.shield(generation.outcome), timeout)
        except TimeoutError:
            ok = False
            generation.reason = f"not ready within {timeout:.0f}s"
        if ok:
            generation.state = "ready"
            return generation
        generation.state = "failed"
        self.failure = generation.reason or "unknown reason"
        server_log.error("Generation %d failed: %s", generation.number, self.failure)
        kill_quietly(pid, signal.SIGKILL)
        await self.wait_exit(generation, KILL_GRACE)
        return None

    def on_channel(self, generation: Generation, limit: int = CHANNEL_BATCH) -> None:
        """Handle what a generation's processes sent: at most ``limit`` datagrams a call (0: all).

        The loop calls this again while more wait; the bound lets the admin socket and signals have
        their turn when many serving processes (post-fork under load) send faster than this reads.
        """
        for message in read_messages(generation.channel, limit=limit):
            kind = message.get("k")
            if kind == "stats":
                try:
                    self.stats.update(message)
                except ValueError as exc:
                    server_log.warning(
                        "Ignored a malformed stats snapshot from generation %d: %s", generation.number, exc
                    )
            elif kind == "logs":
                for record in message.get("records", ()):
                    self.emit_log(record)
            elif kind == "gen":
                self.on_generation_event(generation, message)

    def emit_log(self, record: dict[str, Any]) -> None:
        self.logs.append(record)
        logger = logging.getLogger(str(record.get("logger", "qt_server")))
        if logger.isEnabledFor(int(record.get("levelno", logging.INFO))):
            logger.handle(dict_to_record(record))

    def on_generation_event(self, generation: Generation, message: dict[str, Any]) -> None:
        event = message.get("event")
        if event == "loaded":
            generation.apps = list(message.get("apps", []))
        elif event == "ready":
            generation.settle(True)
        elif event == "failed":
            generation.settle(False, str(message.get("reason", "")))
        elif event == "worker_started":
            generation.workers.add(int(message["pid"]))
        elif event in ("worker_exited", "child_exited"):
            pid = int(message["pid"])
            generation.workers.discard(pid)
            self.stats.process_exited(pid)

    def reap(self) -> None:
        for generation in list(self.generations.values()):
            try:
                pid, status = os.waitpid(generation.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = generation.pid, 0
            if pid == 0:
                continue
            self.on_channel(generation, limit=0)  # last words
            self.forget(generation)
            generation.settle(False, f"generation process ended ({describe_exit(status)})")
            was_current = generation is self.current
            generation.state = "exited"
            if was_current and not self.stopping:
                server_log.error(
                    "Generation %d (pid %d) died unexpectedly (%s): starting a new one",
                    generation.number,
                    generation.pid,
                    describe_exit(status),
                )
                self.current = None
                self.in_background(self.replace_dead_generation())

    def forget(self, generation: Generation) -> None:
        self.generations.pop(generation.number, None)
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(generation.channel.fileno())
        generation.channel.close()
        for pid in generation.workers:
            self.stats.process_exited(pid)

    async def replace_dead_generation(self) -> None:
        self.restarts += 1
        delay = min(MAX_RESTART_BACKOFF, 0.5 * 2 ** min(self.restarts - 1, 8))
        await asyncio.sleep(delay)
        if self.stopping or self.current is not None:
            return
        async with self.reloading:
            replacement = await self.start_generation(self.config)
        if replacement is not None:
            self.current = replacement
            self.restarts = 0
        elif not self.stopping:
            self.in_background(self.replace_dead_generation())

    async def reload(self) -> bool:
        """Start a new generation with freshly read config and code; retire the old one when it is ready."""
        if self.reloading.locked():
            server_log.info("A reload is already in progress")
            return False
        async with self.reloading:
            try:
                config = dataclasses.replace(
                    self.reload_config() if self.reload_config is not None else self.config, **self.overrides
                )
            except ConfigError as exc:
                server_log.error(
                    "Reload refused, the config has an error (still serving the old one): %s", exc
                )
                return False
            if _listening(config) != _listening(self.config):
                server_log.warning(
                    "HOST, PORT, UDS, UDS_MODE and FD changes need a restart; keeping the current listeners"
                )
            configure_logging(config)
            server_log.info("Reloading: starting generation %d", self.counter + 1)
            self.notifier.reloading()
            ok = await self.take_over(config)
            self.notifier.ready(self.status_line())
            return ok

    async def take_over(self, config: Config, must_load: frozenset[str] = frozenset()) -> bool:
        """Start a generation with ``config``; once it is ready it serves and the old one drains."""
        new = await self.start_generation(config, must_load)
        if new is None:
            server_log.error(
                "Reload failed; generation %s keeps serving", self.current and self.current.number
            )
            return False
        old, self.current, self.config = self.current, new, config
        if old is not None:
            old.state = "draining"
            kill_quietly(old.pid, signal.SIGUSR2)
        server_log.info("Generation %d is serving", new.number)
        return True

    # -- deployed apps (what qactuar.deploy.deployer.DeployHost asks of the master) ------------

    async def apply_deployments(self, deployed: tuple[Deployed, ...], must_load: frozenset[str]) -> bool:
        """Hand over to a generation serving ``deployed``; on failure the previous set stays."""
        async with self.reloading:
            previous, self.deployed = self.deployed, deployed
            server_log.info("Deployed apps changed: starting generation %d", self.counter + 1)
            if await self.take_over(self.config, must_load):
                return True
            self.deployed = previous
            return False

    def apply_failure(self) -> str:
        return self.failure

    async def retired(self) -> None:
        """Wait until the generations the current one replaced have drained and exited."""
        deadline = time.monotonic() + self.config.GRACEFUL_TIMEOUT + KILL_GRACE + 5.0
        while any(g is not self.current for g in self.generations.values()):
            if time.monotonic() > deadline:
                server_log.warning("An old generation is still running after its drain time")
                return
            await asyncio.sleep(0.05)

    def scale(self, workers: int) -> None:
        current = self.current
        if current is None or current.config.MODE != "prefork":
            server_log.warning("Scaling applies to prefork mode only")
            return
        current.config.WORKERS = workers
        self.overrides["WORKERS"] = workers
        with contextlib.suppress(OSError):
            current.channel.send(b'{"k":"scale","workers":%d}' % workers)

    async def stop_all(self, sig: int, timeout: float) -> None:
        """Signal every generation and wait for each (begin_shutdown has set ``stopping``)."""
        for generation in self.generations.values():
            kill_quietly(generation.pid, sig)
        for generation in list(self.generations.values()):
            await self.wait_exit(generation, timeout)

    async def wait_exit(self, generation: Generation, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, _ = _waitpid_nohang(generation.pid)
            if pid:
                break
            await asyncio.sleep(0.02)
        else:
            server_log.warning("Generation %d did not stop in time: killing it", generation.number)
            kill_quietly(generation.pid, signal.SIGKILL)
            while not _waitpid_nohang(generation.pid)[0]:
                await asyncio.sleep(0.02)
        self.on_channel(generation, limit=0)
        self.forget(generation)
        generation.state = "exited"


def _listening(config: Config) -> tuple[object, ...]:
    return (config.HOST, config.PORT, config.UDS, config.UDS_MODE, config.FD)


def _waitpid_nohang(pid: int) -> tuple[int, int]:
    try:
        return os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return pid, 0


def reopen_log_files() -> None:
    """USR1: close every file handler's stream; the next record reopens it (logrotate's contract)."""
    for logger in [
        logging.getLogger(),
        *(logging.getLogger(name) for name in logging.root.manager.loggerDict),
    ]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()
                finally:
                    handler.release()


def run(config: Config, app: ASGIApp | None = None, reload_config: Callable[[], Config] | None = None) -> int:
    try:
        listeners = open_listeners(config)
    except BindError as exc:
        server_log.error("%s", exc)
        return EXIT_ERROR
    loop = asyncio.new_event_loop()
    master = Master(config, app, reload_config)
    try:
        return loop.run_until_complete(master.main(listeners.sockets))
    finally:
        master.notifier.close()
        listeners.close()
        loop.close()
