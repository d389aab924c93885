"""Reading a long text the server sent -- an app's import traceback, a deploy failure -- in full.

The text is shown in a read-only ``TextArea``: scrollable, selectable, never parsed as markup, with its
control characters made visible by ``clean`` (newlines kept, so a traceback reads as one).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from qactuar_tui.text import clean


class DetailsDialog(ModalScreen[None]):
    """A title and a read-only text; Escape (or q) closes."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, title: str, text: str) -> None:
        """Args:
        title: What the text is (``App /api failed to load``); cleaned.
        text: The text; cleaned, newlines kept.
        """
        super().__init__()
        self._title = clean(title)
        self._text = clean(text, multiline=True)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Content.styled(self._title, "bold"), classes="question")
            yield TextArea(self._text, read_only=True, soft_wrap=True, show_cursor=False)
            yield Static(Content("Escape to close"), classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
