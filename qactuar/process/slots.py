"""A table in shared memory where each serving process posts its state and heartbeat.

The generation creates it before forking (an anonymous shared mapping survives fork), so a
worker writes its own slot and the generation reads all of them without any syscall or
message: a heartbeat that stops moving means the worker's event loop is blocked.
Times are ``time.monotonic()``, which is the same clock in every process.
"""

from __future__ import annotations

import mmap
import struct
import time
from enum import IntEnum

_SLOT = struct.Struct("qqd")  # pid, state, last heartbeat


class SlotState(IntEnum):
    FREE = 0
    BOOTING = 1
    READY = 2
    RECYCLE = 3  # asks the generation for a replacement (MAX_REQUESTS reached)
    DRAINING = 4


class SlotTable:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._mem = mmap.mmap(-1, max(1, capacity) * _SLOT.size)

    def claim(self, index: int, pid: int) -> None:
        _SLOT.pack_into(self._mem, index * _SLOT.size, pid, SlotState.BOOTING, time.monotonic())

    def set_pid(self, index: int, pid: int) -> None:
        """Record the pid of a claimed slot without touching the state the child may have set already."""
        struct.pack_into("q", self._mem, index * _SLOT.size, pid)

    def release(self, index: int) -> None:
        _SLOT.pack_into(self._mem, index * _SLOT.size, 0, SlotState.FREE, 0.0)

    def beat(self, index: int) -> None:
        struct.pack_into("d", self._mem, index * _SLOT.size + 16, time.monotonic())

    def set_state(self, index: int, state: SlotState) -> None:
        struct.pack_into("q", self._mem, index * _SLOT.size + 8, int(state))
        self.beat(index)

    def read(self, index: int) -> tuple[int, SlotState, float]:
        pid, state, beat = _SLOT.unpack_from(self._mem, index * _SLOT.size)
        return pid, SlotState(state), beat

    def free_index(self) -> int | None:
        for index in range(self.capacity):
            if self.read(index)[1] is SlotState.FREE:
                return index
        return None
