"""Samples the memory and file descriptors of a process tree, in a process of its own.

``python tree_sampler.py PID INTERVAL`` prints one JSON line per sample to stdout until it is
terminated (or PID is gone): seconds since start, processes, summed RSS, USS and open fds.
It runs apart from the test process because the load generator there holds the GIL most of the
time: a sampler thread waited ~5 ms for the GIL at each of its hundreds of /proc reads, so one
sample of 100 post-fork children took over a second and its readings stalled the load.
"""

from __future__ import annotations

import json
import signal
import sys
import time

import psutil


def sample(root: psutil.Process) -> dict[str, int]:
    rss = uss = fds = count = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {"processes": 0, "rss": 0, "uss": 0, "fds": 0}
    for process in processes:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            memory = process.memory_full_info()
            fds += process.num_fds()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        rss += memory.rss
        uss += memory.uss
        count += 1
    return {"processes": count, "rss": rss, "uss": uss, "fds": fds}


def main() -> int:
    pid, interval = int(sys.argv[1]), float(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    root = psutil.Process(pid)
    while root.is_running():
        begun = time.monotonic()
        reading = sample(root)
        print(json.dumps({"at": round(begun, 3), **reading}), flush=True)
        time.sleep(max(0.0, interval - (time.monotonic() - begun)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
