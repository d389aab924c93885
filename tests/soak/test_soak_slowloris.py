"""Slowloris: 500 connections trickling a request head byte by byte while normal clients are served.

The attacker (``soak_support.slowloris``) sends the request line, then one header byte every
~2 s, never ending the head; when the server cuts the connection (408 at REQUEST_TIMEOUT from
the first byte) it opens a new one at once, so 500 slow connections stay open for the whole
run.  Meanwhile two normal clients ask GET /hello every 50 ms: one on a keep-alive connection,
one on a fresh connection each time (its latency includes connect, accept and, in post-fork,
the fork).  At the end the attacker leaves and every connection must be released.

Every mode but post-fork: REQUEST_TIMEOUT 2 s, so the slow connections are cut (each with a
408) and replaced during the run; every normal request must be answered within 1 s.

post-fork: every accepted connection holds a process, so the test sets MAX_PROCESSES to 500
plus room for the normal clients; with the default cap of 500 the normal clients would wait in
the kernel's backlog until REQUEST_TIMEOUT frees a slot (that wait is bounded, see
test_postfork_at_the_cap_new_clients_wait_for_request_timeout).  Forking 500 children took
3-12 s here (40-180 forks/s, with the machine's load), so REQUEST_TIMEOUT is 20 s, long enough
for all 500 to be held at once.
While they are held, every normal request must be answered within 1 s.  Once they are cut (only
in runs longer than ~15 s), the attacker's reconnections queue in the kernel's accept backlog,
which is first in, first out, and post-fork takes one connection per fork: a fresh normal
connection waits behind them (up to 6 s measured with REQUEST_TIMEOUT 10 s).  That wait is the
model's price, bounded by REQUEST_TIMEOUT plus the backlog over the fork rate: the test allows
REQUEST_TIMEOUT + 10 s to fresh connections still waiting when the first cut came, and 1 s to
the keep-alive client, whose process is its own.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from modes import SERVING_MODES
from server_process import live_descendants, wait_until
from soak_support import (
    APPS,
    SLOWLORIS,
    ProbeStats,
    SlowStats,
    StartServer,
    is_postfork,
    one_request,
    percentile,
    probe,
    report,
    serve,
    slowloris,
    soak_seconds,
    tree_fds,
)

SECONDS = soak_seconds()
SLOW = SLOWLORIS
TRICKLE = 2.0  # seconds between two bytes of one slow connection (jittered by +-50 %)
LIMIT = 1.0  # every normal request within this, in seconds
TIMEOUT = 2.0  # REQUEST_TIMEOUT, every mode but post-fork
POSTFORK_TIMEOUT = 20.0
POSTFORK_QUEUE = 10.0  # post-fork, after the first cut: fresh connections within REQUEST_TIMEOUT + this

pytestmark = [pytest.mark.soak, pytest.mark.timeout(SECONDS + 150)]


def connection_children(pid: int) -> int:
    return len(live_descendants(pid, depth=2))


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_slowloris_500_while_normal_clients_served_within_1s(mode: str, start_server: StartServer) -> None:
    postfork = is_postfork(mode)
    timeout = POSTFORK_TIMEOUT if postfork else TIMEOUT
    settings: dict[str, object] = {"request_timeout": timeout}
    if postfork:
        settings["max_processes"] = SLOW + 50
    server = serve(start_server, mode, settings)
    base_fds = tree_fds(server.pid)

    first_cut = math.inf  # loop.time() when the server first cut a slow connection

    async def run() -> tuple[SlowStats, ProbeStats, ProbeStats, float, int]:
        loop = asyncio.get_running_loop()
        stop_slow = asyncio.Event()
        slow = SlowStats()

        def cut() -> None:
            nonlocal first_cut
            first_cut = min(first_cut, loop.time())

        attackers = [
            asyncio.ensure_future(
                slowloris(server.host, server.port, stop=stop_slow, stats=slow, interval=TRICKLE, on_cut=cut)
            )
            for _ in range(SLOW)
        ]
        ramp_started = loop.time()

        def all_held() -> bool:
            if postfork:
                return connection_children(server.pid) >= SLOW
            return tree_fds(server.pid) >= base_fds + SLOW

        # Post-fork forks one child per connection: wait until all are held, or the first could be cut.
        while not all_held() and loop.time() - ramp_started < timeout:
            await asyncio.sleep(0.1)
        ramp = loop.time() - ramp_started
        held = connection_children(server.pid) if postfork else tree_fds(server.pid) - base_fds
        stop_probes = asyncio.Event()
        kept, fresh = ProbeStats(), ProbeStats()
        probes = [
            asyncio.ensure_future(
                probe(server.host, server.port, stop=stop_probes, stats=kept, keepalive=True)
            ),
            asyncio.ensure_future(
                probe(server.host, server.port, stop=stop_probes, stats=fresh, keepalive=False)
            ),
        ]
        await asyncio.sleep(SECONDS)
        stop_probes.set()
        await asyncio.wait_for(asyncio.gather(*probes), 60)
        stop_slow.set()
        for attacker in attackers:
            attacker.cancel()  # each closes its connection
        await asyncio.gather(*attackers, return_exceptions=True)
        return slow, kept, fresh, ramp, held

    slow, kept, fresh, ramp, held = asyncio.run(run())
    # Post-fork: fresh connections still waiting when the first slow one was cut queue behind reconnections.
    fresh_before_cut = [latency for started, latency in fresh.timed if started + latency < first_cut]
    fresh_after_cut = [latency for started, latency in fresh.timed if started + latency >= first_cut]
    report(
        "slowloris",
        mode,
        slow=SLOW,
        held_at_once=held,
        ramp_s=f"{ramp:.1f}",
        seconds=SECONDS,
        slow_connections=slow.connections,
        cut_with_408=slow.timed_out,
        keepalive_requests=len(kept.latencies),
        keepalive_max_ms=f"{max(kept.latencies, default=0) * 1000:.0f}",
        fresh_requests=len(fresh.latencies),
        fresh_p50_ms=f"{percentile(fresh.latencies, 0.5) * 1000:.0f}",
        fresh_max_ms=f"{max(fresh.latencies, default=0) * 1000:.0f}",
        fresh_max_after_cut_ms=f"{max(fresh_after_cut, default=0) * 1000:.0f}",
    )
    assert kept.errors == [] and fresh.errors == [], (kept.errors, fresh.errors)
    assert slow.closed_without_408 == [], slow.closed_without_408[:10]
    assert len(kept.latencies) >= SECONDS * 5 and len(fresh.latencies) >= SECONDS
    assert max(kept.latencies) < LIMIT, sorted(kept.latencies)[-5:]
    if postfork:
        assert held >= SLOW, f"only {held} slow connections were held at once"
        assert max(fresh_before_cut, default=0) < LIMIT, sorted(fresh_before_cut)[-5:]
        assert max(fresh_after_cut, default=0) < timeout + POSTFORK_QUEUE, sorted(fresh_after_cut)[-5:]
    else:
        assert max(fresh.latencies) < LIMIT, sorted(fresh.latencies)[-5:]
        if SECONDS >= timeout + 1:
            assert slow.timed_out >= SLOW, "the slow connections were not cut at REQUEST_TIMEOUT"
    # The attacker has gone: every connection (and post-fork child) is released.
    assert wait_until(lambda: tree_fds(server.pid) <= base_fds + 5, 30, 0.2), (tree_fds(server.pid), base_fds)
    assert asyncio.run(one_request(server.host, server.port)) == (200, b"Hello, world!")


@pytest.mark.skipif("postfork" not in SERVING_MODES, reason="post-fork is not served")
def test_postfork_at_the_cap_new_clients_wait_for_request_timeout(start_server: StartServer) -> None:
    """With MAX_PROCESSES slow connections (and the attacker reconnecting as soon as one is cut), a
    new client waits in the backlog until REQUEST_TIMEOUT frees a slot, and is then served: the
    backlog is first in, first out, so reconnections made after it queue behind it."""
    cap, timeout = 20, 1.5
    server = start_server(APPS, mode="postfork", settings={"max_processes": cap, "request_timeout": timeout})

    async def run() -> tuple[float, tuple[int, bytes], SlowStats]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        slow = SlowStats()
        attackers = [
            asyncio.ensure_future(slowloris(server.host, server.port, stop=stop, stats=slow, interval=0.2))
            for _ in range(cap)
        ]
        while connection_children(server.pid) < cap:
            await asyncio.sleep(0.05)
        started = loop.time()
        answer = await one_request(server.host, server.port, timeout=timeout + 10)
        waited = loop.time() - started
        stop.set()
        await asyncio.wait_for(asyncio.gather(*attackers), 30)
        return waited, answer, slow

    begun = time.monotonic()
    waited, answer, slow = asyncio.run(run())
    report("postfork-cap", "postfork", cap=cap, request_timeout=timeout, waited_s=f"{waited:.2f}")
    assert answer == (200, b"Hello, world!")
    assert waited < timeout + 3, f"waited {waited:.2f} s"
    assert slow.timed_out >= 1 and slow.closed_without_408 == []
    assert time.monotonic() - begun < 60
