"""What the admin server needs from the process hosting it: the contract the master implements.

The admin package never imports the master, the supervisor or the stats package; it asks this small
interface and passes the answers through.  That keeps the admin server testable against a fake, keeps the
master free to change how it keeps its books, and keeps the dependency arrow pointing one way (the master
imports the admin server, not the reverse).

Every method returns plain JSON-able data (dicts, lists, str, int, finite floats, bool, None): the server
sends it as it is.  The read methods are synchronous -- the master answers them from its own memory on the
event loop thread; the mutating ones are coroutines because they wait for processes.  A method that cannot
do what was asked raises ``BackendError`` with a message for the operator; the client sees the message and
stays connected.  Any other exception is a bug: the server logs its traceback and the client sees
"internal error".

``docs/admin-protocol.md`` describes the shape of each answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from qactuar.admin.logfilter import LogFilter

LogRecord = dict[str, Any]


class BackendError(Exception):
    """The request was understood but cannot be done now; the message is shown to the operator."""


class AdminBackend(Protocol):
    def status(self) -> dict[str, Any]:
        """Version, mode, uptime, generation, listen addresses and totals."""
        ...

    def processes(self) -> list[dict[str, Any]]:
        """One dict per live process (master, generations, workers, children)."""
        ...

    def apps(self) -> list[dict[str, Any]]:
        """One dict per mounted app, with its traffic."""
        ...

    def stats(self, seconds: int, route: str | None) -> dict[str, Any]:
        """Totals and per-app time series over the last ``seconds`` (one app when ``route`` is given)."""
        ...

    def logs(self, n: int, filters: LogFilter) -> list[LogRecord]:
        """The last ``n`` records that match ``filters``, oldest first."""
        ...

    def config(self) -> dict[str, Any]:
        """The effective configuration, field name -> value (the server redacts secrets before sending)."""
        ...

    async def reload(self) -> dict[str, Any]:
        """Start a new generation with the same app table and retire the old one once it is healthy."""
        ...

    async def scale(self, n: int) -> dict[str, Any]:
        """Run ``n`` workers (prefork); BackendError in a mode that has no worker pool."""
        ...

    async def kill(self, pid: int) -> dict[str, Any]:
        """Stop one serving process gracefully (its supervisor replaces it); BackendError for other pids."""
        ...

    async def set_setting(self, key: str, value: object) -> dict[str, Any]:
        """Apply a validated runtime setting (see ``commands.SETTABLE``)."""
        ...

    def subscribe_logs(self, callback: Callable[[LogRecord], None]) -> Callable[[], None]:
        """Call ``callback(record)`` for every new record until the returned function is called.

        The callback must be called on the event loop thread, and must not be called again after the
        returned unsubscribe function has run.  It does not block.
        """
        ...

    def deployments(self) -> list[dict[str, Any]]:
        """One dict per git-deployed app: name, route, url, ref, commit, release, deployed_at, state."""
        ...

    async def deploy(
        self, url: str, route: str, name: str | None, ref: str | None, entry: str | None
    ) -> dict[str, Any]:
        """Clone ``url`` and serve it at ``route``; the new deployment once it is live."""
        ...

    async def update(self, name: str, ref: str | None) -> dict[str, Any]:
        """Deploy the newest commit of ``ref`` (default: the ref deployed) of a deployed app."""
        ...

    async def rollback(self, name: str) -> dict[str, Any]:
        """Serve the release before the live one again."""
        ...

    async def undeploy(self, name: str) -> dict[str, Any]:
        """Remove the app's route, wait for its requests to drain, delete its files."""
        ...

    def subscribe_deploy(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every deploy progress event (same contract as subscribe_logs)."""
        ...
