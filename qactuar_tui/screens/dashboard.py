"""The dashboard: is the server well, how busy is it, and which app is in trouble -- at one glance.

Top to bottom: who the server is (version, mode, uptime, generation, listen addresses), three plots over
the last five minutes (requests/s, latency p50 and p99, one point per second), the counters (requests by
status class, rejected, open connections, in flight), and the apps table.  A failed app's row is red and
``e`` (or Enter) on it shows why it failed, traceback included.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import DataTable, Static

from qactuar.stats.models import AppInfo, Totals
from qactuar_tui.backend import ServerStatus
from qactuar_tui.dialogs.details import DetailsDialog
from qactuar_tui.screens.base import ConsoleScreen
from qactuar_tui.text import clean, count, duration, generation_label, millis, rate, share
from qactuar_tui.widgets.live_table import Cell, Column, LiveTable, cell
from qactuar_tui.widgets.plot import Plot

APP_COLUMNS = (
    Column("route", "Route"),
    Column("state", "State"),
    Column("rps", "Req/s"),
    Column("p99", "p99"),
    Column("errors", "5xx rate"),
    Column("requests", "Requests"),
    Column("spec", "App"),
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def server_line(status: ServerStatus) -> Content:
    """Version, mode, uptime, generation, workers; then the listen addresses."""
    workers = f"  ·  {status.workers} workers" if status.workers is not None else ""
    return Content.assemble(
        (f"qactuar {clean(status.version)}", "bold"),
        f"  ·  {clean(status.mode)} mode  ·  up {duration(status.uptime)}",
        f"  ·  {generation_label(status.generation)}{workers}\n",
        ("listening on ", "dim"),
        clean(", ".join(status.listen) or "nothing"),
    )


def counters_line(totals: Totals) -> Content:
    """Requests by status class, rejected, open connections, in flight, rates."""
    parts: list[str | tuple[str, str]] = [("requests ", "dim"), (count(totals.requests), "bold")]
    for name in STATUS_CLASSES:
        style = "bold $text-error" if name == "5xx" and totals.status.get(name) else "bold"
        parts += [(f"   {name} ", "dim"), (count(totals.status.get(name, 0)), style)]
    parts += [
        ("   rejected ", "dim"),
        (count(totals.rejected), "bold"),
        ("\nopen connections ", "dim"),
        (count(totals.connections), "bold"),
        ("   in flight ", "dim"),
        (count(totals.in_flight), "bold"),
        ("   ", ""),
        (rate(totals.req_per_s), "bold"),
        ("  5xx ", "dim"),
        (share(totals.error_rate), "bold"),
        ("   p50 ", "dim"),
        (millis(totals.p50_ms), "bold"),
        ("  p99 ", "dim"),
        (millis(totals.p99_ms), "bold"),
    ]
    return Content.assemble(*parts)


def app_row(app: AppInfo) -> list[Cell]:
    failed = app.state == "failed"
    style = "bold red" if failed else ""
    return [
        cell(app.route, style=style),
        cell(app.state, style=style or "green"),
        cell(rate(app.req_per_s), app.req_per_s),
        cell(millis(app.p99_ms), app.p99_ms),
        cell(share(app.error_rate), app.error_rate, style="red" if app.error_rate else ""),
        cell(count(app.requests), app.requests),
        cell(app.spec, style="dim"),
    ]


class DashboardScreen(ConsoleScreen):
    """Server, plots, counters and apps."""

    TITLE = "Qactuar · Dashboard"

    BINDINGS = [Binding("e", "show_error", "App error")]

    def compose_body(self) -> ComposeResult:
        yield Static(id="server")
        with Horizontal(id="plots"):
            yield Plot("requests/s", rate, id="plot-rps")
            yield Plot("latency p50", millis, id="plot-p50")
            yield Plot("latency p99", millis, id="plot-p99")
        yield Static(id="counters")
        yield LiveTable(APP_COLUMNS, id="apps")

    def refresh_data(self) -> None:
        state = self.qactuar.state
        snapshot = state.snapshot
        if snapshot is None:
            self.query_one("#server", Static).update(
                Content.assemble("Connecting to ", (clean(state.link.target), "bold"), " ...")
            )
            return
        self.query_one("#server", Static).update(server_line(snapshot.status))
        self.query_one("#counters", Static).update(counters_line(snapshot.status.totals))
        history = state.history
        self.query_one("#plot-rps", Plot).show(history.values(lambda point: point.req_per_s))
        self.query_one("#plot-p50", Plot).show(history.values(lambda point: point.p50_ms))
        self.query_one("#plot-p99", Plot).show(history.values(lambda point: point.p99_ms))
        self.query_one(LiveTable).sync((app.route, app_row(app)) for app in snapshot.apps)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_show_error()

    def action_show_error(self) -> None:
        """Show the selected app's error in full."""
        snapshot = self.qactuar.state.snapshot
        route = self.query_one(LiveTable).selected
        app = next((a for a in snapshot.apps if a.route == route), None) if snapshot else None
        if app is None:
            return
        if not app.error:
            self.notify(f"The app at {clean(app.route)} is {clean(app.state)}: no error.", markup=False)
            return
        self.app.push_screen(DetailsDialog(f"The app at {app.route} ({app.spec}) failed", app.error))
