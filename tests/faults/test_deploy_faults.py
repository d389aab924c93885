"""Deploys interrupted by the machine: the disk filling up, and SIGTERM arriving mid-deploy.

The disk: the server runs in a private mount namespace where APP_DIR is a 4 MiB tmpfs (``unshare``,
as root or through a user namespace; the test is skipped where neither may mount).  Writes fail with a
real ENOSPC, and the mount disappears with the server's processes.  The test sees APP_DIR as the server
does, through ``/proc/<pid>/root``.  Two ways to run out of space:

* a repository larger than the free space: git fails while receiving it;
* an app whose import writes a cache until the disk is full (as an install step or a warm-up might):
  the import check and the new generation pass, then writing the deployment records fails, and the
  deployer goes back to the apps that served before.

Either way the deploy fails with a reason that says the disk is full, the apps that served keep
serving, nothing of the new app is left in APP_DIR (no release, no staging, the space is free again)
and the records are as they were.

SIGTERM mid-deploy (while cloning, while the import check runs, while the new app set starts): the
server stops within its graceful timeout, no git or import-check process outlives it, nothing of the
new release is left, and a restart serves the apps and commits that served before.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from deploy.deploy_support import (
    APP_VERSIONED,
    BlackHole,
    GitRepo,
    admin,
    app_dir,
    deploy_settings,
    records,
    tree,
    versioned_repo,
)
from fault_support import (
    CONTROL_HOSTS,
    PROCESS_MODELS,
    StartServer,
    alive,
    get,
    kill_all,
    read_until_closed,
    send_get,
    start_mode,
    stop_at_once,
)
from server_process import ServerProcess, wait_until

from qactuar.admin.client import AdminError, AdminUnavailable

TMPFS_SIZE = "4m"
MOUNT_AND_SERVE = (
    'mount -t tmpfs -o size="$1",mode=0755 qactuar-test "$2" && cp -R "$3"/. "$2"/ && shift 3 && exec "$@"'
)

# An app whose import fills the disk with a cache file next to it, as a warm-up step might.
DISK_HOG = """
import os

_fd = os.open(os.path.join(os.path.dirname(__file__), "cache.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
try:
    while True:
        os.write(_fd, b"\\0" * 65536)
except OSError:  # ENOSPC: the disk is full
    pass
finally:
    os.close(_fd)


async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hog"})
"""

# The versioned app, held up where a stage of the deploy runs it.  The import check imports it in
# ``python -I -c ...`` (sys.argv[0] == "-c"): there it waits until the file {gate} exists.  The server
# runs its lifespan startup: there it touches {marker} (the test knows the new app set is booting) and
# sleeps.
WAIT_IN_CHECK = (
    "import os, sys, time\n"
    "if sys.argv[0] == '-c':\n"
    "    while not os.path.exists({gate!r}):\n"
    "        time.sleep(0.02)\n" + APP_VERSIONED
)
SLOW_TO_START = APP_VERSIONED.replace(
    'kind = message["type"].rsplit(".", 1)[-1]',
    'kind = message["type"].rsplit(".", 1)[-1]\n'
    "            if kind == 'startup' and __import__('sys').argv[0] != '-c':\n"
    "                open({marker!r}, 'w').close()\n"
    "                await asyncio.sleep(60)",
)
SLOW_REQUEST = """
import asyncio


async def app(scope, receive, send):
    if scope["type"] == "http":
        await asyncio.sleep(float(scope["query_string"].decode().partition("s=")[2] or 1))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slept"})
"""


# -- a server whose APP_DIR is a small tmpfs ----------------------------------------------------------------


@functools.cache
def unshare_prefix() -> list[str] | str:
    """The command that runs a process in a private mount namespace where it may mount, or why not."""
    prefix = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    try:
        probe = subprocess.run(
            [*prefix, "sh", "-c", "mount -t tmpfs -o size=1m qactuar-probe /mnt"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError as exc:  # no unshare(1)
        return f"cannot run {prefix[0]}: {exc}"
    if probe.returncode != 0:
        return f"{' '.join(prefix)} cannot mount a tmpfs here: {probe.stderr.strip()}"
    return prefix


@pytest.fixture
def tmpfs_servers() -> Iterator[list[ServerProcess]]:
    """Servers started by ``start_on_tmpfs``, stopped (by pid) at the end of the test."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def start_on_tmpfs(
    started: list[ServerProcess], root: Path, mode: str, **settings: Any
) -> tuple[ServerProcess, Path]:
    """A server whose APP_DIR (``root/apps``, with the app ``other:app``) is a TMPFS_SIZE tmpfs.

    Returns the server and APP_DIR as the server sees it (through /proc/<pid>/root).
    """
    prefix = unshare_prefix()
    if isinstance(prefix, str):
        pytest.skip(prefix)
    (root / "seed").mkdir()
    seed = app_dir(root / "seed")  # copied into the tmpfs once it is mounted
    apps = root / "apps"
    apps.mkdir()
    workdir = root / "server"
    workdir.mkdir()
    server = ServerProcess(
        workdir, {"/other": "other:app"}, mode=mode, settings=deploy_settings(apps, **settings)
    )
    server.args = [*prefix, "sh", "-c", MOUNT_AND_SERVE, "sh", TMPFS_SIZE, str(apps), str(seed), *server.args]
    started.append(server)
    server.start()
    return server, Path(f"/proc/{server.pid}/root{apps}")


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


@pytest.mark.parametrize("mode", CONTROL_HOSTS)
def test_a_disk_that_fills_up_during_a_deploy_changes_nothing(
    tmp_path: Path, tmpfs_servers: list[ServerProcess], mode: str
) -> None:
    srv, apps = start_on_tmpfs(tmpfs_servers, tmp_path, mode, workers=1)
    one, _ = versioned_repo(tmp_path, "one")
    big = GitRepo(tmp_path, "big")
    big.commit({"main.py": APP_VERSIONED.format(version="big"), "data.bin": os.urandom(6 * 1024 * 1024)})
    hog = GitRepo(tmp_path, "hog")
    hog.commit({"main.py": DISK_HOG})

    with admin(srv) as client:
        client.request("deploy", url=one.url, route="/one")
        # "live" comes once the new generation serves; the old one may accept for a moment more
        assert wait_until(lambda: get(srv, "/one") == (200, b"v1"), 5)
        before = (tree(apps), records(apps), free_bytes(apps))

        def unchanged() -> None:
            assert (tree(apps), records(apps), free_bytes(apps)) == before
            assert (get(srv, "/one"), get(srv, "/other")) == ((200, b"v1"), (200, b"other"))

        # The repository does not fit: git fails while receiving it.
        with pytest.raises(AdminError, match=r"git failed .*No space left on device"):
            client.request("deploy", url=big.url, route="/big")
        unchanged()

        # The app fills the disk when imported: the new app set starts, the records cannot be written.
        with pytest.raises(AdminError) as failed:
            client.request("deploy", url=hog.url, route="/hog")
        reason = str(failed.value)
        assert "the deployment records" in reason and "No space left on device" in reason
        assert "the apps that served before serve again" in reason
        assert wait_until(lambda: get(srv, "/hog")[0] == 404, 5)  # the generation that had it has drained
        unchanged()
        assert [row["name"] for row in client.request("deployments")] == ["one"]


# -- SIGTERM mid-deploy -------------------------------------------------------------------------------------

GRACEFUL = 1.0
APPS = {"/other": "other:app", "/sleepy": "sleepy:app"}


def deploy_server(
    start_server: StartServer, root: Path, mode: str, graceful: float
) -> tuple[ServerProcess, Path]:
    """A server that deploys from file:// and http:// URLs into ``root/apps`` (which also has a slow app)."""
    apps = app_dir(root)
    (apps / "sleepy.py").write_text(SLOW_REQUEST)
    return start(start_server, apps, mode, graceful), apps


def start(start_server: StartServer, apps: Path, mode: str, graceful: float) -> ServerProcess:
    """A server on ``apps`` (a restart: a new state directory, the same APP_DIR and deployment records)."""
    settings = deploy_settings(
        apps, deploy_allowed_schemes=["file", "http"], graceful_timeout=graceful, workers=1
    )
    return start_mode(start_server, mode, APPS, **settings)


def server_processes(server: ServerProcess) -> list[psutil.Process]:
    """Every process of this server: the master and whatever it forked (they share its command line)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(server.config_path) in (process.info["cmdline"] or []):
            found.append(process)
    return alive(found)


def deploy_in_thread(
    server: ServerProcess, command: str, args: dict[str, str]
) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            with admin(server) as client:
                outcome.append(client.request(command, **args))
        except (AdminError, AdminUnavailable) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def stop_now(server: ServerProcess, within: float, *, signalled: bool = False) -> None:
    """SIGTERM (unless ``signalled`` already); the server must exit with 0 within ``within`` seconds,
    leaving no process behind."""
    started = time.monotonic()
    if not signalled:
        server.signal(signal.SIGTERM)
    assert server.wait(within + 10) == 0
    assert time.monotonic() - started < within
    assert wait_until(lambda: not server_processes(server), 5), server_processes(server)


@pytest.mark.parametrize(
    ("stage", "mode"),
    [("cloning", "prefork"), ("verifying", "async"), *(("starting", mode) for mode in PROCESS_MODELS)],
)
def test_sigterm_mid_deploy_abandons_it(
    start_server: StartServer, tmp_path: Path, stage: str, mode: str
) -> None:
    srv, apps = deploy_server(start_server, tmp_path, mode, GRACEFUL)
    site, first = versioned_repo(tmp_path, "site")
    with admin(srv) as client:
        client.request("deploy", url=site.url, route="/site")
    before = (tree(apps), records(apps))

    hole = BlackHole()  # a remote that accepts the connection and never answers
    booting = tmp_path / "booting"
    if stage == "cloning":
        name, command, args = (
            "new",
            "deploy",
            {"url": f"http://127.0.0.1:{hole.port}/new.git", "route": "/new", "name": "new"},
        )
    elif stage == "verifying":
        slow = GitRepo(tmp_path, "slow")
        slow.commit({"main.py": WAIT_IN_CHECK.format(gate=str(tmp_path / "never"), version="slow")})
        name, command, args = "slow", "deploy", {"url": slow.url, "route": "/slow"}
    else:
        site.commit({"app.py": SLOW_TO_START.format(version="v2", marker=str(booting))}, "v2")
        name, command, args = "site", "update", {"name": "site"}
    seen = len(srv.output())
    thread, outcome = deploy_in_thread(srv, command, args)
    helpers: list[psutil.Process] = []
    try:
        assert wait_until(lambda: f"Deploy {name}: {stage}: " in srv.output()[seen:], 20), srv.output()
        if stage == "starting":  # the new app set is booting: its lifespan startup runs
            assert wait_until(booting.exists, 20)
        helpers = psutil.Process(srv.pid).children(recursive=True)  # git, the import check, generations
        stop_now(srv, GRACEFUL + 5)
        thread.join(10)
        assert wait_until(lambda: not alive(helpers), 5), alive(helpers)
    finally:
        hole.close()
        kill_all(helpers)
    assert len(outcome) == 1 and isinstance(outcome[0], AdminUnavailable), outcome  # the server went away
    assert (tree(apps), records(apps)) == before  # no release, no staging left, the records as they were

    again = start(start_server, apps, mode, GRACEFUL)
    assert (get(again, "/site"), get(again, "/other")) == ((200, b"v1"), (200, b"other"))
    with admin(again) as client:
        assert [(row["name"], row["commit"]) for row in client.request("deployments")] == [("site", first)]


@pytest.mark.parametrize("mode", CONTROL_HOSTS)
def test_a_deploy_step_that_ends_while_the_server_drains(
    start_server: StartServer, tmp_path: Path, mode: str
) -> None:
    """The import check passes after SIGTERM, while a slow request keeps the server draining.

    Under a master the deploy is then abandoned: a generation started now would outlive the master (it
    did, before the deployer checked for a stop in progress).  In async mode it completes in-process:
    the client hears "live", and the server stops with the new app set recorded.
    """
    srv, apps = deploy_server(start_server, tmp_path, mode, graceful=3.0)
    before = (tree(apps), records(apps))
    gate = tmp_path / "gate"
    quick = GitRepo(tmp_path, "quick")
    quick.commit({"main.py": WAIT_IN_CHECK.format(gate=str(gate), version="quick")})
    seen = len(srv.output())
    with send_get(srv, "/sleepy?s=1.5") as draining:
        thread, outcome = deploy_in_thread(srv, "deploy", {"url": quick.url, "route": "/quick"})
        assert wait_until(lambda: "Deploy quick: verifying: " in srv.output()[seen:], 20), srv.output()
        srv.signal(signal.SIGTERM)
        assert wait_until(
            lambda: "Shutting down" in srv.output()[seen:] or "Received SIGTERM" in srv.output()[seen:], 5
        )
        gate.touch()  # the import check passes now, while the slow request drains
        stop_now(srv, 1.5 + 3, signalled=True)
        thread.join(10)
        answer = read_until_closed(draining, timeout=1)
        assert answer is not None and answer.startswith(b"HTTP/1.1 200 ")  # it finished during the stop
    (result,) = outcome
    again = start(start_server, apps, mode, GRACEFUL)
    if mode == "async":
        assert isinstance(result, dict) and result["state"] == "live"
        assert get(again, "/quick") == (200, b"quick")
        return
    assert isinstance(result, AdminError) and "the server is stopping" in str(result)
    assert ([path for path in tree(apps) if path != ".qactuar-staging"], records(apps)) == before  # (empty)
    assert get(again, "/quick")[0] == 404


def test_sigterm_during_a_reload_is_not_held_up_by_it(start_server: StartServer, tmp_path: Path) -> None:
    """SIGHUP (the other way to deploy: new code or config on disk) starts a generation whose app hangs in
    lifespan startup; SIGTERM then should stop the server as promptly as ever."""
    srv = start_mode(
        start_server,
        "prefork",
        {"/": "faults:held_at_startup"},
        workers=1,
        graceful_timeout=GRACEFUL,
        env={"QACTUAR_TEST_HOLD": str(tmp_path)},
    )
    try:
        (tmp_path / "hold").touch()
        srv.signal(signal.SIGHUP)
        assert wait_until((tmp_path / "held").exists, 10)  # generation 2 is booting
        srv.signal(signal.SIGTERM)
        assert wait_until(lambda: srv.proc is not None and srv.proc.poll() is not None, GRACEFUL + 2)
    finally:
        stop_at_once(srv)
