"""Asking for one value (the number of workers, the git ref to update to), checked before it is sent.

Submitting is the confirmation: the dialog says what will happen and nothing is sent until Enter, on a
value the validator accepts; Escape cancels.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.validation import Validator
from textual.widgets import Input, Static


class PromptDialog(ModalScreen[str | None]):
    """``question`` and one input; dismissed with the value, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        question: Content,
        value: str = "",
        *,
        placeholder: str = "",
        validators: list[Validator] | None = None,
    ) -> None:
        """Args:
        question: What the value is for, as plain content.
        value: The value to start from.
        placeholder: Shown while the input is empty.
        validators: What a value must pass before it is accepted.
        """
        super().__init__()
        self._question = question
        self._value = value
        self._placeholder = placeholder
        self._validators = validators or []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._question, classes="question")
            yield Input(self._value, placeholder=self._placeholder, validators=self._validators)
            yield Static(Content("Enter to confirm, Escape to cancel"), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.validation_result is not None and not event.validation_result.is_valid:
            problems = "; ".join(event.validation_result.failure_descriptions)
            self.query_one(".hint", Static).update(Content.styled(problems, "$error"))
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
