"""The console the snapshot tests draw: built by ``make_app``, the factory the CLI uses, over the fake.

Only the backend and the clock differ from what a user runs, so a snapshot is a picture of the real app
with data that never changes.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input
from tui_fake import NOW, FakeBackend

from qactuar_tui.app import QactuarApp
from qactuar_tui.factory import make_app

SIZE = (120, 34)


def snapshot_app(**fake: Any) -> QactuarApp:
    """The console over ``FakeBackend(**fake)``, at the fake's fixed time, retrying only every 30 s."""
    return make_app(backend=FakeBackend(**fake), clock=lambda: NOW, reconnect_delays=(30.0,))


async def settle(pilot: Pilot[None], predicate: Any, timeout: float = 5.0) -> None:
    """Let the app run until ``predicate()`` holds (an AssertionError after ``timeout`` seconds)."""
    for _ in range(int(timeout / 0.02)):
        if predicate():
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError(f"the console did not get there in {timeout} s")


async def loaded(pilot: Pilot[None]) -> None:
    """Wait until the fake's stats tick, log backlog and deployments have all arrived."""
    app = pilot.app
    assert isinstance(app, QactuarApp)
    await settle(
        pilot,
        lambda: (
            app.state.snapshot is not None
            and len(app.state.logs) >= 8
            and (app.state.deployments or not app.state.deploys_supported)
        ),
    )


async def steady(pilot: Pilot[None]) -> None:
    """Stop the focused input's cursor from blinking, so the picture does not depend on the moment."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()
