"""WebSockets at the thousands scale: every connection open at once, each exchanging messages, all
closed cleanly (close 1000 both ways, then the end of the TCP stream), in every mode.

``QACTUAR_SOAK_WS`` (default 1,000) WebSockets are opened (at most 100 handshakes in flight) and
held until every one is open; then each echoes a message about once a second for
``QACTUAR_SOAK_SECONDS`` (at least once), then closes.  Afterwards the server's tree must be back
to its file descriptors (and, in post-fork, its processes) of before.

post-fork: each WebSocket is a connection child: about 5.6 MiB of private memory, a fork (45 to
230 forks/s on this machine, depending on its load) and about 1 ms of CPU a second while idle
(heartbeat and stats every 0.5 s).  The default there is ``QACTUAR_SOAK_WS_POSTFORK`` = 200, to
keep the default suite within its time; MAX_PROCESSES is raised to the count plus room.  500
pass here; at 1,000 the idle children alone take more than a core of this 2-core machine, and
most WebSockets end with 1011 (keepalive ping timeout) before their first echo.

``QACTUAR_SOAK_WS`` = 5,000 passes in async mode (all open in 1.7 s, 84 MiB of USS).  The client
holds that many sockets: the soft RLIMIT_NOFILE is raised to the hard limit, which the server
inherits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import psutil
import pytest
from modes import SERVING_MODES
from server_process import live_descendants, wait_until
from soak_support import (
    WS,
    WS_POSTFORK,
    MiB,
    StartServer,
    WSFleet,
    is_postfork,
    one_request,
    percentile,
    report,
    serve,
    soak_seconds,
    tree_fds,
)

SECONDS = soak_seconds()

pytestmark = [pytest.mark.soak, pytest.mark.timeout(SECONDS + 180)]


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_websockets_thousands_open_echo_and_close_cleanly(mode: str, start_server: StartServer) -> None:
    postfork = is_postfork(mode)
    count = WS_POSTFORK if postfork else WS
    settings = {"max_processes": count + 20} if postfork else {}
    server = serve(start_server, mode, settings)
    assert asyncio.run(one_request(server.host, server.port)) == (200, b"Hello, world!")
    base_fds = tree_fds(server.pid)
    base_processes = len(live_descendants(server.pid))
    peak: dict[str, int] = {}

    def measure_peak() -> None:
        processes = [psutil.Process(server.pid), *live_descendants(server.pid)]
        peak["processes"] = len(processes)
        peak["fds"] = tree_fds(server.pid)
        peak["uss"] = 0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                peak["uss"] += process.memory_full_info().uss

    fleet = WSFleet(server.host, server.port, "/ws", count, SECONDS, on_all_open=measure_peak)
    began = time.monotonic()
    stats = asyncio.run(fleet.run())
    ended = time.monotonic()
    released = wait_until(
        lambda: tree_fds(server.pid) <= base_fds + 5 and len(live_descendants(server.pid)) <= base_processes,
        30,
        0.2,
    )
    released_in = time.monotonic() - ended
    report(
        "websocket",
        mode,
        count=count,
        opened=stats.opened,
        all_open_after_s=f"{stats.all_open_after:.1f}",
        handshake_p50_ms=f"{percentile(stats.handshake_latencies, 0.5) * 1000:.0f}",
        handshake_max_ms=f"{max(stats.handshake_latencies, default=0) * 1000:.0f}",
        messages=stats.messages,
        pongs=stats.pongs_sent,
        clean_closes=stats.clean_closes,
        errors=len(stats.errors),
        run_s=f"{ended - began:.1f}",
        released_in_s=f"{released_in:.1f}",
        peak_fds=peak.get("fds"),
        peak_processes=peak.get("processes"),
        peak_uss_mib=f"{peak.get('uss', 0) / MiB:.0f}",
    )
    assert stats.errors == [], stats.errors[:20]
    assert stats.opened == count
    assert stats.messages >= count
    assert stats.clean_closes == count
    # Every connection was open at once (the client opened them all before closing any): the
    # server held a descriptor (post-fork: a process) for each, give or take the warm-up request's.
    assert peak["fds"] >= base_fds + count - 2
    if postfork:
        assert peak["processes"] >= base_processes + count
    assert released, (tree_fds(server.pid), base_fds, len(live_descendants(server.pid)), base_processes)
    assert "Traceback" not in server.output()
