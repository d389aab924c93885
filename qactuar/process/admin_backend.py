"""The server's side of the admin socket: answers from the books its host already keeps.

The host is the master (pre-fork, post-fork) or the single async-mode process; both keep a
stats aggregator and a log ring, and describe their own processes and app table.  The
mutating commands go through the same paths as signals do, so ``qactuar reload`` and
``kill -HUP`` are one code path.  The git deploy commands are the host's deployer's; its
refusals and failures (``DeployError``) reach the client as the operator's error message.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from qactuar._version import __version__
from qactuar.admin.backend import BackendError, LogRecord
from qactuar.admin.logfilter import LogFilter
from qactuar.config import Config
from qactuar.deploy.deployer import Deployer
from qactuar.deploy.errors import DeployError
from qactuar.net import listen_url
from qactuar.stats.aggregate import StatsAggregator
from qactuar.stats.logring import LogRing
from qactuar.stats.models import ProcessInfo, ProcessUsage
from qactuar.stats.procstats import ProcessSampler

server_log = logging.getLogger("qt_server")


class Host(Protocol):
    """What the backend reads and drives: the master, or the async-mode process."""

    config: Config
    started_at: float
    sockets: list[socket.socket]
    stats: StatsAggregator
    logs: LogRing
    overrides: dict[str, Any]
    deployer: Deployer

    def app_rows(self) -> list[dict[str, Any]]: ...
    def supervising_rows(self) -> list[ProcessInfo]: ...
    def serving_pids(self) -> list[int]: ...
    def generation_status(self) -> dict[str, Any]: ...
    async def reload(self) -> bool: ...
    def scale(self, workers: int) -> None: ...
    def retire_process(self, pid: int) -> None: ...


class HostBackend:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.sampler = ProcessSampler()

    def status(self) -> dict[str, Any]:
        host = self.host
        config = host.config
        scheme = "https" if config.SSL_CERT_PATH else "http"
        return {
            "version": __version__,
            "mode": config.MODE,
            "pid": os.getpid(),
            "started_at": host.started_at,
            "uptime": time.time() - host.started_at,
            **host.generation_status(),
            "workers": config.worker_count() if config.MODE == "prefork" else None,
            "listen": [listen_url(sock, scheme) for sock in host.sockets],
            "totals": host.stats.totals().to_dict(),
        }

    def processes(self) -> list[dict[str, Any]]:
        host = self.host
        rows = host.supervising_rows()
        usage = None
        if host.config.GATHER_PROC_STATS:
            usage = self.sampler.sample([row.pid for row in rows] + host.serving_pids())
            rows = [_with_usage(row, usage.get(row.pid)) for row in rows]
        known = {row.pid for row in rows}
        serving = [row for row in host.stats.processes(usage=usage) if row.pid not in known]
        return [row.to_dict() for row in [*rows, *serving]]

    def apps(self) -> list[dict[str, Any]]:
        """The app table with traffic; a git-deployed app's row keeps its name, url, ref, commit, release."""
        rows = [{"source": "config", **row} for row in self.host.app_rows()]
        return [{**row, **info.to_dict()} for row, info in zip(rows, self.host.stats.apps(rows), strict=True)]

    def stats(self, seconds: int, route: str | None) -> dict[str, Any]:
        aggregator = self.host.stats
        routes = [route] if route is not None else [row["route"] for row in self.host.app_rows()]
        return {
            "totals": aggregator.totals().to_dict(),
            "series": [point.to_dict() for point in aggregator.series(None, seconds)],
            "apps": {r: [point.to_dict() for point in aggregator.series(r, seconds)] for r in routes},
            "route_counts": aggregator.route_counts(),
        }

    def logs(self, n: int, filters: LogFilter) -> list[LogRecord]:
        ring = self.host.logs
        matching = [record for record in ring.tail(len(ring)) if filters.matches(record)]
        return matching[-n:] if n > 0 else []

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.host.config)

    async def reload(self) -> dict[str, Any]:
        master = self.host
        if not await master.reload():
            raise BackendError("reload failed; the serving generation is unchanged (see the log)")
        return master.generation_status()

    async def scale(self, n: int) -> dict[str, Any]:
        if self.host.config.MODE != "prefork":
            raise BackendError(f"scale needs prefork mode; this server runs {self.host.config.MODE}")
        if n < 1:
            raise BackendError("scale needs at least 1 worker")
        self.host.scale(n)
        return {"workers": n}

    async def kill(self, pid: int) -> dict[str, Any]:
        if pid not in self.host.serving_pids() or pid == os.getpid():
            raise BackendError(f"pid {pid} is not a worker or connection child of this server")
        self.host.retire_process(pid)
        return {"pid": pid, "signal": "SIGTERM"}

    async def set_setting(self, key: str, value: object) -> dict[str, Any]:
        if key == "WORKERS":
            if not isinstance(value, int):
                raise BackendError("WORKERS takes an integer")
            return await self.scale(value)
        if key == "LOG_LEVEL":
            if not isinstance(value, str):
                raise BackendError("LOG_LEVEL takes a level name")
            return await self._set_log_level(value)
        raise BackendError(f"{key} cannot be changed while running")

    async def _set_log_level(self, level: str) -> dict[str, Any]:
        """A new level reaches the serving processes by a handover to a generation started with it."""
        master = self.host
        previous = master.overrides.get("LOG_LEVEL")
        master.overrides["LOG_LEVEL"] = level
        if not await master.reload():
            if previous is None:
                master.overrides.pop("LOG_LEVEL")
            else:
                master.overrides["LOG_LEVEL"] = previous
            raise BackendError("the new generation did not start; the log level is unchanged")
        return {"LOG_LEVEL": level, **master.generation_status()}

    def subscribe_logs(self, callback: Callable[[LogRecord], None]) -> Callable[[], None]:
        ring = self.host.logs
        ring.subscribe(callback)
        return lambda: ring.unsubscribe(callback)

    # --- git deploys ---------------------------------------------------------------------

    def deployments(self) -> list[dict[str, Any]]:
        try:
            return self.host.deployer.deployments()
        except DeployError as exc:
            raise BackendError(str(exc)) from None

    async def deploy(
        self, url: str, route: str, name: str | None, ref: str | None, entry: str | None
    ) -> dict[str, Any]:
        return await _deploying(self.host.deployer.deploy(url, route, name=name, ref=ref, entry=entry))

    async def update(self, name: str, ref: str | None) -> dict[str, Any]:
        return await _deploying(self.host.deployer.update(name, ref))

    async def rollback(self, name: str) -> dict[str, Any]:
        return await _deploying(self.host.deployer.rollback(name))

    async def undeploy(self, name: str) -> dict[str, Any]:
        return await _deploying(self.host.deployer.undeploy(name))

    def subscribe_deploy(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        return self.host.deployer.subscribe(callback)


async def _deploying(work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    try:
        return await work
    except DeployError as exc:
        raise BackendError(str(exc)) from None


def _with_usage(row: ProcessInfo, usage: ProcessUsage | None) -> ProcessInfo:
    cpu, rss = usage if usage is not None else (None, None)
    return dataclasses.replace(row, cpu_percent=cpu, rss_bytes=rss)
