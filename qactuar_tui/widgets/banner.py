"""The banner that says the server was lost and what the console is doing about it.

It sits at the top of every console screen and is hidden while connected.  Losing the server must be
impossible to miss and must not hide the last data, so the banner takes one or two lines and the screen
below keeps showing what it had, dimmed by the screen's ``-stale`` class.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from qactuar_tui.model import Link
from qactuar_tui.text import clean


def describe(link: Link) -> Content:
    """What the banner says for ``link`` (empty when connected)."""
    if link.state != "lost":
        return Content("")
    if link.retry_in is None:
        then = "Not retrying: the login was refused. Fix the token, then press ctrl+r to reconnect."
    else:
        then = f"Reconnecting (attempt {link.attempt}, next try in {link.retry_in:g} s) - ctrl+r tries now."
    return Content.assemble(
        ("Lost the server ", "bold"),
        (clean(link.target), "bold"),
        ": ",
        clean(link.reason),
        "\n",
        then,
    )


class ConnectionBanner(Static):
    """Shown while the connection is lost; ``show(link)`` keeps it current."""

    DEFAULT_CSS = """
    ConnectionBanner {
        display: none;
        height: auto;
        padding: 0 1;
        background: $error;
        color: $text;
    }
    ConnectionBanner.-lost {
        display: block;
    }
    """

    def show(self, link: Link) -> None:
        """Show ``link``'s state, or hide when connected."""
        self.set_class(link.state == "lost", "-lost")
        self.update(describe(link))
