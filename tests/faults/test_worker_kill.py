"""kill -9 of the process serving a request, while other processes serve requests of their own.

tests/process/test_prefork.py covers an idle worker killed under a stream of fast requests; here the
victim is busy: its client must see the connection end at once (never a hang), the requests in flight
on the other workers (post-fork: the other connection children) must all finish, and the server must
serve new connections right after (pre-fork: from a replacement worker).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest
from fault_support import (
    StartServer,
    get,
    grandchildren,
    modes_of,
    pinned_connections,
    read_until_closed,
    request,
    start_mode,
    wait_marks,
)
from server_process import wait_until

APPS = {"/pid": "faults:pid", "/slow": "faults:slow"}
WORKERS = 3


@pytest.mark.parametrize("mode", modes_of("prefork", "postfork"))
def test_kill_9_of_a_busy_process(start_server: StartServer, marks: Path, mode: str) -> None:
    srv = start_mode(start_server, mode, APPS, workers=WORKERS)
    connections = pinned_connections(srv, WORKERS)
    victim, *others = connections
    doomed = connections.pop(victim)
    before = grandchildren(srv)

    # Slow requests in flight on every other process, and one that would run for a minute on the victim.
    results: dict[int, tuple[int, bytes] | BaseException] = {}

    def finish(pid: int) -> None:
        try:
            results[pid] = request(connections[pid], f"/slow?s=1&mark={marks}")
        except BaseException as exc:
            results[pid] = exc

    threads = [threading.Thread(target=finish, args=(pid,)) for pid in others]
    for thread in threads:
        thread.start()
    try:
        doomed.sendall(f"GET /slow?s=60&mark={marks} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        assert sorted(wait_marks(marks, WORKERS)) == sorted(str(pid) for pid in [victim, *others])

        psutil.Process(victim).kill()
        killed_at = time.monotonic()
        ending = read_until_closed(doomed, timeout=5)
        assert ending is not None, "the killed process's client was left hanging"
        assert ending == b"" and time.monotonic() - killed_at < 2  # a clean close, no half response
    finally:
        doomed.close()
        for thread in threads:
            thread.join(15)
        for sock in connections.values():
            sock.close()

    assert results == {pid: (200, str(pid).encode()) for pid in others}
    # New connections are served at once, and a replacement (pre-fork) takes the victim's place.
    assert [get(srv, "/pid")[0] for _ in range(5)] == [200] * 5
    if mode.startswith("prefork"):
        assert wait_until(lambda: len(grandchildren(srv)) == WORKERS and victim not in grandchildren(srv), 10)
        (replacement,) = grandchildren(srv) - before
        assert wait_until(lambda: get(srv, "/pid")[1] == str(replacement).encode(), 10, interval=0.0)
    else:
        assert wait_until(
            lambda: f"Connection child {victim} ended with killed by SIGKILL" in srv.output(), 5
        )
