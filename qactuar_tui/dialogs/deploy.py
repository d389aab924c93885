"""The deploy dialog: what to deploy from git, then its progress from clone to live, or why it failed.

The form asks for the repository URL and the route (required) and the app name, git ref and entry point
(optional: the server derives a name from the URL, uses the default branch, and ``app:app``).  On Enter
the deploy request runs in a worker -- the server answers only when the deploy is live or has failed --
while the server's ``deploy`` events for this app move the stage line and the progress bar.  A failure
shows the server's reason (plain text) and the form comes back for another try; success shows what is
live and closes with the deployment.

Escape closes the dialog at any time.  A deploy already sent keeps running on the server; the Apps
screen shows how it ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.signal import Signal
from textual.widgets import Button, Input, Label, ProgressBar, Static

from qactuar_tui.backend import AdminError, AdminUnavailable, Deployment, DeployProgress, DeployRequest
from qactuar_tui.text import clean

STAGES = ("validating", "cloning", "verifying", "starting", "live")
FIELDS = (
    ("url", "Repository URL", "https://git.example.com/team/app.git"),
    ("route", "Route", "/blog"),
    ("name", "Name", "optional: taken from the URL"),
    ("ref", "Ref", "optional: the default branch"),
    ("entry", "Entry", "optional: app:app"),
)


def stage_line(current: str | None, failed: bool) -> Content:
    """``✓ validating  ✓ cloning  ● verifying  ○ starting  ○ live``, or ✗ on the stage that failed."""
    index = STAGES.index(current) if current in STAGES else -1
    parts: list[str | tuple[str, str]] = []
    for number, stage in enumerate(STAGES):
        if number < index or (stage == "live" and current == "live"):
            parts.append((f"✓ {stage}", "$text-success"))
        elif number == index:
            parts.append((f"✗ {stage}", "$text-error") if failed else (f"● {stage}", "bold $text-accent"))
        else:
            parts.append((f"○ {stage}", "dim"))
        parts.append("  ")
    return Content.assemble(*parts[:-1])


class DeployDialog(ModalScreen[Deployment | None]):
    """The deploy form and its live progress; dismissed with the deployment once it is live."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(
        self,
        deploy: Callable[[DeployRequest], Awaitable[Deployment]],
        progress: Signal[DeployProgress],
    ) -> None:
        """Args:
        deploy: Sends the deploy and waits for the server's answer.
        progress: The app's deploy events.
        """
        super().__init__()
        self._deploy = deploy
        self._progress = progress
        self._request: DeployRequest | None = None  # the last deploy sent: its events move the stages
        self._busy = False  # waiting for the server's answer
        self._failed = False
        self._stage: str | None = None
        self._result: Deployment | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Content.styled("Deploy an app from git", "bold"), classes="question")
            for key, label, placeholder in FIELDS:
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield Input(placeholder=placeholder, id=f"deploy-{key}", compact=True)
            yield Static(stage_line(None, False), id="deploy-stages")
            yield ProgressBar(total=len(STAGES), show_eta=False, id="deploy-bar")
            yield Static(Content("Enter to deploy, Escape to close"), id="deploy-message")
            with Horizontal(classes="buttons"):
                yield Button("Deploy", variant="primary", id="deploy")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self._progress.subscribe(self, self.show_progress)

    def show_progress(self, event: DeployProgress) -> None:
        """Move the stage line and the bar for an event of the last deploy sent (others are ignored).

        Events may arrive after the server's answer (they travel a longer way), so they still move the
        stages then; only the message line is left to the answer.
        """
        request = self._request
        if request is None or (request.name and event.name != request.name):
            return
        if event.stage == "failed":
            self._failed = True
        elif event.stage in STAGES:
            self._stage = event.stage
            done = STAGES.index(event.stage) + (event.progress or 0.0)
            self.query_one(ProgressBar).update(progress=len(STAGES) if event.stage == "live" else done)
        self.query_one("#deploy-stages", Static).update(stage_line(self._stage, self._failed))
        if event.message and self._busy:
            self._say(Content(clean(event.message)))

    @on(Input.Submitted)
    @on(Button.Pressed, "#deploy")
    def start(self) -> None:
        """Check the form and send the deploy."""
        if self._busy or self._result is not None:
            return
        values = {key: self.query_one(f"#deploy-{key}", Input).value.strip() for key, _, _ in FIELDS}
        if not values["url"]:
            self._say(Content.styled("The repository URL is required.", "$text-error"))
            self.query_one("#deploy-url", Input).focus()
            return
        if not values["route"].startswith("/"):
            self._say(Content.styled("The route must start with / (for example /blog).", "$text-error"))
            self.query_one("#deploy-route", Input).focus()
            return
        self._request = DeployRequest(**values)
        self._stage, self._failed = None, False
        self.query_one("#deploy-stages", Static).update(stage_line(None, False))
        self.query_one(ProgressBar).update(progress=0)
        self._set_busy(True)
        self._say(Content.assemble("Deploying ", (clean(values["url"]), "bold"), " ..."))
        self._run(self._request)

    @work(exclusive=True, group="deploy")
    async def _run(self, request: DeployRequest) -> None:
        try:
            deployment = await self._deploy(request)
        except (AdminError, AdminUnavailable) as exc:
            self._failed = True
            self._set_busy(False)
            self.query_one("#deploy-stages", Static).update(stage_line(self._stage, True))
            self._say(Content.assemble(("Deploy failed: ", "bold $text-error"), clean(str(exc))))
            self.query_one("#deploy-url", Input).focus()
            return
        self._result = deployment
        self._set_busy(False)
        self.query_one(ProgressBar).update(progress=len(STAGES))
        self.query_one("#deploy-stages", Static).update(stage_line("live", False))
        self._say(
            Content.assemble(
                ("Live: ", "bold $text-success"),
                clean(deployment.name),
                " at ",
                (clean(deployment.route), "bold"),
                f" (commit {clean(deployment.commit[:12])}, release {clean(deployment.release)})",
            )
        )
        self.query_one("#close", Button).focus()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        done = busy or self._result is not None
        for field in self.query(Input):
            field.disabled = done
        self.query_one("#deploy", Button).disabled = done
        if busy:
            self.query_one("#close", Button).focus()

    def _say(self, message: Content) -> None:
        self.query_one("#deploy-message", Static).update(message)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        """Close; with the deployment when it went live."""
        self.dismiss(self._result)
