"""Plain-text views of admin replies for the ``qactuar`` CLI: aligned tables and key/value blocks.

Everything shown comes from the server and much of it from apps and requests (routes, error messages, log
lines), so every value goes through ``escape_log_text``: a control sequence in an app's error cannot move
the cursor, recolour the terminal or forge another line.  A traceback keeps its line breaks by escaping each
line on its own.  Long error texts are cut to their first line in tables; ``--json`` has them whole.

Column names follow the shared stats models (``qactuar.stats.models``: ``ProcessInfo``, ``AppInfo``,
``Totals``); a missing value shows as ``-``, and fields a table does not know are left to ``--json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qactuar.logs import escape_log_text

MISSING = "-"
ERROR_WIDTH = 60


def _plain(value: Any) -> str:
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict | list):
        return escape_log_text(json.dumps(value, ensure_ascii=False))
    return escape_log_text(str(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(fmt: Callable[[float], str]) -> Callable[[Any], str]:
    """``fmt`` for numbers; anything else (None, a string from a newer server) shown plainly."""

    def show(value: Any) -> str:
        return fmt(value) if _is_number(value) else _plain(value)

    return show


def duration(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h07m``, ``2d04h``."""
    whole = int(max(0, seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def size(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    exponent = 0
    while n >= 1024 and exponent < len(units) - 1:
        n /= 1024
        exponent += 1
    return f"{n:.0f} B" if exponent == 0 else f"{n:.1f} {units[exponent]}"


_duration = _number(duration)
_size = _number(size)
_percent = _number(lambda value: f"{value:.1f}%")
_fraction = _number(lambda value: f"{value * 100:.1f}%")
_ms = _number(lambda value: f"{value:.1f} ms")
_count = _number(lambda value: f"{value:g}" if isinstance(value, float) else str(value))


def _first_line(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        return MISSING
    line = escape_log_text(text.splitlines()[0])
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 3] + "..."


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str
    show: Callable[[Any], str] = _plain
    right: bool = False  # numbers align right


def table(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]) -> str:
    """An aligned table with a header row; the last column is not padded."""
    cells = [[column.header for column in columns]]
    cells += [[column.show(row.get(column.key)) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        padded = [
            cell.rjust(width) if column.right else cell.ljust(width)
            for cell, width, column in zip(line, widths, columns, strict=True)
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            pairs += _flatten(value, name + ".")
        else:
            pairs.append((name, value))
    return pairs


_KEY_FORMATS: Mapping[str, Callable[[Any], str]] = {
    "uptime": _duration,
    "error_rate": _fraction,
    "p50_ms": _ms,
    "p99_ms": _ms,
    "bytes": _size,
}


def _list_or_plain(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return ", ".join(map(_plain, value)) or MISSING
    return _plain(value)


def key_values(data: Mapping[str, Any]) -> str:
    """``key  value`` lines, nested objects flattened to ``outer.inner``."""
    pairs = _flatten(data)
    if not pairs:
        return "ok"
    width = max(len(escape_log_text(key)) for key, _ in pairs)
    lines = []
    for key, value in pairs:
        show = _KEY_FORMATS.get(key.rpartition(".")[2], _list_or_plain)
        lines.append(f"{escape_log_text(key).ljust(width)}  {show(value)}")
    return "\n".join(lines)


def render_status(data: Any) -> str:
    return key_values(data) if isinstance(data, Mapping) else _plain(data)


def render_processes(rows: Any, *, now: float | None = None) -> str:
    moment = time.time() if now is None else now
    rows = [
        {**row, "age": moment - row["started_at"]} if _is_number(row.get("started_at")) else row
        for row in rows
    ]
    return table(
        [
            Column("pid", "PID", right=True),
            Column("role", "ROLE"),
            Column("generation", "GEN", right=True),
            Column("state", "STATE"),
            Column("requests", "REQUESTS", _count, right=True),
            Column("in_flight", "IN FLIGHT", _count, right=True),
            Column("cpu_percent", "CPU", _percent, right=True),
            Column("rss_bytes", "RSS", _size, right=True),
            Column("age", "AGE", _duration, right=True),
        ],
        rows,
    )


def render_apps(rows: Any) -> str:
    return table(
        [
            Column("route", "ROUTE"),
            Column("spec", "APP"),
            Column("source", "SOURCE"),
            Column("state", "STATE"),
            Column("requests", "REQUESTS", _count, right=True),
            Column("req_per_s", "REQ/S", _number(lambda value: f"{value:.1f}"), right=True),
            Column("error_rate", "ERRORS", _fraction, right=True),
            Column("p50_ms", "P50", _ms, right=True),
            Column("p99_ms", "P99", _ms, right=True),
            Column("error", "ERROR", _first_line),
        ],
        rows,
    )


def render_config(data: Any) -> str:
    if not isinstance(data, Mapping):
        return _plain(data)
    width = max((len(escape_log_text(str(key))) for key in data), default=0)
    return "\n".join(
        f"{escape_log_text(str(key)).ljust(width)}  {escape_log_text(json.dumps(value, ensure_ascii=False))}"
        for key, value in data.items()
    )


def _clock(value: Any) -> str:
    if not _is_number(value):
        return _plain(value)
    seconds = float(value)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{int(seconds % 1 * 1000):03d}"


def render_log(record: Mapping[str, Any]) -> str:
    """One log record: ``time level logger [route] (request id) message``, then its traceback indented."""
    parts = [_clock(record.get("time")), _plain(record.get("level")).ljust(8), _plain(record.get("logger"))]
    if record.get("route"):
        parts.append(f"[{_plain(record['route'])}]")
    if record.get("request_id") not in (None, "", "-"):
        parts.append(f"({_plain(record['request_id'])})")
    parts.append(escape_log_text(str(record.get("message", ""))))
    lines = [" ".join(parts)]
    exc_text = record.get("exc_text")
    if exc_text:
        lines += ["    " + escape_log_text(line) for line in str(exc_text).splitlines()]
    return "\n".join(lines)


def render_logs(records: Any) -> str:
    return "\n".join(render_log(record) for record in records)


def render_result(data: Any) -> str:
    """What a mutating command reports: its details, or just "ok"."""
    return key_values(data) if isinstance(data, Mapping) else ("ok" if data is None else _plain(data))


RENDERERS: Mapping[str, Callable[[Any], str]] = {
    "status": render_status,
    "processes": render_processes,
    "apps": render_apps,
    "config": render_config,
    "logs": render_logs,
    "reload": render_result,
    "scale": render_result,
    "kill": render_result,
    "set": render_result,
}
