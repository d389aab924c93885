"""Which log records an admin client asked for: one small value both sides of the backend use.

The admin server builds a ``LogFilter`` from a ``logs`` or ``subscribe`` request and hands it to the backend
(``AdminBackend.logs``) or applies it to each pushed record itself.  Keeping the matching rule here, next to
the fields, means "last N records" and "follow" can never disagree about what a filter means.

Records are the plain dicts of the master's log ring: ``{"seq", "time", "level", "logger", "message",
"pid", "request_id", "route", "exc_text"}``.  ``level`` may be a name ("WARNING") or a number.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_LEVELS = logging.getLevelNamesMapping()


def level_number(level: object) -> int | None:
    """The numeric level of a level name or number, None when it is neither."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str):
        return _LEVELS.get(level.upper())
    return None


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Every given condition must hold; the defaults match everything."""

    route: str | None = None  # the app route the record was logged for
    level: int = 0  # this level and above
    logger: str | None = None  # this logger and its children ("qt_access" also matches "qt_access.x")
    text: str | None = None  # in the message or the traceback, ignoring case

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.route is not None and record.get("route") != self.route:
            return False
        if self.level and (level_number(record.get("level")) or 0) < self.level:
            return False
        if self.logger is not None:
            name = record.get("logger")
            if not isinstance(name, str) or not (name == self.logger or name.startswith(self.logger + ".")):
                return False
        if self.text is not None:
            needle = self.text.casefold()
            haystack = f"{record.get('message') or ''}\n{record.get('exc_text') or ''}".casefold()
            return needle in haystack
        return True
