"""Request statistics and log plumbing: pure logic, no sockets and no processes.

- ``recorder``: counters kept inside every serving process (the per-response hot path) and their snapshots.
- ``aggregate``: the master folds snapshots from all processes into totals, per-app numbers and time series.
- ``models``: the plain dataclasses the admin socket sends and the TUI imports.
- ``histogram``: the fixed-bucket latency histogram both sides share.
- ``procstats``: CPU/RSS of serving processes via psutil (imported only when GATHER_PROC_STATS is on).
- ``logring``: log records as dicts, forwarded to the master and kept in a bounded ring for followers.

Nothing is re-exported here, so importing ``qactuar.stats.models`` never pulls in psutil.
"""
