"""Recent log records as plain dicts: how they travel from serving processes, and the master's ring of them.

Serving processes turn each record into a JSON-able dict (``record_to_dict``) and send it up; the master
appends it to its ``LogRing`` (what ``qactuar logs`` and the console show and follow) and re-emits it through
its own configured loggers (``dict_to_record``), so files and formats are configured in one place. The dict::

    {"seq": 812, "time": 1718000000.25, "level": "ERROR", "levelno": 40, "logger": "qt_exception",
     "message": "...", "pid": 4242, "request_id": "5f0c...", "route": "/api", "exc_text": "Traceback ..."}

``seq`` is assigned by the ring (records from many processes share one order); ``route`` and ``exc_text``
are present only when known. ``levelno`` travels beside the name so a level an app registered only in its
own process still filters correctly. Message and traceback are each cut to ``MAX_TEXT`` characters: one
runaway record must not fill a datagram or the ring.

The ring may be fed from any thread (a logging handler runs in whichever thread logged), so appending and
reading take a lock; subscribers are called outside it, in the appending thread, and must hand work to their
own loop (``call_soon_threadsafe``) rather than block. They get the stored dict itself: read it, do not
change it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

DEFAULT_CAPACITY = 5000
MAX_TEXT = 16 * 1024
FORWARDED = "qactuar_forwarded"
"""Attribute set on records rebuilt by ``dict_to_record``, so a handler feeding the ring can skip them."""

LogDict = dict[str, Any]
Subscriber = Callable[[LogDict], None]


def level_number(name: str) -> int:
    """The number of a level name (``"warning"``, ``"ERROR"``, or logging's own ``"Level 15"``)."""
    number = logging.getLevelNamesMapping().get(name.upper())
    if number is not None:
        return number
    prefix, _, digits = name.partition(" ")
    if prefix == "Level" and digits.isdigit():
        return int(digits)
    raise ValueError(f"unknown log level {name!r}")


def _truncate(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}… [{len(text) - MAX_TEXT} more characters]"


def record_to_dict(record: logging.LogRecord) -> LogDict:
    """A JSON-able copy of a record with its message formatted and its traceback, if any, as text."""
    message = getattr(record, "message", None)  # set when a Formatter has formatted it already
    if message is None:
        try:
            message = record.getMessage()
        except Exception:  # a mismatched format string must not lose the record
            message = f"{record.msg!r} % {record.args!r}"
    data: LogDict = {
        "time": record.created,
        "level": record.levelname,
        "levelno": record.levelno,
        "logger": record.name,
        "message": _truncate(message),
        "pid": record.process,
        "request_id": str(getattr(record, "request_id", "-")),
    }
    route = getattr(record, "route", None)
    if route is not None:
        data["route"] = str(route)
    exc_text = record.exc_text
    if not exc_text and record.exc_info and record.exc_info[0] is not None:
        exc_text = logging.Formatter().formatException(record.exc_info)
    if record.stack_info:
        exc_text = f"{exc_text}\n{record.stack_info}" if exc_text else record.stack_info
    if exc_text:
        data["exc_text"] = _truncate(exc_text)
    return data


def dict_to_record(data: Mapping[str, Any]) -> logging.LogRecord:
    """Rebuild a record from ``record_to_dict``'s form with the original time, pid, request id and traceback.

    The message is already formatted, so it becomes ``msg`` with no ``args`` (a ``%`` in it stays as it is),
    and the traceback becomes ``exc_text``, which ``logging.Formatter`` appends as it would its own.
    """
    created = float(data["time"])
    level = str(data["level"])
    fields: dict[str, Any] = {
        "name": str(data["logger"]),
        "msg": str(data["message"]),
        "args": None,
        "levelname": level,
        "levelno": int(data.get("levelno") or level_number(level)),
        "created": created,
        "msecs": (created - int(created)) * 1000,
        "process": data.get("pid"),
        "request_id": str(data.get("request_id", "-")),
        "exc_text": data.get("exc_text"),
        FORWARDED: True,
    }
    if "route" in data:
        fields["route"] = data["route"]
    return logging.makeLogRecord(fields)


class _Filter:
    """The ``tail``/``since`` filters; all given ones must match."""

    __slots__ = ("level", "logger", "route", "text")

    def __init__(self, level: str | None, logger: str | None, route: str | None, text: str | None) -> None:
        self.level = level_number(level) if level is not None else None
        self.logger = logger
        self.route = route
        self.text = text.casefold() if text else None

    def __call__(self, record: LogDict) -> bool:
        if self.level is not None and _levelno(record) < self.level:
            return False
        if self.logger is not None:
            name = record["logger"]
            if name != self.logger and not name.startswith(self.logger + "."):
                return False
        if self.route is not None and record.get("route") != self.route:
            return False
        if self.text is not None:
            haystack = f"{record['message']}\n{record.get('exc_text', '')}".casefold()
            if self.text not in haystack:
                return False
        return True


def _levelno(record: LogDict) -> int:
    levelno = record.get("levelno")
    if isinstance(levelno, int):
        return levelno
    try:
        return level_number(str(record.get("level", "")))
    except ValueError:
        return logging.NOTSET


class LogRing:
    """The last ``capacity`` records, each numbered by a ``seq`` that only grows."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._records: deque[LogDict] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    @property
    def last_seq(self) -> int:
        """The seq of the newest record (0 before the first): where a new follower starts."""
        return self._seq

    def append(self, record: Mapping[str, Any]) -> LogDict:
        """Store a copy of ``record`` with the next seq, tell subscribers, and return the stored dict."""
        with self._lock:
            self._seq += 1
            stored = {**record, "seq": self._seq}
            self._records.append(stored)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(stored)
            except Exception:  # a broken follower must not break logging; it stops following
                self.unsubscribe(callback)
        return stored

    def subscribe(self, callback: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Subscriber) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored (it may already have been dropped)."""
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def tail(
        self,
        n: int,
        *,
        level: str | None = None,
        logger: str | None = None,
        route: str | None = None,
        text: str | None = None,
    ) -> list[LogDict]:
        """The newest ``n`` records that match, oldest first.

        ``level`` is a minimum level name; ``logger`` matches that logger and its children; ``route`` is
        exact; ``text`` is a case-insensitive substring of the message or traceback.
        """
        wanted = _Filter(level, logger, route, text)
        with self._lock:
            records = list(self._records)
        found: list[LogDict] = []
        for record in reversed(records):
            if len(found) >= n:
                break
            if wanted(record):
                found.append(record)
        found.reverse()
        return found

    def since(
        self,
        seq: int,
        *,
        level: str | None = None,
        logger: str | None = None,
        route: str | None = None,
        text: str | None = None,
    ) -> list[LogDict]:
        """Matching records newer than ``seq``, oldest first: what a follower has not seen yet.

        A follower that fell further behind than the ring holds gets what is left; the gap shows as a jump
        in ``seq``.
        """
        wanted = _Filter(level, logger, route, text)
        newer: list[LogDict] = []
        with self._lock:
            for record in reversed(self._records):  # walk back from the newest: followers ask for few
                if record["seq"] <= seq:
                    break
                newer.append(record)
        newer.reverse()
        return [record for record in newer if wanted(record)]

    def __len__(self) -> int:
        return len(self._records)
