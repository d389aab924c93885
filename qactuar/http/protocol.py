"""The asyncio side of an HTTP/1.1 connection: the only HTTP code that touches a transport.

It feeds received bytes to the sans-I/O ``HTTPDriver``, starts one ``RequestCycle`` task
per request, and applies flow control both ways:

* reading pauses while a request body waits unread above ``BODY_HIGH_WATER`` bytes,
  or while a pipelined request waits for the current response (h11's PAUSED);
* the app's ``send`` waits while the transport's write buffer is above its high-water mark.

Deadlines are plain numbers checked by the server's sweep (one timer per server, not one
per request): IDLE (keep-alive or a fresh connection with nothing sent: close quietly),
HEAD (the head must be complete within REQUEST_TIMEOUT of its first byte: 408), BODY
(a body that makes no progress for REQUEST_TIMEOUT while we are reading it: 408 or close).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any, Protocol, cast

from qactuar.http.cycle import DONE, HEAD_HELD, START, RequestCycle
from qactuar.http.driver import (
    BodyData,
    BodyEnd,
    HTTPDriver,
    NeedData,
    Paused,
    PeerClosed,
    Rejected,
    RequestHead,
    error_response,
)
from qactuar.types import ASGI_VERSION, ASGIApp, Receive, Scope, Send
from qactuar.websocket.session import start_websocket

if TYPE_CHECKING:
    from qactuar.server import Server

server_log = logging.getLogger("qt_server")

NO_DEADLINE, IDLE, HEAD, BODY, LINGER = range(5)
BODY_HIGH_WATER = 256 * 1024
LINGER_SECONDS = 2.0
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_HTTP_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


async def _plain_response(status: int, body: bytes, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def not_found_app(scope: Scope, receive: Receive, send: Send) -> None:
    await _plain_response(404, b"Not Found\n", send)


async def unavailable_app(scope: Scope, receive: Receive, send: Send) -> None:
    await _plain_response(503, b"Service Unavailable\n", send)


class UpgradedConnection(Protocol):
    """What takes over a connection after a protocol switch (the WebSocket session)."""

    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def resume_writing(self) -> None: ...
    def check_deadline(self, now: float) -> None: ...
    def shutdown(self, final: bool) -> None: ...


class HTTPProtocol(asyncio.Protocol):
    __slots__ = (
        "_drain_waiter",
        "_read_paused",
        "client",
        "closing",
        "cycle",
        "deadline",
        "deadline_kind",
        "driver",
        "loop",
        "scheme",
        "server",
        "server_addr",
        "transport",
        "upgraded",
        "write_paused",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.driver = HTTPDriver(server.limits)
        self.cycle: RequestCycle | None = None
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.server_addr: tuple[str, int] | None = None
        self.scheme = "http"
        self.closing = False
        self.write_paused = False
        self._read_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.deadline = 0.0
        self.deadline_kind = NO_DEADLINE
        self.upgraded: UpgradedConnection | None = None

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.client = _address(transport.get_extra_info("peername"))
        self.server_addr = _address(transport.get_extra_info("sockname"))
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.server.connections.add(self)
        self._set_deadline(IDLE, self.server.request_timeout)

    def data_received(self, data: bytes) -> None:
        if self.upgraded is not None:
            self.upgraded.data_received(data)
            return
        if self.deadline_kind == LINGER or self.closing:
            return
        if self.deadline_kind == IDLE:
            self._set_deadline(HEAD, self.server.request_timeout)
        self.driver.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        if self.upgraded is not None:
            self.upgraded.eof_received()
            return None
        if self.deadline_kind == LINGER:
            self._close()
            return None
        self.driver.receive_eof()
        self._process()
        # Keep the write side open so a half-closed client still gets its response.
        return self.scheme == "http" and not self.closing

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.deadline_kind = NO_DEADLINE
        self.server.connections.discard(self)
        if self.server.on_connection_lost is not None:
            self.server.on_connection_lost()
        if self.upgraded is not None:
            self.upgraded.connection_lost(exc)
        if self.cycle is not None:
            self.cycle.client_gone()
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()
        if self.upgraded is not None:
            self.upgraded.resume_writing()

    # -- event processing ----------------------------------------------------------------

    def _process(self) -> None:
        driver = self.driver
        while not self.closing:
            event = driver.next_event()
            kind = type(event)
            if kind is BodyData:
                self._on_body(event.data)  # type: ignore[union-attr]
            elif kind is RequestHead:
                self._start_cycle(event)  # type: ignore[arg-type]
                if event.upgrade == b"websocket":  # type: ignore[union-attr]
                    return  # the connection left HTTP (switched, or refused and closing)
            elif kind is BodyEnd:
                if self.deadline_kind == BODY:
                    self._set_deadline(NO_DEADLINE, 0)
                if self.cycle is not None:
                    self.cycle.body_complete()
            elif kind is NeedData:
                return
            elif kind is Paused:
                self._pause_reading()
                return
            elif kind is Rejected:
                self._reject(event)  # type: ignore[arg-type]
                return
            else:
                assert kind is PeerClosed
                if self.cycle is None:
                    self._close()
                return

    def _on_body(self, data: bytes) -> None:
        cycle = self.cycle
        if cycle is None:
            return  # the response already ended; the rest of the body is dropped
        if cycle.feed_body(data) > BODY_HIGH_WATER:
            self._pause_reading()
            self._set_deadline(NO_DEADLINE, 0)
        else:
            self._set_deadline(BODY, self.server.request_timeout)

    def _start_cycle(self, head: RequestHead) -> None:
        server = self.server
        target = head.target
        rid = head.request_id
        request_id = (
            rid if rid is not None and _SANE_REQUEST_ID.fullmatch(rid) else str(uuid.uuid4()).encode("ascii")
        )
        path = target.path
        raw_path = target.raw_path
        mount = server.table.match(path if path != "*" else "/")
        if server.root_path:
            # As uvicorn does: the full path includes ROOT_PATH, so frameworks strip it back.
            path = server.root_path + path
            raw_path = server.root_path_bytes + raw_path
        scope: Scope = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": _HTTP_VERSIONS.get(head.http_version) or head.http_version.decode("ascii"),
            "method": _METHODS.get(head.method) or head.method.decode("ascii"),
            "scheme": self.scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": target.query_string,
            "root_path": server.root_path,
            "headers": head.headers,
            "client": self.client,
            "server": self.server_addr,
            "extensions": {},
        }
        mount_app = mount.app if mount is not None else None
        app: ASGIApp
        if mount is None:
            app = not_found_app
            scope["state"] = {}
        else:
            scope["root_path"] = server.root_path + (mount.route if mount.route != "/" else "")
            scope["state"] = dict(mount.state)
            overloaded = server.limit_concurrency and server.active_requests >= server.limit_concurrency
            if mount.app is None or mount.error is not None or overloaded:
                app = unavailable_app
            else:
                app = mount.app
        scope["state"]["request_id"] = request_id.decode("ascii")
        if head.upgrade == b"websocket":
            self._set_deadline(NO_DEADLINE, 0)
            self.upgraded = start_websocket(self, head, scope, app if app is mount_app else None)
            return
        cycle = RequestCycle(
            self, scope, request_id, mount.route if mount is not None else "", has_body=head.has_body
        )
        self.cycle = cycle
        if head.has_body:
            self._set_deadline(BODY, server.request_timeout)
        else:
            self._set_deadline(NO_DEADLINE, 0)
        server.start_request(self.loop.create_task(cycle.run(app)))

    def _reject(self, event: Rejected) -> None:
        cycle = self.cycle
        server_log.debug("Rejected request from %s: %d %s", self.client, event.status, event.reason)
        if cycle is not None:
            cycle.client_gone()
            if cycle.response_state not in (START, HEAD_HELD):
                self._close()
                return
            cycle.response_state = DONE
            cycle.status = event.status
        self.server.log_rejection(self, event.status, cycle)
        self.write(error_response(event.status, self.server.date_header()))
        self._linger_close()

    # -- used by RequestCycle ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closing and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.write_paused and not self.closing:
            waiter = self._drain_waiter
            if waiter is None or waiter.done():
                waiter = self._drain_waiter = self.loop.create_future()
            await waiter

    def body_consumed(self) -> None:
        if self._read_paused and self.cycle is not None:
            self._resume_reading()
            self._set_deadline(BODY, self.server.request_timeout)

    def response_complete(self, cycle: RequestCycle) -> None:
        self.server.log_response(self, cycle)
        if self.cycle is not cycle or self.closing:
            return
        self.cycle = None
        driver = self.driver
        if self.server.draining or not driver.can_keep_alive:
            if driver.request_complete:
                self._close()
            else:
                self._linger_close()
            return
        driver.next_cycle()
        if driver.head_started:
            self._set_deadline(HEAD, self.server.request_timeout)
        else:
            self._set_deadline(IDLE, self.server.keepalive_timeout)
        if self._read_paused:
            self._resume_reading()
        self._process()

    def cycle_finished(self, cycle: RequestCycle) -> None:
        self.server.active_requests -= 1

    def fail(self, status: int) -> None:
        """The app failed before the response head went out: answer ``status`` and close."""
        cycle = self.cycle
        if cycle is not None:
            self.server.log_response(self, cycle)
            self.cycle = None
        self.write(error_response(status, self.server.date_header()))
        if self.driver.request_complete:
            self._close()
        else:
            self._linger_close()

    def abort(self) -> None:
        """The app failed mid-response: the client can only learn of it by the connection ending."""
        cycle = self.cycle
        if cycle is not None:
            self.server.log_response(self, cycle)
            self.cycle = None
        self._close()

    # -- deadlines, reading, closing -----------------------------------------------------

    def _set_deadline(self, kind: int, seconds: float) -> None:
        self.deadline_kind = kind
        self.deadline = self.loop.time() + seconds if kind != NO_DEADLINE else 0.0

    def check_deadline(self, now: float) -> None:
        if self.upgraded is not None:
            self.upgraded.check_deadline(now)
            return
        kind = self.deadline_kind
        if kind == NO_DEADLINE or now < self.deadline or self.closing:
            return
        if kind in (IDLE, LINGER):
            self._close()
        elif kind == HEAD or (self.cycle is not None and self.cycle.response_state in (START, HEAD_HELD)):
            self._reject(Rejected(408, "request timed out"))
        else:
            self._close()

    def shutdown(self, final: bool = False) -> None:
        """Graceful stop: idle connections close now; busy ones close after their response.

        ``final`` is the end of the drain window: upgraded connections (WebSockets) close then.
        """
        if self.upgraded is not None:
            self.upgraded.shutdown(final)
            return
        if self.cycle is None and not self.driver.head_started and (final or self.server.close_idle):
            self._close()

    def _pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and self.transport is not None and not self.closing:
            self._read_paused = False
            self.transport.resume_reading()

    def _close(self) -> None:
        if not self.closing and self.transport is not None:
            self.closing = True
            self.deadline_kind = NO_DEADLINE
            self.transport.close()

    def _linger_close(self) -> None:
        """Close after the client stops sending, so unread request bytes do not turn into
        a TCP reset that destroys the response we just wrote (the lingering close of
        RFC 9112 9.6)."""
        transport = self.transport
        if self.closing or transport is None:
            return
        if self.scheme != "http" or not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        self._set_deadline(LINGER, LINGER_SECONDS)
        self._resume_reading()

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None
