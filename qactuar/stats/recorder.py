"""Per-process request counters: what every serving process records and periodically reports.

The server calls ``record`` once per finished response, on its event loop, so this is the hot path of the
whole stats package: one dict lookup, two list increments, one integer add and one ``bisect``. Totals,
request counts and "did anything change" are all derived at snapshot time (once a second) instead of being
maintained per request. Nothing here locks: recording and snapshotting both happen on the loop thread.

Snapshots are cumulative since the process started, so the master loses nothing when one is dropped or
arrives late: the next one supersedes it. They are plain JSON-able dicts::

    {"pid": 4242, "role": "worker", "generation": 3, "started_at": 1718000000.5, "seq": 17,
     "requests": 150, "in_flight": 2, "connections": 5,
     "routes": {"/api": {"requests": 100, "status": {"2xx": 97, "5xx": 3}, "bytes": 81234,
                         "latency": [[120, 4], [121, 30], ...]}}}

``status`` names the classes ``1xx``..``5xx`` that occurred, and ``other`` for anything outside 100-599;
``latency`` is the histogram's compact form (see ``histogram``). Route ``""`` holds requests the server
rejected itself before any app saw them.

Construct the recorder in the process that serves (after fork): it captures ``os.getpid()`` and the start
time once.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_right
from typing import Any

from qactuar.stats.histogram import EDGES, Histogram
from qactuar.stats.models import Role

# Index = status // 100; slots 0 and 6-9 (and anything out of range) are reported as "other".
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_OTHER_SLOT = 0


def status_counts(slots: list[int]) -> dict[str, int]:
    """The snapshot form of a route's status slots: named classes with non-zero counts."""
    named = {name: slots[i] for i, name in enumerate(STATUS_CLASSES, start=1) if slots[i]}
    other = sum(slots) - sum(named.values())
    if other:
        named["other"] = other
    return named


class _Route:
    """One route's counters; ``buckets`` is the histogram's own list, held here to save a lookup per call."""

    __slots__ = ("buckets", "bytes", "latency", "status")

    def __init__(self) -> None:
        self.status = [0] * 10
        self.bytes = 0
        self.latency = Histogram()
        self.buckets = self.latency.counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": sum(self.status),
            "status": status_counts(self.status),
            "bytes": self.bytes,
            "latency": self.latency.to_pairs(),
        }


class StatsRecorder:
    def __init__(self, role: Role, generation: int) -> None:
        self.pid = os.getpid()
        self.role = role
        self.generation = generation
        self.started_at = time.time()
        self._routes: dict[str, _Route] = {}
        self._connections = 0
        self._in_flight = 0
        self._seq = 0
        self._reported: tuple[int, int, int] | None = None  # (requests, in_flight, connections) last sent

    def record(self, route: str, status: int, nbytes: int, seconds: float) -> None:
        """Count one finished response; the server's ``on_response`` hook."""
        try:
            counters = self._routes[route]
        except KeyError:
            counters = self._routes[route] = _Route()
        try:
            counters.status[status // 100] += 1
        except IndexError:
            counters.status[_OTHER_SLOT] += 1
        counters.bytes += nbytes
        counters.buckets[bisect_right(EDGES, seconds)] += 1

    def connections(self, open_now: int) -> None:
        """Set the open-connections gauge (the caller reads it off its server just before a snapshot)."""
        self._connections = open_now

    def in_flight(self, n: int) -> None:
        """Set the requests-in-progress gauge."""
        self._in_flight = n

    def _state(self) -> tuple[int, int, int]:
        return sum(sum(r.status) for r in self._routes.values()), self._in_flight, self._connections

    @property
    def changed_since_last_snapshot(self) -> bool:
        """Whether a snapshot taken now would differ in anything but ``seq`` from the last one taken.

        True before the first snapshot, so a new process announces itself even before serving anything.
        """
        return self._state() != self._reported

    def snapshot(self) -> dict[str, Any]:
        """The cumulative JSON-able snapshot (format in the module docstring); each call gets a new seq."""
        self._seq += 1
        self._reported = requests, in_flight, connections = self._state()
        return {
            "pid": self.pid,
            "role": self.role,
            "generation": self.generation,
            "started_at": self.started_at,
            "seq": self._seq,
            "requests": requests,
            "in_flight": in_flight,
            "connections": connections,
            "routes": {route: counters.to_dict() for route, counters in self._routes.items()},
        }
