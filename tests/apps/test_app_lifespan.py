from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette

from qactuar.apps.lifespan import Lifespan, LifespanFailure
from qactuar.types import Message, Receive, Scope, Send


class Recorder:
    """A lifespan app scripted by the test: it records what it saw and how it ended."""

    def __init__(self, *, startup: str | None = "complete", shutdown: str | None = "complete") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.received: list[str] = []
        self.calls = 0
        self.cancelled = False
        self.send_error: Exception | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        assert scope["type"] == "lifespan"
        assert scope["asgi"]["version"] == "3.0"
        try:
            for reply in (self.startup, self.shutdown):
                message = await receive()
                self.received.append(message["type"])
                if reply is None:
                    await asyncio.Event().wait()  # never answers
                if message["type"] == "lifespan.startup":
                    scope["state"]["started"] = True
                await send(self._message(message["type"], reply))
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        except RuntimeError as exc:
            self.send_error = exc
            raise

    @staticmethod
    def _message(phase: str, reply: str | None) -> Message:
        if reply in {"complete", "failed"}:
            return {"type": f"{phase}.{reply}", "message": f"{phase} went wrong"}
        return {"type": reply}


def lifespan(app: Any, **options: Any) -> Lifespan:
    return Lifespan(app, name="test app", **options)


async def test_supported_app_with_state() -> None:
    app = Recorder()
    state: dict[str, Any] = {}
    span = lifespan(app, state=state)
    await span.startup()
    assert span.running
    assert state == {"started": True}
    await span.shutdown()
    assert not span.running
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]
    assert app.calls == 1 and not app.cancelled


async def test_unsupported_app_that_raises_is_skipped_in_auto(caplog: pytest.LogCaptureFixture) -> None:
    async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"

    span = lifespan(http_only)
    with caplog.at_level(logging.DEBUG, logger="qt_server"):
        await span.startup()
        await span.shutdown()
    assert not span.running
    [record] = caplog.records
    assert record.name == "qt_server" and record.levelno == logging.INFO
    assert "does not support lifespan (it raised AssertionError)" in record.getMessage()


async def test_app_that_returns_is_skipped_in_auto(caplog: pytest.LogCaptureFixture) -> None:
    async def returns(scope: Scope, receive: Receive, send: Send) -> None:
        return

    span = lifespan(returns)
    with caplog.at_level(logging.DEBUG, logger="qt_server"):
        await span.startup()
    assert not span.running
    assert "returned from lifespan without completing startup" in caplog.text


async def test_crash_after_receiving_startup_is_a_warning_in_auto(caplog: pytest.LogCaptureFixture) -> None:
    async def crashes(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise ConnectionError("database down")

    span = lifespan(crashes)
    with caplog.at_level(logging.DEBUG, logger="qt_server"):
        await span.startup()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "ConnectionError: database down" in record.getMessage()
    assert "Traceback" in record.getMessage()


async def test_raising_app_fails_in_mode_on() -> None:
    async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
        raise TypeError("only http here")

    with pytest.raises(LifespanFailure) as info:
        await lifespan(http_only, mode="on").startup()
    assert "TypeError: only http here" in str(info.value)
    assert "Traceback (most recent call last)" in str(info.value)
    assert "in _run" not in str(info.value)  # only the app's frames, not Lifespan's


async def test_returning_app_fails_in_mode_on() -> None:
    async def returns(scope: Scope, receive: Receive, send: Send) -> None:
        return

    with pytest.raises(LifespanFailure, match="returned without completing lifespan startup"):
        await lifespan(returns, mode="on").startup()


async def test_startup_failed() -> None:
    app = Recorder(startup="failed")
    span = lifespan(app)
    with pytest.raises(LifespanFailure) as info:
        await span.startup()
    assert str(info.value) == "lifespan.startup went wrong"
    assert not span.running


async def test_startup_timeout_cancels_the_app() -> None:
    app = Recorder(startup=None)
    span = lifespan(app, startup_timeout=0.2)
    with pytest.raises(LifespanFailure) as info:
        await span.startup()
    assert str(info.value) == "did not complete startup within 0.2 s"
    assert app.cancelled


async def test_shutdown_timeout_is_logged_and_cancels(caplog: pytest.LogCaptureFixture) -> None:
    app = Recorder(shutdown=None)
    span = lifespan(app, shutdown_timeout=0.2)
    await span.startup()
    with caplog.at_level(logging.DEBUG, logger="qt_server"):
        await span.shutdown()  # never raises
    assert "did not complete shutdown within 0.2 s" in caplog.text
    assert caplog.records[0].levelno == logging.ERROR
    assert app.cancelled


async def test_shutdown_failed_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    span = lifespan(Recorder(shutdown="failed"))
    await span.startup()
    with caplog.at_level(logging.DEBUG, logger="qt_server"):
        await span.shutdown()
    assert "Lifespan shutdown of test app failed: lifespan.shutdown went wrong" in caplog.text


async def test_mode_off_never_calls_the_app() -> None:
    app = Recorder()
    span = lifespan(app, mode="off")
    await span.startup()
    await span.shutdown()
    assert app.calls == 0 and not span.running


async def test_invalid_message_during_startup() -> None:
    app = Recorder(startup="lifespan.shutdown.complete")
    with pytest.raises(LifespanFailure) as info:
        await lifespan(app).startup()
    reason = str(info.value)
    assert "invalid lifespan message (type 'lifespan.shutdown.complete') during startup" in reason
    assert "expected 'lifespan.startup.complete' or 'lifespan.startup.failed'" in reason
    assert str(app.send_error) == reason  # the app's send raised too


async def test_invalid_message_during_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    span = lifespan(Recorder(shutdown="http.response.start"))
    await span.startup()
    with caplog.at_level(logging.DEBUG, logger="qt_server"):
        await span.shutdown()
    assert "invalid lifespan message (type 'http.response.start') during shutdown" in caplog.text


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="lifespan mode must be one of auto, on, off"):
        lifespan(Recorder(), mode="maybe")


async def test_startup_twice_is_a_bug() -> None:
    span = lifespan(Recorder())
    await span.startup()
    with pytest.raises(RuntimeError, match="already started"):
        await span.startup()
    await span.shutdown()


async def test_starlette_lifespan_state() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan_context(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"pool": "connected"}
        events.append("shutdown")

    state: dict[str, Any] = {}
    span = lifespan(Starlette(lifespan=lifespan_context), mode="on", state=state)
    await span.startup()
    assert state == {"pool": "connected"}
    await span.shutdown()
    assert events == ["startup", "shutdown"]


async def test_starlette_startup_error_is_reported() -> None:
    @contextlib.asynccontextmanager
    async def lifespan_context(app: Starlette) -> AsyncIterator[None]:
        raise ConnectionError("database down")
        yield

    with pytest.raises(LifespanFailure, match="ConnectionError: database down"):
        await lifespan(Starlette(lifespan=lifespan_context)).startup()
