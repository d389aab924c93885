"""What a forked serving process (pre-fork worker, post-fork child) sets up after fork.

Contract (gunicorn's, made explicit): objects are built in the generation before the fork;
``after_fork()`` runs first thing in the child and touches process-wide state only there:
signal handlers, the random seed, faulthandler (so SIGABRT from the heartbeat check prints
where the event loop was stuck), and a fresh event loop.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import random
import signal
import time
from collections.abc import Iterable

from qactuar.config import Config
from qactuar.loops import new_event_loop
from qactuar.process.channel import ChannelWriter
from qactuar.process.logforward import ForwardHandler
from qactuar.process.slots import SlotState, SlotTable
from qactuar.server import Server
from qactuar.stats.models import Role
from qactuar.stats.recorder import StatsRecorder

server_log = logging.getLogger("qt_server")

PROCESS_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
)

STATS_INTERVAL = 0.5


def reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    for sig in PROCESS_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def fork_with_signals_blocked(signals: Iterable[int]) -> int:
    """``os.fork()`` with ``signals`` blocked across it; the parent's mask is restored at once.

    A signal sent to a just-forked child before it has replaced the handlers it inherited would
    run the parent's handler there (queued in the child's copy of the parent's queue: lost, and a
    SIGTERM lost that way leaves a process behind).  Blocked, it waits until the child unblocks
    it (``signal.pthread_sigmask(signal.SIG_UNBLOCK, ...)``) once its own handling is in place.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return pid


class ServingRuntime:
    """Heartbeat, stats snapshots and log flushing for one serving process."""

    def __init__(
        self,
        config: Config,
        channel: ChannelWriter,
        slots: SlotTable,
        slot: int,
        *,
        role: Role,
        generation: int,
    ) -> None:
        self.config = config
        self.channel = channel
        self.slots = slots
        self.slot = slot
        self.role = role
        self.generation = generation
        self.recorder: StatsRecorder | None = None
        self.server: Server | None = None

    def after_fork(self) -> asyncio.AbstractEventLoop:
        reset_signals()
        random.seed()
        faulthandler.enable()
        self.recorder = StatsRecorder(role=self.role, generation=self.generation)
        loop = new_event_loop(self.config.USE_UVLOOP)
        asyncio.set_event_loop(loop)
        return loop

    def mark(self, state: SlotState) -> None:
        self.slots.set_state(self.slot, state)

    async def tick_forever(self) -> None:
        """Beat the heartbeat, flush forwarded logs and send stats while the loop is alive."""
        interval = min(STATS_INTERVAL, self.config.WORKER_TIMEOUT / 4)
        last_stats = 0.0
        while True:
            self.slots.beat(self.slot)
            ForwardHandler.flush_all()
            now = time.monotonic()
            if now - last_stats >= STATS_INTERVAL:
                last_stats = now
                self.send_stats(force=False)
            await asyncio.sleep(interval)

    def send_stats(self, *, force: bool) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        server = self.server
        if server is not None:
            recorder.connections(len(server.connections))
            recorder.in_flight(server.active_requests)
        if force or recorder.changed_since_last_snapshot:
            self.channel.send("stats", recorder.snapshot())

    def finish(self) -> None:
        """Last words before exit: final stats and any buffered log records."""
        self.send_stats(force=True)
        ForwardHandler.flush_all()
