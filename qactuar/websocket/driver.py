"""Sans-I/O WebSocket server connection over wsproto: bytes in, events out; messages in, bytes out.

Theory of operation
-------------------
The HTTP driver has already parsed the upgrade request.  ``check_handshake`` applies RFC 6455
section 4.2.1 to it (GET, HTTP/1.1, no body, one ``Sec-WebSocket-Version: 13``, a key that is
16 bytes of base64) and says which plain response to send when it fails: 400, or 426 with
``Sec-WebSocket-Version: 13`` for a version we do not speak.  A valid request is replayed into
wsproto's handshake object, which parses the offered subprotocols and extensions and later
writes the 101 (``accept``) or the application's denial (``deny``) through its own h11
connection, so every header an application supplies is validated by h11 before it is sent.

After the 101 the driver feeds wsproto's frame layer and adds what wsproto leaves to its user:

* fragmented messages are reassembled, with ``max_size`` counted in bytes (UTF-8 bytes for text):
  a larger message fails the connection with 1009; the inflated size of compressed messages is
  bounded the same way, inside the extension (``deflate.py``);
* pings are answered and a peer's close is echoed automatically; those replies wait in an
  output buffer the caller empties with ``data_to_send()`` after handling events;
* wsproto reports a malformed stream as a close event without sending anything; the driver
  turns it into a close frame of its own (1002 protocol error, 1007 invalid UTF-8 or compressed
  data, 1009 too big) and a ``Closed`` event; the reasons of 1007 and 1009 are fixed texts, so
  the same bytes give the same close frame however they were split into reads (a text message
  that is both too big and invalid UTF-8 is the one exception: wsproto checks UTF-8 as far as it
  has the frame, the size counts what was delivered, so it fails with 1007 or 1009 depending on
  the reads -- both true, and the message is never delivered);
* once we have sent a close frame, data frames from the peer are discarded (RFC 6455 1.4).

``Closed`` always means: write ``data_to_send()``, then close the TCP connection (the server
closes first, RFC 6455 7.1.1).

Events are parsed lazily, one ``next_event()`` at a time, so a caller that stops asking (its
queue of received messages is full) leaves the rest of the bytes unparsed in wsproto's buffer.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.events import Event as WSEvent
from wsproto.utilities import ProtocolError

from qactuar.http.driver import RequestHead
from qactuar.websocket.deflate import BoundedDeflate

Headers = list[tuple[bytes, bytes]]

# Driver states
WS_HANDSHAKE, WS_OPEN, WS_CLOSING, WS_CLOSED = range(4)

MESSAGE_TOO_BIG = 1009
INVALID_DATA = 1007


# ---- events out of the driver --------------------------------------------------------


@dataclass(slots=True)
class MessageReceived:
    data: str | bytes


@dataclass(slots=True)
class PongReceived:
    payload: bytes


@dataclass(slots=True)
class Closed:
    """The WebSocket is over: send ``data_to_send()``, then close the TCP connection."""

    code: int
    reason: str


class NeedData:
    __slots__ = ()


NEED_DATA = NeedData()
Event = MessageReceived | PongReceived | Closed | NeedData


@dataclass(frozen=True, slots=True)
class HandshakeError:
    """An upgrade request that is not a valid WebSocket opening handshake."""

    status: int
    reason: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


def check_handshake(head: RequestHead) -> HandshakeError | None:
    """RFC 6455 4.2.1 checks that wsproto leaves out or answers with a crash."""
    if head.method != b"GET":
        return HandshakeError(400, "a WebSocket handshake must be a GET")
    if head.http_version != b"1.1":
        return HandshakeError(400, "a WebSocket handshake needs HTTP/1.1")
    if head.has_body:
        return HandshakeError(400, "a WebSocket handshake has no body")
    versions = [value for name, value in head.headers if name == b"sec-websocket-version"]
    keys = [value for name, value in head.headers if name == b"sec-websocket-key"]
    if not versions:
        return HandshakeError(400, "missing Sec-WebSocket-Version")
    if versions != [b"13"]:
        return HandshakeError(426, "unsupported Sec-WebSocket-Version", ((b"sec-websocket-version", b"13"),))
    if len(keys) != 1 or not _valid_key(keys[0]):
        return HandshakeError(400, "Sec-WebSocket-Key must be one base64-encoded 16-byte value")
    return None


def _valid_key(key: bytes) -> bool:
    try:
        return len(binascii.a2b_base64(key.strip(), strict_mode=True)) == 16
    except binascii.Error:
        return False


def _join(parts: list[str | bytes]) -> str | bytes:
    """The fragments of one message, all ``str`` or all ``bytes`` (wsproto enforces that)."""
    if isinstance(parts[0], str):
        return "".join(cast("list[str]", parts))
    return b"".join(cast("list[bytes]", parts))


class WebSocketDriver:
    """One server-side WebSocket, from the parsed upgrade request to the closing handshake."""

    __slots__ = (
        "_conn",
        "_events",
        "_handshake",
        "_out",
        "_parts",
        "_size",
        "max_size",
        "per_message_deflate",
        "state",
        "subprotocols",
    )

    def __init__(self, *, max_size: int, per_message_deflate: bool) -> None:
        self.max_size = max_size
        self.per_message_deflate = per_message_deflate
        self.state = WS_HANDSHAKE
        self.subprotocols: list[str] = []
        self._handshake = WSConnection(ConnectionType.SERVER)
        self._conn: Connection | None = None
        self._events: Iterator[WSEvent] = iter(())
        self._out: list[bytes] = []
        self._parts: list[str | bytes] = []
        self._size = 0

    # -- handshake -------------------------------------------------------------------------

    def start(self, head: RequestHead) -> HandshakeError | None:
        """Take the upgrade request; a HandshakeError says what to answer instead of 101."""
        error = check_handshake(head)
        if error is not None:
            return error
        target = head.target
        path = target.raw_path + (b"?" + target.query_string if target.query_string else b"")
        try:
            self._handshake.initiate_upgrade_connection(head.headers, path)
            request = next(self._handshake.events())
        except (ProtocolError, h11.ProtocolError, UnicodeError, ValueError, StopIteration) as exc:
            return HandshakeError(400, f"invalid WebSocket handshake: {exc}")
        assert isinstance(request, Request)
        self.subprotocols = list(request.subprotocols)
        return None

    def accept(self, subprotocol: str | None, headers: Headers) -> bytes:
        """The 101 response. Raises ValueError, changing nothing, for a subprotocol the client did
        not offer or an invalid header."""
        extensions = [BoundedDeflate(self.max_size)] if self.per_message_deflate else []
        event = AcceptConnection(subprotocol=subprotocol, extensions=list(extensions), extra_headers=headers)
        try:
            data = self._handshake.send(event)
        except (ProtocolError, h11.ProtocolError) as exc:
            raise ValueError(str(exc)) from None
        self._conn = self._handshake.connection
        self.state = WS_OPEN
        return data

    def deny(self, status: int, headers: Headers, body: bytes, more_body: bool) -> bytes:
        """Start the application's denial response (status 200..599) with its first body bytes.

        Raises ValueError, changing nothing, for an invalid header."""
        try:
            data = self._handshake.send(RejectConnection(status_code=status, headers=headers, has_body=True))
        except (ProtocolError, h11.ProtocolError) as exc:
            raise ValueError(str(exc)) from None
        return data + self.deny_body(body, more_body)

    def deny_body(self, body: bytes, more_body: bool) -> bytes:
        """More of the denial's body. Raises ValueError when it breaks the declared length."""
        try:
            data = self._handshake.send(RejectData(data=body, body_finished=not more_body))
        except (ProtocolError, h11.ProtocolError) as exc:
            raise ValueError(str(exc)) from None
        if not more_body:
            self.state = WS_CLOSED
        return data

    # -- frames in -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        conn = self._conn
        if conn is None or self.state == WS_CLOSED:
            return
        conn.receive_data(data)
        self._events = conn.events()

    def next_event(self) -> Event:
        if self.state == WS_CLOSED:
            return NEED_DATA
        for event in self._events:
            if isinstance(event, TextMessage | BytesMessage):
                if self.state == WS_OPEN:
                    message = self._on_data(event)
                    if message is not None:
                        return message
            elif isinstance(event, Ping):
                if self.state == WS_OPEN:
                    self._out.append(self._send(event.response()))
            elif isinstance(event, Pong):
                return PongReceived(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                return self._on_close(event)
        return NEED_DATA

    def _on_data(self, event: TextMessage | BytesMessage) -> MessageReceived | Closed | None:
        raw = event.data
        data: str | bytes
        if isinstance(raw, str):
            data = raw
            self._size += len(raw) if raw.isascii() else len(raw.encode("utf-8"))
        else:
            data = raw if isinstance(raw, bytes) else bytes(raw)
            self._size += len(data)
        if self._size > self.max_size:
            return self._fail(MESSAGE_TOO_BIG, f"message larger than {self.max_size} bytes")
        if not event.message_finished:
            self._parts.append(data)
            return None
        if self._parts:
            self._parts.append(data)
            data = _join(self._parts)
            self._parts = []
        self._size = 0
        return MessageReceived(data)

    def _on_close(self, event: CloseConnection) -> Closed:
        assert self._conn is not None
        ws_state = self._conn.state
        if ws_state is ConnectionState.REMOTE_CLOSING:  # the peer starts the closing handshake
            self._out.append(self._send(event.response()))
        elif ws_state is not ConnectionState.CLOSED:  # a parse failure: wsproto sent nothing
            reason = event.reason or ""
            if event.code == MESSAGE_TOO_BIG:
                reason = f"message larger than {self.max_size} bytes"
            elif event.code == INVALID_DATA:
                # wsproto's text is the UnicodeDecodeError's, with a position that depends on how the
                # bytes were split into reads: the same stream must give the same close frame.
                reason = "invalid UTF-8 or compressed data"
            return self._fail(event.code, reason)
        self.state = WS_CLOSED
        return Closed(event.code, event.reason or "")

    def _fail(self, code: int, reason: str) -> Closed:
        """Fail the WebSocket connection (RFC 6455 7.1.7): a close frame, then the end."""
        if self.state == WS_OPEN:
            self._out.append(self._send(CloseConnection(code=code, reason=reason)))
        self.state = WS_CLOSED
        self._parts = []
        return Closed(code, reason)

    # -- frames out ------------------------------------------------------------------------

    def _send(self, event: WSEvent) -> bytes:
        assert self._conn is not None
        return self._conn.send(event)

    def data_to_send(self) -> bytes:
        """Automatic replies (pongs, close frames) produced while handling events."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def send_message(self, data: str | bytes) -> bytes:
        if self.state != WS_OPEN:
            return b""
        event = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        return self._send(event)

    def ping(self, payload: bytes) -> bytes:
        return self._send(Ping(payload=payload)) if self.state == WS_OPEN else b""

    def close(self, code: int, reason: str = "") -> bytes:
        """Start the closing handshake (the peer's echo ends it with a Closed event)."""
        if self.state != WS_OPEN:
            return b""
        self.state = WS_CLOSING
        return self._send(CloseConnection(code=code, reason=reason))
