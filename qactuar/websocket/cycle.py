"""The ASGI websocket cycle: the ``receive`` and ``send`` a WebSocket application is given.

States of the application's side::

    CONNECTING --websocket.accept--> OPEN --websocket.close--> CLOSED
        |--websocket.close (403)----------------------------> CLOSED
        '--websocket.http.response.start--> DENY_HELD --first body--> DENYING --last body--> CLOSED

Every message is validated before anything reaches the wire: a bad message raises
``RuntimeError`` inside the app's ``send``, as the HTTP cycle does, so nothing half-made is
sent.  Once the connection is gone (either side closed it, or the socket was lost) ``send``
raises ``ClientDisconnected``, an ``OSError`` (spec 2.4).

Received messages wait in a deque.  The session stops parsing, and stops reading the socket,
while it holds ``WS_MAX_QUEUE`` messages, and starts again once the app has taken half of them:
a slow application pauses its client instead of growing memory.

``websocket.disconnect`` is delivered exactly once, after any messages still queued; a
``receive()`` after it raises ``RuntimeError`` rather than waiting forever.  Its code is the
peer's close code, the code of the close the server or the app sent, 1006 when the socket
was lost without a closing handshake (or never became a WebSocket).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from qactuar.http.cycle import ClientDisconnected
from qactuar.types import ASGIApp, Message, Scope

if TYPE_CHECKING:
    from qactuar.websocket.session import WebSocketSession

exception_log = logging.getLogger("qt_exception")

CONNECTING, DENY_HELD, DENYING, OPEN, CLOSED = range(5)

ABNORMAL_CLOSURE = 1006
# RFC 6455 7.4.1 codes an endpoint may send, plus the IANA-registered 1012-1014; 3000-4999 are
# for libraries and applications. 1004, 1005, 1006 and 1015 must never be sent.
_SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
# Headers the handshake itself writes; an application supplying them would duplicate or contradict them.
_HANDSHAKE_HEADERS = frozenset(
    {
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"upgrade",
        b"connection",
    }
)
_CONNECT: dict[str, Any] = {"type": "websocket.connect"}


class WebSocketCycle:
    __slots__ = (
        "_connect_delivered",
        "_disconnect",
        "_disconnect_delivered",
        "_held",
        "_waiter",
        "disconnected",
        "max_queue",
        "queue",
        "request_id",
        "scope",
        "session",
        "state",
    )

    def __init__(self, session: WebSocketSession, scope: Scope, request_id: str, max_queue: int) -> None:
        self.session = session
        self.scope = scope
        self.request_id = request_id
        self.max_queue = max_queue
        self.state = CONNECTING
        self.queue: deque[Message] = deque()
        self.disconnected = False
        self._connect_delivered = False
        self._disconnect: Message | None = None
        self._disconnect_delivered = False
        self._held: tuple[int, list[tuple[bytes, bytes]]] = (0, [])
        self._waiter: asyncio.Future[None] | None = None

    # -- fed by the session --------------------------------------------------------------

    def push(self, data: str | bytes) -> None:
        self.queue.append(
            {"type": "websocket.receive", "text": data}
            if isinstance(data, str)
            else {"type": "websocket.receive", "bytes": data}
        )
        self._wake()

    @property
    def full(self) -> bool:
        return len(self.queue) >= self.max_queue

    def closed(self, code: int, reason: str) -> None:
        """The WebSocket is over (or never opened): the app's next receive after the queue gets
        ``websocket.disconnect`` with ``code``; the first call wins."""
        self.disconnected = True
        if self._disconnect is None and not self._disconnect_delivered:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the ASGI callables -------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._connect_delivered:
            self._connect_delivered = True
            return dict(_CONNECT)
        while True:
            if self.queue:
                message = self.queue.popleft()
                self.session.message_taken()
                return message
            if self._disconnect is not None:
                message, self._disconnect = self._disconnect, None
                self._disconnect_delivered = True
                return message
            if self._disconnect_delivered:
                raise RuntimeError("receive() called after websocket.disconnect was delivered")
            self._waiter = self.session.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def send(self, message: Message) -> None:
        msg_type = message.get("type")
        state = self.state
        if state == CLOSED:
            raise RuntimeError(f"{msg_type!r} sent after the WebSocket was closed")
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        if state == OPEN:
            if msg_type == "websocket.send":
                await self.session.send_message(_message_data(message))
                if self.disconnected:
                    raise ClientDisconnected("client disconnected")
            elif msg_type == "websocket.close":
                code, reason = _close_args(message)
                self.state = CLOSED
                self.session.close(code, reason)
                self.closed(code, reason)
            else:
                raise RuntimeError(f"expected websocket.send or websocket.close, got {msg_type!r}")
        elif state == CONNECTING:
            if msg_type == "websocket.accept":
                self._accept(message)
            elif msg_type == "websocket.close":
                self.state = CLOSED
                self.session.refuse(403)
                self.closed(ABNORMAL_CLOSURE, "")
            elif msg_type == "websocket.http.response.start":
                self._held = _deny_start(message)
                self.state = DENY_HELD
            else:
                raise RuntimeError(
                    "expected websocket.accept, websocket.close or websocket.http.response.start, "
                    f"got {msg_type!r}"
                )
        elif msg_type == "websocket.http.response.body":
            self._deny_body(message)
        else:
            raise RuntimeError(f"expected websocket.http.response.body, got {msg_type!r}")

    def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise RuntimeError(f"websocket.accept 'subprotocol' must be a str or None, got {subprotocol!r}")
        headers = _headers(message.get("headers", ()), "websocket.accept")
        for name, _ in headers:
            if name.lower() in _HANDSHAKE_HEADERS:
                raise RuntimeError(
                    f"websocket.accept 'headers' must not set {name.decode('latin-1')}; the server writes it"
                    + (" (use 'subprotocol')" if name.lower() == b"sec-websocket-protocol" else "")
                )
        try:
            self.session.accept(subprotocol, headers)
        except ValueError as exc:
            raise RuntimeError(f"invalid websocket.accept: {exc}") from None
        self.state = OPEN

    def _deny_body(self, message: Message) -> None:
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if not isinstance(body, bytes | bytearray | memoryview):
            raise RuntimeError(
                f"websocket.http.response.body 'body' must be bytes, got {type(body).__name__}"
            )
        if not isinstance(more_body, bool):
            raise RuntimeError("websocket.http.response.body 'more_body' must be a bool")
        try:
            if self.state == DENY_HELD:
                status, headers = self._held
                self.session.deny(status, headers, bytes(body), more_body)
                self.state = DENYING
            else:
                self.session.deny_body(bytes(body), more_body)
        except ValueError as exc:
            raise RuntimeError(f"invalid WebSocket denial response: {exc}") from None
        if not more_body:
            self.state = CLOSED
            self.closed(ABNORMAL_CLOSURE, "")

    # -- running the app -----------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        failed = False
        try:
            await app(self.scope, self.receive, self.send)
        except Exception as exc:
            if not (self.disconnected and isinstance(exc, OSError)):
                failed = True
                exception_log.exception(
                    "Exception in ASGI application (WebSocket %s)",
                    self.session.log_path,
                    extra={"request_id": self.request_id},
                )
        else:
            if self.state in (CONNECTING, DENY_HELD, DENYING) and not self.disconnected:
                exception_log.error(
                    "ASGI application returned without %s (WebSocket %s)",
                    "completing its denial response" if self.state == DENYING else "accepting or denying",
                    self.session.log_path,
                    extra={"request_id": self.request_id},
                )
        finally:
            self.session.app_finished(failed)


def _message_data(message: Message) -> str | bytes:
    data_bytes = message.get("bytes")
    text = message.get("text")
    if (data_bytes is None) == (text is None):
        raise RuntimeError("websocket.send needs exactly one of 'bytes' and 'text'")
    if text is not None:
        if not isinstance(text, str):
            raise RuntimeError(f"websocket.send 'text' must be a str, got {type(text).__name__}")
        return text
    if not isinstance(data_bytes, bytes | bytearray | memoryview):
        raise RuntimeError(f"websocket.send 'bytes' must be bytes, got {type(data_bytes).__name__}")
    return bytes(data_bytes)


def _close_args(message: Message) -> tuple[int, str]:
    code = message.get("code", 1000)
    reason = message.get("reason")
    if type(code) is not int or not (code in _SENDABLE_CLOSE_CODES or 3000 <= code <= 4999):
        raise RuntimeError(f"websocket.close 'code' must be 1000-1003, 1007-1014 or 3000-4999, got {code!r}")
    if reason is not None and not isinstance(reason, str):
        raise RuntimeError(f"websocket.close 'reason' must be a str, got {type(reason).__name__}")
    return code, reason or ""


def _deny_start(message: Message) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = message.get("status")
    if type(status) is not int or not 200 <= status <= 599:
        raise RuntimeError(
            f"websocket.http.response.start 'status' must be an int in 200..599, got {status!r}"
        )
    return status, _headers(message.get("headers", ()), "websocket.http.response.start")


def _headers(raw: Iterable[Any], where: str) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    try:
        for name, value in raw:
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise RuntimeError(f"{where} header names and values must be bytes")
            headers.append((name, value))
    except (TypeError, ValueError):
        raise RuntimeError(f"{where} 'headers' must be an iterable of [name, value] pairs") from None
    return headers
