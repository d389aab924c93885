"""The CLI's plain-text views: alignment, units, and hostile text made harmless."""

from __future__ import annotations

from qactuar.admin.render import Column, duration, key_values, render_log, render_processes, size, table


def test_units() -> None:
    assert [duration(s) for s in (0, 45, 725, 3725, 190_000)] == ["0s", "45s", "12m05s", "1h02m", "2d04h"]
    assert [size(n) for n in (512, 2048, 52_428_800, 3 * 1024**4)] == [
        "512 B",
        "2.0 KiB",
        "50.0 MiB",
        "3.0 TiB",
    ]


def test_table_aligns_and_escapes() -> None:
    rows = [{"name": "a\x1b[2Jb", "n": 5}, {"name": "long name", "n": 12345}]
    assert table([Column("name", "NAME"), Column("n", "N", right=True)], rows).splitlines() == [
        "NAME           N",
        "a\\x1b[2Jb      5",
        "long name  12345",
    ]


def test_missing_values_show_as_a_dash() -> None:
    assert table([Column("x", "X"), Column("y", "Y")], [{"x": None}]).splitlines() == ["X  Y", "-  -"]


def test_processes_age_from_started_at() -> None:
    rows = [{"pid": 7, "role": "worker", "started_at": 1000.0, "cpu_percent": None, "rss_bytes": 1536}]
    assert render_processes(rows, now=1065.0).splitlines()[1].split() == [
        "7", "worker", "-", "-", "-", "-", "-", "1.5", "KiB", "1m05s"
    ]  # fmt: skip


def test_log_line_with_traceback_and_control_characters() -> None:
    record = {
        "time": 0.5,
        "level": "ERROR",
        "logger": "qt_exception",
        "route": "/api",
        "request_id": "abc",
        "message": "bad\r\nfake line\x1b]0;title\x07",
        "exc_text": 'Traceback (most recent call last):\n  File "x"\nValueError: \x9b31m',
    }
    first, *rest = render_log(record).splitlines()
    assert first.endswith("ERROR    qt_exception [/api] (abc) bad\\x0d\\x0afake line\\x1b]0;title\\x07")
    assert rest == ["    Traceback (most recent call last):", '      File "x"', "    ValueError: \\x9b31m"]


def test_key_values_flatten() -> None:
    shown = key_values({"a": 1, "b": {"c": [1, 2], "uptime": 61}})
    assert shown.splitlines() == ["a         1", "b.c       1, 2", "b.uptime  1m01s"]
    assert key_values({}) == "ok"
