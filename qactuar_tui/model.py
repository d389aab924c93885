"""What the console remembers about the server between events: bounded, and free of Textual.

The connection worker writes here and every screen reads from here, so a screen opened late (the logs
screen after ten minutes) starts full, and a screen that was hidden catches up when it is shown.  Memory
is bounded whatever the server sends: five minutes of per-second points, the newest ``LOG_RECORDS`` log
records, the newest ``DEPLOY_EVENTS`` deploy events.

Log records are de-duplicated by ``seq``: the console subscribes first and then asks for the backlog, so
the two overlap.  ``seq`` restarts when the server does, so the watermark is reset when the server's
identity (its pid and start time) changes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from qactuar.stats.models import StatsPoint
from qactuar_tui.backend import GAP_SEQ, HISTORY_SECONDS, Deployment, DeployProgress, LogRecord, Snapshot

LOG_RECORDS = 5000
DEPLOY_EVENTS = 50
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


class StatsHistory:
    """The whole server's per-second points, newest last, at most ``seconds`` of them."""

    def __init__(self, seconds: int = HISTORY_SECONDS) -> None:
        self._points: deque[StatsPoint] = deque(maxlen=seconds)

    @property
    def last_time(self) -> float | None:
        """When the newest point was taken, or None before the first."""
        return self._points[-1].t if self._points else None

    def extend(self, points: Iterable[StatsPoint]) -> None:
        """Add the points newer than the newest one held (a repeated fetch overlaps the last one)."""
        for point in sorted(points, key=lambda p: p.t):
            if not self._points or point.t > self._points[-1].t:
                self._points.append(point)

    def values(self, pick: Callable[[StatsPoint], float | None]) -> list[float]:
        """One value per second for the plot, padded on the left with zeros to the full window, so time
        always runs at the same speed across the plot; a missing value (no requests) counts as 0."""
        size = self._points.maxlen or len(self._points)
        values = [pick(point) or 0.0 for point in self._points]
        return [0.0] * (size - len(values)) + values


@dataclass(frozen=True, slots=True)
class LogQuery:
    """The logs screen's filter: a minimum level, one app's route, and text to find (any case)."""

    level: int = LEVELS["INFO"]
    route: str | None = None
    text: str = ""

    def matches(self, record: LogRecord) -> bool:
        if LEVELS.get(record.level.upper(), LEVELS["CRITICAL"]) < self.level:
            return False
        if self.route is not None and record.route != self.route:
            return False
        if self.text:
            needle = self.text.casefold()
            return needle in record.message.casefold() or needle in (record.exc_text or "").casefold()
        return True


class LogBuffer:
    """The newest ``size`` log records, each once; ``added`` counts every record ever kept, so a view can
    ask for what it has not shown yet."""

    def __init__(self, size: int = LOG_RECORDS) -> None:
        self._records: deque[LogRecord] = deque(maxlen=size)
        self._added = 0
        self._watermark = -1  # the highest seq kept from the current server
        self._server: tuple[int, float] | None = None

    @property
    def added(self) -> int:
        return self._added

    def __len__(self) -> int:
        return len(self._records)

    def new_server(self, identity: tuple[int, float]) -> None:
        """Connected to the server ``identity`` (pid, start time); a different one starts ``seq`` again."""
        if identity != self._server:
            self._server = identity
            self._watermark = -1

    def add(self, record: LogRecord) -> bool:
        """Keep ``record`` unless it was kept before; whether it was new."""
        if record.seq != GAP_SEQ:
            if record.seq <= self._watermark:
                return False
            self._watermark = record.seq
        self._records.append(record)
        self._added += 1
        return True

    def since(self, mark: int) -> list[LogRecord]:
        """The records kept after ``added`` was ``mark`` (those still held)."""
        fresh = min(self._added - mark, len(self._records))
        return list(self._records)[-fresh:] if fresh > 0 else []

    def matching(self, query: LogQuery, limit: int) -> list[LogRecord]:
        """The newest ``limit`` records that ``query`` matches, oldest first."""
        return [record for record in self._records if query.matches(record)][-limit:]


LinkState = Literal["connecting", "connected", "lost", "unavailable"]


@dataclass(frozen=True, slots=True)
class Link:
    """The connection as the user sees it.

    ``connecting`` before the first answer; ``connected``; ``lost`` after having been connected (a banner,
    the data stays on screen); ``unavailable`` when the first connection failed (one clear screen).
    ``retry_in`` is None when the console will not retry on its own (the login was refused).
    """

    state: LinkState
    target: str
    reason: str = ""
    attempt: int = 0
    retry_in: float | None = None


@dataclass(slots=True)
class ConsoleState:
    """Everything the screens draw from."""

    link: Link
    snapshot: Snapshot | None = None
    history: StatsHistory = field(default_factory=StatsHistory)
    logs: LogBuffer = field(default_factory=LogBuffer)
    deployments: tuple[Deployment, ...] = ()
    deploys_supported: bool = True  # False when the server has no deploy commands
    deploy_events: deque[DeployProgress] = field(default_factory=lambda: deque(maxlen=DEPLOY_EVENTS))
