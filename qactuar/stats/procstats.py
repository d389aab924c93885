"""CPU and memory of serving processes, for the console's process table (only with GATHER_PROC_STATS).

psutil's ``cpu_percent(None)`` is the CPU used since the previous call on the same ``Process`` object, so
the objects are cached per pid between samples; the first sample of a pid therefore reports CPU as None
(unknown) rather than psutil's meaningless 0.0. Like ``top``, the figure is per core: a process busy on two
cores shows 200.

A pid that vanished between listing and sampling (or is a zombie awaiting its reap) is left out of the
result and forgotten; a pid the master may not inspect reports (None, None). ``Process.is_running`` compares
creation times, so a recycled pid gets a fresh object instead of another process's CPU history. Pids not
asked for are dropped from the cache, so it never outgrows the live process table.

Cost per pid per call: one ``oneshot`` read of /proc/<pid>/stat and /proc/<pid>/statm on Linux.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psutil

from qactuar.stats.models import ProcessUsage


class ProcessSampler:
    def __init__(self) -> None:
        self._processes: dict[int, Any] = {}  # pid -> psutil.Process

    def sample(self, pids: Iterable[int]) -> dict[int, ProcessUsage]:
        wanted = set(pids)
        for pid in self._processes.keys() - wanted:
            del self._processes[pid]
        return {pid: usage for pid in sorted(wanted) if (usage := self._sample_one(pid)) is not None}

    def _sample_one(self, pid: int) -> ProcessUsage | None:
        process: Any = self._processes.get(pid)
        try:
            fresh = process is None or not process.is_running()
            if fresh:
                process = self._processes[pid] = psutil.Process(pid)
            with process.oneshot():
                cpu = process.cpu_percent(None)
                rss = process.memory_info().rss
        except psutil.NoSuchProcess:  # includes ZombieProcess
            self._processes.pop(pid, None)
            return None
        except psutil.AccessDenied:
            return None, None
        return (None if fresh else float(cpu)), int(rss)
