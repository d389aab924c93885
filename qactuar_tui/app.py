"""The console app: screens as modes, one connection worker, and the state the screens draw from.

Kept thin on purpose.  The app owns the ``Backend`` and the ``ConsoleState``, runs the ``Connection`` in
one exclusive worker (so the UI never waits on the socket), turns the worker's messages into state and
re-publishes them on signals the screens subscribe to.  Each screen is a mode, switched with 1-4 and
listed in the footer and the command palette; the "no server" screen is a mode of its own, shown only
until the first connection.  Commands the user runs (reload, scale, deploy...) run in workers too and
report through notifications, with the server's reason as plain text when it refuses.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.signal import Signal

from qactuar_tui.backend import AdminError, AdminUnavailable, Backend, Deployment, DeployProgress, Snapshot
from qactuar_tui.connection import RECONNECT_DELAYS, Connection
from qactuar_tui.messages import (
    Connected,
    ConnectionFailed,
    DeploymentsLoaded,
    DeployProgressed,
    LogsReceived,
    StatsUpdated,
)
from qactuar_tui.model import ConsoleState, Link
from qactuar_tui.screens.apps import AppsScreen
from qactuar_tui.screens.dashboard import DashboardScreen
from qactuar_tui.screens.logs import LogsScreen
from qactuar_tui.screens.processes import ProcessesScreen
from qactuar_tui.screens.unavailable import UnavailableScreen
from qactuar_tui.text import clean

SCREENS = (
    ("dashboard", "Dashboard", "Server, load and latency plots, apps"),
    ("processes", "Processes", "Master, generations, workers: sort, scale, reload"),
    ("logs", "Logs", "Live access and error logs, filtered"),
    ("apps", "Apps", "Mounted apps and git deployments: deploy, update, roll back, undeploy"),
)
NO_SERVER = "unavailable"


class QactuarApp(App[None]):
    """The Qactuar console."""

    CSS_PATH = "qactuar.tcss"
    TITLE = "Qactuar"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "dashboard": DashboardScreen,
        "processes": ProcessesScreen,
        "logs": LogsScreen,
        "apps": AppsScreen,
        NO_SERVER: UnavailableScreen,
    }
    DEFAULT_MODE = "dashboard"

    BINDINGS = [
        *(Binding(str(n), f"show('{mode}')", title) for n, (mode, title, _) in enumerate(SCREENS, 1)),
        Binding("ctrl+r", "reconnect", "Reconnect", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Callable[[], float] = time.time,
        reconnect_delays: tuple[float, ...] = RECONNECT_DELAYS,
    ) -> None:
        """Args:
        backend: The server (``AdminBackend``, or a fake in tests).
        clock: The time now, for process ages (fixed in snapshot tests).
        reconnect_delays: Seconds between connection attempts; the last one repeats.
        """
        super().__init__()
        self.backend = backend
        self.clock = clock
        self.state = ConsoleState(Link("connecting", backend.target))
        self._connection = Connection(backend, self.state, self.post_message, reconnect_delays)
        self.link_changed: Signal[Link] = Signal(self, "link-changed")
        self.stats_changed: Signal[Snapshot] = Signal(self, "stats-changed")
        self.logs_changed: Signal[int] = Signal(self, "logs-changed")
        self.deploy_progressed: Signal[DeployProgress] = Signal(self, "deploy-progressed")
        self.deployments_changed: Signal[tuple[Deployment, ...]] = Signal(self, "deployments-changed")

    def on_mount(self) -> None:
        self.sub_title = clean(self.backend.target)
        self.stay_connected()

    async def on_unmount(self) -> None:
        await self.backend.close()

    @work(exclusive=True, group="connection")
    async def stay_connected(self) -> None:
        """The one connection worker; started again (replacing the old one) by ``reconnect``."""
        await self._connection.run()

    # --- what the connection worker reports ------------------------------------------------------------

    def on_connected(self, message: Connected) -> None:
        self.state.logs.new_server((message.status.pid, message.status.started_at))
        self.sub_title = clean(message.target)
        self._set_link(Link("connected", message.target))
        if self.current_mode == NO_SERVER:
            self.switch_mode(self.DEFAULT_MODE)

    def on_connection_failed(self, message: ConnectionFailed) -> None:
        lost = self.state.link.state in ("connected", "lost")
        self._set_link(
            Link(
                "lost" if lost else "unavailable",
                message.target,
                message.reason,
                message.attempt,
                message.retry_in,
            )
        )
        if not lost and self.current_mode != NO_SERVER:
            self.switch_mode(NO_SERVER)

    def _set_link(self, link: Link) -> None:
        self.state.link = link
        self.link_changed.publish(link)

    def on_stats_updated(self, message: StatsUpdated) -> None:
        self.state.history.extend(message.points)
        self.state.snapshot = message.snapshot
        self.stats_changed.publish(message.snapshot)

    def on_logs_received(self, message: LogsReceived) -> None:
        if sum(self.state.logs.add(record) for record in message.records):
            self.logs_changed.publish(self.state.logs.added)

    def on_deploy_progressed(self, message: DeployProgressed) -> None:
        self.state.deploy_events.append(message.progress)
        self.deploy_progressed.publish(message.progress)

    def on_deployments_loaded(self, message: DeploymentsLoaded) -> None:
        self.state.deploys_supported = message.deployments is not None
        self.state.deployments = message.deployments or ()
        self.deployments_changed.publish(self.state.deployments)

    # --- commands ----------------------------------------------------------------------------------------

    @work(group="commands")
    async def run_command(
        self, action: str, call: Callable[[], Awaitable[object]], done: str, *, changes_apps: bool = False
    ) -> None:
        """Run a server command in a worker; say ``done``, or the server's reason when it refused.

        Args:
            action: What it is, for the notification's title ("Undeploy").
            call: Sends the command.
            done: What to say when it worked.
            changes_apps: Fetch the deployments again afterwards.
        """
        try:
            await call()
        except (AdminError, AdminUnavailable) as exc:
            self.notify(clean(str(exc)), title=f"{action} failed", severity="error", markup=False, timeout=10)
        else:
            self.notify(clean(done), title=action, markup=False)
        if changes_apps:
            self.refresh_deployments()

    @work(exclusive=True, group="deployments")
    async def refresh_deployments(self) -> None:
        """Fetch the deployments again (after a deploy, update, rollback or undeploy)."""
        try:
            deployments: tuple[Deployment, ...] | None = tuple(await self.backend.deployments())
        except AdminError:
            deployments = None
        except AdminUnavailable:
            return  # the connection worker reports it and fetches them again on reconnecting
        self.post_message(DeploymentsLoaded(deployments))

    # --- keys and the command palette ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No screen switching while a dialog is open or before there is a server; no quitting from a
        dialog (``q`` there most likely meant "close the dialog")."""
        in_dialog = isinstance(self.screen, ModalScreen)
        if action == "show":
            return not in_dialog and self.current_mode != NO_SERVER
        if action == "quit":
            return not in_dialog
        return True

    def action_show(self, mode: str) -> None:
        self.switch_mode(mode)

    def action_reconnect(self) -> None:
        self.stay_connected()

    async def _act_on(self, mode: str, action: str) -> None:
        await self.switch_mode(mode)
        await self.screen.run_action(action)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Reconnect", "Connect to the server again now", self.action_reconnect)
        if self.current_mode == NO_SERVER:
            return
        for n, (mode, title, help_text) in enumerate(SCREENS, 1):
            yield SystemCommand(f"{title} screen", f"{help_text} (key {n})", partial(self.switch_mode, mode))
        yield SystemCommand(
            "Deploy an app…", "Deploy an app from a git repository", partial(self._act_on, "apps", "deploy")
        )
        yield SystemCommand(
            "Reload the server",
            "Start a new generation of the same apps",
            partial(self._act_on, "processes", "reload"),
        )
        yield SystemCommand(
            "Scale the workers…",
            "Set the number of prefork workers",
            partial(self._act_on, "processes", "scale_to"),
        )
