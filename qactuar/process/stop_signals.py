"""SIGTERM and SIGINT for async mode: a stop that is bounded whatever the apps do.

A handler added with ``loop.add_signal_handler`` runs on the event loop, so an app that blocks
the loop (a ``time.sleep``, a busy loop) would hold the stop off for as long as it blocks.
These are plain Python handlers instead: Python runs them in the main thread even while the
loop is blocked (a blocking sleep is interrupted for them).  Each asks the loop to stop
(thread-safely) and, on the first signal, arms a watchdog thread that ends the process if
the drain has not finished within GRACEFUL_TIMEOUT plus ``KILL_GRACE`` -- what a pre-fork
generation does to a blocked worker with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from qactuar.process.exits import EXIT_OK
from qactuar.process.supervise import KILL_GRACE

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_stop: Callable[[signal.Signals], None], graceful: float
    ) -> None:
        self.loop = loop
        self.on_stop = on_stop
        self.graceful = graceful
        self.watchdog: threading.Timer | None = None
        self.previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self.previous[sig] = signal.signal(sig, self._received)

    def uninstall(self) -> None:
        """Back to the handlers there were before; a watchdog not needed any more is disarmed."""
        if self.watchdog is not None:
            self.watchdog.cancel()
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _received(self, signum: int, frame: FrameType | None) -> None:
        self.loop.call_soon_threadsafe(self.on_stop, signal.Signals(signum))
        if self.watchdog is None:
            self.watchdog = threading.Timer(self.graceful + KILL_GRACE, _give_up, args=(self.graceful,))
            self.watchdog.daemon = True
            self.watchdog.start()


def _give_up(graceful: float) -> None:
    # Not through logging: the blocked main thread may hold a handler's lock.
    os.write(
        2,
        b"Qactuar did not stop within GRACEFUL_TIMEOUT (%.1fs): an app blocks the event loop; "
        b"exiting now\n" % graceful,
    )
    os._exit(EXIT_OK)
