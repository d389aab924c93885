"""Pictures of every screen and dialog, drawn by the app the CLI builds over deterministic fake data.

Regenerate after an intended change with ``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and
look at the report before committing the new SVGs.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from tui_fake import FakeBackend
from tui_snapshot_app import SIZE, loaded, settle, snapshot_app, steady

SnapCompare = Callable[..., bool]


class TestScreens:
    def test_dashboard(self, snap_compare: SnapCompare) -> None:
        """Server line, three plots with a burst two minutes ago, counters, apps with /shop failed (red)."""
        assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=loaded)

    def test_processes(self, snap_compare: SnapCompare) -> None:
        """Master, generation 3 and four workers, sorted by role, with CPU, RSS, requests and ages."""
        assert snap_compare(snapshot_app(), press=["2"], terminal_size=SIZE, run_before=loaded)

    def test_processes_sorted_by_cpu_descending(self, snap_compare: SnapCompare) -> None:
        """``s`` three times (gen, state, CPU%) and ``S``: the busiest worker first, the arrow on CPU%."""
        keys = ["2", "s", "s", "s", "S"]
        assert snap_compare(snapshot_app(), press=keys, terminal_size=SIZE, run_before=loaded)

    def test_logs(self, snap_compare: SnapCompare) -> None:
        """The tail: a hostile request path reads literally ([bold red], \\x1b[31m); a traceback indented."""
        assert snap_compare(snapshot_app(), press=["3"], terminal_size=SIZE, run_before=loaded)

    def test_logs_filtered_by_text(self, snap_compare: SnapCompare) -> None:
        """``/`` then ``keyerror``: only the record whose traceback mentions it is left."""
        keys = ["3", "slash", *"keyerror", "enter"]
        assert snap_compare(snapshot_app(), press=keys, terminal_size=SIZE, run_before=loaded)

    def test_apps(self, snap_compare: SnapCompare) -> None:
        """Config apps and git deployments joined by route; /shop failed; the selected app's details."""
        assert snap_compare(snapshot_app(), press=["4"], terminal_size=SIZE, run_before=loaded)

    def test_apps_without_deploy_commands(self, snap_compare: SnapCompare) -> None:
        """A server without deploy commands: only the mounted apps, and a line that says so."""
        app = snapshot_app(deploys=False)
        assert snap_compare(app, press=["4"], terminal_size=SIZE, run_before=loaded)


class TestDialogs:
    def test_app_error(self, snap_compare: SnapCompare) -> None:
        """``e`` on the failed /shop row: its import traceback in full."""
        keys = ["down", "down", "down", "e"]
        assert snap_compare(snapshot_app(), press=keys, terminal_size=SIZE, run_before=loaded)

    def test_deploy_dialog(self, snap_compare: SnapCompare) -> None:
        """``d`` on the apps screen: the empty deploy form, every stage still to come."""

        async def open_dialog(pilot: Pilot[None]) -> None:
            await loaded(pilot)
            await pilot.press("4", "d")
            await steady(pilot)

        assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=open_dialog)

    def test_deploy_failed(self, snap_compare: SnapCompare) -> None:
        """A deploy the server refuses: stages up to the failure, the reason in plain text, the form back."""
        app = snapshot_app()
        assert isinstance(app.backend, FakeBackend)
        app.backend.deploy_error = "verify failed: [bold]app.py[/] raised ImportError\x1b[2J"

        async def deploy(pilot: Pilot[None]) -> None:
            await loaded(pilot)
            await pilot.press("4", "d", *"file:///srv/git/blog.git", "tab", *"/blog", "enter")
            dialog = app.screen
            await settle(
                pilot,
                lambda: (
                    "Deploy failed" in str(dialog.query_one("#deploy-message").render())
                    and "✗ verifying" in str(dialog.query_one("#deploy-stages").render())
                ),
            )
            await steady(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=deploy)

    def test_undeploy_confirmation(self, snap_compare: SnapCompare) -> None:
        """``x`` on /blog: the question names the app and the route, Cancel has the focus."""
        keys = ["4", "down", "down", "x"]
        assert snap_compare(snapshot_app(), press=keys, terminal_size=SIZE, run_before=loaded)


class TestConnection:
    def test_no_server(self, snap_compare: SnapCompare) -> None:
        """No server: one screen with the client's reason, what to try, and the next attempt."""
        app = snapshot_app(
            fail="no Qactuar admin server at 127.0.0.1:1986 (Connection refused): is the server running?"
        )

        async def failed(pilot: Pilot[None]) -> None:
            await settle(pilot, lambda: app.state.link.state == "unavailable")

        assert snap_compare(app, terminal_size=SIZE, run_before=failed)

    def test_login_refused(self, snap_compare: SnapCompare) -> None:
        """A wrong token: the same screen, saying the console will not retry until ``r``."""
        app = snapshot_app(
            fail="the admin server at 127.0.0.1:1986 refused the login: authentication failed: wrong admin "
            "token (token from /srv/site/.qactuar/admin.token)"
        )

        async def refused(pilot: Pilot[None]) -> None:
            await settle(pilot, lambda: app.state.link.state == "unavailable")

        assert snap_compare(app, terminal_size=SIZE, run_before=refused)

    def test_lost_banner(self, snap_compare: SnapCompare) -> None:
        """The server went away: the red banner with the reason over the last data, dimmed."""
        app = snapshot_app()
        assert isinstance(app.backend, FakeBackend)
        backend = app.backend

        async def lost(pilot: Pilot[None]) -> None:
            await loaded(pilot)
            backend.fail = (
                "no Qactuar admin server at 127.0.0.1:1986 (Connection refused): is the server running?"
            )
            backend.lose("the admin server at 127.0.0.1:1986 closed the connection")
            await settle(pilot, lambda: app.state.link.state == "lost")

        assert snap_compare(app, terminal_size=SIZE, run_before=lost)
