"""Pushed events: one ``Subscriptions`` per admin connection, one feed per ``subscribe`` request.

Every event has the same envelope, ``{"type": "event", "event": <topic's event name>, "sub": <id>,
"data": ..., "dropped": N}``, so a new topic (deploy progress, later) is one ``Topic`` row in ``TOPICS``:
its parameters and a function that starts the feed and returns how to stop it.

Memory stays bounded however slow a client reads: the connection says, through ``emit``, whether it can take
an event now (its write buffer is below the limit).  When it cannot, the event is left out and counted, and
the next event that goes out carries the count in ``dropped``, so a log follower knows it has a gap.

- ``stats``: every ``interval`` seconds, a snapshot of ``status``, ``processes`` and ``apps`` -- what a
  dashboard redraws.
- ``log``: each new record the backend reports that matches the subscription's filter.
- ``deploy``: each progress event of the deploy pipeline (``{name, stage, message, progress}``), of one
  app when ``name`` is given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qactuar.admin.backend import AdminBackend, LogRecord
from qactuar.admin.logfilter import LogFilter, level_number
from qactuar.admin.params import ArgumentError, Param, parse_args
from qactuar.admin.protocol import Event

server_log = logging.getLogger("qt_server")

Emit = Callable[[Event], bool]  # send an event; False when the connection cannot take one now
Stop = Callable[[], None]


def _level_problem(value: str) -> str | None:
    return None if level_number(value) is not None else "must be a level name like INFO or WARNING"


FILTER_PARAMS = (
    Param("route", (str,), None),
    Param("level", (str,), None, _level_problem),
    Param("logger", (str,), None),
    Param("text", (str,), None),
)


def log_filter(args: Mapping[str, Any]) -> LogFilter:
    """The LogFilter of arguments already checked against FILTER_PARAMS."""
    return LogFilter(
        route=args["route"],
        level=(level_number(args["level"]) or 0) if args["level"] else 0,
        logger=args["logger"],
        text=args["text"],
    )


class Feed:
    """One subscription's outlet: pushes its events and counts the ones the connection could not take."""

    def __init__(self, event: str, sub: int, emit: Emit) -> None:
        self.event = event
        self.sub = sub
        self._emit = emit
        self._dropped = 0

    def push(self, data: Any) -> None:
        if self._emit(Event(self.event, self.sub, data, self._dropped)):
            self._dropped = 0
        else:
            self._dropped += 1


Start = Callable[[AdminBackend, Feed, Mapping[str, Any], float], Stop]


@dataclass(frozen=True, slots=True)
class Topic:
    event: str  # the envelope's "event" name
    params: tuple[Param, ...]
    start: Start  # (backend, feed, checked args, stats interval) -> stop


def _snapshot(backend: AdminBackend) -> dict[str, Any]:
    return {
        "time": time.time(),
        "status": backend.status(),
        "processes": backend.processes(),
        "apps": backend.apps(),
    }


async def _tick(backend: AdminBackend, feed: Feed, interval: float) -> None:
    failing = False
    while True:
        await asyncio.sleep(interval)
        try:
            snapshot = _snapshot(backend)
        except Exception:
            if not failing:  # once per run of failures, not once a second
                server_log.exception("Admin stats subscription: the backend failed; retrying every tick")
            failing = True
            continue
        failing = False
        feed.push(snapshot)


def _start_stats(backend: AdminBackend, feed: Feed, args: Mapping[str, Any], interval: float) -> Stop:
    task = asyncio.get_running_loop().create_task(_tick(backend, feed, interval))

    def stop() -> None:
        task.cancel()

    return stop


def _start_log(backend: AdminBackend, feed: Feed, args: Mapping[str, Any], interval: float) -> Stop:
    wanted = log_filter(args)

    def on_record(record: LogRecord) -> None:
        if wanted.matches(record):
            feed.push(record)

    return backend.subscribe_logs(on_record)


def _start_deploy(backend: AdminBackend, feed: Feed, args: Mapping[str, Any], interval: float) -> Stop:
    name = args["name"]

    def on_event(event: dict[str, Any]) -> None:
        if name is None or event.get("name") == name:
            feed.push(event)

    return backend.subscribe_deploy(on_event)


TOPICS: Mapping[str, Topic] = {
    "stats": Topic("stats", (), _start_stats),
    "log": Topic("log", FILTER_PARAMS, _start_log),
    "deploy": Topic("deploy", (Param("name", (str,), None),), _start_deploy),
}


class Subscriptions:
    """The live subscriptions of one connection."""

    def __init__(self, backend: AdminBackend, emit: Emit, *, limit: int, stats_interval: float) -> None:
        self._backend = backend
        self._emit = emit
        self._limit = limit
        self._interval = stats_interval
        self._stops: dict[int, Stop] = {}
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._stops)

    def add(self, topic_name: str, args: Mapping[str, Any]) -> int:
        """Start a feed and return its subscription id; ArgumentError for a bad topic or arguments."""
        topic = TOPICS.get(topic_name)
        if topic is None:
            raise ArgumentError(f"subscribe: unknown topic {topic_name!r:.60}; topics: {', '.join(TOPICS)}")
        if len(self._stops) >= self._limit:
            raise ArgumentError(f"subscribe: this connection already has {self._limit} subscriptions")
        checked = parse_args(f"subscribe {topic_name}", topic.params, args)
        sub, self._next_id = self._next_id, self._next_id + 1
        self._stops[sub] = topic.start(
            self._backend, Feed(topic.event, sub, self._emit), checked, self._interval
        )
        return sub

    def remove(self, sub: int) -> None:
        stop = self._stops.pop(sub, None)
        if stop is None:
            raise ArgumentError(f"unsubscribe: no subscription {sub} on this connection")
        stop()

    def close(self) -> None:
        stops, self._stops = self._stops, {}
        for stop in stops.values():
            stop()
