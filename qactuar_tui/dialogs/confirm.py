"""Asking before anything that changes the server: a yes/no dialog whose safe answer is the default.

Reload, scale, update, rollback and undeploy all go through this.  The question is ``Content`` built by the
caller from cleaned strings (an app name is the server's data), the focus starts on "No", and only ``y`` or
the action button says yes, so an Enter pressed out of habit does nothing harmful.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmDialog(ModalScreen[bool]):
    """``question`` with a button for ``action`` (yes) and "Cancel" (no, focused)."""

    AUTO_FOCUS = "#no"

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: Content, action: str) -> None:
        """Args:
        question: What is about to happen, as plain content.
        action: The yes button's label, a verb: "Undeploy", "Reload".
        """
        super().__init__()
        self._question = question
        self._action = action

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self._action} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
