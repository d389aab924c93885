"""Log records of a generation and its serving processes travel to the master.

The master is where the ``LOGS`` configuration is applied (files, formats) and where the
admin socket's ring of recent records lives, so serving processes do not write Qactuar's
own log lines themselves: their ``qt_*`` loggers get a ``ForwardHandler`` that batches
records into datagrams on the generation channel.  App loggers are left alone.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any, ClassVar

from qactuar.logs import SERVER_LOGGERS
from qactuar.process.channel import ChannelWriter
from qactuar.stats.logring import FORWARDED, LogRing, record_to_dict

BATCH = 64
MAX_DELAY = 0.05


class ForwardHandler(logging.Handler):
    _instances: ClassVar[weakref.WeakSet[ForwardHandler]] = weakref.WeakSet()

    def __init__(self, channel: ChannelWriter) -> None:
        super().__init__(logging.DEBUG)
        self.channel = channel
        self.buffer: list[dict[str, Any]] = []
        self.first_buffered = 0.0
        ForwardHandler._instances.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not self.buffer:
                self.first_buffered = time.monotonic()
            self.buffer.append(record_to_dict(record))
            if (
                len(self.buffer) >= BATCH
                or record.levelno >= logging.WARNING
                or time.monotonic() - self.first_buffered > MAX_DELAY
            ):
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        if self.buffer:
            records, self.buffer = self.buffer, []
            self.channel.send("logs", {"records": records})

    @classmethod
    def flush_all(cls) -> None:
        for handler in list(cls._instances):
            handler.flush()


class RingHandler(logging.Handler):
    """Records logged in this process also go to the admin socket's ring (output is unchanged)."""

    def __init__(self, ring: LogRing) -> None:
        super().__init__(logging.DEBUG)
        self.ring = ring
        for name in SERVER_LOGGERS:
            logging.getLogger(name).addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, FORWARDED, False):
            return  # the master put it in the ring when it arrived
        try:
            self.ring.append(record_to_dict(record))
        except Exception:
            self.handleError(record)

    def detach(self) -> None:
        for name in SERVER_LOGGERS:
            logging.getLogger(name).removeHandler(self)


def forward_logs(channel: ChannelWriter, level_names: dict[str, int]) -> ForwardHandler:
    """Point Qactuar's loggers at the master. ``level_names`` keeps each logger's level."""
    handler = ForwardHandler(channel)
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.disabled = False
        logger.setLevel(level_names.get(name, logging.INFO))
    return handler


def effective_levels() -> dict[str, int]:
    """The level each Qactuar logger has under the master's LOGS configuration.

    A logger disabled by the configuration (ACCESS_LOG off) gets a level above CRITICAL,
    so the serving process skips building those records at all.
    """
    levels = {}
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        levels[name] = logging.CRITICAL + 1 if logger.disabled else logger.getEffectiveLevel()
    return levels
