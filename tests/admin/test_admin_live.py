"""The admin socket of a real server, in every process model: counts, logs, processes, scaling."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil
import pytest
from modes import SERVING_MODES, mode_settings
from server_process import ServerProcess, live_descendants, wait_until

from qactuar.admin.client import AdminError, SyncAdminClient, locate
from qactuar.config import load_config

StartServer = Callable[..., ServerProcess]
APPS = {"/a": "procs:pid", "/b": "procs:pid"}


def admin(server: ServerProcess) -> SyncAdminClient:
    config = load_config(config_file=str(server.config_path), env={})
    return SyncAdminClient(locate(config), timeout=30)


def start(start_server: StartServer, mode_name: str, **settings: Any) -> ServerProcess:
    mode, extra = mode_settings(mode_name)
    return start_server(APPS, mode=mode, settings={**extra, **settings})


def serving_pids(server: ServerProcess) -> set[int]:
    return {process.pid for process in live_descendants(server.pid)}


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_exact_counts_per_app(start_server: StartServer, mode: str) -> None:
    srv = start(start_server, mode)
    with httpx.Client(base_url=srv.url, timeout=5) as client:
        for _ in range(100):
            assert client.get("/a").status_code == 200
    for _ in range(50):  # new connections: spread over workers / post-fork children
        assert httpx.get(srv.url + "/b", timeout=5, headers={"Connection": "close"}).status_code == 200
    with admin(srv) as client:

        def counts() -> dict[str, int]:
            return {row["route"]: row["requests"] for row in client.request("apps")}

        assert wait_until(lambda: counts() == {"/a": 100, "/b": 50}, 5), counts()
        stats = client.request("stats", seconds=60)
        assert stats["route_counts"] == {"/a": 100, "/b": 50}
        status = client.request("status")
        assert status["mode"] == mode_settings(mode)[0]
        assert status["totals"]["requests"] == 150


@pytest.mark.parametrize("mode", SERVING_MODES)
def test_logs_follow_receives_access_line(start_server: StartServer, mode: str) -> None:
    srv = start(start_server, mode)
    with admin(srv) as client:
        subscription = client.subscribe("log", logger="qt_access")
        httpx.get(srv.url + "/a", timeout=5, headers={"X-Request-ID": f"follow-{mode}"})
        deadline = time.monotonic() + 5
        for event in subscription:
            if f"follow-{mode}" in str(event.data.get("message", "")):
                break
            assert time.monotonic() < deadline
        assert time.monotonic() - deadline < 0


@pytest.mark.parametrize("mode", ["prefork", "postfork"])
def test_processes_are_the_real_pids(start_server: StartServer, mode: str) -> None:
    srv = start(start_server, mode)
    if mode == "postfork":
        holder = httpx.Client(base_url=srv.url, timeout=5)
        holder.get("/a")  # keeps one connection child alive
    with admin(srv) as client:
        assert wait_until(
            lambda: {row["pid"] for row in client.request("processes")} == {srv.pid, *serving_pids(srv)}, 5
        ), (client.request("processes"), serving_pids(srv))
        roles = {row["pid"]: row["role"] for row in client.request("processes")}
    assert roles[srv.pid] == "master"
    generation = psutil.Process(srv.pid).children()[0].pid
    assert roles[generation] == "generation"
    assert {role for pid, role in roles.items() if pid not in (srv.pid, generation)} == {
        "worker" if mode == "prefork" else "child"
    }
    if mode == "postfork":
        holder.close()


def test_scale_changes_real_worker_count(start_server: StartServer) -> None:
    srv = start(start_server, "prefork", workers=1)

    def workers() -> int:
        return len(serving_pids(srv)) - 1  # minus the generation

    assert wait_until(lambda: workers() == 1, 5)
    with admin(srv) as client:
        client.request("scale", n=3)
        assert wait_until(lambda: workers() == 3, 10)
        client.request("scale", n=1)
        assert wait_until(lambda: workers() == 1, 10)


def test_reload_under_load_new_pids_zero_failures(start_server: StartServer) -> None:
    srv = start(start_server, "prefork", workers=2)
    assert wait_until(lambda: len(serving_pids(srv)) == 3, 5)
    old = serving_pids(srv)
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    if client.get("/a").status_code != 200:
                        failures.append("status")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        with admin(srv) as client:
            result = client.request("reload")
        assert result["generation"] == 2
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert failures == []
    assert wait_until(lambda: len(serving_pids(srv)) == 3 and not (serving_pids(srv) & old), 15)


@pytest.mark.parametrize("mode", ["prefork", "postfork"])
def test_serving_processes_hold_no_admin_socket(start_server: StartServer, mode: str) -> None:
    srv = start(start_server, mode)
    holder = httpx.Client(base_url=srv.url, timeout=5)
    holder.get("/a")
    try:
        admin_ports = {
            c.laddr.port
            for c in psutil.Process(srv.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port != srv.port
        }
        assert admin_ports, "the master listens on an admin port"
        for pid in serving_pids(srv):
            listening = {
                c.laddr.port
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            }
            assert not (listening & admin_ports), (pid, listening)
    finally:
        holder.close()


def test_token_file_is_private_and_never_logged(start_server: StartServer) -> None:
    srv = start(start_server, "prefork")
    config = load_config(config_file=str(srv.config_path), env={})
    token_file = config.admin_token_file()
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(token_file.parent).st_mode) == 0o700
    with admin(srv) as client:
        client.request("status")
        client.request("config")
    token = token_file.read_text().strip()
    assert token and token not in srv.output()


def test_cli_against_live_server(start_server: StartServer) -> None:
    srv = start(start_server, "prefork")
    httpx.get(srv.url + "/a", timeout=5)
    result = subprocess.run(
        [sys.executable, "-m", "qactuar", "apps", "--config", str(srv.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "/a" in result.stdout and "procs:pid" in result.stdout


def test_kill_stops_one_worker_which_is_replaced(start_server: StartServer) -> None:
    srv = start(start_server, "prefork", workers=2)
    assert wait_until(lambda: len(serving_pids(srv)) == 3, 5)
    generation = psutil.Process(srv.pid).children()[0].pid
    before = serving_pids(srv) - {generation}
    victim = min(before)
    with admin(srv) as client:
        with pytest.raises(AdminError, match="not a worker"):
            client.request("kill", pid=srv.pid)
        with pytest.raises(AdminError, match="not a worker"):
            client.request("kill", pid=generation)
        assert client.request("kill", pid=victim) == {"pid": victim, "signal": "SIGTERM"}
    assert wait_until(
        lambda: victim not in serving_pids(srv) and len(serving_pids(srv) - {generation}) == 2, 10
    )
    assert httpx.get(srv.url + "/a", timeout=5).status_code == 200


def test_gather_proc_stats_reports_cpu_and_rss(start_server: StartServer) -> None:
    srv = start(start_server, "prefork", workers=2, gather_proc_stats=True)
    httpx.get(srv.url + "/a", timeout=5)
    with admin(srv) as client:

        def measured() -> bool:
            rows = client.request("processes")
            return len(rows) == 4 and all(row["rss_bytes"] and row["rss_bytes"] > 1_000_000 for row in rows)

        assert wait_until(measured, 5, interval=0.3)
        rows = {row["pid"]: row for row in client.request("processes")}
    assert (
        rows[srv.pid]["rss_bytes"] == psutil.Process(srv.pid).memory_info().rss
        or rows[srv.pid]["rss_bytes"] > 0
    )
    assert all(row["cpu_percent"] is not None for row in rows.values())
