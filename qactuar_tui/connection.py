"""Staying connected: connect, follow the three feeds, and when the server goes away, find it again.

The app runs ``Connection.run`` in one exclusive worker, so there is never more than one connection and
the UI never waits on the socket.  The loop:

1. ``connect()`` (the backend locates the server afresh each time) and ask ``status``.  A failure is
   reported with ``ConnectionFailed`` and retried after ``delays`` (0.5 s, 1 s, 2 s, 4 s, then every 5 s)
   -- except a refused login, which is reported and not retried: a wrong token stays wrong, and retrying
   it on a timer would trip the server's login lockout for everyone.  The user retries with a key.
2. Follow ``stats`` (each tick also fetches the per-second points since the last one, for the plots),
   ``log`` (backlog first) and ``deploy`` side by side in one task group.  The first of them to fail ends
   the others; that is the connection lost, reported with its reason, and the loop starts again at 1.

A server without deploy commands is not an error: its deploy feed ends quietly and the app is told, so the
Apps screen can say so.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from contextlib import aclosing

from textual.message import Message

from qactuar_tui.backend import (
    HISTORY_SECONDS,
    AdminError,
    AdminUnavailable,
    Backend,
    login_refused,
)
from qactuar_tui.messages import (
    Connected,
    ConnectionFailed,
    DeploymentsLoaded,
    DeployProgressed,
    LogsReceived,
    StatsUpdated,
)
from qactuar_tui.model import ConsoleState

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 5.0)
LOG_BACKLOG = 500
SETTLED_STAGES = frozenset({"live", "failed", "removed"})  # after these, the deployments have changed


class Connection:
    """One server connection at a time, for as long as the app runs."""

    def __init__(
        self,
        backend: Backend,
        state: ConsoleState,
        post: Callable[[Message], object],
        delays: tuple[float, ...] = RECONNECT_DELAYS,
    ) -> None:
        """Args:
        backend: The server.
        state: Read for the newest plotted point (to fetch only newer ones); the app writes it.
        post: Delivers a message to the app.
        delays: Seconds to wait before each retry; the last one repeats.
        """
        self._backend = backend
        self._state = state
        self._post = post
        self._delays = delays

    async def run(self) -> None:
        """Connect and follow, reconnecting after every failure but a refused login."""
        attempt = 0
        while True:
            try:
                await self._backend.connect()
                status = await self._backend.status()
            except AdminUnavailable as exc:
                await self._backend.close()
                attempt += 1
                retry_in = None if login_refused(exc) else self._delay(attempt)
                self._post(ConnectionFailed(self._backend.target, str(exc), attempt, retry_in))
                if retry_in is None:
                    return
                await asyncio.sleep(retry_in)
                continue
            attempt = 1
            self._post(Connected(self._backend.target, status))
            reason = await self._follow()
            await self._backend.close()
            self._post(ConnectionFailed(self._backend.target, reason, attempt, self._delay(attempt)))
            await asyncio.sleep(self._delay(attempt))

    def _delay(self, attempt: int) -> float:
        return self._delays[min(attempt, len(self._delays)) - 1]

    async def _follow(self) -> str:
        """Follow every feed until the connection ends; why it ended."""
        reason = f"the connection to {self._backend.target} ended"
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._follow_stats())
                group.create_task(self._follow_logs())
                group.create_task(self._follow_deploys())
        except* (AdminUnavailable, AdminError) as failure:
            reason = str(failure.exceptions[0])
        return reason

    async def _follow_stats(self) -> None:
        async with aclosing(self._backend.stats_feed()) as feed:
            async for snapshot in feed:
                last = self._state.history.last_time
                seconds = HISTORY_SECONDS if last is None else math.ceil(snapshot.time - last) + 1
                points = await self._backend.series(seconds)
                self._post(StatsUpdated(snapshot, tuple(points)))

    async def _follow_logs(self) -> None:
        async with aclosing(self._backend.log_feed(LOG_BACKLOG)) as feed:
            async for record in feed:
                self._post(LogsReceived((record,)))

    async def _follow_deploys(self) -> None:
        try:
            deployments = await self._backend.deployments()
        except AdminError:  # a server without deploy commands
            self._post(DeploymentsLoaded(None))
            return
        self._post(DeploymentsLoaded(tuple(deployments)))
        try:
            async with aclosing(self._backend.deploy_feed()) as feed:
                async for progress in feed:
                    self._post(DeployProgressed(progress))
                    if progress.stage in SETTLED_STAGES:
                        self._post(DeploymentsLoaded(tuple(await self._backend.deployments())))
        except AdminError:  # no deploy topic: the Apps screen refreshes after its own commands instead
            return
