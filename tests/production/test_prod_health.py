"""Health endpoints: liveness, and readiness that fails as soon as a graceful shutdown begins."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest


def test_health_paths_are_answered_before_routing(start_server) -> None:
    server = start_server({"/": "production:who"}, settings={"health_path": "/healthz"})
    live = httpx.get(server.url + "/healthz/live")
    assert (live.status_code, live.json()) == (200, {"status": "live"})
    assert live.headers["cache-control"] == "no-store"
    ready = httpx.head(server.url + "/healthz/ready")
    assert (ready.status_code, ready.content) == (200, b"")
    assert "client" in httpx.get(server.url + "/healthz/other").json()  # anything else is routed


def test_health_is_off_by_default(start_server) -> None:
    server = start_server({"/": "production:who"})
    assert "client" in httpx.get(server.url + "/healthz/ready").json()


@pytest.mark.parametrize("mode", ["async", "prefork"])
def test_readiness_fails_during_a_graceful_drain(start_server, mode: str) -> None:
    """SIGTERM with a slow request in flight: /ready answers 503 while the server still serves
    (SHUTDOWN_DELAY), /live stays 200; then the listener closes and the slow request completes."""
    server = start_server(
        {"/": "production:slow"},
        mode=mode,
        settings={"health_path": "/healthz", "shutdown_delay": 1.5, "graceful_timeout": 8.0},
    )
    base = server.url
    results: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: results.append(httpx.get(base + "/?seconds=3", timeout=10)))
    with httpx.Client(base_url=base) as kept_alive:
        assert kept_alive.get("/healthz/ready").status_code == 200
        slow.start()
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        deadline = time.monotonic() + 1.2
        statuses = set()
        while time.monotonic() < deadline and statuses != {503}:
            statuses = {httpx.get(base + "/healthz/ready", timeout=1).status_code for _ in range(2)}
            time.sleep(0.05)
        assert statuses == {503}
        assert httpx.get(base + "/healthz/live", timeout=1).status_code == 200
        assert kept_alive.get("/healthz/ready").status_code == 503
    refused = False
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline and not refused:
        try:
            httpx.get(base + "/healthz/ready", timeout=0.5)
        except httpx.ConnectError:
            refused = True
        time.sleep(0.05)
    assert refused, "the listener should close after SHUTDOWN_DELAY"
    slow.join(10)
    assert [(r.status_code, r.text) for r in results] == [(200, "slow done")]
    assert server.wait(10) == 0


def test_without_a_delay_new_connections_are_refused_at_once_in_prefork(start_server) -> None:
    server = start_server({"/": "production:slow"}, mode="prefork", settings={"health_path": "/healthz"})
    results: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: results.append(httpx.get(server.url + "/?seconds=2", timeout=10)))
    slow.start()
    time.sleep(0.5)
    server.signal(signal.SIGTERM)
    time.sleep(0.5)
    started = time.monotonic()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz/ready", timeout=3)
    assert time.monotonic() - started < 1.0  # refused, not left waiting in a backlog nobody reads
    slow.join(10)
    assert [r.status_code for r in results] == [200]
    assert server.wait(10) == 0
