"""One ASGI HTTP request/response cycle: the ``receive`` and ``send`` an app is given.

The cycle validates every message the app sends before anything reaches the wire:
a bad message raises ``RuntimeError`` inside the app's ``send`` call, so the app's own
error handling runs and the server turns the failure into a 500 (nothing written yet)
or a closed connection (the head was already written).

The response head is held back until the first body message so that head and body
leave in one write, and a single-message response gets a Content-Length instead of
chunked framing.

Two ASGI extensions (advertised in ``scope["extensions"]``, see HTTP_EXTENSIONS):

* ``http.response.pathsend``: the body is the file at an absolute path, sent with
  ``os.sendfile`` where the transport allows it (``HTTPProtocol.sendfile``).  It replaces the
  body messages, so it must follow ``http.response.start`` directly.  The file is opened and its
  size read before the head is written: a missing file, or one shorter than the Content-Length
  the app declared, is an error the app sees (500 if it does not handle it), never a short body.
  h11 is told about the bytes without seeing them (its documented sendfile pass-through).
* ``http.response.trailers``: after ``trailers: True`` in ``http.response.start`` the final
  body message leaves the chunked body open until ``http.response.trailers`` (with
  ``more_trailers`` to send them in parts) closes it with the trailer fields.  Trailers go on
  the wire only when the client asked for them (``TE: trailers``, as the extension says) and the
  body is chunked (HTTP/1.1, not HEAD, not 204/304, no Content-Length from the app); otherwise
  they are accepted and dropped.  An app that returns without sending them leaves an unfinished
  response, which closes the connection: a client relying on trailers must not mistake the
  message for complete.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import h11

from qactuar.http.driver import FileRange
from qactuar.types import ASGIApp, Message, Scope

if TYPE_CHECKING:
    from qactuar.http.protocol import HTTPProtocol

exception_log = logging.getLogger("qt_exception")

DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}

# Response states (TRAILING: the body is complete, the trailers are still to come)
START, HEAD_HELD, STREAMING, DONE, TRAILING = range(5)

HTTP_EXTENSIONS = ("http.response.pathsend", "http.response.trailers")

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
        "_trailers",
        "_trailers_on_wire",
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
        self._trailers: list[tuple[bytes, bytes]] | None = None  # announced: collected so far
        self._trailers_on_wire = False

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
            trailers = message.get("trailers", False)
            if not isinstance(trailers, bool):
                raise RuntimeError("http.response.start 'trailers' must be a bool")
            self._trailers = [] if trailers else None
            self.response_state = HEAD_HELD
            return
        if msg_type == "http.response.trailers":
            await self._send_trailers(message)
            return
        if msg_type == "http.response.pathsend":
            await self._send_path(message)
            return
        if msg_type != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message type {msg_type!r}")
        if state == START:
            raise RuntimeError("http.response.body sent before http.response.start")
        if state in (DONE, TRAILING):
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
            out.append(self._write_head(None if more_body else len(body)))
            self.response_state = STREAMING
        if body and not self.is_head and self.status not in _NO_BODY_STATUSES:
            out.append(driver.send_data(bytes(body)))
            self.bytes_sent += len(body)
        if not more_body:
            if self._trailers is not None:
                self.response_state = TRAILING
            else:
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

    async def _send_trailers(self, message: Message) -> None:
        if self.response_state != TRAILING or self._trailers is None:
            raise RuntimeError(
                "http.response.trailers is sent after the final body message of a response "
                "started with trailers: True"
            )
        more = message.get("more_trailers", False)
        if not isinstance(more, bool):
            raise RuntimeError("http.response.trailers 'more_trailers' must be a bool")
        self._trailers.extend(_check_headers(message.get("headers", ()), "http.response.trailers"))
        if more:
            return
        trailers = self._trailers if self._trailers_on_wire else []
        try:
            end = self.conn.driver.send_end(trailers)
        except h11.LocalProtocolError as exc:
            raise RuntimeError(f"invalid trailer field: {exc}") from None
        self.conn.write(end)
        self.response_state = DONE
        self._wake()
        self.conn.response_complete(self)

    async def _send_path(self, message: Message) -> None:
        if self.response_state != HEAD_HELD:
            raise RuntimeError("http.response.pathsend must directly follow http.response.start")
        path = message.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise RuntimeError(f"http.response.pathsend 'path' must be an absolute path, got {path!r}")
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed in the finally below
        except OSError as exc:
            raise RuntimeError(f"http.response.pathsend cannot open {path!r}: {exc.strerror}") from None
        try:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise RuntimeError(f"http.response.pathsend {path!r} is not a regular file")
            count = _declared_length(self._head)
            if count is None:
                count = info.st_size
            elif count > info.st_size:
                raise RuntimeError(
                    f"http.response.pathsend {path!r} has {info.st_size} bytes, "
                    f"fewer than the content-length {count}"
                )
            conn = self.conn
            out = [self._write_head(count)]
            self.response_state = STREAMING
            if count and not self.is_head and self.status not in _NO_BODY_STATUSES:
                for piece in conn.driver.send_file(FileRange(count)):
                    if not isinstance(piece, FileRange):
                        out.append(piece)
                        continue
                    conn.write(b"".join(out))
                    out = []
                    try:
                        await conn.sendfile(file, 0, count)
                    except OSError:
                        self.disconnected = True
                        self.response_state = DONE
                        conn.abort()
                        raise ClientDisconnected("client disconnected during pathsend") from None
                    self.bytes_sent += count
            if self._trailers is not None:
                self.response_state = TRAILING
                if out:
                    conn.write(b"".join(out))
                return
            out.append(conn.driver.send_end())
            conn.write(b"".join(out))
            self.response_state = DONE
            self._wake()
            conn.response_complete(self)
        finally:
            file.close()

    def _write_head(self, length: int | None) -> bytes:
        """The response head; ``length`` is the whole body's size when known (else it streams)."""
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
        if self._trailers is not None:
            self._trailers_on_wire = not has_length and self._client_takes_trailers(status)
        app_fields = len(headers)
        add_length = not (has_length or self._trailers_on_wire) and status not in _NO_BODY_STATUSES
        if add_length and length is not None:
            headers.append((b"content-length", b"%d" % length))
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
            return conn.driver.send_response(status, headers, app_fields)
        except h11.LocalProtocolError as exc:
            # Header injection or an invalid header from the app: nothing was written.
            self.response_state = START
            raise RuntimeError(f"invalid response head: {exc}") from None

    def _client_takes_trailers(self, status: int) -> bool:
        """The request said ``TE: trailers`` and this response can be chunked."""
        scope = self.scope
        if scope["http_version"] != "1.1" or self.is_head or status in _NO_BODY_STATUSES:
            return False
        return any(
            name == b"te" and b"trailers" in (token.strip().lower() for token in value.split(b","))
            for name, value in scope["headers"]
        )

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
        elif self.response_state in (STREAMING, TRAILING):
            self.response_state = DONE
            self.conn.abort()


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            if not value.strip().isdigit():
                raise RuntimeError(f"invalid content-length {value!r}")
            return int(value)
    return None


def _check_start(message: Message) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = message.get("status")
    if type(status) is not int or not 200 <= status <= 599:
        raise RuntimeError(f"http.response.start 'status' must be an int in 200..599, got {status!r}")
    return status, _check_headers(message.get("headers", ()), "http.response.start")


def _check_headers(raw_headers: Iterable[Any], message_type: str) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    try:
        for name, value in raw_headers:
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise RuntimeError("response header names and values must be bytes")
            headers.append((name, value))
    except (TypeError, ValueError):
        raise RuntimeError(f"{message_type} 'headers' must be an iterable of [name, value] pairs") from None
    return headers
