"""The logs screen: a live tail of the server's access and error logs, filtered, pausable, bounded.

Records arrive through the app (backlog first, then each new one) into its bounded ``LogBuffer``; this
screen shows the ones that match the filter -- a minimum level, one app, and text found in the message or
the traceback, any case.  Changing the filter redraws from the buffer, so filtering works on what already
arrived too.  ``p`` pauses the view (records keep arriving and are shown on resume; the title says how many
wait), ``/`` jumps to the text filter, ``c`` clears the view.

Memory stays bounded: the buffer holds ``LOG_RECORDS`` records and the view ``VIEW_LINES`` lines.  New
records are drawn in batches at most every ``FLUSH_SECONDS``, so a flood of access lines does not redraw
the screen a thousand times a second.

Every string is the server's: each line is a plain ``rich.text.Text`` of cleaned text, so a request path
like ``/[bold red]x%1B[31m`` is shown as written.  A traceback is shown under its record, indented.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Input, RichLog, Select, Static

from qactuar_tui.backend import LogRecord
from qactuar_tui.model import LEVELS, LogQuery
from qactuar_tui.screens.base import ConsoleScreen
from qactuar_tui.text import clean, clock_time

VIEW_LINES = 2000
FLUSH_SECONDS = 0.1
LEVEL_STYLE = {
    "DEBUG": "dim",
    "INFO": "green",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "reverse red",
}
ALL_APPS = ""


def render_record(record: LogRecord) -> Text:
    """One record as plain text: time, level, logger, route, message; its traceback indented below."""
    line = Text(no_wrap=False, end="")
    line.append(clock_time(record.time), "dim")
    line.append(f" {clean(record.level):<8}", LEVEL_STYLE.get(record.level.upper(), ""))
    line.append(f" {clean(record.logger)}", "cyan")
    if record.route:
        line.append(f" {clean(record.route)}", "magenta")
    line.append(" ")
    line.append(clean(record.message))
    if record.exc_text:
        for text in clean(record.exc_text, multiline=True).splitlines():
            line.append("\n    ")
            line.append(text, "red")
    return line


class LogsScreen(ConsoleScreen):
    """Filters on top, the tail below."""

    TITLE = "Qactuar · Logs"

    BINDINGS = [
        Binding("p", "pause", "Pause/resume"),
        Binding("slash", "find", "Filter", key_display="/"),
        Binding("c", "clear", "Clear"),
        Binding("escape", "leave_filter", "Back to the log", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._query = LogQuery()
        self._paused = False
        self._shown = 0  # the buffer's ``added`` count when the view was last brought up to date
        self._flush_due = False
        self._routes: tuple[str, ...] = ()

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="log-filters"):
            yield Select(
                [(Text(name), value) for name, value in LEVELS.items()],
                value=self._query.level,
                allow_blank=False,
                id="log-level",
            )
            yield Select([(Text("all apps"), ALL_APPS)], value=ALL_APPS, allow_blank=False, id="log-app")
            yield Input(placeholder="text in the message or traceback", id="log-text")
            yield Static(id="log-status")
        yield RichLog(max_lines=VIEW_LINES, wrap=True, markup=False, highlight=False, id="log")

    def on_mount(self) -> None:
        super().on_mount()
        self.qactuar.logs_changed.subscribe(self, lambda _: self._schedule_flush())
        self._redraw()

    def refresh_data(self) -> None:
        """Keep the app filter's choices to the mounted apps."""
        snapshot = self.qactuar.state.snapshot
        routes = tuple(app.route for app in snapshot.apps) if snapshot else ()
        if routes == self._routes:
            return
        self._routes = routes
        select: Select[str] = self.query_one("#log-app", Select)
        current = select.value
        select.set_options([(Text("all apps"), ALL_APPS), *((Text(clean(route)), route) for route in routes)])
        select.value = current if current in routes else ALL_APPS

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "log-level" and isinstance(event.value, int):
            self._set_query(LogQuery(event.value, self._query.route, self._query.text))
        elif event.select.id == "log-app" and isinstance(event.value, str):
            self._set_query(LogQuery(self._query.level, event.value or None, self._query.text))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._set_query(LogQuery(self._query.level, self._query.route, event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_leave_filter()

    def _set_query(self, query: LogQuery) -> None:
        if query != self._query:
            self._query = query
            self._redraw()

    def _redraw(self) -> None:
        """Draw the matching records afresh from the buffer."""
        buffer = self.qactuar.state.logs
        view = self.query_one(RichLog)
        view.clear()
        for record in buffer.matching(self._query, VIEW_LINES):
            view.write(render_record(record), expand=True)
        self._shown = buffer.added
        self._show_status()

    def _schedule_flush(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            self.set_timer(FLUSH_SECONDS, self._flush)

    def _flush(self) -> None:
        """Draw the records that arrived since the last flush (unless paused)."""
        self._flush_due = False
        if not self._paused:
            buffer = self.qactuar.state.logs
            view = self.query_one(RichLog)
            for record in buffer.since(self._shown):
                if self._query.matches(record):
                    view.write(render_record(record), expand=True)
            self._shown = buffer.added
        self._show_status()

    def _show_status(self) -> None:
        if self._paused:
            waiting = self.qactuar.state.logs.added - self._shown
            status = Content.styled(f"paused, {waiting} new", "bold $text-warning")
        else:
            status = Content.styled("live", "bold $text-success")
        self.query_one("#log-status", Static).update(status)

    def action_pause(self) -> None:
        """Stop or restart drawing new records."""
        self._paused = not self._paused
        self._flush()

    def action_find(self) -> None:
        self.query_one("#log-text", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one(RichLog).focus()

    def action_clear(self) -> None:
        """Empty the view; records that arrive later are shown."""
        self.query_one(RichLog).clear()
        self._shown = self.qactuar.state.logs.added
