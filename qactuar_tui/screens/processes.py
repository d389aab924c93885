"""The processes screen: every process of the server, live, sortable, and the pool's controls.

One row per process the master reports -- the master, each generation, its workers (prefork) or
per-connection children (postfork) -- with pid, role, generation, state, CPU%, RSS, requests, in flight,
connections and age, redrawn each second.  ``s`` sorts by the next column and ``S`` reverses (a header
click does the same).  ``+``/``-`` add or remove a worker, ``w`` sets the number, ``r`` reloads (a new
generation of the same app table), ``k`` stops the selected worker or connection child (its generation
replaces it); each asks first.  Everything goes through the admin socket: the console may not even run
on the server's host, so it never signals a pid itself.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.validation import Integer
from textual.widgets import Static

from qactuar.stats.models import ProcessInfo
from qactuar_tui.dialogs.confirm import ConfirmDialog
from qactuar_tui.dialogs.prompt import PromptDialog
from qactuar_tui.screens.base import ConsoleScreen
from qactuar_tui.text import NOTHING, count, duration, generation_label, percent, size
from qactuar_tui.widgets.live_table import Cell, Column, LiveTable, cell

MAX_WORKERS = 1024  # what the server accepts for scale
ROLE_RANK = {"master": 0, "generation": 1, "worker": 2, "child": 3}
ROLE_STYLE = {"master": "bold", "generation": "bold cyan", "worker": "", "child": "dim"}
PROCESS_COLUMNS = (
    Column("pid", "PID"),
    Column("role", "Role"),
    Column("generation", "Gen"),
    Column("state", "State"),
    Column("cpu", "CPU%"),
    Column("rss", "RSS"),
    Column("requests", "Requests"),
    Column("in_flight", "In flight"),
    Column("connections", "Conns"),
    Column("age", "Age"),
)


def process_row(process: ProcessInfo, now: float) -> list[Cell]:
    age = max(0.0, now - process.started_at)
    role_order = f"{ROLE_RANK.get(process.role, 9)}:{process.generation:09d}:{process.pid:09d}"
    busy = process.state not in ("running", "serving", "ready")
    return [
        cell(process.pid),
        cell(process.role, role_order, style=ROLE_STYLE.get(process.role, "")),
        cell(process.generation),
        cell(process.state, style="yellow" if busy else ""),
        cell(percent(process.cpu_percent), process.cpu_percent),
        cell(size(process.rss_bytes), process.rss_bytes),
        cell(count(process.requests), process.requests),
        cell(count(process.in_flight), process.in_flight),
        cell(count(process.connections), process.connections),
        cell(duration(age), age),
    ]


class ProcessesScreen(ConsoleScreen):
    """The process table and the pool's controls."""

    TITLE = "Qactuar · Processes"

    BINDINGS = [
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
        Binding("plus", "scale_by(1)", "Worker", key_display="+"),
        Binding("minus", "scale_by(-1)", "Worker", key_display="-"),
        Binding("w", "scale_to", "Workers…"),
        Binding("r", "reload", "Reload"),
        Binding("k", "kill", "Stop process"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(id="pool")
        yield LiveTable(PROCESS_COLUMNS, sort_by="role", id="processes")

    def refresh_data(self) -> None:
        app = self.qactuar
        snapshot = app.state.snapshot
        if snapshot is None:
            return
        status = snapshot.status
        workers = NOTHING if status.workers is None else str(status.workers)
        self.query_one("#pool", Static).update(
            Content.assemble(
                (f"{len(snapshot.processes)} processes", "bold"),
                f"  ·  {generation_label(status.generation)}  ·  workers wanted {workers}",
            )
        )
        now = app.clock()
        rows = ((str(process.pid), process_row(process, now)) for process in snapshot.processes)
        self.query_one(LiveTable).sync(rows)

    def action_sort(self) -> None:
        self.query_one(LiveTable).cycle_sort()

    def action_reverse(self) -> None:
        self.query_one(LiveTable).reverse_sort()

    def _workers(self) -> int | None:
        snapshot = self.qactuar.state.snapshot
        return None if snapshot is None else snapshot.status.workers

    def action_scale_by(self, step: int) -> None:
        """One worker more or fewer, after confirmation."""
        workers = self._workers()
        if workers is None:
            self.notify("Only the prefork mode has a worker pool to scale.", severity="warning")
            return
        self._confirm_scale(max(1, min(MAX_WORKERS, workers + step)))

    def action_scale_to(self) -> None:
        """Ask for a number of workers."""
        workers = self._workers()
        if workers is None:
            self.notify("Only the prefork mode has a worker pool to scale.", severity="warning")
            return
        question = Content(f"Run how many workers? (now {workers}; 1 to {MAX_WORKERS})")
        validator = Integer(minimum=1, maximum=MAX_WORKERS, failure_description="a whole number, 1-1024")

        def chosen(value: str | None) -> None:
            if value:
                self._scale(int(value))

        self.app.push_screen(PromptDialog(question, str(workers), validators=[validator]), chosen)

    def _confirm_scale(self, workers: int) -> None:
        question = Content(f"Scale the worker pool to {workers}?")
        self.app.push_screen(
            ConfirmDialog(question, "Scale"), lambda yes: self._scale(workers) if yes else None
        )

    def _scale(self, workers: int) -> None:
        backend = self.qactuar.backend
        self.qactuar.run_command("Scale", lambda: backend.scale(workers), f"Scaling to {workers} workers.")

    def action_kill(self) -> None:
        """Stop the selected worker or connection child gracefully, after confirmation."""
        selected = self.query_one(LiveTable).selected
        snapshot = self.qactuar.state.snapshot
        rows = {str(p.pid): p for p in snapshot.processes} if snapshot is not None else {}
        process = rows.get(selected or "")
        if process is None or process.role not in ("worker", "child"):
            self.notify("Select a worker or a connection child to stop.", severity="warning")
            return
        question = Content(
            f"Stop {process.role} {process.pid}? It finishes its in-flight requests and its generation "
            "starts a replacement."
        )
        backend = self.qactuar.backend
        pid = process.pid

        def answered(yes: bool | None) -> None:
            if yes:
                self.qactuar.run_command("Stop", lambda: backend.kill(pid), f"Stopping process {pid}.")

        self.app.push_screen(ConfirmDialog(question, "Stop"), answered)

    def action_reload(self) -> None:
        """Start a new generation of the same apps, after confirmation."""
        question = Content(
            "Reload: start a new generation of the same app table and retire this one once it is "
            "healthy. In-flight requests finish first."
        )
        backend = self.qactuar.backend

        def answered(yes: bool | None) -> None:
            if yes:
                self.qactuar.run_command("Reload", backend.reload, "Reloaded: the new generation serves.")

        self.app.push_screen(ConfirmDialog(question, "Reload"), answered)
