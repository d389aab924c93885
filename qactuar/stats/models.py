"""Plain data shared by the master, the admin socket and the TUI: no behaviour beyond (de)serialising.

These cross a process boundary as JSON, so each has ``to_dict()``/``from_dict()``. ``from_dict`` ignores keys
it does not know and fills fields it does not get from their defaults, so a TUI and a server one version
apart still understand each other; a missing field without a default raises ValueError.

Times are epoch seconds (``time.time()``), durations are milliseconds in ``*_ms`` fields, and a latency of
``None`` means "no requests in the window", which is not the same as 0 ms.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal, Self

Role = Literal["master", "generation", "worker", "child"]
AppSource = Literal["config", "git"]
AppState = Literal["loaded", "failed"]
ProcessUsage = tuple[float | None, int | None]
"""(cpu_percent, rss_bytes) of one process, either unknown when it could not be read."""


class _Wire:
    """``to_dict``/``from_dict`` for the dataclasses below."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as exc:
            raise ValueError(f"{cls.__name__}.from_dict: {exc}") from None


@dataclass(frozen=True, slots=True)
class ProcessInfo(_Wire):
    pid: int
    role: Role
    generation: int
    state: str
    requests: int = 0
    in_flight: int = 0
    connections: int = 0
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    started_at: float = 0.0

    @property
    def age(self) -> float:
        """Seconds since the process started, by this host's clock."""
        return max(0.0, time.time() - self.started_at)


@dataclass(frozen=True, slots=True)
class AppInfo(_Wire):
    """One mounted app: the app table's description of it plus its traffic.

    ``req_per_s`` and ``error_rate`` (share of 5xx responses) cover the last 10 s; the latencies the last
    60 s; ``requests`` is cumulative since the master started.
    """

    route: str
    spec: str
    source: AppSource
    state: AppState
    error: str | None = None
    requests: int = 0
    req_per_s: float = 0.0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True, slots=True)
class StatsPoint(_Wire):
    """One tick (about a second) of one app's, or the whole server's, traffic.

    ``status`` counts the responses by class in this interval (``{"2xx": 12, "5xx": 1}``);
    ``open_connections`` is the sum of the live processes' gauges at the tick, and None in an app's series
    because a keep-alive connection is not owned by any one app.
    """

    t: float
    requests: int = 0
    req_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    status: dict[str, int] = field(default_factory=dict)
    open_connections: int | None = None


@dataclass(frozen=True, slots=True)
class Totals(_Wire):
    """The whole server: cumulative counts since the master started, gauges now, rates over the windows
    ``AppInfo`` uses. ``rejected`` counts requests the server refused before any app saw them (they are in
    ``requests`` and ``status`` too)."""

    requests: int = 0
    rejected: int = 0
    bytes: int = 0
    status: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    connections: int = 0
    processes: int = 0
    req_per_s: float = 0.0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
