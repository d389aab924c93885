"""The one screen shown when the console could not reach its server at all.

A wrong token, a server that is not running, a config pointing nowhere: each is one sentence from the
admin client (what was tried and what went wrong), shown here with what to do about it -- never a
traceback.  While the server is merely unreachable the console keeps trying on its own and switches to
the dashboard as soon as it answers; after a refused login it waits for ``r``, because a wrong token does
not fix itself and retrying it would trip the server's login lockout.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from qactuar_tui.model import Link
from qactuar_tui.screens.base import owner
from qactuar_tui.text import clean

HELP = (
    "Run qactuar-tui in the directory of the server's qactuar.toml, or point it at the server: "
    "--config FILE, --admin HOST:PORT or --socket PATH, and --token-file F."
)


def explain(link: Link) -> Content:
    """The reason, what to do, and whether the console is still trying."""
    if link.state == "connecting":
        return Content.assemble("Connecting to ", (clean(link.target), "bold"), " ...")
    if link.retry_in is None:
        then = Content.styled(
            "The login was refused, so the console is not retrying: fix the token, then press r.", "bold"
        )
    else:
        then = Content(f"Trying again in {link.retry_in:g} s (attempt {link.attempt}); r tries now.")
    return Content.assemble(
        ("Cannot use the Qactuar server at ", "bold"),
        (clean(link.target), "bold"),
        "\n\n",
        clean(link.reason),
        "\n\n",
        (HELP, "dim"),
        "\n\n",
        then,
    )


class UnavailableScreen(Screen[None]):
    """Why the console has no server, until it has one."""

    TITLE = "Qactuar · No server"

    BINDINGS = [
        Binding("r", "app.reconnect", "Retry now"),
        Binding("q", "app.quit", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        with Center(), Vertical(id="unavailable"):
            yield Static(id="unavailable-reason")
        yield Footer()

    def on_mount(self) -> None:
        app = owner(self)
        app.link_changed.subscribe(self, self._show)
        self._show(app.state.link)

    def _show(self, link: Link) -> None:
        self.query_one("#unavailable-reason", Static).update(explain(link))
