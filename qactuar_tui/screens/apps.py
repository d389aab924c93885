"""The apps screen: every mounted app with where it comes from, and the git deploy lifecycle.

Each row is one app: route, name, state, source (``config`` for the config file's apps, ``git`` for
deployed ones), then for deployed apps the URL, ref, commit, release and when it was deployed -- the
``apps`` tick joined with the server's ``deployments`` by route.  A deployment that is not mounted (still
starting, or failed) has a row too.  The line under the table shows the selected app in full, and the
last deploy events below it show what the server is doing.

``d`` opens the deploy dialog; ``u`` updates the selected deployed app (asks for the ref), ``b`` rolls it
back to its previous release and ``x`` undeploys it -- each after a confirmation.  ``e`` shows the error
of a failed app.  A server without deploy commands says so here instead of failing each action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widgets import DataTable, Static

from qactuar.stats.models import AppInfo
from qactuar_tui.backend import Deployment, DeployProgress
from qactuar_tui.dialogs.confirm import ConfirmDialog
from qactuar_tui.dialogs.deploy import DeployDialog
from qactuar_tui.dialogs.details import DetailsDialog
from qactuar_tui.dialogs.prompt import PromptDialog
from qactuar_tui.screens.base import ConsoleScreen
from qactuar_tui.text import NOTHING, clean, date_time
from qactuar_tui.widgets.live_table import Cell, Column, LiveTable, cell

EVENTS_SHOWN = 4
URL_WIDTH = 30  # the table cuts long values; the line under it shows the selected row in full
REF_WIDTH = 14
COMMIT_WIDTH = 8
APP_COLUMNS = (
    Column("route", "Route"),
    Column("name", "Name"),
    Column("state", "State"),
    Column("source", "Source"),
    Column("origin", "URL / app"),
    Column("ref", "Ref"),
    Column("commit", "Commit"),
    Column("release", "Release"),
    Column("deployed", "Deployed"),
)
STATE_STYLE = {"loaded": "green", "live": "green", "failed": "bold red"}


@dataclass(frozen=True, slots=True)
class AppRow:
    """One mounted app, one deployment, or both (joined by route)."""

    route: str
    app: AppInfo | None
    deployment: Deployment | None

    @property
    def state(self) -> str:
        if self.app is not None and (self.app.state == "failed" or self.deployment is None):
            return self.app.state
        return self.deployment.state if self.deployment is not None else NOTHING

    def cells(self) -> list[Cell]:
        app, deployment = self.app, self.deployment
        style = STATE_STYLE.get(self.state, "yellow")
        if deployment is None:
            return [
                cell(self.route, style="bold red" if self.state == "failed" else ""),
                cell(NOTHING),
                cell(self.state, style=style),
                cell(app.source if app else NOTHING),
                cell(app.spec if app else NOTHING, style="dim", width=URL_WIDTH),
                *(cell(NOTHING) for _ in range(4)),
            ]
        deployed = deployment.deployed_at
        return [
            cell(self.route, style="bold red" if self.state == "failed" else ""),
            cell(deployment.name, style="bold"),
            cell(self.state, style=style),
            cell("git"),
            cell(deployment.url, style="dim", width=URL_WIDTH),
            cell(deployment.ref or NOTHING, width=REF_WIDTH),
            cell(deployment.commit[:COMMIT_WIDTH] or NOTHING),
            cell(deployment.release or NOTHING, width=REF_WIDTH),
            cell(NOTHING if deployed is None else date_time(deployed), deployed),
        ]

    def detail(self) -> Content:
        """The selected row in full, on the line under the table."""
        parts: list[str | tuple[str, str]] = [(clean(self.route), "bold"), "  "]
        if self.deployment is not None:
            d = self.deployment
            parts += [
                clean(d.url),
                f"  ref {clean(d.ref or NOTHING)}  commit {clean(d.commit or NOTHING)}",
                f"  release {clean(d.release or NOTHING)}",
            ]
        elif self.app is not None:
            parts += [f"{clean(self.app.spec)} from the config file"]
        if self.app is not None and self.app.error:
            first = clean(self.app.error.strip().splitlines()[0]) if self.app.error.strip() else ""
            parts += ["\n", ("failed: ", "bold $text-error"), first, ("  (e: full error)", "dim")]
        return Content.assemble(*parts)


def join(apps: tuple[AppInfo, ...], deployments: tuple[Deployment, ...]) -> list[AppRow]:
    """Apps in the server's order, then deployments that are not mounted."""
    by_route = {deployment.route: deployment for deployment in deployments}
    rows = [AppRow(app.route, app, by_route.pop(app.route, None)) for app in apps]
    return rows + [AppRow(d.route, None, d) for d in by_route.values()]


def event_line(event: DeployProgress) -> Content:
    style = "$text-error" if event.stage == "failed" else "$text-success" if event.stage == "live" else ""
    return Content.assemble(
        (clean(event.name), "bold"), "  ", (clean(event.stage), style), "  ", clean(event.message)
    )


class AppsScreen(ConsoleScreen):
    """Apps and deployments, with the deploy lifecycle's actions."""

    TITLE = "Qactuar · Apps"

    BINDINGS = [
        Binding("d", "deploy", "Deploy…"),
        Binding("u", "update", "Update…"),
        Binding("b", "rollback", "Roll back"),
        Binding("x", "undeploy", "Undeploy"),
        Binding("e", "show_error", "Error"),
    ]

    def compose_body(self) -> ComposeResult:
        yield LiveTable(APP_COLUMNS, id="app-table")
        yield Static(id="app-detail")
        yield Static(id="deploy-events")

    def on_mount(self) -> None:
        super().on_mount()
        app = self.qactuar
        app.deployments_changed.subscribe(self, lambda _: self.refresh_data())
        app.deploy_progressed.subscribe(self, lambda _: self._show_events())
        self._show_events()

    def _rows(self) -> list[AppRow]:
        state = self.qactuar.state
        apps = state.snapshot.apps if state.snapshot else ()
        return join(apps, state.deployments)

    def _selected(self) -> AppRow | None:
        key = self.query_one(LiveTable).selected
        return next((row for row in self._rows() if row.route == key), None)

    def refresh_data(self) -> None:
        self.query_one(LiveTable).sync((row.route, row.cells()) for row in self._rows())
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def _show_detail(self) -> None:
        row = self._selected()
        self.query_one("#app-detail", Static).update(row.detail() if row else Content(""))

    def _show_events(self) -> None:
        state = self.qactuar.state
        if not state.deploys_supported:
            note = Content.styled("This server has no deploy commands (deploy, update, rollback).", "dim")
        elif state.deploy_events:
            note = Content("\n").join(event_line(e) for e in list(state.deploy_events)[-EVENTS_SHOWN:])
        else:
            note = Content.styled("No deploys since the console connected. d: deploy an app from git.", "dim")
        self.query_one("#deploy-events", Static).update(note)

    def _deployed(self) -> Deployment | None:
        """The selected deployment; says why not when the selection is not a deployed app."""
        row = self._selected()
        if row is not None and row.deployment is not None:
            return row.deployment
        where = f"The app at {clean(row.route)}" if row else "This row"
        self.notify(f"{where} comes from the config file: change qactuar.toml for it.", markup=False)
        return None

    def action_deploy(self) -> None:
        """Open the deploy dialog; the table is refreshed when it closes."""
        app = self.qactuar

        def closed(_: Deployment | None) -> None:
            app.refresh_deployments()

        app.push_screen(DeployDialog(app.backend.deploy, app.deploy_progressed), closed)

    def action_update(self) -> None:
        """Ask for the ref, then update the selected deployment to it."""
        deployment = self._deployed()
        if deployment is None:
            return
        name = deployment.name
        question = Content.assemble(
            "Update ",
            (clean(name), "bold"),
            " to which git ref? (empty: the one it follows, ",
            (clean(deployment.ref or "the default branch"), "bold"),
            ")",
        )
        backend = self.qactuar.backend

        def chosen(ref: str | None) -> None:
            if ref is not None:
                self.qactuar.run_command(
                    "Update", lambda: backend.update(name, ref), f"Updated {name}.", changes_apps=True
                )

        self.app.push_screen(
            PromptDialog(question, deployment.ref, placeholder="branch, tag or commit"), chosen
        )

    def action_rollback(self) -> None:
        """Roll the selected deployment back to its previous release, after confirmation."""
        deployment = self._deployed()
        if deployment is not None:
            name = deployment.name
            question = Content.assemble("Roll ", (clean(name), "bold"), " back to its previous release?")
            backend = self.qactuar.backend
            self._confirm(question, "Roll back", lambda: backend.rollback(name), f"Rolled {name} back.")

    def action_undeploy(self) -> None:
        """Remove the selected deployment, after confirmation."""
        deployment = self._deployed()
        if deployment is not None:
            name = deployment.name
            question = Content.assemble(
                "Undeploy ",
                (clean(name), "bold"),
                " from ",
                (clean(deployment.route), "bold"),
                "? The route stops serving and answers 404.",
            )
            backend = self.qactuar.backend
            self._confirm(question, "Undeploy", lambda: backend.undeploy(name), f"Undeployed {name}.")

    def _confirm(
        self, question: Content, action: str, call: Callable[[], Awaitable[None]], done: str
    ) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.qactuar.run_command(action, call, done, changes_apps=True)

        self.app.push_screen(ConfirmDialog(question, action), answered)

    def action_show_error(self) -> None:
        """Show the selected app's error in full."""
        row = self._selected()
        if row is None or row.app is None or not row.app.error:
            self.notify("The selected app has no error.")
            return
        self.app.push_screen(DetailsDialog(f"The app at {row.route} failed", row.app.error))
