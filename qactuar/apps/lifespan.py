"""The ASGI lifespan protocol for one app: one long-lived call, startup and shutdown with timeouts.

Theory of operation. :meth:`Lifespan.startup` starts ONE task running
``app({"type": "lifespan", ...}, receive, send)``; that call lasts until shutdown. ``receive``
hands out ``lifespan.startup`` first and ``lifespan.shutdown`` once :meth:`Lifespan.shutdown` is
called. What the app sends resolves the current phase's outcome; the first result of a phase wins.

Startup ends in one of these ways:

=================================================  ===========================================
app sends ``lifespan.startup.complete``            ok; the task keeps running until shutdown
app sends ``lifespan.startup.failed``              :class:`LifespanFailure` (its message)
app sends any other message                        :class:`LifespanFailure` naming the message
app raises, or returns, without completing         mode "auto": logged, the app runs without
                                                   lifespan (the spec's "unsupported");
                                                   mode "on": :class:`LifespanFailure`
``LIFESPAN_STARTUP_TIMEOUT`` expires               :class:`LifespanFailure`, task cancelled
=================================================  ===========================================

An app that raises after it has received ``lifespan.startup`` is still "unsupported" in auto mode,
as the spec requires, but it is logged as a warning with the traceback, because it looks more
like a crashed startup than a missing feature.

Shutdown never raises: failures, invalid messages and the timeout are logged to ``qt_server``; on
timeout the task is cancelled. Mode "off" never calls the app. ``state`` is the dict put in the
lifespan scope; the server copies it shallowly into each request's scope.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from qactuar.apps.tracebacks import app_traceback, summary
from qactuar.types import ASGI_VERSION, ASGIApp, Message

logger = logging.getLogger("qt_server")

MODES = ("auto", "on", "off")
_STARTUP_REPLIES = ("lifespan.startup.complete", "lifespan.startup.failed")
_SHUTDOWN_REPLIES = ("lifespan.shutdown.complete", "lifespan.shutdown.failed")
_CANCEL_GRACE = 1.0
"""Seconds a lifespan task gets to return after its last reply, and again after cancellation."""


class LifespanFailure(Exception):  # noqa: N818 - the name the server and its docs use
    """The app's lifespan startup failed; ``str(exc)`` is the reason shown for its mount."""


class Lifespan:
    """Drives the lifespan protocol of one app (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: str = "auto",
        startup_timeout: float = 30.0,
        shutdown_timeout: float = 30.0,
        state: dict[str, Any] | None = None,
        name: str = "app",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"lifespan mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.app = app
        self.mode = mode
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.state: dict[str, Any] = {} if state is None else state
        self.name = name
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._startup: asyncio.Future[str | None] | None = None
        self._shutdown: asyncio.Future[str | None] | None = None
        self._received_startup = False
        self._waiting = asyncio.Event()  # set while the app awaits receive() with nothing queued
        self._error: BaseException | None = None
        self._running = False

    @property
    def running(self) -> bool:
        """True between a completed startup and shutdown: the app takes part in lifespan."""
        return self._running

    async def startup(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"lifespan startup of {self.name} was already started")
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._inbox.put_nowait({"type": "lifespan.startup"})
        self._task = asyncio.create_task(self._run(), name=f"lifespan {self.name}")
        await _first_of(self._startup, self._task, timeout=self.startup_timeout)
        if self._startup.done():
            reason = self._startup.result()
            if reason is None:
                self._running = True
                return
            await self._stop_task(grace=_CANCEL_GRACE)
            raise LifespanFailure(reason)
        if not self._task.done():
            await self._stop_task(grace=0)
            raise LifespanFailure(f"did not complete startup within {self.startup_timeout:g} s")
        self._without_lifespan()

    async def shutdown(self) -> None:
        if not self._running or self._task is None or self._shutdown is None:
            return
        self._running = False
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        await _first_of(self._shutdown, self._task, timeout=self.shutdown_timeout)
        grace = _CANCEL_GRACE
        if self._shutdown.done():
            reason = self._shutdown.result()
            if reason is not None:
                logger.error("Lifespan shutdown of %s failed: %s", self.name, reason)
        elif self._task.done():
            if self._error is not None:
                logger.error(
                    "Lifespan of %s raised before completing shutdown:\n%s",
                    self.name,
                    _traceback(self._error),
                )
            else:
                logger.warning("Lifespan of %s returned without completing shutdown", self.name)
        else:
            logger.error(
                "Lifespan of %s did not complete shutdown within %g s; cancelling it",
                self.name,
                self.shutdown_timeout,
            )
            grace = 0
        await self._stop_task(grace=grace)

    def _without_lifespan(self) -> None:
        """The task ended with no startup reply: unsupported in auto mode, a failure in "on"."""
        error = self._error
        if self.mode == "on":
            if error is None:
                raise LifespanFailure("the app returned without completing lifespan startup")
            raise LifespanFailure(f"the app raised {summary(error)}\n\n{_traceback(error)}")
        if error is None:
            logger.info("%s returned from lifespan without completing startup; running without it", self.name)
        elif self._received_startup:
            logger.warning(
                "%s raised during lifespan startup without sending lifespan.startup.failed; "
                "running without lifespan (LIFESPAN=auto):\n%s",
                self.name,
                _traceback(error),
            )
        else:
            logger.info(
                "%s does not support lifespan (it raised %s); running without it",
                self.name,
                type(error).__name__,
            )

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:  # the app's failure is reported by startup()/shutdown()
            self._error = exc

    async def _receive(self) -> Message:
        self._waiting.set()
        try:
            message = await self._inbox.get()
        finally:
            self._waiting.clear()
        if message["type"] == "lifespan.startup":
            self._received_startup = True
        return message

    async def _send(self, message: Message) -> None:
        assert self._startup is not None and self._shutdown is not None
        kind = message.get("type") if isinstance(message, Mapping) else None
        if kind in _STARTUP_REPLIES and not self._startup.done():
            self._startup.set_result(_failure_reason(message))
            return
        # Shutdown replies are accepted as soon as startup is over: frameworks report a lifespan
        # context that crashed while serving with an early lifespan.shutdown.failed.
        if kind in _SHUTDOWN_REPLIES and self._startup.done() and not self._shutdown.done():
            self._shutdown.set_result(_failure_reason(message))
            return
        pending, phase, expected = (
            (self._startup, "startup", _STARTUP_REPLIES)
            if not self._startup.done()
            else (self._shutdown, "shutdown" if not self._running else "serving", _SHUTDOWN_REPLIES)
        )
        reason = (
            f"the app sent an invalid lifespan message (type {kind!r}) during {phase}; "
            f"expected {expected[0]!r} or {expected[1]!r}"
        )
        if not pending.done():
            pending.set_result(reason)
        raise RuntimeError(reason)

    async def _stop_task(self, *, grace: float) -> None:
        """Cancel the task once it ends, waits for a message that will never come, or ``grace`` passes.

        The grace lets an app finish its own cleanup after its last reply; an app that instead
        goes back to ``receive()`` is done and is cancelled at once.
        """
        task = self._task
        if task is None:
            return
        if grace > 0 and not task.done():
            waiting = asyncio.ensure_future(self._waiting.wait())
            await _first_of(waiting, task, timeout=grace)
            waiting.cancel()
        if task.done():
            return
        task.cancel()
        await asyncio.wait({task}, timeout=_CANCEL_GRACE)
        if not task.done():
            logger.warning("Lifespan of %s ignored cancellation; abandoning it", self.name)


async def _first_of(event: asyncio.Future[Any], task: asyncio.Task[None], *, timeout: float) -> None:
    """Wait until ``event`` happens, the app's task ends, or ``timeout`` seconds pass."""
    either: set[asyncio.Future[Any]] = {event, task}
    await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)


def _failure_reason(message: Message) -> str | None:
    if message["type"].endswith(".complete"):
        return None
    return str(message.get("message") or "the app reported failure without a message")


def _traceback(error: BaseException) -> str:
    return app_traceback(error, skip_files={__file__})
