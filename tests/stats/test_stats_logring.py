"""LogRing filters, bound, followers and subscribers; records to dicts and back."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from qactuar.stats.logring import FORWARDED, MAX_TEXT, LogRing, dict_to_record, level_number, record_to_dict


def entry(message: str, level: str = "INFO", logger: str = "qt_server", **extra: Any) -> dict[str, Any]:
    return {
        "time": 1.0,
        "level": level,
        "levelno": logging.getLevelNamesMapping()[level],
        "logger": logger,
        "message": message,
        "pid": 1,
        "request_id": "-",
        **extra,
    }


@pytest.fixture
def ring() -> LogRing:
    ring = LogRing()
    ring.append(entry("server started"))
    ring.append(entry("GET / 200", logger="qt_access", route="/"))
    ring.append(entry("slow query", "WARNING", logger="app.db", route="/api"))
    ring.append(
        entry("boom", "ERROR", logger="qt_exception", route="/api", exc_text="Traceback\nKeyError: 'X'")
    )
    ring.append(entry("GET /api 500", logger="qt_access", route="/api"))
    ring.append(entry("child spawned", "DEBUG", logger="qt_child"))
    return ring


def messages(records: list[dict[str, Any]]) -> list[str]:
    return [r["message"] for r in records]


def test_append_numbers_and_copies(ring: LogRing) -> None:
    original = entry("hello")
    stored = ring.append(original)
    assert stored["seq"] == ring.last_seq == 7
    assert "seq" not in original


def test_tail_filters(ring: LogRing) -> None:
    assert messages(ring.tail(2)) == ["GET /api 500", "child spawned"]
    assert messages(ring.tail(10, level="warning")) == ["slow query", "boom"]
    assert messages(ring.tail(10, logger="app")) == ["slow query"]  # "app" and its children
    assert messages(ring.tail(10, logger="qt")) == []  # not a prefix match on qt_*
    assert messages(ring.tail(10, route="/api")) == ["slow query", "boom", "GET /api 500"]
    assert messages(ring.tail(10, text="KEYERROR")) == ["boom"]  # case-insensitive, traceback included
    assert messages(ring.tail(1, route="/api", level="INFO", text="get")) == ["GET /api 500"]
    with pytest.raises(ValueError, match="unknown log level"):
        ring.tail(10, level="LOUD")


def test_since_serves_followers(ring: LogRing) -> None:
    assert messages(ring.since(4)) == ["GET /api 500", "child spawned"]
    assert ring.since(ring.last_seq) == []
    assert messages(ring.since(0, level="ERROR")) == ["boom"]


def test_ring_is_bounded() -> None:
    ring = LogRing(capacity=10)
    for i in range(25):
        ring.append(entry(f"line {i}"))
    assert len(ring) == 10
    assert [r["seq"] for r in ring.tail(100)] == list(range(16, 26))
    assert ring.since(3)[0]["seq"] == 16  # a follower that fell behind sees the gap


def test_subscribers_get_each_record_and_a_failing_one_is_dropped(ring: LogRing) -> None:
    seen: list[int] = []
    calls = 0

    def broken(record: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("follower went away")

    ring.subscribe(broken)
    ring.subscribe(lambda r: seen.append(r["seq"]))
    ring.append(entry("one"))
    ring.append(entry("two"))
    assert seen == [7, 8]
    assert calls == 1
    ring.unsubscribe(broken)  # already gone: ignored


def test_unsubscribe_stops_delivery(ring: LogRing) -> None:
    seen: list[dict[str, Any]] = []
    ring.subscribe(seen.append)
    ring.append(entry("one"))
    ring.unsubscribe(seen.append)
    ring.append(entry("two"))
    assert messages(seen) == ["one"]


def make_record(msg: str, *args: object, exc_info: Any = None, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("qt_exception", logging.ERROR, "f.py", 1, msg, args, exc_info)
    record.__dict__.update(extra)  # what logging does with extra=
    return record


def test_record_to_dict_formats_message_and_traceback() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        record = make_record("failed %s %d", "GET", 3, exc_info=sys.exc_info(), request_id="r1", route="/x")
    data = record_to_dict(record)
    assert json.loads(json.dumps(data)) == data
    assert data["message"] == "failed GET 3"
    assert (data["level"], data["levelno"], data["logger"]) == ("ERROR", 40, "qt_exception")
    assert (data["request_id"], data["route"], data["pid"], data["time"]) == (
        "r1",
        "/x",
        record.process,
        record.created,
    )
    assert data["exc_text"].startswith("Traceback") and "ZeroDivisionError" in data["exc_text"]


def test_record_to_dict_optional_keys_and_bad_args() -> None:
    data = record_to_dict(make_record("%d items", "not a number"))
    assert "not a number" in data["message"]  # the record is kept, not lost to a formatting error
    assert data["request_id"] == "-"
    assert "route" not in data and "exc_text" not in data
    assert "exc_text" not in record_to_dict(make_record("no exception here", exc_info=(None, None, None)))


def test_record_to_dict_truncates_long_text() -> None:
    data = record_to_dict(make_record("x" * (MAX_TEXT + 100)))
    assert data["message"].startswith("x" * MAX_TEXT)
    assert data["message"].endswith("[100 more characters]")


@pytest.fixture
def captured() -> Iterator[list[str]]:
    lines: list[str] = []
    logger = logging.getLogger("test_stats_logring.reemit")
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(process)d [%(request_id)s] %(msecs)03d %(message)s"))
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.propagate = False
    yield lines
    logger.removeHandler(handler)


def test_dict_to_record_reemits_the_original(captured: list[str]) -> None:
    original = entry(
        "100% done",
        "ERROR",
        logger="test_stats_logring.reemit",
        pid=4242,
        request_id="abc",
        route="/api",
        exc_text="Traceback (most recent call last):\nValueError: bad",
        time=1700000000.25,
    )
    record = dict_to_record(original)
    assert (record.created, record.levelno, record.process, record.getMessage()) == (
        1700000000.25,
        logging.ERROR,
        4242,
        "100% done",
    )
    assert getattr(record, FORWARDED) is True
    assert record.route == "/api"  # type: ignore[attr-defined]
    logging.getLogger(original["logger"]).handle(record)
    assert captured == ["4242 [abc] 250 100% done\nTraceback (most recent call last):\nValueError: bad"]
    assert record_to_dict(record) == original


def test_level_number() -> None:
    assert level_number("warning") == logging.WARNING
    assert level_number("Level 15") == 15
    with pytest.raises(ValueError, match="unknown"):
        level_number("chatty")
