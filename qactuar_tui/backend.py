"""The console's one door to a server: an async facade over the admin client, in typed records.

Screens never see the wire.  ``Backend`` is what the app needs -- connect, a few reads, three feeds and the
mutating commands -- and ``AdminBackend`` implements it over ``qactuar.admin.client.AdminClient``.  Tests
and snapshots give the same app a fake with canned data (``tests/tui/tui_fake.py``), which is why this
module imports no Textual and why the records are plain frozen dataclasses.

Decisions written down here:

- **Finding the server again.**  ``AdminBackend`` is given a *locator*, not an address, and calls it on every
  ``connect()``.  A server started with ``ADMIN_PORT = 0`` records a new port each time it starts, so a
  console that re-reads ``admin.addr`` (and the token file) finds a restarted server on its own.
- **Failures are the client's two exceptions.**  ``AdminUnavailable`` (cannot reach, login refused,
  connection lost -- the app reconnects) and ``AdminError`` (the server refused one request -- the app
  shows the message).  ``login_refused`` tells the two kinds of ``AdminUnavailable`` apart by the client's
  message, because retrying a wrong token on a timer would only trip the server's login lockout.
- **Data the console cannot read is a broken connection**, not a crash: a reply that does not parse into
  these records raises ``AdminUnavailable`` naming what was wrong, and the app reconnects.
- **Feeds are async generators**, so the app closes them with ``contextlib.aclosing`` and a lost connection
  surfaces as ``AdminUnavailable`` from the ``async for``.  A log feed that the server or the client had to
  thin out yields a synthetic record saying how many records were left out, so a gap is never silent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from qactuar.admin.client import AdminClient, AdminError, AdminUnavailable, Location
from qactuar.stats.models import AppInfo, ProcessInfo, StatsPoint, Totals

__all__ = [
    "AdminBackend",
    "AdminError",
    "AdminUnavailable",
    "Backend",
    "DeployProgress",
    "DeployRequest",
    "Deployment",
    "LogRecord",
    "ServerStatus",
    "Snapshot",
    "login_refused",
]

Locator = Callable[[], Location]
HISTORY_SECONDS = 300  # what the dashboard plots: the last five minutes
GAP_SEQ = -1  # seq of the synthetic "records were left out" line

_R = TypeVar("_R")


def login_refused(error: AdminUnavailable) -> bool:
    """Whether the server was reached and said no (wrong token, login lockout): retrying will not help."""
    return "refused the login" in str(error)


def _parse(what: str, parse: Callable[[Any], _R], data: Any) -> _R:
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AdminUnavailable(f"the server sent {what} this console cannot read ({exc!r:.200})") from None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """The ``status`` reply: who the server is and its totals."""

    version: str
    mode: str
    pid: int
    started_at: float
    uptime: float
    generation: int | None  # None in async mode, which has no generations
    listen: tuple[str, ...]
    totals: Totals
    workers: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerStatus:
        workers, generation = data.get("workers"), data.get("generation")
        return cls(
            version=_text(data["version"]),
            mode=_text(data["mode"]),
            pid=int(data.get("pid", 0)),
            started_at=float(data.get("started_at", 0.0)),
            uptime=float(data["uptime"]),
            generation=None if generation is None else int(generation),
            listen=tuple(_text(url) for url in data["listen"]),
            totals=Totals.from_dict(data["totals"]),
            workers=None if workers is None else int(workers),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One ``stats`` event: the whole server at one tick (about once a second)."""

    time: float
    status: ServerStatus
    processes: tuple[ProcessInfo, ...]
    apps: tuple[AppInfo, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        return cls(
            time=float(data["time"]),
            status=ServerStatus.from_dict(data["status"]),
            processes=tuple(ProcessInfo.from_dict(row) for row in data["processes"]),
            apps=tuple(AppInfo.from_dict(row) for row in data["apps"]),
        )


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record of the server's log ring (access lines, server messages, app tracebacks)."""

    seq: int
    time: float
    level: str
    logger: str
    message: str
    route: str | None = None
    request_id: str | None = None
    pid: int | None = None
    exc_text: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogRecord:
        route, request_id, pid, exc_text = (data.get(k) for k in ("route", "request_id", "pid", "exc_text"))
        return cls(
            seq=int(data["seq"]),
            time=float(data["time"]),
            level=_text(data["level"]),
            logger=_text(data["logger"]),
            message=_text(data["message"]),
            route=None if route is None else _text(route),
            request_id=None if request_id in (None, "-") else _text(request_id),
            pid=None if pid is None else int(pid),
            exc_text=None if not exc_text else _text(exc_text),
        )


@dataclass(frozen=True, slots=True)
class Deployment:
    """An app deployed from git: where from, which commit is live, which release."""

    name: str
    route: str
    url: str
    ref: str
    commit: str
    release: str
    state: str
    deployed_at: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deployment:
        deployed_at = data.get("deployed_at")
        return cls(
            name=_text(data["name"]),
            route=_text(data["route"]),
            url=_text(data.get("url")),
            ref=_text(data.get("ref")),
            commit=_text(data.get("commit")),
            release=_text(data.get("release")),
            state=_text(data.get("state")),
            deployed_at=None if deployed_at is None else float(deployed_at),
        )


@dataclass(frozen=True, slots=True)
class DeployProgress:
    """One ``deploy`` event: a stage of a deploy, update, rollback or undeploy."""

    name: str
    stage: str  # validating, cloning, verifying, starting, live, failed, removing, removed
    message: str = ""
    progress: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeployProgress:
        progress = data.get("progress")
        return cls(
            name=_text(data["name"]),
            stage=_text(data["stage"]),
            message=_text(data.get("message")),
            progress=None if progress is None else float(progress),
        )


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """What the deploy dialog asks for; empty optional fields are left for the server to choose."""

    url: str
    route: str
    name: str = ""
    ref: str = ""
    entry: str = ""

    def args(self) -> dict[str, str]:
        optional = {"name": self.name, "ref": self.ref, "entry": self.entry}
        return {"url": self.url, "route": self.route, **{k: v for k, v in optional.items() if v}}


def gap_record(dropped: int, at: float) -> LogRecord:
    """The line shown where ``dropped`` records were left out because the console read too slowly."""
    return LogRecord(
        seq=GAP_SEQ,
        time=at,
        level="WARNING",
        logger="qactuar-tui",
        message=f"{dropped} log records were left out here (the console could not keep up)",
    )


class Backend(Protocol):
    """What the console needs from a server.  Every method may raise ``AdminUnavailable``; requests may
    raise ``AdminError`` with the server's reason."""

    @property
    def target(self) -> str:
        """Where the server is, for the title bar and messages (``127.0.0.1:1986``, a socket path)."""
        ...

    async def connect(self) -> None:
        """(Re)connect and log in, finding the server afresh."""
        ...

    async def close(self) -> None:
        """Drop the connection, if any."""
        ...

    async def status(self) -> ServerStatus: ...

    async def series(self, seconds: int) -> list[StatsPoint]:
        """The whole server's per-second points over the last ``seconds``."""
        ...

    async def deployments(self) -> list[Deployment]: ...

    def stats_feed(self) -> AsyncGenerator[Snapshot, None]: ...

    def log_feed(self, backlog: int) -> AsyncGenerator[LogRecord, None]:
        """The last ``backlog`` records, then every new one; subscribed before the backlog is read, so
        nothing falls between the two (the overlap is for the reader to drop by ``seq``)."""
        ...

    def deploy_feed(self) -> AsyncGenerator[DeployProgress, None]: ...

    async def reload(self) -> None: ...

    async def scale(self, workers: int) -> None: ...

    async def kill(self, pid: int) -> None:
        """Stop one worker or connection child; its generation replaces it."""
        ...

    async def deploy(self, request: DeployRequest) -> Deployment:
        """Deploy and wait until it is live; ``AdminError`` with the reason when it is not."""
        ...

    async def update(self, name: str, ref: str) -> None: ...

    async def rollback(self, name: str) -> None: ...

    async def undeploy(self, name: str) -> None: ...


class AdminBackend:
    """``Backend`` over the admin socket, one ``AdminClient`` connection at a time."""

    def __init__(self, locator: Locator, *, fallback_target: str = "the local Qactuar server") -> None:
        """Args:
        locator: Called on every connect for the server's address and token (``locate(config)``).
        fallback_target: What to call the server before it has been located once.
        """
        self._locator = locator
        self._client: AdminClient | None = None
        self._target = fallback_target

    @property
    def target(self) -> str:
        return self._target

    async def connect(self) -> None:
        await self.close()
        location = self._locator()
        self._target = str(location)
        self._client = await AdminClient.connect(location, client_name="qactuar-tui")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _connected(self) -> AdminClient:
        if self._client is None:
            raise AdminUnavailable(f"not connected to {self._target}")
        return self._client

    async def _request(self, command: str, **args: Any) -> Any:
        return await self._connected().request(command, **args)

    async def status(self) -> ServerStatus:
        data = await self._request("status")
        return _parse("a status", ServerStatus.from_dict, data)

    async def series(self, seconds: int) -> list[StatsPoint]:
        data = await self._request("stats", seconds=max(1, min(seconds, HISTORY_SECONDS)))
        return _parse("stats", lambda reply: [StatsPoint.from_dict(p) for p in reply["series"]], data)

    async def deployments(self) -> list[Deployment]:
        data = await self._request("deployments")
        return _parse("deployments", lambda rows: [Deployment.from_dict(row) for row in rows], data)

    async def stats_feed(self) -> AsyncGenerator[Snapshot, None]:
        async for event in await self._connected().subscribe("stats"):
            yield _parse("a stats event", Snapshot.from_dict, event.data)

    async def log_feed(self, backlog: int) -> AsyncGenerator[LogRecord, None]:
        subscription = await self._connected().subscribe("log")
        data = await self._request("logs", n=backlog)
        for record in _parse("log records", lambda rows: [LogRecord.from_dict(row) for row in rows], data):
            yield record
        async for event in subscription:
            record = _parse("a log record", LogRecord.from_dict, event.data)
            if event.dropped:
                yield gap_record(event.dropped, record.time)
            yield record

    async def deploy_feed(self) -> AsyncGenerator[DeployProgress, None]:
        async for event in await self._connected().subscribe("deploy"):
            yield _parse("a deploy event", DeployProgress.from_dict, event.data)

    async def reload(self) -> None:
        await self._request("reload")

    async def scale(self, workers: int) -> None:
        await self._request("scale", n=workers)

    async def kill(self, pid: int) -> None:
        await self._request("kill", pid=pid)

    async def deploy(self, request: DeployRequest) -> Deployment:
        data = await self._request("deploy", **request.args())
        return _parse("a deploy reply", Deployment.from_dict, data)

    async def update(self, name: str, ref: str) -> None:
        await self._request("update", name=name, **({"ref": ref} if ref else {}))

    async def rollback(self, name: str) -> None:
        await self._request("rollback", name=name)

    async def undeploy(self, name: str) -> None:
        await self._request("undeploy", name=name)
