"""The console against real servers started by the test: what the issue says it must show.

Each test starts a Qactuar server (port 0, ``admin_port = 0``), builds the console with ``make_app`` from
the server's config file -- exactly what ``qactuar-tui --config FILE`` does -- and drives it with the
Pilot.  Waits are bounded; the ``start_server`` fixture stops every server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from server_process import ServerProcess, live_descendants
from textual.pilot import Pilot
from textual.widgets import RichLog, Sparkline, TextArea
from tui_snapshot_app import settle

from qactuar_tui.app import NO_SERVER, QactuarApp
from qactuar_tui.dialogs.confirm import ConfirmDialog
from qactuar_tui.dialogs.deploy import DeployDialog
from qactuar_tui.dialogs.details import DetailsDialog
from qactuar_tui.factory import ConnectOptions, make_app
from qactuar_tui.widgets.banner import ConnectionBanner
from qactuar_tui.widgets.live_table import LiveTable

StartServer = Callable[..., ServerProcess]
HERE = Path(__file__).resolve().parent
SIZE = (160, 48)
FAST_RETRY = (0.2, 0.5, 1.0)
APPS = {"/": "tui_apps:hello", "/boom": "tui_apps:explode", "/bad": "tui_broken:app"}
DEPLOYED_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"deployed through the console"})
"""


def app_dir(tmp_path: Path) -> str:
    """A directory with the test apps, so nothing a server writes lands in the source tree."""
    apps = tmp_path / "apps"
    apps.mkdir(exist_ok=True)
    for name in ("tui_apps.py", "tui_broken.py"):
        shutil.copy(HERE / name, apps / name)
    return str(apps)


def console(server: ServerProcess, **options: Any) -> QactuarApp:
    return make_app(ConnectOptions(config=str(server.config_path), **options), reconnect_delays=FAST_RETRY)


def rows(app: QactuarApp) -> set[str]:
    return {str(key.value) for key in app.screen.query_one(LiveTable).rows}


def select(app: QactuarApp, key: str) -> None:
    table = app.screen.query_one(LiveTable)
    table.move_cursor(row=table.get_row_index(key), animate=False)


def serving_pids(server: ServerProcess) -> set[int]:
    return {process.pid for process in live_descendants(server.pid)}


def git(*args: str, cwd: Path) -> None:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=30)


def bare_repository(tmp_path: Path) -> str:
    """A local bare repository whose main branch holds a one-file ASGI app (app.py)."""
    work, bare = tmp_path / "work", tmp_path / "deployable.git"
    work.mkdir()
    (work / "app.py").write_text(DEPLOYED_APP)
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "app.py", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "app", cwd=work)
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    git("push", "-q", str(bare), "main", cwd=work)
    return bare.as_uri()


async def connected(pilot: Pilot[None], app: QactuarApp) -> None:
    await settle(pilot, lambda: app.state.link.state == "connected" and app.state.snapshot is not None, 15)


async def test_dashboard_shows_the_real_apps_workers_and_traffic(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(APPS, mode="prefork", settings={"app_dir": app_dir(tmp_path), "workers": 2})
    app = console(server)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        assert rows(app) == {"/", "/boom", "/bad"}
        assert "prefork mode" in str(app.screen.query_one("#server").render())
        assert "2 workers" in str(app.screen.query_one("#server").render())
        failed = app.screen.query_one(LiveTable).get_row("/bad")
        assert str(failed[1]) == "failed" and "red" in str(failed[0].style)
        select(app, "/bad")
        await pilot.press("e")
        assert isinstance(app.screen, DetailsDialog)
        assert "broken at import time" in app.screen.query_one(TextArea).text
        await pilot.press("escape", "2")
        await settle(
            pilot, lambda: {int(pid) for pid in rows(app)} == {server.pid, *serving_pids(server)}, 10
        )
        roles = [str(row[1]) for row in map(app.screen.query_one(LiveTable).get_row, rows(app))]
        assert sorted(roles) == ["generation", "master", "worker", "worker"]

        await pilot.press("1")
        before = app.state.snapshot.status.totals.requests if app.state.snapshot else 0
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            for _ in range(40):
                assert (await client.get("/")).status_code == 200

        def moved() -> bool:
            snapshot = app.state.snapshot
            plot = app.screen.query_one("#plot-rps Sparkline", Sparkline)
            return bool(
                snapshot is not None
                and snapshot.status.totals.requests >= before + 40
                and max(plot.data or [0.0]) > 0
            )

        await settle(pilot, moved, 10)
        counters = str(app.screen.query_one("#counters").render())
        assert f"requests {before + 40:,}" in counters
        assert int(str(app.screen.query_one(LiveTable).get_row("/")[5]).replace(",", "")) >= 40


async def test_logs_show_the_access_line_and_hostile_paths_literally(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(APPS, mode="async", settings={"app_dir": app_dir(tmp_path)})
    request_id = f"tui-{uuid.uuid4()}"
    app = console(server)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.press("3")
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            assert (await client.get("/", headers={"X-Request-ID": request_id})).status_code == 200
        hostile = b"/boom/[bold%20red]x[/bold]%1B[31m%1B[2J"
        reply = await asyncio.to_thread(
            server.raw, b"GET " + hostile + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        assert reply.startswith(b"HTTP/1.1 500")
        view = app.screen.query_one(RichLog)

        def text() -> str:
            return "\n".join(line.text for line in view.lines)

        await settle(pilot, lambda: request_id in text() and "cannot serve" in text(), 10)
        shown = text()
        assert '"GET / HTTP/1.1" 200' in shown
        assert "[bold%20red]x[/bold]%1B[31m%1B[2J" in shown  # the access line's raw path, as sent
        assert "cannot serve /boom/[bold red]x[/bold]\\x1b[31m\\x1b[2J" in shown  # decoded, escapes visible
        assert "\x1b" not in shown
        for line in view.lines:
            if "[bold%20red]" in line.text:
                assert not any(
                    segment.style and segment.style.bold for segment in line if "[" in segment.text
                )


async def test_deploy_through_the_dialog_then_undeploy(start_server: StartServer, tmp_path: Path) -> None:
    url = bare_repository(tmp_path)
    server = start_server(
        {"/config": "tui_apps:hello"},  # nothing at /: an undeployed route must answer 404
        mode="async",
        settings={"app_dir": app_dir(tmp_path), "deploy_allowed_schemes": ["file"]},
    )
    app = console(server)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.press("4", "d")
        dialog = app.screen
        assert isinstance(dialog, DeployDialog)
        await pilot.press(*url, "tab", *"/hello", "tab", *"hello", "tab", *"main", "tab", *"app:app", "enter")
        message = dialog.query_one("#deploy-message")
        await settle(pilot, lambda: "Live" in str(message.render()) or "failed" in str(message.render()), 90)
        assert "Live" in str(message.render()), str(message.render())
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            answer = await client.get("/hello")
            assert (answer.status_code, answer.text) == (200, "deployed through the console")
            await pilot.press("escape")
            await settle(pilot, lambda: "/hello" in rows(app), 10)
            select(app, "/hello")
            await pilot.press("x")
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("y")

            async def gone() -> bool:
                return (await client.get("/hello")).status_code == 404

            for _ in range(300):
                if await gone():
                    break
                await pilot.pause(0.1)
            assert await gone()


async def test_losing_the_server_shows_the_banner_and_a_restart_reconnects(start_server: StartServer) -> None:
    server = start_server({"/": "basic:hello"}, mode="async")
    app = console(server)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        first_pid = server.pid
        banner = app.screen.query_one(ConnectionBanner)
        assert not banner.display
        await asyncio.to_thread(server.stop)
        await settle(pilot, lambda: app.state.link.state == "lost" and banner.display, 10)
        assert "Lost the server" in str(banner.render())
        await asyncio.to_thread(server.start)  # the same config: a new admin port, recorded in admin.addr
        await settle(
            pilot,
            lambda: (
                app.state.link.state == "connected"
                and app.state.snapshot is not None
                and app.state.snapshot.status.pid == server.pid != first_pid
            ),
            20,
        )
        assert not banner.display


async def test_a_wrong_token_is_one_clear_screen(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server({"/": "basic:hello"}, mode="async")
    wrong = tmp_path / "wrong.token"
    wrong.write_text("w" * 43)
    wrong.chmod(0o600)
    host, _, port = (server.workdir / ".qactuar" / "admin.addr").read_text().strip().rpartition(":")
    app = make_app(
        ConnectOptions(admin=(host, int(port)), token_file=str(wrong)), reconnect_delays=FAST_RETRY
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_mode == NO_SERVER, 10)
        reason = str(app.screen.query_one("#unavailable-reason").render())
        assert "refused the login" in reason and "wrong admin token" in reason
        assert "not retrying" in reason
        assert app.state.link.retry_in is None


async def test_a_missing_server_is_one_clear_screen(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = tmp_path / "admin.token"
    token.write_text("t" * 43)
    token.chmod(0o600)
    app = make_app(ConnectOptions(admin=("127.0.0.1", port), token_file=str(token)), reconnect_delays=(30.0,))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_mode == NO_SERVER, 10)
        reason = str(app.screen.query_one("#unavailable-reason").render())
        assert f"no Qactuar admin server at 127.0.0.1:{port}" in reason
        assert "Trying again in 30 s" in reason
