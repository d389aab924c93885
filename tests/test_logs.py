"""Logging: the default dictConfig, LOG_LEVEL and ACCESS_LOG, RecordDefaults, and escape_log_text."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from qactuar.config import Config
from qactuar.logs import (
    SERVER_LOGGERS,
    RecordDefaults,
    configure_logging,
    default_log_config,
    escape_log_text,
)


@pytest.fixture(autouse=True)
def restore_loggers() -> Iterator[None]:
    """configure_logging changes process-wide loggers; put the server's back as they were."""
    saved = {
        name: (logger.level, logger.disabled, logger.propagate, list(logger.handlers))
        for name in SERVER_LOGGERS
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (level, disabled, propagate, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.disabled, logger.propagate, logger.handlers = disabled, propagate, handlers


def test_default_config_keeps_the_seed_setup() -> None:
    logs = default_log_config()
    assert logs["version"] == 1
    assert logs["disable_existing_loggers"] is False
    assert logs["formatters"]["standard"] == {"format": "{asctime} {levelname} {message}", "style": "{"}
    assert logs["formatters"]["access"] == {
        "format": "{asctime} ACCESS {message}",
        "style": "{",
        "class": "qactuar.logs.CachedTimeFormatter",
    }
    handlers = logs["handlers"]
    assert (handlers["console"]["level"], handlers["console"]["stream"]) == ("DEBUG", "ext://sys.stdout")
    assert (handlers["access"]["level"], handlers["access"]["stream"]) == ("INFO", "ext://sys.stdout")
    assert (handlers["exception"]["level"], handlers["exception"]["stream"]) == ("ERROR", "ext://sys.stderr")
    assert set(logs["loggers"]) == set(SERVER_LOGGERS)
    assert logs["loggers"]["qt_access"] == {"handlers": ["access"], "level": "INFO"}
    assert logs["loggers"]["Qactuar"]["handlers"] == ["console"]


def test_default_config_is_fresh_each_call() -> None:
    first = default_log_config()
    first["loggers"].clear()
    assert default_log_config()["loggers"]


def test_configure_logging_applies_the_default() -> None:
    config = Config()
    configure_logging(config)
    configure_logging(config)  # twice: dictConfig must not have consumed the Config's LOGS
    assert logging.getLogger("qt_server").level == logging.DEBUG
    assert logging.getLogger("qt_exception").level == logging.ERROR
    assert logging.getLogger("qt_access").isEnabledFor(logging.INFO)
    assert default_log_config() == config.LOGS


def test_log_level_applies_to_every_server_logger() -> None:
    configure_logging(Config(LOG_LEVEL="warning"))
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        assert logger.level == logging.WARNING
        assert not logger.isEnabledFor(logging.INFO)
        assert logger.isEnabledFor(logging.WARNING)


def test_access_log_off_disables_the_access_logger() -> None:
    configure_logging(Config(ACCESS_LOG=False))
    assert not logging.getLogger("qt_access").isEnabledFor(logging.INFO)
    assert not logging.getLogger("qt_access").isEnabledFor(logging.CRITICAL)
    assert logging.getLogger("qt_server").isEnabledFor(logging.INFO)
    configure_logging(Config(ACCESS_LOG=True))
    assert logging.getLogger("qt_access").isEnabledFor(logging.INFO)


def _exception_handler_output(logger_name: str, **extra: object) -> str:
    """Log an error through the default exception handler, writing to a string."""
    configure_logging(Config())
    [handler] = logging.getLogger("qt_exception").handlers
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    logger = logging.getLogger(logger_name)
    if logger_name != "qt_exception":
        logger.addHandler(handler)
    try:
        logger.error("boom", extra=extra)
    finally:
        if logger_name != "qt_exception":
            logger.removeHandler(handler)
    return stream.getvalue()


def test_exception_lines_carry_the_request_id() -> None:
    assert "ERROR [req-42] boom" in _exception_handler_output("qt_exception", request_id="req-42")


@pytest.mark.parametrize("logger_name", ["qt_exception", "some.library"])
def test_missing_request_id_does_not_crash_formatting(logger_name: str) -> None:
    assert "ERROR [-] boom" in _exception_handler_output(logger_name)


def test_record_defaults_fills_only_missing_attributes() -> None:
    formatter = logging.Formatter("{request_id} {client} {message}", style="{")
    defaults = RecordDefaults(client="?")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "hi", None, None)
    assert defaults.filter(record)
    assert formatter.format(record) == "- ? hi"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "hi", None, None)
    record.request_id = "abc"
    defaults.filter(record)
    assert formatter.format(record) == "abc ? hi"


def test_without_record_defaults_the_format_would_crash() -> None:
    """The failure RecordDefaults exists for (the old Qactuar's): a format naming a missing field."""
    formatter = logging.Formatter("{request_id} {message}", style="{")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "hi", None, None)
    with pytest.raises(ValueError, match="request_id"):
        formatter.format(record)


# --- escape_log_text ---------------------------------------------------------------------------------------


def test_plain_ascii_is_returned_as_is() -> None:
    text = "GET /api/items?id=7&name=x HTTP/1.1 ~!@#$%^&*()_+{}|:<>?"
    assert escape_log_text(text) is text


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("/a\r\n127.0.0.1 GET /forged 200", "/a\\x0d\\x0a127.0.0.1 GET /forged 200"),
        ("a\x00b", "a\\x00b"),
        ("tab\there", "tab\\x09here"),
        ("del\x7f", "del\\x7f"),
        ("c1 \x85 \x9b \x80 \x9f", "c1 \\x85 \\x9b \\x80 \\x9f"),
        ("back\\slash", "back\\\\slash"),
        ("\\x1b", "\\\\x1b"),
        ("line\u2028sep", "line\\u2028sep"),
        ("rtl\u202eoverride", "rtl\\u202eoverride"),
    ],
)
def test_control_characters_are_escaped(raw: str, escaped: str) -> None:
    assert escape_log_text(raw) == escaped


@pytest.mark.parametrize("text", ["caf\u00e9", "/\u65e5\u672c", "\U0001f600 smile", "\u00c5ngstr\u00f6m"])
def test_printable_non_ascii_is_kept(text: str) -> None:
    assert escape_log_text(text) == text


def test_mixed_text() -> None:
    assert escape_log_text("caf\u00e9\x1b[2J\\") == "caf\u00e9\\x1b[2J\\\\"


def test_escaped_text_is_one_printable_line() -> None:
    every_char = "".join(map(chr, range(0x2100)))
    escaped = escape_log_text(every_char)
    assert escaped.isprintable()
    assert "\n" not in escaped
    assert "\x1b" not in escaped
