"""The console's behaviour over the fake server: what each key sends, what it asks first, how it recovers.

These drive the app the CLI builds (``make_app``) with the Pilot and check the commands the fake received,
so they are fast and need no server; ``test_tui_live.py`` does the same against a real one.
"""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Input, RichLog, Select, TextArea
from tui_fake import FakeBackend, record_at
from tui_snapshot_app import SIZE, loaded, settle, snapshot_app

from qactuar_tui.app import NO_SERVER, QactuarApp
from qactuar_tui.dialogs.confirm import ConfirmDialog
from qactuar_tui.dialogs.deploy import DeployDialog
from qactuar_tui.dialogs.details import DetailsDialog
from qactuar_tui.dialogs.prompt import PromptDialog
from qactuar_tui.factory import make_app
from qactuar_tui.messages import StatsUpdated
from qactuar_tui.model import LEVELS
from qactuar_tui.widgets.banner import ConnectionBanner
from qactuar_tui.widgets.live_table import LiveTable


def fake_of(app: QactuarApp) -> FakeBackend:
    assert isinstance(app.backend, FakeBackend)
    return app.backend


def select(app: QactuarApp, key: str) -> None:
    table = app.screen.query_one(LiveTable)
    table.move_cursor(row=table.get_row_index(key), animate=False)


def log_text(app: QactuarApp) -> str:
    return "\n".join(line.text for line in app.screen.query_one(RichLog).lines)


async def test_screens_switch_by_key_and_stats_arrive_as_messages() -> None:
    messages: list[Message] = []
    app = snapshot_app()
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await loaded(pilot)
        assert any(isinstance(m, StatsUpdated) for m in messages)
        for key, mode in [("2", "processes"), ("3", "logs"), ("4", "apps"), ("1", "dashboard")]:
            await pilot.press(key)
            assert app.current_mode == mode
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Dashboard screen", "Processes screen", "Logs screen", "Apps screen"} <= set(titles)
        assert {"Deploy an app…", "Reload the server", "Scale the workers…", "Reconnect"} <= set(titles)


async def test_undeploy_is_sent_only_after_yes() -> None:
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("4")
        select(app, "/blog")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("enter")  # the focus starts on Cancel
        await settle(pilot, lambda: not isinstance(app.screen, ConfirmDialog))
        await pilot.press("x", "n")
        await pilot.pause()
        assert fake_of(app).calls == []
        await pilot.press("x", "y")
        await settle(pilot, lambda: fake_of(app).calls == [("undeploy", "blog")])


async def test_rollback_and_update_ask_first_and_config_apps_are_refused() -> None:
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("4")
        select(app, "/")
        await pilot.press("u", "b", "x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog | PromptDialog)
        select(app, "/shop")
        await pilot.press("b", "y")
        await settle(pilot, lambda: fake_of(app).calls == [("rollback", "shop")])
        await pilot.press("u")
        assert isinstance(app.screen, PromptDialog)
        assert app.screen.query_one(Input).value == "v2.1.0"
        await pilot.press("end", *["backspace"] * 6, *"v2.2.0", "enter")
        await settle(pilot, lambda: fake_of(app).calls[-1] == ("update", ("shop", "v2.2.0")))


async def test_reload_and_scale_ask_first() -> None:
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2", "r", "n", "plus", "escape")
        await pilot.pause()
        assert fake_of(app).calls == []
        await pilot.press("r", "y")
        await settle(pilot, lambda: fake_of(app).calls == [("reload", None)])
        await pilot.press("plus", "y")
        await settle(pilot, lambda: fake_of(app).calls[-1] == ("scale", 5))
        await pilot.press("w")
        assert isinstance(app.screen, PromptDialog)
        await pilot.press("end", "backspace", "0", "enter")  # 0 workers: refused by the dialog
        await pilot.pause()
        assert isinstance(app.screen, PromptDialog)
        await pilot.press("backspace", "1", "2", "enter")
        await settle(pilot, lambda: fake_of(app).calls[-1] == ("scale", 12))


async def test_stopping_a_worker_asks_first_and_only_for_workers() -> None:
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        select(app, "4188")  # the generation: not something to stop from here
        await pilot.press("k")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
        select(app, "4191")
        await pilot.press("k", "n")
        await pilot.pause()
        assert fake_of(app).calls == []
        await pilot.press("k", "y")
        await settle(pilot, lambda: fake_of(app).calls == [("kill", 4191)])


async def test_deploy_dialog_sends_the_form_and_shows_it_live() -> None:
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("4", "d")
        dialog = app.screen
        assert isinstance(dialog, DeployDialog)
        await pilot.press("enter")
        assert "required" in str(dialog.query_one("#deploy-message").render())
        await pilot.press(*"file:///srv/git/wiki.git", "tab", *"/wiki", "tab", *"wiki", "enter")
        await settle(pilot, lambda: "Live" in str(dialog.query_one("#deploy-message").render()))
        [(command, request)] = fake_of(app).calls
        assert (command, request.url, request.route, request.name) == (
            "deploy",
            "file:///srv/git/wiki.git",
            "/wiki",
            "wiki",
        )
        stages = str(dialog.query_one("#deploy-stages").render())
        assert stages.count("✓") == 5
        await pilot.press("escape")
        assert not isinstance(app.screen, DeployDialog)


async def test_failed_app_error_is_one_key_away() -> None:
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        select(app, "/shop")
        await pilot.press("e")
        assert isinstance(app.screen, DetailsDialog)
        assert "No module named 'stripe'" in app.screen.query_one(TextArea).text
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailsDialog)


async def test_logs_pause_and_resume() -> None:
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await settle(pilot, lambda: "req-evil" in log_text(app))
        await pilot.press("p")
        fake_of(app).push_log(record_at(100, "while paused"))
        await settle(pilot, lambda: len(app.state.logs) == 9)
        await pilot.pause(0.2)
        assert "while paused" not in log_text(app)
        await pilot.press("p")
        await settle(pilot, lambda: "while paused" in log_text(app))


async def test_logs_filter_by_level_and_app() -> None:
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await settle(pilot, lambda: "req-0003" in log_text(app))
        app.screen.query_one("#log-level", Select).value = LEVELS["WARNING"]
        await settle(pilot, lambda: "req-0003" not in log_text(app))
        assert "Exception in ASGI app" in log_text(app) and "MAX_REQUESTS" in log_text(app)
        app.screen.query_one("#log-level", Select).value = LEVELS["INFO"]
        app.screen.query_one("#log-app", Select).value = "/api"
        await settle(pilot, lambda: "req-evil" in log_text(app) and "req-0003" not in log_text(app))
        assert "MAX_REQUESTS" not in log_text(app)  # a server record belongs to no app


async def test_losing_the_server_shows_the_banner_and_reconnects() -> None:
    fake = FakeBackend()
    app = make_app(backend=fake, reconnect_delays=(0.3,))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        banner = app.screen.query_one(ConnectionBanner)
        assert not banner.has_class("-lost")
        fake.lose("the admin server at 127.0.0.1:1986 closed the connection")
        await settle(
            pilot, lambda: banner.has_class("-lost") and "closed the connection" in str(banner.render())
        )
        await settle(pilot, lambda: app.state.link.state == "connected" and not banner.has_class("-lost"))
        assert fake.connects == 2


async def test_a_refused_login_is_not_retried_until_asked() -> None:
    fake = FakeBackend(fail="the admin server at 127.0.0.1:1986 refused the login: wrong admin token")
    app = make_app(backend=fake, reconnect_delays=(0.01,))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_mode == NO_SERVER)
        await pilot.pause(0.2)
        assert fake.connects == 1
        await pilot.press("2")  # no screen to switch to without a server
        assert app.current_mode == NO_SERVER
        fake.fail = None
        await pilot.press("r")
        await settle(pilot, lambda: app.current_mode == "dashboard" and app.state.snapshot is not None)
