"""Pre-fork under the master: real processes, real signals, real sockets."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import httpx
import psutil
from server_process import ServerProcess, live_descendants, wait_until

StartServer = Callable[..., ServerProcess]


def generation_of(server: ServerProcess) -> psutil.Process:
    children = psutil.Process(server.pid).children()
    assert len(children) == 1, children
    return children[0]


def worker_pids(server: ServerProcess) -> set[int]:
    """Live grandchildren of the master: the workers."""
    return {process.pid for process in live_descendants(server.pid, depth=2)}


def fetch_pid(server: ServerProcess, path: str = "/pid", client: httpx.Client | None = None) -> int:
    response = (client or httpx).get(server.url + path, timeout=5, headers={"Connection": "close"})  # type: ignore[attr-defined]
    assert response.status_code == 200
    return int(response.text)


def test_workers_start_and_serve(start_server: StartServer) -> None:
    srv = start_server({"/pid": "procs:pid"}, mode="prefork", settings={"workers": 2})
    assert wait_until(lambda: len(worker_pids(srv)) == 2, 5)
    seen = {fetch_pid(srv) for _ in range(40)}
    assert seen <= worker_pids(srv)


def test_kill_9_worker_is_replaced_and_other_worker_unaffected(start_server: StartServer) -> None:
    srv = start_server({"/pid": "procs:pid"}, mode="prefork", settings={"workers": 2})
    assert wait_until(lambda: len(worker_pids(srv)) == 2, 5)
    # One keep-alive client per worker.
    clients: dict[int, httpx.Client] = {}
    deadline = time.monotonic() + 10
    while len(clients) < 2 and time.monotonic() < deadline:
        client = httpx.Client(base_url=srv.url, timeout=5)
        pid = int(client.get("/pid").text)
        if pid in clients:
            client.close()
        else:
            clients[pid] = client
    assert len(clients) == 2
    victim, survivor = sorted(clients)
    failures: list[BaseException] = []
    survivor_pids: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                survivor_pids.append(int(clients[survivor].get("/pid").text))
            except BaseException as exc:
                failures.append(exc)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        time.sleep(0.2)
        psutil.Process(victim).kill()
        killed_at = time.monotonic()
        assert wait_until(lambda: len(worker_pids(srv) - {victim}) == 2, 2.0)
        replacement = (worker_pids(srv) - {victim, survivor}).pop()
        # the replacement serves: new connections reach it
        assert wait_until(lambda: fetch_pid(srv) == replacement, 5, interval=0.0)
        assert time.monotonic() - killed_at < 5
    finally:
        stop.set()
        thread.join(10)
        for client in clients.values():
            client.close()
    assert failures == []
    assert survivor_pids and set(survivor_pids) == {survivor}


def test_sighup_under_load_zero_failures_and_new_workers(start_server: StartServer) -> None:
    srv = start_server({"/pid": "procs:pid"}, mode="prefork", settings={"workers": 2})
    assert wait_until(lambda: len(worker_pids(srv)) == 2, 5)
    old = worker_pids(srv)
    failures: list[str] = []
    served = [0]
    stop = threading.Event()

    def client_loop() -> None:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.get("/pid")
                    if response.status_code != 200:
                        failures.append(f"status {response.status_code}")
                    served[0] += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client_loop) for _ in range(20)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        srv.signal(signal.SIGHUP)
        assert wait_until(lambda: "Generation 2 is serving" in srv.output(), 20)
        time.sleep(4.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert failures == []
    assert served[0] > 100
    assert wait_until(lambda: len(worker_pids(srv)) == 2 and not (worker_pids(srv) & old), 15)
    new_pids = {fetch_pid(srv) for _ in range(20)}
    assert not (new_pids & old)


def test_sigterm_lets_slow_request_finish(start_server: StartServer) -> None:
    srv = start_server(
        {"/slow": "procs:slow"}, mode="prefork", settings={"workers": 1, "graceful_timeout": 10.0}
    )
    result: list[int] = []

    def slow_request() -> None:
        result.append(httpx.get(srv.url + "/slow?s=1.5", timeout=10).status_code)

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.5)
    srv.signal(signal.SIGTERM)
    thread.join(10)
    assert result == [200]
    assert srv.wait(10) == 0


def test_sigterm_kills_request_outliving_graceful_timeout(start_server: StartServer) -> None:
    srv = start_server(
        {"/slow": "procs:slow"}, mode="prefork", settings={"workers": 1, "graceful_timeout": 1.0}
    )
    errors: list[BaseException] = []

    def slow_request() -> None:
        try:
            httpx.get(srv.url + "/slow?s=30", timeout=20)
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0
    assert time.monotonic() - started < 8
    thread.join(10)
    assert len(errors) == 1


def test_blocked_worker_is_aborted_and_replaced(start_server: StartServer) -> None:
    srv = start_server(
        {"/block": "procs:block", "/pid": "procs:pid"},
        mode="prefork",
        settings={"workers": 1, "worker_timeout": 1.0},
    )
    assert wait_until(lambda: len(worker_pids(srv)) == 1, 5)
    (blocked,) = worker_pids(srv)
    with __import__("contextlib").suppress(httpx.HTTPError):
        httpx.get(srv.url + "/block", timeout=8)
    assert wait_until(lambda: worker_pids(srv) and blocked not in worker_pids(srv), 8)
    assert fetch_pid(srv) != blocked
    assert "missed its heartbeat" in srv.output()


def test_import_crash_is_a_failed_mount_not_a_storm(start_server: StartServer) -> None:
    srv = start_server(
        {"/crash": "crash_import:app", "/pid": "procs:pid"}, mode="prefork", settings={"workers": 2}
    )
    assert httpx.get(srv.url + "/crash", timeout=5).status_code == 503
    assert fetch_pid(srv) in worker_pids(srv)
    seen: set[int] = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen |= worker_pids(srv)
        time.sleep(0.1)
    assert len(seen) == 2
    assert "crashed the process" in srv.output()


def test_crash_at_boot_backs_off_and_exits(start_server: StartServer) -> None:
    srv = start_server(
        {"/": "procs:crash_at_boot"}, mode="prefork", settings={"workers": 2}, expect_listening=False
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and srv.proc is not None and srv.proc.poll() is None:
        seen |= worker_pids(srv)
        time.sleep(0.05)
    assert srv.wait(20) != 0
    assert len(seen) <= 6
    assert "keep failing at boot" in srv.output()


def test_ttin_ttou_change_worker_count(start_server: StartServer) -> None:
    srv = start_server({"/pid": "procs:pid"}, mode="prefork", settings={"workers": 1})
    assert wait_until(lambda: len(worker_pids(srv)) == 1, 5)
    srv.signal(signal.SIGTTIN)
    assert wait_until(lambda: len(worker_pids(srv)) == 2, 5)
    srv.signal(signal.SIGTTIN)
    assert wait_until(lambda: len(worker_pids(srv)) == 3, 5)
    srv.signal(signal.SIGTTOU)
    assert wait_until(lambda: len(worker_pids(srv)) == 2, 10)


def test_max_requests_recycles_without_failures(start_server: StartServer) -> None:
    srv = start_server({"/pid": "procs:pid"}, mode="prefork", settings={"workers": 1, "max_requests": 20})
    assert wait_until(lambda: len(worker_pids(srv)) == 1, 5)
    pids = [fetch_pid(srv) for _ in range(70)]
    assert len(set(pids)) >= 3
    assert "MAX_REQUESTS" in srv.output()


def test_limit_concurrency_answers_503(start_server: StartServer) -> None:
    srv = start_server(
        {"/slow": "procs:slow"}, mode="prefork", settings={"workers": 1, "limit_concurrency": 2}
    )
    statuses: list[int] = []

    def request() -> None:
        statuses.append(httpx.get(srv.url + "/slow?s=1", timeout=10).status_code)

    threads = [threading.Thread(target=request) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(statuses) == [200, 200, 503, 503, 503]


def test_failed_first_generation_exits_non_zero(start_server: StartServer) -> None:
    srv = start_server({"/": "broken:app"}, mode="prefork", expect_listening=False)
    assert srv.wait(20) != 0
    assert "nothing to serve" in srv.output().lower()
