"""A table in shared memory where each serving process posts its state and heartbeat.

The generation creates it before forking (an anonymous shared mapping survives fork), so a
worker writes its own slot and the generation reads all of them without any syscall or
message: a heartbeat that stops moving means the worker's event loop is blocked.
Times are ``time.monotonic()``, which is the same clock in every process.
"""

from __future__ import annotations

import mmap
import time
from enum import IntEnum

FIELDS = 3  # per slot, 8 bytes each: pid, state (integers), last heartbeat (a double)


class SlotState(IntEnum):
    FREE = 0
    BOOTING = 1
    READY = 2
    RECYCLE = 3  # asks the generation for a replacement (MAX_REQUESTS reached)
    DRAINING = 4


class SlotTable:
    """Each field is written and read as one aligned 8-byte store or load (a memoryview item), never
    with ``struct.pack_into``: that clears the bytes before it packs, so a reader in another process
    could see a heartbeat of 0.0 -- a healthy process taken as silent since its fork."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._mem = mmap.mmap(-1, max(1, capacity) * FIELDS * 8)
        self._ints = memoryview(self._mem).cast("q")
        self._floats = memoryview(self._mem).cast("d")

    def claim(self, index: int, pid: int) -> None:
        base = index * FIELDS
        self._floats[base + 2] = time.monotonic()
        self._ints[base] = pid
        self._ints[base + 1] = SlotState.BOOTING

    def set_pid(self, index: int, pid: int) -> None:
        """Record the pid of a claimed slot without touching the state the child may have set already."""
        self._ints[index * FIELDS] = pid

    def release(self, index: int) -> None:
        base = index * FIELDS
        self._ints[base + 1] = SlotState.FREE
        self._ints[base] = 0
        self._floats[base + 2] = 0.0

    def beat(self, index: int) -> None:
        self._floats[index * FIELDS + 2] = time.monotonic()

    def set_state(self, index: int, state: SlotState) -> None:
        self._ints[index * FIELDS + 1] = int(state)
        self.beat(index)

    def read(self, index: int) -> tuple[int, SlotState, float]:
        base = index * FIELDS
        return self._ints[base], SlotState(self._ints[base + 1]), self._floats[base + 2]

    def free_index(self) -> int | None:
        for index in range(self.capacity):
            if self._ints[index * FIELDS + 1] == SlotState.FREE:
                return index
        return None
