"""Git deploys against real servers: pre-fork and post-fork generations, async mode in-process, the CLI.

Repositories are real (bare repositories made in the test, cloned by file:// URL, allowed only in the test
config).  The closing numbers of the issue come from here: ``test_lifecycle`` prints the time from sending
``deploy`` to the first successful response on the new route (run with ``-s`` to see it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from deploy_support import (
    APP_VERSIONED,
    BlackHole,
    GitLog,
    GitRepo,
    StartServer,
    admin,
    app_dir,
    deploy_settings,
    records,
    tree,
    versioned_repo,
)
from server_process import ServerProcess, wait_until
from test_deploy_policy import HOSTILE_NAMES

from qactuar.admin.client import AdminError

CLOSE = {"Connection": "close"}  # no keep-alive: a draining generation never waits for these clients


def get(server: ServerProcess, path: str) -> httpx.Response:
    return httpx.get(server.url + path, headers=CLOSE, timeout=10)


@contextmanager
def steady_load(server: ServerProcess, path: str, threads: int = 4) -> Iterator[list[str]]:
    """Requests to ``path`` in a loop on ``threads`` threads while the block runs; yields the failures."""
    failures: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.get(path)
                    if response.status_code != 200 or response.text != "other":
                        failures.append(f"{response.status_code} {response.text[:60]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield failures
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)


def in_thread(work: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    return thread, result


@pytest.mark.parametrize("mode", ["prefork", "postfork"])
def test_lifecycle(start_server: StartServer, tmp_path: Path, mode: str) -> None:
    apps = app_dir(tmp_path)
    repo, first = versioned_repo(tmp_path, "blog", "v1")
    settings = deploy_settings(apps)
    server = start_server({"/other": "other:app"}, mode=mode, settings=settings)
    assert get(server, "/blog").status_code == 404

    # deploy under load: the route answers within seconds; the other route never fails
    with steady_load(server, "/other") as failures, admin(server) as client:
        started = time.monotonic()
        thread, result = in_thread(lambda: client.request("deploy", url=repo.url, route="/blog"))
        try:
            answered = wait_until(lambda: get(server, "/blog").text == "v1", 15)
            first_response = time.monotonic() - started
        finally:
            thread.join(30)
        time.sleep(0.3)
    assert answered and failures == []
    (deployed,) = result
    assert {key: deployed[key] for key in ("name", "route", "url", "ref", "commit", "state")} == {
        "name": "blog",
        "route": "/blog",
        "url": repo.url,
        "ref": "main",
        "commit": first,
        "state": "live",
    }
    print(f"\n[{mode}] deploy -> first successful response: {first_response:.2f} s")
    assert first_response < 10

    # update: new code answers, a request in flight finishes on the old code
    second = repo.commit({"app.py": APP_VERSIONED.format(version="v2")}, "v2")
    slow, slow_result = in_thread(lambda: get(server, "/blog/slow"))
    time.sleep(0.4)
    with admin(server) as client:
        updated = client.request("update", name="blog")
        assert updated["commit"] == second and updated["release"] != deployed["release"]
        assert get(server, "/blog").text == "v2"
        slow.join(10)
        assert (slow_result[0].status_code, slow_result[0].text) == (200, "v1 slow")
        rows = {row["route"]: row for row in client.request("apps")}
        assert rows["/blog"]["source"] == "git" and rows["/blog"]["commit"] == second

        # rollback: the previous commit answers
        rolled = client.request("rollback", name="blog")
        assert (rolled["commit"], rolled["release"]) == (first, deployed["release"])
        assert get(server, "/blog").text == "v1"
        listed = client.request("deployments")
    assert [(row["name"], row["commit"], row["state"]) for row in listed] == [("blog", first, "live")]

    # restart: the same deployments serve at the same commits
    server.stop()
    again = ServerProcess(server.workdir, {"/other": "other:app"}, mode=mode, settings=settings)
    try:
        again.start()
        assert get(again, "/blog").text == "v1"
        with admin(again) as client:
            assert client.request("deployments") == listed

            # undeploy: 404, files gone
            assert client.request("undeploy", name="blog") == {"name": "blog", "state": "removed"}
        assert get(again, "/blog").status_code == 404
        assert get(again, "/other").text == "other"
        assert not (apps / "blog").exists()
        assert records(apps) == {"version": 1, "apps": []}
    finally:
        again.stop()


# For a server that allows file:// and http:// (and nothing else): (url, part of the reason).
LIVE_HOSTILE_URLS = [
    ("ext::sh -c touch% /tmp/pwned", "remote helper"),
    ("fd::17/foo", "remote helper"),
    ("file::/etc/passwd", "remote helper"),
    ("--upload-pack=touch /tmp/pwned", "starts with '-'"),
    ("-ufile:///srv/repo.git", "starts with '-'"),
    ("http://user:secret@127.0.0.1/repo.git", "credentials"),
    ("http://token@127.0.0.1/repo.git", "credentials"),
    ("http://127.0.0.1/repo.git\n--upload-pack=x", "control characters"),
    ("http://127.0.0.1/repo%0a.git", "percent-encoded control"),
    ("https://github.com/owner/repo.git", "scheme 'https' is not allowed"),
    ("ssh://git@github.com/owner/repo.git", "scheme 'ssh' is not allowed"),
    ("git://github.com/owner/repo.git", "scheme 'git' is not allowed"),
    ("/srv/repo.git", "not a URL"),
    ("git@github.com:owner/repo.git", "not a URL"),
    ("file://remote-host/srv/repo.git", "file:///absolute/path"),
    ("http://127.0.0.1/repo::x", "'::'"),
    ("http://127.0.0.1/repo?x=1", "query or fragment"),
    ("http://-127.0.0.1/repo", "host"),
    ("file:///srv/r\u00e9po.git", "non-ASCII"),
]
COMMANDS_WITH_NAMES: list[tuple[str, dict[str, str]]] = [
    ("deploy", {"url": "file:///srv/repo.git", "route": "/n"}),
    ("update", {}),
    ("rollback", {}),
    ("undeploy", {}),
]


def failing_repos(root: Path) -> list[tuple[str, str, str]]:
    """(url, route, the reason the deploy must fail with)."""
    broken = GitRepo(root, "broken")
    broken.commit(
        {"main.py": "import surely_not_installed_pkg\nimport json\nasync def app(s, r, se): pass\n"}
    )
    raising = GitRepo(root, "raising")
    raising.commit({"main.py": "raise RuntimeError('DATABASE_URL is not set')\n"})
    empty = GitRepo(root, "empty")
    empty.commit({"README.md": "no app here\n"})
    clash = GitRepo(root, "clash")
    clash.commit({"app.py": APP_VERSIONED.format(version="clash")})
    big = GitRepo(root, "big")
    big.commit({"main.py": APP_VERSIONED.format(version="big"), "data.bin": os.urandom(3 * 1024 * 1024)})
    return [
        (broken.url, "/broken", "the app needs modules that are not installed: surely_not_installed_pkg"),
        (raising.url, "/raising", "RuntimeError: DATABASE_URL is not set"),
        (empty.url, "/empty", "no entry point found: tried --entry"),
        (clash.url, "/clash", "module clash: 'app' is also"),
        (big.url, "/big", "grew past DEPLOY_MAX_BYTES"),
    ]


def test_failures_and_hostile_input_change_nothing(start_server: StartServer, tmp_path: Path) -> None:
    apps = app_dir(tmp_path)
    git_log = GitLog(tmp_path)
    settings = deploy_settings(
        apps,
        deploy_allowed_schemes=["file", "http"],
        deploy_max_bytes=2 * 1024 * 1024,
        deploy_timeout=2.0,
    )
    server = start_server({"/other": "other:app"}, mode="prefork", settings=settings, env=git_log.env)
    master = psutil.Process(server.pid)
    assert wait_until(lambda: len(master.children()) == 1, 5)
    generation = master.children()[0].pid
    before = tree(apps)

    # hostile URLs and names: refused with the reason before anything runs
    with admin(server) as client:
        for url, reason in LIVE_HOSTILE_URLS:
            with pytest.raises(AdminError, match="refused: ") as caught:
                client.request("deploy", url=url, route="/evil", name="evil")
            assert reason in str(caught.value)
        for name in HOSTILE_NAMES:
            for command, args in COMMANDS_WITH_NAMES:
                with pytest.raises(AdminError, match="is not allowed: a name is 1-63 characters"):
                    client.request(command, name=name, **args)
        assert client.request("status")["generation_pid"] == generation
    assert git_log.invocations() == []  # git never ran (GitPython was not even loaded)
    assert [child.pid for child in master.children()] == [generation]
    assert tree(apps) == before and records(apps) is None

    # a good deploy, then the state every failure must leave exactly as it is
    one, _ = versioned_repo(tmp_path, "one")
    with admin(server) as client:
        client.request("deploy", url=one.url, route="/one")
        snapshot = (tree(apps), records(apps), client.request("apps"), client.request("status")["generation"])

        def unchanged() -> None:
            apps_rows = [
                {k: v for k, v in row.items() if k in ("route", "spec", "state")} for row in snapshot[2]
            ]
            now = [
                {k: v for k, v in row.items() if k in ("route", "spec", "state")}
                for row in client.request("apps")
            ]
            assert (tree(apps), records(apps), now, client.request("status")["generation"]) == (
                snapshot[0],
                snapshot[1],
                apps_rows,
                snapshot[3],
            )

        subscription = client.subscribe("deploy", name="broken")
        for url, route, reason in failing_repos(tmp_path):
            with pytest.raises(AdminError, match=reason.replace("(", r"\(")):
                client.request("deploy", url=url, route=route)
            unchanged()
        stages = []
        for event in subscription:
            stages.append(event.data["stage"])
            if event.data["stage"] == "failed":
                assert "surely_not_installed_pkg" in event.data["message"]
                break
        assert stages[0] == "validating" and "cloning" in stages and "verifying" in stages

        hole = BlackHole()
        try:
            started = time.monotonic()
            with pytest.raises(AdminError, match=r"did not finish within DEPLOY_TIMEOUT \(2 s\)"):
                client.request(
                    "deploy", url=f"http://127.0.0.1:{hole.port}/slow.git", route="/slow", name="slow"
                )
            assert time.monotonic() - started < 8
        finally:
            hole.close()
        unchanged()
    assert get(server, "/one").text == "v1" and get(server, "/other").text == "other"
    assert any(" clone " in line for line in git_log.invocations())


def test_async_mode_and_the_cli(start_server: StartServer, tmp_path: Path) -> None:
    apps = app_dir(tmp_path)
    repo, first = versioned_repo(tmp_path, "site")
    server = start_server({"/other": "other:app"}, mode="async", settings=deploy_settings(apps))
    cli = [sys.executable, "-m", "qactuar"]
    config = ["--config", str(server.config_path)]

    deployed = subprocess.run(
        [*cli, "deploy", repo.url, "--route", "/site", *config],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "site  cloning" in deployed.stderr and "site  verifying" in deployed.stderr
    assert deployed.stderr.rstrip().splitlines()[-1].startswith("site  live")
    assert f"commit       {first}" in deployed.stdout and "state        live" in deployed.stdout
    assert get(server, "/site").text == "v1"

    second = repo.commit({"app.py": APP_VERSIONED.format(version="v2")}, "v2")
    with admin(server) as client:
        assert client.request("update", name="site")["commit"] == second
        assert get(server, "/site").text == "v2"
        assert client.request("rollback", name="site")["commit"] == first
        assert get(server, "/site").text == "v1"
        with pytest.raises(AdminError, match="module clash"):
            clash = GitRepo(tmp_path, "clash")
            clash.commit({"app.py": APP_VERSIONED.format(version="clash")})
            client.request("deploy", url=clash.url, route="/clash")

    listing = subprocess.run(
        [*cli, "deployments", *config], check=False, capture_output=True, text=True, timeout=30
    )
    assert listing.returncode == 0 and "site  /site  live" in listing.stdout
    removed = subprocess.run(
        [*cli, "undeploy", "site", *config], check=False, capture_output=True, text=True, timeout=30
    )
    assert removed.returncode == 0 and "state  removed" in removed.stdout
    assert "site  removed" in removed.stderr
    assert get(server, "/site").status_code == 404
    assert not (apps / "site").exists()
    refused = subprocess.run(
        [*cli, "rollback", "site", *config], check=False, capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 1 and "no app named site is deployed" in refused.stderr
