"""Logging: the seed's default dictConfig, applying a Config to it, and making hostile text safe to log.

The four seed loggers keep their names: ``qt_server`` (the master), ``qt_child`` (workers and per-connection
children), ``qt_access`` (one line per request) and ``qt_exception`` (errors, with the request id);
``Qactuar`` carries start-up and configuration messages. They propagate to the root logger as in the seed,
so an application that configures root logging sees them too.
"""

from __future__ import annotations

import copy
import logging
import logging.config
import re
import time
import weakref
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

if TYPE_CHECKING:
    from qactuar.config import Config

SERVER_LOGGERS = ("qt_server", "qt_child", "qt_access", "qt_exception", "Qactuar")


class RecordDefaults(logging.Filter):
    """Give a record the extra attributes our formatters name when whoever logged it did not pass them.

    The exception formatter shows ``[{request_id}]``; a record logged without ``extra={"request_id": ...}``
    (by a library, or by code outside a request) would make formatting raise. Qactuar 0.2 defaulted it in a
    Logger subclass installed globally, so loggers created before the server failed with "Formatting field
    not found in record: 'request_id'". A handler filter runs before the formatter for every logger using the
    handler, whenever that logger was created. Declared in dictConfig as
    ``{"()": "qactuar.logs.RecordDefaults"}``; further keys given there add defaults (``"client": "-"``).
    """

    def __init__(self, **defaults: object) -> None:
        super().__init__()
        self.defaults: dict[str, object] = {"request_id": "-", **defaults}

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in self.defaults.items():
            record.__dict__.setdefault(name, value)
        return True


class BatchingHandler(logging.Handler):
    """A handler that hands records on in batches instead of one system call per record.

    It keeps what ``batch_item`` makes of each record and passes the list to ``send_batch`` once
    ``MAX_BATCH`` wait, the oldest has waited ``MAX_DELAY`` seconds, a record of WARNING or above
    arrives, or ``flush()`` runs; ``flush_all()`` flushes every live handler of the class it is
    called on (a periodic timer calls it, so the last records of a quiet moment are not held).
    """

    MAX_BATCH = 256
    MAX_DELAY = 0.1
    _instances: ClassVar[weakref.WeakSet[BatchingHandler]] = weakref.WeakSet()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch: list[Any] = []
        self._first_at = 0.0
        BatchingHandler._instances.add(self)

    def batch_item(self, record: logging.LogRecord) -> Any:
        raise NotImplementedError

    def send_batch(self, batch: list[Any]) -> None:
        raise NotImplementedError

    def emit(self, record: logging.LogRecord) -> None:
        try:
            batch = self._batch
            if not batch:
                self._first_at = time.monotonic()
            batch.append(self.batch_item(record))
            if (
                len(batch) >= self.MAX_BATCH
                or record.levelno >= logging.WARNING
                or time.monotonic() - self._first_at > self.MAX_DELAY
            ):
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            if self._batch:
                batch, self._batch = self._batch, []
                self.send_batch(batch)
            super().flush()

    @classmethod
    def flush_all(cls) -> None:
        for handler in list(BatchingHandler._instances):
            if isinstance(handler, cls):
                handler.flush()


class BufferedStreamHandler(BatchingHandler, logging.StreamHandler[TextIO]):
    """The default handler of the access log: a StreamHandler that writes its lines in batches.

    A plain StreamHandler writes and flushes once per record, a system call per request. The
    server's deadline sweep calls ``flush_all()``, so a quiet server's last line is at most about
    a second late; ``logging.shutdown()`` flushes at exit.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)

    def batch_item(self, record: logging.LogRecord) -> str:
        return self.format(record) + self.terminator

    def send_batch(self, batch: list[str]) -> None:
        self.stream.write("".join(batch))


class CachedTimeFormatter(logging.Formatter):
    """A Formatter that renders ``asctime`` once per second (plus the milliseconds), not per record:
    ``time.strftime`` is a good part of the cost of an access line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second = -1
        self._rendered = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._rendered = time.strftime(self.default_time_format, self.converter(record.created))
        return f"{self._rendered},{int(record.msecs):03d}"  # as the default_msec_format


def _stream_handler(level: str, formatter: str, stream: str) -> dict[str, Any]:
    return {"class": "logging.StreamHandler", "level": level, "formatter": formatter, "stream": stream}


def default_log_config() -> dict[str, Any]:
    """The seed's default dictConfig, with the request id in exception lines (a fresh dict each call)."""
    exception_handler = _stream_handler("ERROR", "exception", "ext://sys.stderr")
    exception_handler["filters"] = ["record_defaults"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"record_defaults": {"()": "qactuar.logs.RecordDefaults"}},
        "formatters": {
            "standard": {"format": "{asctime} {levelname} {message}", "style": "{"},
            "access": {
                "format": "{asctime} ACCESS {message}",
                "style": "{",
                "class": "qactuar.logs.CachedTimeFormatter",  # the seed's format, its time cached
            },
            "exception": {"format": "{asctime} {levelname} [{request_id}] {message}", "style": "{"},
        },
        "handlers": {
            "console": _stream_handler("DEBUG", "standard", "ext://sys.stdout"),
            "access": {
                **_stream_handler("INFO", "access", "ext://sys.stdout"),
                "class": "qactuar.logs.BufferedStreamHandler",
            },
            "exception": exception_handler,
        },
        "loggers": {
            "qt_server": {"handlers": ["console"], "level": "DEBUG"},
            "qt_child": {"handlers": ["console"], "level": "DEBUG"},
            "qt_access": {"handlers": ["access"], "level": "INFO"},
            "qt_exception": {"handlers": ["exception"], "level": "ERROR"},
            "Qactuar": {"handlers": ["console"], "level": "INFO"},
        },
    }


def configure_logging(config: Config) -> None:
    """Apply LOGS, then LOG_LEVEL to the server's loggers, then ACCESS_LOG to ``qt_access``.

    With ACCESS_LOG off the access logger is disabled, so ``isEnabledFor(INFO)`` is False and the server can
    skip building access lines at all.
    """
    logging.config.dictConfig(copy.deepcopy(config.LOGS))  # dictConfig consumes parts of what it is given
    if config.LOG_LEVEL:
        for name in SERVER_LOGGERS:
            logging.getLogger(name).setLevel(config.LOG_LEVEL.upper())
    logging.getLogger("qt_access").disabled = not config.ACCESS_LOG


# Anything but printable ASCII other than backslash; only these characters can need escaping.
_NOT_PLAIN = re.compile(r"[^\x20-\x5b\x5d-\x7e]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    if char.isprintable():  # printable non-ASCII is kept as it is
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_log_text(text: str) -> str:
    """Make request/app text safe to log: nothing in it can move the cursor, recolour or split the line.

    Control characters (C0 including TAB, CR, LF and ESC; DEL; C1 ``\\x80``-``\\x9f``) become ``\\xNN`` and a
    backslash becomes ``\\\\``, so an escape in the output is always ours. Other non-printable code points
    (line/paragraph separators, bidirectional overrides, no-break spaces) become ``\\uNNNN`` for the same
    reason. Printable non-ASCII is kept. Plain printable ASCII, the usual case, is returned unchanged after
    one regex scan.
    """
    if _NOT_PLAIN.search(text) is None:
        return text
    return _NOT_PLAIN.sub(_escape, text)
