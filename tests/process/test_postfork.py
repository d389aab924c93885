"""Post-fork: a child per connection, under a cap, with lifespan state inherited."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import psutil
from server_process import ServerProcess, live_descendants, wait_until

StartServer = Callable[..., ServerProcess]


def connection_children(server: ServerProcess) -> list[psutil.Process]:
    """Live grandchildren of the master: the connection children."""
    return live_descendants(server.pid, depth=2)


def test_each_connection_gets_its_own_process(start_server: StartServer) -> None:
    srv = start_server({"/pid": "procs:pid"}, mode="postfork")
    pids = [int(httpx.get(srv.url + "/pid", timeout=5).text) for _ in range(10)]
    assert len(set(pids)) == 10
    generation = psutil.Process(srv.pid).children()[0]
    assert generation.pid not in pids


def test_keep_alive_stays_in_one_child(start_server: StartServer) -> None:
    srv = start_server({"/pid": "procs:pid"}, mode="postfork")
    with httpx.Client(base_url=srv.url, timeout=5) as client:
        pids = {int(client.get("/pid").text) for _ in range(20)}
    assert len(pids) == 1


def test_max_processes_cap_holds_and_all_are_served(start_server: StartServer) -> None:
    cap = 3
    srv = start_server({"/slow": "procs:slow"}, mode="postfork", settings={"max_processes": cap})
    statuses: list[int] = []
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], len(connection_children(srv)))
            time.sleep(0.01)

    def request() -> None:
        statuses.append(httpx.get(srv.url + "/slow?s=0.5", timeout=30).status_code)

    watcher = threading.Thread(target=watch)
    watcher.start()
    clients = [threading.Thread(target=request) for _ in range(3 * cap)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(30)
    stop.set()
    watcher.join(5)
    assert statuses == [200] * (3 * cap)
    assert 1 <= peak[0] <= cap


def test_lifespan_state_reaches_children(start_server: StartServer) -> None:
    srv = start_server({"/": "basic:lifespan_state"}, mode="postfork")
    state = httpx.get(srv.url + "/", timeout=5).json()
    assert state["greeting"] == "set at startup"
    generation = psutil.Process(srv.pid).children()[0]
    assert state["pid"] == generation.pid  # startup ran once, in the generation


def test_children_never_hold_the_listening_socket(start_server: StartServer) -> None:
    srv = start_server({"/slow": "procs:slow"}, mode="postfork")
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(httpx.get(srv.url + "/slow?s=1", timeout=10).status_code)
    )
    thread.start()
    assert wait_until(lambda: len(connection_children(srv)) == 1, 5)
    child = connection_children(srv)[0]
    listening = [c for c in child.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    thread.join(10)
    assert listening == []
    assert result == [200]
