"""The master's view of traffic: cumulative snapshots from serving processes in, totals and series out.

Theory of operation
-------------------
Every serving process reports cumulative snapshots (see ``recorder``). The aggregator keeps each live pid's
latest snapshot and, when a newer one arrives, adds only the difference to running per-route totals. Those
running totals therefore already include everything every process ever reported, live or exited:
``process_exited`` just stops tracking the pid, totals never go backwards when workers are recycled, and
memory does not grow with the thousands of short-lived post-fork children. (This is the "retired totals"
fold done incrementally: the retired share is never kept apart because nothing needs it apart.)

Identity is ``(pid, started_at)``, so a reused pid is a new process. A snapshot whose ``seq`` is not newer
than the last one taken from that process is stale and ignored. A process's final snapshot can arrive after
it was reaped (the master handled SIGCHLD before draining its channel): the last ``remember_exited`` exited
processes are remembered so such a late snapshot still adds its difference, exactly once.

``tick(now)``, called about once a second, marks the running totals of each route and of the whole server.
A ``StatsPoint`` is the difference between two consecutive marks; a window ("req/s over the last 10 s",
"p99 over the last 60 s") is the difference between the latest mark and the newest one at least that old,
so windows stay exact when ticks jitter. Points are kept for 10 minutes, marks (each holding a latency
histogram copy) for 60 s.

Route ``""`` holds requests the server rejected itself: part of the totals and the overall series, never an
app, and left out of ``route_counts``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_args

from qactuar.stats.histogram import NBUCKETS, Histogram
from qactuar.stats.models import AppInfo, ProcessInfo, ProcessUsage, Role, StatsPoint, Totals

REJECTED_ROUTE = ""
HISTORY_SECONDS = 600
"""How many points each series keeps (10 minutes of 1 s ticks)."""
RATE_WINDOW = 10.0
LATENCY_WINDOW = 60.0
TICK_SLACK = 0.5
"""Jitter tolerated when picking the mark that starts a window, in seconds (half a tick)."""
REMEMBER_EXITED = 256

_K = TypeVar("_K")


@dataclass(slots=True)
class _RouteCounts:
    """One route's cumulative counts in one snapshot, or the difference between two."""

    requests: int
    status: dict[str, int]
    bytes: int
    latency: dict[int, int]  # bucket index -> count, non-empty buckets only

    def minus(self, old: _RouteCounts) -> _RouteCounts:
        """Growth since ``old``; raises ValueError if anything shrank (then it was not an earlier state)."""
        diff = _RouteCounts(
            self.requests - old.requests,
            _diff(self.status, old.status),
            self.bytes - old.bytes,
            _diff(self.latency, old.latency),
        )
        if diff.requests < 0 or diff.bytes < 0:
            raise ValueError("cumulative counts went backwards")
        return diff


_NOTHING = _RouteCounts(0, {}, 0, {})


def _diff(new: dict[_K, int], old: dict[_K, int]) -> dict[_K, int]:
    if old.keys() - new.keys():
        raise ValueError("cumulative counts went backwards")
    diff = {key: n - old.get(key, 0) for key, n in new.items() if n != old.get(key, 0)}
    if any(n < 0 for n in diff.values()):
        raise ValueError("cumulative counts went backwards")
    return diff


@dataclass(slots=True)
class _Process:
    pid: int
    role: Role
    generation: int
    started_at: float
    seq: int
    requests: int
    in_flight: int
    connections: int
    routes: dict[str, _RouteCounts]

    def same_process(self, other: _Process) -> bool:
        return self.started_at == other.started_at

    def growth_since(self, old: _Process | None) -> list[tuple[str, _RouteCounts]]:
        """Per-route growth, computed in full before anything is applied so a bad snapshot changes nothing."""
        before = old.routes if old is not None else {}
        return [(route, counts.minus(before.get(route, _NOTHING))) for route, counts in self.routes.items()]


def _parse_snapshot(snapshot: Mapping[str, Any]) -> _Process:
    """Check and convert a snapshot from a serving process; ValueError says what was wrong with it."""
    try:
        role = snapshot["role"]
        if role not in get_args(Role):
            raise ValueError(f"unknown role {role!r}")
        routes: dict[str, _RouteCounts] = {}
        for route, data in snapshot["routes"].items():
            latency: dict[int, int] = {}
            for index, n in data["latency"]:
                if not 0 <= int(index) < NBUCKETS or int(n) < 0:
                    raise ValueError(f"bad latency bucket {[index, n]!r}")
                latency[int(index)] = int(n)
            routes[str(route)] = _RouteCounts(
                int(data["requests"]),
                {str(name): int(n) for name, n in data["status"].items()},
                int(data["bytes"]),
                latency,
            )
        return _Process(
            pid=int(snapshot["pid"]),
            role=role,
            generation=int(snapshot["generation"]),
            started_at=float(snapshot["started_at"]),
            seq=int(snapshot["seq"]),
            requests=int(snapshot["requests"]),
            in_flight=int(snapshot["in_flight"]),
            connections=int(snapshot["connections"]),
            routes=routes,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed stats snapshot: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class _Mark:
    """A series' running totals at one tick."""

    t: float
    requests: int
    status: dict[str, int]
    latency: Histogram


class _Series:
    """Running totals of one route (or of everything), with its points and recent marks."""

    __slots__ = ("bytes", "latency", "marks", "points", "requests", "status")

    def __init__(self, last_tick: float | None) -> None:
        self.requests = 0
        self.status: dict[str, int] = {}
        self.bytes = 0
        self.latency = Histogram()
        self.points: deque[StatsPoint] = deque(maxlen=HISTORY_SECONDS)
        self.marks: deque[_Mark] = deque(maxlen=int(LATENCY_WINDOW) + 1)
        if last_tick is not None:  # appeared between ticks: it had nothing at the last one
            self.marks.append(_Mark(last_tick, 0, {}, Histogram()))

    def add(self, growth: _RouteCounts) -> None:
        self.requests += growth.requests
        self.bytes += growth.bytes
        for name, n in growth.status.items():
            self.status[name] = self.status.get(name, 0) + n
        counts = self.latency.counts
        for index, n in growth.latency.items():
            counts[index] += n

    def tick(self, now: float, open_connections: int | None) -> None:
        mark = _Mark(now, self.requests, dict(self.status), self.latency.copy())
        if self.marks:
            self.points.append(_point(self.marks[-1], mark, open_connections))
        self.marks.append(mark)

    def window(self, seconds: float) -> tuple[_Mark, _Mark] | None:
        """The marks bounding the last ``seconds`` up to the latest tick (shorter if history is)."""
        if len(self.marks) < 2:
            return None
        last = self.marks[-1]
        start = next((m for m in reversed(self.marks) if last.t - m.t >= seconds - TICK_SLACK), self.marks[0])
        return start, last

    def rates(self) -> tuple[float, float, float | None, float | None]:
        """(req/s, 5xx share) over RATE_WINDOW and (p50 ms, p99 ms) over LATENCY_WINDOW."""
        req_per_s = error_rate = 0.0
        p50 = p99 = None
        window = self.window(RATE_WINDOW)
        if window is not None:
            start, end = window
            requests = end.requests - start.requests
            req_per_s = requests / (end.t - start.t)
            errors = end.status.get("5xx", 0) - start.status.get("5xx", 0)
            error_rate = errors / requests if requests else 0.0
        window = self.window(LATENCY_WINDOW)
        if window is not None:
            start, end = window
            p50, p99 = _percentiles_ms(end.latency.minus(start.latency))
        return req_per_s, error_rate, p50, p99

    def recent(self, seconds: float) -> list[StatsPoint]:
        if not self.points:
            return []
        last = self.points[-1].t
        return [p for p in self.points if last - p.t < seconds - TICK_SLACK]


def _percentiles_ms(latency: Histogram) -> tuple[float | None, float | None]:
    if not latency.count:
        return None, None
    return latency.percentile(50) * 1000, latency.percentile(99) * 1000


def _point(start: _Mark, end: _Mark, open_connections: int | None) -> StatsPoint:
    requests = end.requests - start.requests
    p50, p99 = _percentiles_ms(end.latency.minus(start.latency))
    return StatsPoint(
        t=end.t,
        requests=requests,
        req_per_s=requests / (end.t - start.t),
        p50_ms=p50,
        p99_ms=p99,
        status=_diff(end.status, start.status),
        open_connections=open_connections,
    )


class StatsAggregator:
    def __init__(self, *, remember_exited: int = REMEMBER_EXITED) -> None:
        self._live: dict[int, _Process] = {}
        self._exited: OrderedDict[int, _Process] = OrderedDict()
        self._remember_exited = remember_exited
        self._overall = _Series(None)
        self._routes: dict[str, _Series] = {}
        self._last_tick: float | None = None

    # -- input ----------------------------------------------------------------------------

    def update(self, snapshot: Mapping[str, Any]) -> None:
        """Take a serving process's cumulative snapshot. Raises ValueError (changing nothing) if malformed."""
        new = _parse_snapshot(snapshot)
        live = self._live.get(new.pid)
        if live is not None and not live.same_process(new):
            self.process_exited(new.pid)  # the pid was reused: its previous owner is gone
            live = None
        if live is not None:
            if new.seq > live.seq:
                self._apply(new, live)
                self._live[new.pid] = new
            return
        exited = self._exited.get(new.pid)
        if exited is not None and exited.same_process(new):
            if new.seq > exited.seq:  # a final snapshot that arrived after the exit
                self._apply(new, exited)
                self._exited[new.pid] = new
            return
        self._exited.pop(new.pid, None)
        self._apply(new, None)
        self._live[new.pid] = new

    def _apply(self, new: _Process, old: _Process | None) -> None:
        for route, growth in new.growth_since(old):
            self._overall.add(growth)
            series = self._routes.get(route)
            if series is None:
                series = self._routes[route] = _Series(self._last_tick)
            series.add(growth)

    def process_exited(self, pid: int) -> None:
        """Stop tracking a serving process that exited; everything it reported stays in the totals."""
        process = self._live.pop(pid, None)
        if process is None:
            return
        self._exited[pid] = process
        while len(self._exited) > self._remember_exited:
            self._exited.popitem(last=False)

    def tick(self, now: float) -> None:
        """Mark the running totals (call about once a second); a clock that did not advance is ignored."""
        if self._last_tick is not None and now <= self._last_tick:
            return
        self._overall.tick(now, sum(p.connections for p in self._live.values()))
        for series in self._routes.values():
            series.tick(now, None)
        self._last_tick = now

    # -- queries --------------------------------------------------------------------------

    def totals(self) -> Totals:
        overall = self._overall
        rejected = self._routes.get(REJECTED_ROUTE)
        req_per_s, error_rate, p50, p99 = overall.rates()
        return Totals(
            requests=overall.requests,
            rejected=rejected.requests if rejected is not None else 0,
            bytes=overall.bytes,
            status=dict(overall.status),
            in_flight=sum(p.in_flight for p in self._live.values()),
            connections=sum(p.connections for p in self._live.values()),
            processes=len(self._live),
            req_per_s=req_per_s,
            error_rate=error_rate,
            p50_ms=p50,
            p99_ms=p99,
        )

    def apps(self, app_rows: Iterable[Mapping[str, Any]]) -> list[AppInfo]:
        """The app table's rows (route, spec, source, state, error) with each route's numbers added."""
        infos = []
        for row in app_rows:
            series = self._routes.get(row["route"])
            requests, (req_per_s, error_rate, p50, p99) = (
                (series.requests, series.rates()) if series is not None else (0, (0.0, 0.0, None, None))
            )
            infos.append(
                AppInfo(
                    route=row["route"],
                    spec=row["spec"],
                    source=row["source"],
                    state=row["state"],
                    error=row.get("error"),
                    requests=requests,
                    req_per_s=req_per_s,
                    error_rate=error_rate,
                    p50_ms=p50,
                    p99_ms=p99,
                )
            )
        return infos

    def series(self, route: str | None, seconds: int) -> list[StatsPoint]:
        """The last ``seconds`` of points for one route, or for the whole server when ``route`` is None."""
        series = self._overall if route is None else self._routes.get(route)
        return series.recent(seconds) if series is not None else []

    def processes(
        self,
        *,
        usage: Mapping[int, ProcessUsage] | None = None,
        states: Mapping[int, str] | None = None,
    ) -> list[ProcessInfo]:
        """Live serving processes by generation then pid, with CPU/RSS and a state the caller may know."""
        usage = usage or {}
        states = states or {}
        return [
            ProcessInfo(
                pid=p.pid,
                role=p.role,
                generation=p.generation,
                state=states.get(p.pid, "serving"),
                requests=p.requests,
                in_flight=p.in_flight,
                connections=p.connections,
                cpu_percent=usage.get(p.pid, (None, None))[0],
                rss_bytes=usage.get(p.pid, (None, None))[1],
                started_at=p.started_at,
            )
            for p in sorted(self._live.values(), key=lambda p: (p.generation, p.pid))
        ]

    def route_counts(self) -> dict[str, int]:
        """Exact cumulative requests per app route, from every process that ever reported."""
        return {route: s.requests for route, s in self._routes.items() if route != REJECTED_ROUTE}
