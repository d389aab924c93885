"""A generation: the process that imports the whole app table once, then serves through
forked processes (pre-fork workers or post-fork children) that inherit it copy-on-write.

The master forks a generation and the generation's first act is to shed everything of the
master's it must not hold: every file descriptor except stdio, the listening sockets and
its channel (so no serving process ever holds the admin socket or another generation's
channel), and the master's signal handling.  It never returns into the master's code: it
ends with ``os._exit``.

Each app string is first imported in a throwaway child (the "probe"): an app whose import
crashes the process (a segfault, ``os._exit``) or hangs becomes a failed mount answering 503,
instead of taking every other app down with the generation.

Deployed apps (``spec.deployed``, from the master's deployment records) are mounted next to the
configured ones: each release goes on ``sys.path`` after everything else, in order, unless its
modules would clash with what is already importable (``qactuar.deploy.modules``); a release that
clashes is a failed mount saying why (one whose route APPS now uses is left out, logged).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

from qactuar.apps.loader import AppImportError, add_app_dir, import_app
from qactuar.apps.router import Mount
from qactuar.apps.table import AppTable
from qactuar.config import Config
from qactuar.deploy.modules import mount_deployed
from qactuar.deploy.records import Deployed, with_sources
from qactuar.process.channel import ChannelWriter
from qactuar.process.context import GenerationContext
from qactuar.process.exits import EXIT_BOOT_FAILED, EXIT_ERROR, EXIT_NOTHING_TO_SERVE, describe_exit
from qactuar.process.logforward import forward_logs
from qactuar.process.runtime import PROCESS_SIGNALS, reset_signals
from qactuar.types import ASGIApp

server_log = logging.getLogger("qt_server")

PROBE_MESSAGE_LIMIT = 60_000


@dataclass
class GenerationSpec:
    number: int
    config: Config
    sockets: list[socket.socket]
    channel: socket.socket
    app: ASGIApp | None
    log_levels: dict[str, int]
    must_load: frozenset[str]  # routes the serving generation has loaded: a reload must not break them
    deployed: tuple[Deployed, ...] = ()  # git-deployed apps, in sys.path order


def become_generation(spec: GenerationSpec) -> None:
    """Entry point in the freshly forked generation process; never returns."""
    code = EXIT_ERROR
    try:
        reset_signals()
        # Blocked by the master across the fork: one sent since then takes its default action
        # now (a generation without workers yet just ends).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, PROCESS_SIGNALS)
        keep = {0, 1, 2, spec.channel.fileno(), *(s.fileno() for s in spec.sockets)}
        _close_other_fds(keep)
        code = run_generation(spec)
    except BaseException:
        with contextlib.suppress(Exception):
            server_log.exception("Generation %d crashed", spec.number)
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
        os._exit(code)


def _close_other_fds(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def run_generation(spec: GenerationSpec) -> int:
    config = spec.config
    channel = ChannelWriter(spec.channel)
    forward_logs(channel, spec.log_levels)
    ssl_context = None
    if config.SSL_CERT_PATH:
        from qactuar.tls import TLSConfigError, make_ssl_context

        try:
            ssl_context = make_ssl_context(config)
        except TLSConfigError as exc:
            # The master logs "Generation N failed: <reason>": one line, as in async mode.
            channel.send("gen", {"event": "failed", "reason": str(exc)})
            return EXIT_BOOT_FAILED
    table = load_table(config, spec.app, spec.deployed)
    channel.send("gen", {"event": "loaded", "apps": with_sources(table.describe(), spec.deployed)})
    if table.empty:
        channel.send("gen", {"event": "failed", "reason": "no app to serve"})
        return EXIT_NOTHING_TO_SERVE
    broken = [mount for mount in table.mounts if mount.failed and mount.route in spec.must_load]
    if broken:
        reason = "it would break apps that serve now: " + "; ".join(
            f"{mount.route}: {_last_line(mount.error)}" for mount in broken
        )
        server_log.error("Generation %d not started: %s", spec.number, reason)
        channel.send("gen", {"event": "failed", "reason": reason})
        return EXIT_BOOT_FAILED
    if table.all_failed:
        server_log.error("Every mounted app failed to load; there is nothing to serve")
        channel.send("gen", {"event": "failed", "reason": "every mounted app failed to load"})
        return EXIT_NOTHING_TO_SERVE
    ctx = GenerationContext(spec.number, config, table, spec.sockets, channel, ssl_context)
    # The imported apps are long-lived: in the permanent generation the forked processes'
    # collections never walk them, so their pages are not copied on write by the GC.
    gc.freeze()
    if config.MODE == "postfork":
        from qactuar.process.postfork import Acceptor

        return Acceptor(ctx).run()
    from qactuar.process.prefork import WorkerPool

    return WorkerPool(ctx).run()


def _last_line(text: str | None) -> str:
    lines = (text or "failed").strip().splitlines()
    return lines[-1] if lines else "failed"


def load_table(config: Config, app: ASGIApp | None, deployed: tuple[Deployed, ...] = ()) -> AppTable:
    """Probe every app string in a throwaway child, then import the ones that survived."""
    add_app_dir(config.APP_DIR)
    apps = dict(config.APPS)
    if app is not None:
        apps.pop("/", None)
    taken = {*apps, *(["/"] if app is not None else [])}
    mounted, refused = mount_deployed(config.APP_DIR, deployed, taken)
    apps.update(mounted)
    failures = probe_imports(apps, factory=config.FACTORY, timeout=config.LIFESPAN_STARTUP_TIMEOUT)
    failures.update(refused)
    apps.update(
        {deployment.route: deployment.entry for deployment in deployed if deployment.route in refused}
    )
    healthy = {route: target for route, target in apps.items() if route not in failures}
    table = AppTable.load(healthy, app_dir=config.APP_DIR, factory=config.FACTORY, app=app)
    failed = [
        Mount(route=route, spec=apps[route], app=None, error=error) for route, error in failures.items()
    ]
    for mount in failed:
        server_log.error('App "%s" at "%s" failed to load: %s', mount.spec, mount.route, mount.error)
    return AppTable([*table.mounts, *failed]) if failed else table


def probe_imports(apps: Mapping[str, str], *, factory: bool, timeout: float) -> dict[str, str]:
    """Import each app in a forked child; returns route -> why it could not be imported.

    Plain import errors are not reported here: the real import repeats them with the full
    message.  What the probe catches is an import that kills or hangs the process.
    """
    failures: dict[str, str] = {}
    for route, target in apps.items():
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(reader)
            code = 0
            try:
                import_app(target, factory=factory)
            except AppImportError:
                code = 0  # reported by the real import, with its message
            except BaseException as exc:
                os.write(writer, f"{type(exc).__name__}: {exc}".encode()[:PROBE_MESSAGE_LIMIT])
                code = 1
            os._exit(code)
        os.close(writer)
        problem = _await_probe(pid, reader, timeout)
        os.close(reader)
        if problem is not None:
            failures[route] = problem
    return failures


def _await_probe(pid: int, reader: int, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    output = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return f"importing it did not finish within {timeout:g}s"
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select([reader], [], [], min(remaining, 0.5))
        if readable:
            chunk = os.read(reader, 65536)
            if chunk:
                output += chunk
                continue
            break
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    if code == 1 and output:
        return output.decode("utf-8", "replace")
    return f"importing it crashed the process ({describe_exit(status)})"
