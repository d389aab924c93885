"""Signal handling for supervisor loops that are not asyncio loops (generations).

Signal handlers only enqueue (nothing else is safe in a handler); the loop wakes on the
wakeup fd, drains the queue and dispatches.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType

from qactuar.process.slots import SlotState, SlotTable

server_log = logging.getLogger("qt_server")

KILL_GRACE = 2.0  # seconds between SIGABRT (or a fast stop) and SIGKILL


class SignalQueue:
    def __init__(self) -> None:
        self._queue: collections.deque[int] = collections.deque()
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def install(self, signals: Iterable[int]) -> None:
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for sig in signals:
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self._queue.append(signum)

    def wait(self, timeout: float, also: socket.socket | None = None) -> bool:
        """Sleep until a signal arrives, ``also`` is readable, or ``timeout`` passes.

        Returns True when ``also`` is readable.
        """
        if self._queue:
            return False
        watched = [self._reader] if also is None else [self._reader, also]
        readable: list[socket.socket] = []
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select(watched, [], [], timeout)
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._reader.recv(4096):
                pass
        return also is not None and also in readable

    def drain(self) -> list[int]:
        """The signals received so far; also empties the wakeup socket, which a ``select()`` on this
        queue watches (left full, it would make every later ``select()`` return at once)."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._reader.recv(4096):
                pass
        signals = []
        while self._queue:
            signals.append(self._queue.popleft())
        return signals

    def fileno(self) -> int:
        return self._reader.fileno()


@dataclass
class Child:
    """A serving process the generation forked: a pre-fork worker or a post-fork child."""

    pid: int
    slot: int
    started: float
    aborted_at: float = 0.0
    retiring: bool = False
    replacement_started: bool = False


def reap() -> list[tuple[int, int]]:
    """Every exited child as (pid, waitpid status), without blocking."""
    exited: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return exited
        if pid == 0:
            return exited
        exited.append((pid, status))


def check_heartbeats(
    children: Iterable[Child], slots: SlotTable, timeout: float, boot_allowance: float
) -> None:
    """SIGABRT a child whose heartbeat is older than ``timeout``; SIGKILL it if it lingers.

    A child still booting (lifespan startup) gets ``boot_allowance`` more seconds.
    """
    now = time.monotonic()
    for child in children:
        if child.aborted_at:
            if now - child.aborted_at > KILL_GRACE:
                kill_quietly(child.pid, signal.SIGKILL)
            continue
        _, state, beat = slots.read(child.slot)
        allowance = boot_allowance if state is SlotState.BOOTING else 0.0
        if now - max(beat, child.started) > timeout + allowance:
            server_log.error(
                "Process %d missed its heartbeat for %.1fs (WORKER_TIMEOUT %.1fs): aborting it",
                child.pid,
                now - beat,
                timeout,
            )
            child.aborted_at = now
            kill_quietly(child.pid, signal.SIGABRT)


def kill_quietly(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
