"""Turning hostile strings into plain, safe text, and numbers into short human labels.

Everything the console shows that came from outside -- request paths in access lines, app names and
tracebacks, git URLs and messages, log records -- may contain Rich/Textual markup (``[bold red]``,
``[/]``) or terminal control sequences (``\\x1b[31m``).  Shown with markup on, the first can restyle the
screen or crash it (``MarkupError``); written to the terminal, the second can move the cursor or recolour
everything after it.  So every such string goes through ``clean()`` and is then shown as *plain* text: a
``rich.text.Text`` built from the string (never ``Text.from_markup``), or a Textual ``Content`` built the
same way.  ``clean`` makes every code point Python calls unprintable (C0, DEL, C1, ESC, bidirectional
overrides, line separators...) visible as ``\\xNN``/``\\uNNNN``, so ``\\x1b[31m`` reads as exactly that.

The label helpers keep the tables narrow and the same everywhere (``1h 02m``, ``12.4 MiB``, ``3.1 ms``).
None of this imports Textual, so it is tested on its own.
"""

from __future__ import annotations

import time

ELLIPSIS = "…"
SIZE_UNITS = ("B", "KiB", "MiB", "GiB")
NOTHING = "—"  # shown for "no value" (no requests in the window, unknown CPU), never confused with 0


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(text: str, *, multiline: bool = False) -> str:
    """``text`` with every unprintable code point escaped; newlines kept when ``multiline``.

    Tabs become four spaces (they would otherwise be escaped), ``\\r\\n`` becomes ``\\n``.
    """
    if text.isprintable():
        return text
    if multiline:
        text = text.replace("\r\n", "\n")
    text = text.replace("\t", "    ")
    return "".join(
        char if char.isprintable() or (multiline and char == "\n") else _escape(char) for char in text
    )


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells' worth of characters, with an ellipsis when it was longer."""
    return text if len(text) <= width else text[: max(0, width - 1)] + ELLIPSIS


def duration(seconds: float) -> str:
    """``45s``, ``12m 03s``, ``3h 04m``, ``2d 03h``: two units at most."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def size(count: int | None) -> str:
    """Bytes as ``512 B``, ``12.4 KiB``, ``1.2 GiB``; the dash when unknown."""
    if count is None:
        return NOTHING
    value, unit = float(count), 0
    while value >= 1024 and unit < len(SIZE_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{count} B" if unit == 0 else f"{value:.1f} {SIZE_UNITS[unit]}"


def millis(value: float | None) -> str:
    """A latency: ``0.42 ms``, ``12.3 ms``, ``1,204 ms``; the dash when there were no requests."""
    if value is None:
        return NOTHING
    if value < 10:
        return f"{value:.2f} ms"
    return f"{value:.1f} ms" if value < 1000 else f"{value:,.0f} ms"


def rate(value: float) -> str:
    """Requests per second, ``0.0/s`` to ``12,345/s``."""
    return f"{value:.1f}/s" if value < 1000 else f"{value:,.0f}/s"


def share(value: float) -> str:
    """A 0-1 share as a percentage."""
    return f"{value * 100:.1f}%"


def percent(value: float | None) -> str:
    """A CPU percentage; the dash when unknown."""
    return NOTHING if value is None else f"{value:.1f}%"


def clock_time(epoch: float) -> str:
    """``HH:MM:SS`` in local time, for log lines."""
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def date_time(epoch: float) -> str:
    """``YYYY-MM-DD HH:MM`` in local time, for when something was deployed."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def count(value: int) -> str:
    """An integer with thousands separators."""
    return f"{value:,}"


def generation_label(generation: int | None) -> str:
    """``generation 3``, or what async mode has instead."""
    return "one process, no generations" if generation is None else f"generation {generation}"
