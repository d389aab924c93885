"""A server that is not there: canned, deterministic data behind the console's ``Backend`` interface.

Snapshot tests draw the console from it (so the pictures never change with the clock or the host), and
behaviour tests use it to check what the console *sends*: every mutating call is recorded in ``calls``.
``lose(reason)`` ends the feeds the way a dropped connection does; ``fail`` makes ``connect`` fail.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator
from typing import Any

from qactuar.stats.models import AppInfo, ProcessInfo, StatsPoint, Totals
from qactuar_tui.backend import (
    AdminError,
    AdminUnavailable,
    Deployment,
    DeployProgress,
    DeployRequest,
    LogRecord,
    ServerStatus,
    Snapshot,
)

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC: every time in the fake is relative to it
MASTER_PID = 4100
TRACEBACK = """Importing module "shop.main" raised ImportError: No module named 'stripe'

Traceback (most recent call last):
  File "/srv/apps/shop/main.py", line 3, in <module>
    import stripe
ModuleNotFoundError: No module named 'stripe'"""
HOSTILE_PATH = "/api/[bold red]pwned[/bold]\x1b[31m\x1b[2J"


def status() -> ServerStatus:
    return ServerStatus(
        version="0.3.0",
        mode="prefork",
        pid=MASTER_PID,
        started_at=NOW - 3725,
        uptime=3725.0,
        generation=3,
        listen=("http://0.0.0.0:8000",),
        totals=Totals(
            requests=184_392,
            rejected=12,
            bytes=91_000_000,
            status={"2xx": 180_001, "3xx": 2_100, "4xx": 2_201, "5xx": 90},
            in_flight=3,
            connections=17,
            processes=6,
            req_per_s=48.2,
            error_rate=0.004,
            p50_ms=3.4,
            p99_ms=41.7,
        ),
        workers=4,
    )


def processes() -> tuple[ProcessInfo, ...]:
    rows = [
        ProcessInfo(MASTER_PID, "master", 0, "running", 0, 0, 0, 0.4, 31_000_000, NOW - 3725),
        ProcessInfo(4188, "generation", 3, "ready", 0, 0, 0, 0.0, 58_000_000, NOW - 610),
    ]
    for n in range(4):
        rows.append(
            ProcessInfo(
                4190 + n,
                "worker",
                3,
                "serving",
                requests=20_000 + 1_337 * n,
                in_flight=n % 2,
                connections=3 + n,
                cpu_percent=11.5 + 4 * n,
                rss_bytes=61_000_000 + 2_500_000 * n,
                started_at=NOW - 600 + 5 * n,
            )
        )
    return tuple(rows)


def apps() -> tuple[AppInfo, ...]:
    return (
        AppInfo("/", "hello:app", "config", "loaded", None, 120_400, 31.0, 0.0, 2.1, 18.0),
        AppInfo("/api", "api.main:create_app()", "config", "loaded", None, 61_203, 16.5, 0.012, 6.8, 74.2),
        AppInfo("/blog", "blog.app:app", "git", "loaded", None, 2_789, 0.7, 0.0, 4.4, 22.9),
        AppInfo("/shop", "shop.main:app", "git", "failed", TRACEBACK, 0, 0.0, 0.0, None, None),
    )


def snapshot() -> Snapshot:
    return Snapshot(NOW, status(), processes(), apps())


def points() -> list[StatsPoint]:
    """Five minutes of a day's traffic: a slow wave with a burst two minutes ago."""
    series = []
    for n in range(300):
        t = NOW - 299 + n
        rps = 40 + 25 * math.sin(n / 17) + (60 if 170 <= n < 185 else 0)
        series.append(
            StatsPoint(
                t=t,
                requests=int(rps),
                req_per_s=rps,
                p50_ms=3 + math.sin(n / 11),
                p99_ms=30 + 12 * math.sin(n / 23) + (40 if 170 <= n < 185 else 0),
                status={"2xx": int(rps)},
                open_connections=15,
            )
        )
    return series


def records() -> list[LogRecord]:
    access = '127.0.0.1:51{n:03d} - "GET {path} HTTP/1.1" 200 13B 2.{n}1ms req-{n:04d}'
    lines = [
        LogRecord(1, NOW - 60, "INFO", "qt_server", "Generation 3 (pid 4188) is ready; generation 2 drains"),
        *(
            LogRecord(
                2 + n, NOW - 50 + n, "INFO", "qt_access", access.format(n=n, path=p), "/", f"req-{n:04d}"
            )
            for n, p in enumerate(["/", "/about", "/api/users", "/"])
        ),
        LogRecord(
            6,
            NOW - 40,
            "INFO",
            "qt_access",
            f'127.0.0.1:51999 - "GET {HOSTILE_PATH} HTTP/1.1" 404 0B 0.31ms req-evil',
            "/api",
            "req-evil",
        ),
        LogRecord(
            7,
            NOW - 30,
            "ERROR",
            "qt_exception",
            "Exception in ASGI app",
            "/api",
            "req-0042",
            exc_text='Traceback (most recent call last):\n  File "api/main.py", line 12, in users\n'
            "    raise KeyError(user_id)\nKeyError: 'u-[red]17'",
        ),
        LogRecord(8, NOW - 20, "WARNING", "qt_server", "Worker 4189 exceeded MAX_REQUESTS; replacing it"),
    ]
    return lines


def deployments() -> tuple[Deployment, ...]:
    return (
        Deployment(
            "blog",
            "/blog",
            "https://git.example.com/team/blog.git",
            "main",
            "4f2a9c1e7d",
            "7",
            "live",
            NOW - 86_400,
        ),
        Deployment(
            "shop",
            "/shop",
            "https://git.example.com/team/shop.git",
            "v2.1.0",
            "9b81d03aa1",
            "2",
            "failed",
            NOW - 3_600,
        ),
    )


class FakeBackend:
    """``Backend`` with canned data; records the commands it is sent."""

    def __init__(
        self, *, target: str = "127.0.0.1:1986", fail: str | None = None, deploys: bool = True
    ) -> None:
        self.target = target
        self.fail = fail
        self.deploys = deploys
        self.calls: list[tuple[str, Any]] = []
        self.connects = 0
        self.deploy_error: str | None = None
        self._queues: dict[str, asyncio.Queue[Any]] = {}

    def _queue(self, name: str) -> asyncio.Queue[Any]:
        return self._queues.setdefault(name, asyncio.Queue())

    async def connect(self) -> None:
        self.connects += 1
        if self.fail is not None:
            raise AdminUnavailable(self.fail)
        self._queues = {}
        self._queue("stats").put_nowait(snapshot())

    async def close(self) -> None:
        return None

    def lose(self, reason: str) -> None:
        """End every feed as a lost connection does."""
        for name in ("stats", "log", "deploy"):
            self._queue(name).put_nowait(AdminUnavailable(reason))

    def push_log(self, record: LogRecord) -> None:
        self._queue("log").put_nowait(record)

    async def _drain(self, name: str) -> AsyncGenerator[Any, None]:
        queue = self._queue(name)
        while True:
            item = await queue.get()
            if isinstance(item, AdminUnavailable):
                raise item
            yield item

    async def status(self) -> ServerStatus:
        return status()

    async def series(self, seconds: int) -> list[StatsPoint]:
        return points()[-seconds:]

    async def deployments(self) -> list[Deployment]:
        if not self.deploys:
            raise AdminError("unknown command 'deployments'")
        return list(deployments())

    async def stats_feed(self) -> AsyncGenerator[Snapshot, None]:
        async for item in self._drain("stats"):
            yield item

    async def log_feed(self, backlog: int) -> AsyncGenerator[LogRecord, None]:
        for record in records()[-backlog:]:
            yield record
        async for item in self._drain("log"):
            yield item

    async def deploy_feed(self) -> AsyncGenerator[DeployProgress, None]:
        if not self.deploys:
            raise AdminError("unknown topic 'deploy'")
        async for item in self._drain("deploy"):
            yield item

    async def reload(self) -> None:
        self.calls.append(("reload", None))

    async def scale(self, workers: int) -> None:
        self.calls.append(("scale", workers))

    async def kill(self, pid: int) -> None:
        self.calls.append(("kill", pid))

    async def deploy(self, request: DeployRequest) -> Deployment:
        self.calls.append(("deploy", request))
        name = request.name or "app"
        for stage in ("validating", "cloning", "verifying"):
            self._queue("deploy").put_nowait(DeployProgress(name, stage, f"{stage} {request.url}", None))
            await asyncio.sleep(0.02)  # a real server takes a while between stages
        if self.deploy_error is not None:
            self._queue("deploy").put_nowait(DeployProgress(name, "failed", self.deploy_error, None))
            raise AdminError(self.deploy_error)
        self._queue("deploy").put_nowait(DeployProgress(name, "live", "serving", 1.0))
        return Deployment(
            name, request.route, request.url, request.ref or "main", "0123456789ab", "1", "live", NOW
        )

    async def update(self, name: str, ref: str) -> None:
        self.calls.append(("update", (name, ref)))

    async def rollback(self, name: str) -> None:
        self.calls.append(("rollback", name))

    async def undeploy(self, name: str) -> None:
        self.calls.append(("undeploy", name))


def record_at(seq: int, message: str) -> LogRecord:
    """An access-log record ``seq`` seconds after the fake's time."""
    return LogRecord(seq, NOW + seq, "INFO", "qt_access", message, "/", f"req-{seq}")
