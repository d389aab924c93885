"""App-wide messages: what the connection worker tells the app, as dataclasses.

The worker that talks to the server posts these to the app; the app records them in ``ConsoleState`` and
publishes them on its signals for the screens.  Keeping them here (not nested in a widget) is what makes
them app-wide: any test can watch for them with ``run_test(message_hook=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from qactuar.stats.models import StatsPoint
from qactuar_tui.backend import Deployment, DeployProgress, LogRecord, ServerStatus, Snapshot


@dataclass
class Connected(Message):
    """Logged in to the server at ``target``, which answered ``status``."""

    target: str
    status: ServerStatus


@dataclass
class ConnectionFailed(Message):
    """Could not connect, or the connection ended.

    ``retry_in`` is when the worker tries again, or None when it will not (the login was refused).
    """

    target: str
    reason: str
    attempt: int
    retry_in: float | None


@dataclass
class StatsUpdated(Message):
    """A ``stats`` tick, with the per-second points taken since the last one."""

    snapshot: Snapshot
    points: tuple[StatsPoint, ...]


@dataclass
class LogsReceived(Message):
    """New log records (the backlog at connect, then each followed record)."""

    records: tuple[LogRecord, ...]


@dataclass
class DeployProgressed(Message):
    """A stage of a deploy, update, rollback or undeploy, from the ``deploy`` subscription."""

    progress: DeployProgress


@dataclass
class DeploymentsLoaded(Message):
    """The server's deployments; None when the server has no deploy commands."""

    deployments: tuple[Deployment, ...] | None
