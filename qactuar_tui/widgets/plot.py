"""A titled sparkline: one quantity over the last minutes, with its current and highest value.

Textual's ``Sparkline`` draws the bars; this adds the line above it that says what is plotted and the
numbers a sparkline cannot show.  The plot always covers the same window (the history pads with zeros),
so a burst of requests moves across it at a steady speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Sparkline, Static


class Plot(Vertical):
    """``title``, now and max, then the bars."""

    DEFAULT_CSS = """
    Plot {
        height: auto;
        width: 1fr;
        padding: 0 1;
    }
    Plot > .plot--title {
        height: 1;
    }
    Plot > Sparkline {
        height: 3;
    }
    """

    def __init__(self, title: str, label: Callable[[float], str], *, id: str | None = None) -> None:
        """Args:
        title: What is plotted, e.g. ``requests/s``.
        label: Formats a value of it for the title line.
        id: The widget id.
        """
        super().__init__(id=id)
        self._title = title
        self._label = label

    def compose(self) -> ComposeResult:
        yield Static(Content(self._title), classes="plot--title")
        yield Sparkline([])

    def show(self, values: Sequence[float]) -> None:
        """Plot ``values`` (oldest first) and put the newest and the highest in the title."""
        now = values[-1] if values else 0.0
        peak = max(values, default=0.0)
        self.query_one(".plot--title", Static).update(
            Content.assemble(
                (self._title, "bold"),
                "  now ",
                (self._label(now), "bold"),
                "  max ",
                self._label(peak),
            )
        )
        self.query_one(Sparkline).data = list(values)
