"""Log records of a generation and its serving processes travel to the master.

The master is where the ``LOGS`` configuration is applied (files, formats) and where the
admin socket's ring of recent records lives, so serving processes do not write Qactuar's
own log lines themselves: their ``qt_*`` loggers get a ``ForwardHandler`` that batches
records into datagrams on the generation channel.  App loggers are left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from qactuar.logs import SERVER_LOGGERS, BatchingHandler
from qactuar.process.channel import ChannelWriter
from qactuar.stats.logring import FORWARDED, LogRing, record_to_dict


class ForwardHandler(BatchingHandler):
    """Batches records into datagrams on the generation channel (for the master to emit)."""

    MAX_BATCH = 64
    MAX_DELAY = 0.05

    def __init__(self, channel: ChannelWriter) -> None:
        super().__init__(logging.DEBUG)
        self.channel = channel

    def batch_item(self, record: logging.LogRecord) -> dict[str, Any]:
        return record_to_dict(record)

    def send_batch(self, batch: list[dict[str, Any]]) -> None:
        self.channel.send("logs", {"records": batch})


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
