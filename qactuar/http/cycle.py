"""One ASGI HTTP request/response cycle: the ``receive`` and ``send`` an app is given.

The cycle validates every message the app sends before anything reaches the wire:
a bad message raises ``RuntimeError`` inside the app's ``send`` call, so the app's own
error handling runs and the server turns the failure into a 500 (nothing written yet)
or a closed connection (the head was already written).

The response head is held back until the first body message so that head and body
leave in one write, and a single-message response gets a Content-Length instead of
chunked framing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import h11

from qactuar.types import ASGIApp, Message, Scope

if TYPE_CHECKING:
    from qactuar.http.protocol import HTTPProtocol

exception_log = logging.getLogger("qt_exception")

DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}

# Response states
START, HEAD_HELD, STREAMING, DONE = range(4)

_NO_BODY_STATUSES = frozenset({204, 304})


class ClientDisconnected(OSError):  # noqa: N818 - named after what happened, as Starlette does
    """Raised from ``send`` when the client has gone away (ASGI spec 2.4)."""


class RequestCycle:
    __slots__ = (
        "_body",
        "_body_done",
        "_body_size",
        "_continue_sent",
        "_head",
        "_status",
        "_waiter",
        "bytes_sent",
        "conn",
        "disconnected",
        "is_head",
        "request_id",
        "response_state",
        "route",
        "scope",
        "started_at",
        "status",
    )

    def __init__(
        self, conn: HTTPProtocol, scope: Scope, request_id: bytes, route: str, *, has_body: bool
    ) -> None:
        self.conn = conn
        self.route = route
        self.scope = scope
        self.request_id = request_id
        self.is_head = scope["method"] == "HEAD"
        self.started_at = conn.loop.time()
        self.status = 0
        self.bytes_sent = 0
        self.disconnected = False
        self.response_state = START
        self._body: list[bytes] = []
        self._body_size = 0
        self._body_done = not has_body
        self._continue_sent = False
        self._waiter: asyncio.Future[None] | None = None
        self._head: list[tuple[bytes, bytes]] = []
        self._status = 0

    # -- fed by the protocol -------------------------------------------------------------

    def feed_body(self, data: bytes) -> int:
        """Buffer request body bytes; returns how many bytes are now buffered."""
        self._body.append(data)
        self._body_size += len(data)
        self._wake()
        return self._body_size

    def body_complete(self) -> None:
        self._body_done = True
        self._wake()

    def client_gone(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the ASGI callables -------------------------------------------------------------

    async def receive(self) -> Message:
        while True:
            if self.disconnected or self.response_state == DONE:
                return dict(DISCONNECT)
            if self._body or (self._body_done and self._body_size >= 0):
                return self._take_body()
            if not self._continue_sent and self.conn.driver.waiting_for_continue:
                self._continue_sent = True
                self.conn.write(self.conn.driver.send_continue())
            self._waiter = self.conn.loop.create_future()
            await self._waiter
            self._waiter = None

    def _take_body(self) -> Message:
        chunks = self._body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._body = []
        was_buffered = self._body_size
        # -1 marks "the final http.request was delivered"; later receives wait for the end.
        self._body_size = -1 if self._body_done else 0
        if was_buffered and not self._body_done:
            self.conn.body_consumed()
        return {"type": "http.request", "body": body, "more_body": not self._body_done}

    async def send(self, message: Message) -> None:
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        msg_type = message.get("type")
        state = self.response_state
        if msg_type == "http.response.start":
            if state != START:
                raise RuntimeError("http.response.start sent twice")
            self._status, self._head = _check_start(message)
            self.response_state = HEAD_HELD
            return
        if msg_type != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message type {msg_type!r}")
        if state == START:
            raise RuntimeError("http.response.body sent before http.response.start")
        if state == DONE:
            raise RuntimeError("http.response.body sent after the response completed")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if not isinstance(body, bytes | bytearray | memoryview):
            raise RuntimeError(f"http.response.body 'body' must be bytes, got {type(body).__name__}")
        if not isinstance(more_body, bool):
            raise RuntimeError("http.response.body 'more_body' must be a bool")
        driver = self.conn.driver
        out: list[bytes] = []
        if state == HEAD_HELD:
            out.append(self._write_head(body, more_body))
            self.response_state = STREAMING
        if body and not self.is_head and self.status not in _NO_BODY_STATUSES:
            out.append(driver.send_data(bytes(body)))
            self.bytes_sent += len(body)
        if not more_body:
            out.append(driver.send_end())
            self.response_state = DONE
        if out:
            self.conn.write(b"".join(out) if len(out) > 1 else out[0])
        if self.response_state == DONE:
            self._wake()
            self.conn.response_complete(self)
        elif self.conn.write_paused:
            await self.conn.drain()
            if self.disconnected:
                raise ClientDisconnected("client disconnected")

    def _write_head(self, first_body: bytes | bytearray | memoryview, more_body: bool) -> bytes:
        conn = self.conn
        status = self._status
        headers = self._head
        has_length = False
        has_server = has_date = has_rid = False
        for name, _ in headers:
            lname = name.lower()
            if lname in {b"content-length", b"transfer-encoding"}:
                has_length = True
            elif lname == b"server":
                has_server = True
            elif lname == b"date":
                has_date = True
            elif lname == b"x-request-id":
                has_rid = True
        if not has_length and not more_body and status not in _NO_BODY_STATUSES:
            headers.append((b"content-length", b"%d" % len(first_body)))
        if not has_date:
            headers.append((b"date", conn.server.date_header()))
        if not has_server:
            headers.append((b"server", conn.server.server_header))
        if not has_rid:
            headers.append((b"x-request-id", self.request_id))
        if conn.server.draining:
            headers.append((b"connection", b"close"))
        self.status = status
        try:
            return conn.driver.send_response(status, headers)
        except h11.LocalProtocolError as exc:
            # Header injection or an invalid header from the app: nothing was written.
            self.response_state = START
            raise RuntimeError(f"invalid response head: {exc}") from None

    # -- running the app -----------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception as exc:
            if self.disconnected and isinstance(exc, OSError):
                return  # the app noticed the client leaving; nothing to report
            exception_log.exception(
                "Exception in ASGI application (%s %s)",
                self.scope["method"],
                self.conn.server.log_path(self.scope),
                extra={"request_id": self.request_id.decode("ascii", "replace"), "route": self.route},
            )
            self._abort_after_error()
        else:
            if self.response_state != DONE and not self.disconnected:
                exception_log.error(
                    "ASGI application returned without %s (%s %s)",
                    "starting a response"
                    if self.response_state in (START, HEAD_HELD)
                    else "completing the response",
                    self.scope["method"],
                    self.conn.server.log_path(self.scope),
                    extra={"request_id": self.request_id.decode("ascii", "replace"), "route": self.route},
                )
                self._abort_after_error()
        finally:
            self.conn.cycle_finished(self)

    def _abort_after_error(self) -> None:
        if self.disconnected:
            return
        if self.response_state in (START, HEAD_HELD):
            self.status = 500
            self.response_state = DONE
            self.conn.fail(500)
        elif self.response_state == STREAMING:
            self.response_state = DONE
            self.conn.abort()


def _check_start(message: Message) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = message.get("status")
    if type(status) is not int or not 200 <= status <= 599:
        raise RuntimeError(f"http.response.start 'status' must be an int in 200..599, got {status!r}")
    raw_headers: Iterable[Any] = message.get("headers", ())
    headers: list[tuple[bytes, bytes]] = []
    try:
        for name, value in raw_headers:
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise RuntimeError("response header names and values must be bytes")
            headers.append((name, value))
    except (TypeError, ValueError):
        raise RuntimeError(
            "http.response.start 'headers' must be an iterable of [name, value] pairs"
        ) from None
    return status, headers
