"""The frame every console screen shares, and its typed way to reach the app.

A console screen is a header, the connection banner, the screen's own body and the footer.  The base
class subscribes the screen to the app's connection and stats signals and calls ``refresh_data`` on each
tick and once when mounted, so a screen opened late starts from everything the app already knows.
Screens that are not showing keep being updated: the data is small, and switching back is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header

from qactuar_tui.model import Link
from qactuar_tui.widgets.banner import ConnectionBanner

if TYPE_CHECKING:
    from qactuar_tui.app import QactuarApp


def owner(screen: Screen[Any]) -> QactuarApp:
    """``screen``'s app, typed (imported late: the app module imports the screens)."""
    from qactuar_tui.app import QactuarApp

    app = screen.app
    if not isinstance(app, QactuarApp):
        raise TypeError(f"{type(screen).__name__} runs only inside QactuarApp, not {type(app).__name__}")
    return app


class ConsoleScreen(Screen[None]):
    """Header, banner, body, footer; ``refresh_data`` redraws the body from the app's state.

    Every screen follows the connection and the stats ticks; one that needs more signals subscribes to
    them in its own ``on_mount`` after calling this one.
    """

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield ConnectionBanner()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets, between the banner and the footer."""
        raise NotImplementedError

    @property
    def qactuar(self) -> QactuarApp:
        return owner(self)

    def on_mount(self) -> None:
        app = self.qactuar
        app.link_changed.subscribe(self, self._show_link)
        app.stats_changed.subscribe(self, lambda _: self.refresh_data())
        self._show_link(app.state.link)
        self.refresh_data()

    def refresh_data(self) -> None:
        """Redraw the body from ``self.qactuar.state``."""
        raise NotImplementedError

    def _show_link(self, link: Link) -> None:
        self.query_one(ConnectionBanner).show(link)
        self.set_class(link.state == "lost", "-stale")
