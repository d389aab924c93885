"""A WebSocket on an upgraded HTTP connection: the only WebSocket code that touches a transport.

``start_websocket`` is called by the HTTP protocol for a request with ``Upgrade: websocket``.
It answers an invalid handshake itself (400, or 426 for an unsupported version) and so a
request no app can serve: 404 when no mount matches the path, 503 when the mount failed to
load or the server is at LIMIT_CONCURRENCY -- plain HTTP responses, like the ones an HTTP
request gets, rather than a bare 403.  Otherwise it hands the connection to a
``WebSocketSession``, which runs the app's ``WebSocketCycle`` as one request of the server.

Flow control, both ways:

* reading stops while the app's queue of received messages is full (``WS_MAX_QUEUE``), and
  while the transport's write buffer is above its high-water mark -- a peer that floods pings
  and never reads the pongs stops being read, instead of growing our write buffer;
* before the handshake is answered at most ``EARLY_DATA_LIMIT`` bytes are buffered (a client
  must wait for the 101 before it sends frames, RFC 6455 4.1);
* the app's ``send`` waits while the write buffer is above its high-water mark.

Time is checked by the server's sweep (about once a second), not by timers per connection:
keepalive pings every WS_PING_INTERVAL seconds (0 = none), closing with 1011 when nothing at
all (a pong or any other frame) comes from the peer within WS_PING_TIMEOUT of a ping -- while
our own app holds reading paused the peer is not blamed; and CLOSE_TIMEOUT for the peer to
answer our close frame, or to close after we did, before the connection is cut.

Shutdown: during the drain window open WebSockets carry on; at its end (``shutdown(final=True)``)
each gets close 1001 and the app a ``websocket.disconnect`` with 1001; a handshake the app has
not answered yet gets 503.

One access line per session (on ``qt_access``, in the HTTP line's format), written when the
connection ends: status 101 for an accepted WebSocket, otherwise the HTTP status sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from qactuar.http.driver import RequestHead, error_response
from qactuar.types import ASGIApp, Scope
from qactuar.websocket.cycle import ABNORMAL_CLOSURE, CONNECTING, DENY_HELD, DENYING, OPEN, WebSocketCycle
from qactuar.websocket.driver import (
    WS_HANDSHAKE,
    WS_OPEN,
    Closed,
    HandshakeError,
    MessageReceived,
    NeedData,
    PongReceived,
    WebSocketDriver,
)
from qactuar.websocket.scope import websocket_scope

if TYPE_CHECKING:
    from qactuar.http.protocol import HTTPProtocol, UpgradedConnection
    from qactuar.server import Server

access_log = logging.getLogger("qt_access")

EARLY_DATA_LIMIT = 64 * 1024
CLOSE_TIMEOUT = 5.0
GOING_AWAY = 1001
INTERNAL_ERROR = 1011


def start_websocket(
    conn: HTTPProtocol, head: RequestHead, scope: Scope, app: ASGIApp | None
) -> UpgradedConnection | None:
    """Take over ``conn`` for a WebSocket, or answer the request and return None."""
    server = conn.server
    config = server.config
    driver = WebSocketDriver(max_size=config.WS_MAX_SIZE, per_message_deflate=config.WS_PER_MESSAGE_DEFLATE)
    error = driver.start(head)
    mount = server.table.match(head.target.path)
    route = mount.route if mount is not None else ""
    request_id = scope["state"]["request_id"]
    if error is None and app is None:
        error = (
            HandshakeError(404, "no app is mounted at this path")
            if mount is None
            else HandshakeError(503, "the app for this path is not serving")
        )
    if error is not None:
        conn.write(error_response(error.status, server.date_header(), error.headers))
        _log_session(
            conn,
            scope,
            route=route,
            method=head.method.decode("ascii", "replace"),
            status=error.status,
            nbytes=0,
            elapsed=0.0,
            request_id=request_id,
        )
        conn._linger_close()
        return None
    assert app is not None
    session = WebSocketSession(conn, driver, websocket_scope(scope, driver.subprotocols), route, request_id)
    session.start(app, conn.driver.take_trailing_data())
    return session


class WebSocketSession:
    """The upgraded connection's callbacks (``UpgradedConnection``) and the cycle's I/O."""

    __slots__ = (
        "_close_deadline",
        "_early",
        "_ended",
        "_heard_at",
        "_logged",
        "_next_ping",
        "_ping_sent_at",
        "_pong_payload",
        "_reading",
        "_stalled",
        "bytes_sent",
        "conn",
        "cycle",
        "driver",
        "log_path",
        "loop",
        "ping_interval",
        "ping_timeout",
        "request_id",
        "route",
        "scope",
        "server",
        "started_at",
        "status",
        "transport",
    )

    def __init__(
        self, conn: HTTPProtocol, driver: WebSocketDriver, scope: Scope, route: str, request_id: str
    ) -> None:
        assert conn.transport is not None
        self.conn = conn
        self.transport: asyncio.Transport = conn.transport
        self.server: Server = conn.server
        self.loop = conn.loop
        self.driver = driver
        self.scope = scope
        self.route = route
        self.request_id = request_id
        self.log_path = self.server.log_path(scope)
        config = self.server.config
        self.ping_interval = config.WS_PING_INTERVAL
        self.ping_timeout = config.WS_PING_TIMEOUT
        self.cycle = WebSocketCycle(self, scope, request_id, config.WS_MAX_QUEUE)
        self.started_at = self.loop.time()
        self.status = 0
        self.bytes_sent = 0
        self._early = bytearray()
        self._reading = True
        self._stalled = False
        self._ended = False
        self._logged = False
        self._next_ping = 0.0
        self._pong_payload: bytes | None = None
        self._ping_sent_at = 0.0
        self._heard_at = 0.0
        self._close_deadline = 0.0

    def start(self, app: ASGIApp, early: bytes) -> None:
        self._early += early
        self.transport.resume_reading()
        self._update_reading()
        self.server.start_request(self.loop.create_task(self.cycle.run(app)))

    # -- UpgradedConnection ------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._ended:
            return
        self._heard_at = self.loop.time()
        if self.driver.state == WS_HANDSHAKE:
            self._early += data
            self._update_reading()
            return
        self.driver.receive_data(data)
        self._process()

    def eof_received(self) -> None:
        """The peer closed its side; the transport closes and connection_lost follows."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self.cycle.closed(ABNORMAL_CLOSURE, "")
        self._log()

    def resume_writing(self) -> None:
        if self._stalled:
            self._process()

    def check_deadline(self, now: float) -> None:
        if self._close_deadline and now >= self._close_deadline:
            self.transport.abort()
            return
        if self._ended or self.driver.state != WS_OPEN or not self._next_ping:
            return
        if self._pong_payload is not None:
            # Anything read since the ping proves the peer alive (its pong may be queued behind
            # that data); so does our own app holding reading paused, which is no fault of the peer.
            if self._heard_at > self._ping_sent_at or (self._stalled and not self.conn.write_paused):
                self._pong_payload = None
                self._next_ping = now + self.ping_interval
            elif now >= self._ping_sent_at + self.ping_timeout:
                self._close_now(INTERNAL_ERROR, "keepalive ping timeout")
        elif now >= self._next_ping:
            self._pong_payload = os.urandom(4)
            self._ping_sent_at = now
            self._write(self.driver.ping(self._pong_payload))

    def shutdown(self, final: bool) -> None:
        if not final or self._ended:
            return
        state = self.cycle.state
        if self.driver.state == WS_OPEN:
            self._start_close(GOING_AWAY, "server shutting down")
            self.cycle.closed(GOING_AWAY, "server shutting down")
        elif state in (CONNECTING, DENY_HELD):
            self.refuse(503)
            self.cycle.closed(ABNORMAL_CLOSURE, "")
        elif state == DENYING:
            self.abort()

    # -- reading -------------------------------------------------------------------------

    def _process(self) -> None:
        """Hand parsed messages to the app until none are left or the app's queue is full."""
        driver = self.driver
        cycle = self.cycle
        conn = self.conn
        self._stalled = False
        while True:
            # Once we have sent a close frame data is dropped unread, so a full queue stops nothing.
            if (cycle.full and driver.state == WS_OPEN) or conn.write_paused:
                self._stalled = True
                break
            event = driver.next_event()
            kind = type(event)
            if kind is NeedData:
                break
            if isinstance(event, MessageReceived):
                cycle.push(event.data)
            elif isinstance(event, PongReceived):
                if event.payload == self._pong_payload:
                    self._pong_payload = None
                    self._next_ping = self.loop.time() + self.ping_interval
            elif isinstance(event, Closed):  # the closing handshake is over, or the peer broke the protocol
                self._write(driver.data_to_send())
                cycle.closed(event.code, event.reason)
                self._end()
                return
        self._write(driver.data_to_send())
        self._update_reading()

    def message_taken(self) -> None:
        if self._stalled and len(self.cycle.queue) <= self.cycle.max_queue // 2:
            self._process()

    def _update_reading(self) -> None:
        if self.driver.state == WS_HANDSHAKE:
            want = len(self._early) < EARLY_DATA_LIMIT
        else:
            want = not self._stalled
        if want != self._reading and not self._ended:
            self._reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    # -- writing, used by the cycle ------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if data and not self._ended:
            self.transport.write(data)

    def _response_headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        names = {name.lower() for name, _ in headers}
        extra = [
            (b"date", self.server.date_header()),
            (b"server", self.server.server_header),
            (b"x-request-id", self.request_id.encode("ascii")),
        ]
        return headers + [item for item in extra if item[0] not in names]

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        """Write the 101 (ValueError if wsproto or h11 refuse it) and start reading frames."""
        self._write(self.driver.accept(subprotocol, self._response_headers(headers)))
        self.status = 101
        if self.ping_interval > 0:
            self._next_ping = self.loop.time() + self.ping_interval
        early, self._early = bytes(self._early), bytearray()
        if early:
            self.driver.receive_data(early)
        self._process()

    def deny(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more_body: bool) -> None:
        headers = self._response_headers([*headers, (b"connection", b"close")])
        self._write(self.driver.deny(status, headers, body, more_body))
        self.status = status
        self.bytes_sent += len(body)
        if not more_body:
            self._end()

    def deny_body(self, body: bytes, more_body: bool) -> None:
        self._write(self.driver.deny_body(body, more_body))
        self.bytes_sent += len(body)
        if not more_body:
            self._end()

    def refuse(self, status: int) -> None:
        """A response the server makes itself (403 for a close before accept, 500, 503)."""
        if self._ended:
            return
        self._write(error_response(status, self.server.date_header()))
        self.status = status
        self._end()

    async def send_message(self, data: str | bytes) -> None:
        out = self.driver.send_message(data)
        self.bytes_sent += len(out)
        self._write(out)
        if self.conn.write_paused:
            await self.conn.drain()

    def close(self, code: int, reason: str) -> None:
        self._start_close(code, reason)

    def abort(self) -> None:
        self._ended = True
        self.transport.abort()

    def app_finished(self, failed: bool) -> None:
        self.server.active_requests -= 1
        if self._ended:
            return
        state = self.cycle.state
        if state == OPEN:
            self._start_close(INTERNAL_ERROR if failed else 1000, "")
        elif state in (CONNECTING, DENY_HELD):
            self.refuse(500)
        elif state == DENYING:
            self.abort()

    # -- closing -------------------------------------------------------------------------

    def _start_close(self, code: int, reason: str) -> None:
        """Send our close frame; the connection ends when the peer answers (or CLOSE_TIMEOUT)."""
        data = self.driver.close(code, reason)
        if data:
            self._write(data)
            self._close_deadline = self.loop.time() + CLOSE_TIMEOUT
            self._next_ping = 0.0
            if self._stalled:
                self._process()  # the peer's echo may be waiting behind messages left unread

    def _close_now(self, code: int, reason: str) -> None:
        """Close without waiting for the peer (it stopped answering)."""
        self._write(self.driver.close(code, reason))
        self.cycle.closed(code, reason)
        self._end()

    def _end(self) -> None:
        """End the TCP connection once what is written has been sent (the server closes first).

        On plain TCP our side is shut down with a FIN and whatever the peer still sends is read
        and dropped until it closes too: closing with unread data would send a reset, which can
        destroy the close frame we just wrote (a peer failed with 1009 is usually mid-send).
        """
        if self._ended:
            return
        self._ended = True
        self._next_ping = 0.0
        self._close_deadline = self.loop.time() + CLOSE_TIMEOUT
        transport = self.transport
        if self.conn.scheme == "http" and transport.can_write_eof():
            transport.write_eof()
            if not self._reading:
                self._reading = True
                transport.resume_reading()
        else:
            transport.close()

    def _log(self) -> None:
        if self._logged or not self.status:
            return
        self._logged = True
        _log_session(
            self.conn,
            self.scope,
            route=self.route,
            method="GET",
            status=self.status,
            nbytes=self.bytes_sent,
            elapsed=self.loop.time() - self.started_at,
            request_id=self.request_id,
        )


def _log_session(
    conn: HTTPProtocol,
    scope: Scope,
    *,
    route: str,
    method: str,
    status: int,
    nbytes: int,
    elapsed: float,
    request_id: str,
) -> None:
    """Count one finished WebSocket request and write its access line (the HTTP line's format)."""
    conn.server.record_request(
        scope,
        method=method,
        version="1.1",
        route=route,
        status=status,
        nbytes=nbytes,
        elapsed=elapsed,
        request_id=request_id,
    )
