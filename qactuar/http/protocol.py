"""The asyncio side of an HTTP/1.1 connection: the only HTTP code that touches a transport.

It feeds received bytes to the sans-I/O ``HTTPDriver``, starts one ``RequestCycle`` task
per request, and applies flow control both ways:

* reading pauses while a request body waits unread above ``BODY_HIGH_WATER`` bytes,
  or while a pipelined request waits for the current response (h11's PAUSED);
* the app's ``send`` waits while the transport's write buffer is above its high-water mark.

Deadlines are plain numbers checked by the server's sweep (one timer per server, not one
per request): IDLE (keep-alive or a fresh connection with nothing sent: close quietly),
HEAD (the head must be complete within REQUEST_TIMEOUT of its first byte: 408), BODY
(a body that makes no progress for REQUEST_TIMEOUT while we are reading it: 408 or close),
SEND (the write buffer stays above its high-water mark, the client reading nothing, for
SEND_TIMEOUT: the connection is aborted and the app's ``send`` fails).

Behind proxies: a peer in FORWARDED_ALLOW_IPS must start with a PROXY protocol header when
PROXY_PROTOCOL is on (read here before the HTTP driver sees a byte; a bad one closes the
connection, a slow one is cut at the HEAD deadline), and its Forwarded / X-Forwarded-* headers
set the scope's client, scheme and host.  ``self.scheme`` stays the transport's own (it decides
TLS-specific closing); only the scope carries the forwarded one.  The health paths
(HEALTH_PATH) are answered before routing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, Protocol, cast

from qactuar.http.cycle import DONE, HEAD_HELD, HTTP_EXTENSIONS, START, RequestCycle
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
from qactuar.http.proxy_headers import apply_forwarded
from qactuar.http.proxy_protocol import ProxyHeaderError, parse_proxy_header
from qactuar.http.request_ids import request_ids
from qactuar.types import ASGI_VERSION, ASGIApp, Receive, Scope, Send
from qactuar.websocket.session import start_websocket

if TYPE_CHECKING:
    from qactuar.server import Server

server_log = logging.getLogger("qt_server")

NO_DEADLINE, IDLE, HEAD, BODY, LINGER, SEND = range(6)
BODY_HIGH_WATER = 256 * 1024
SENDFILE_FALLBACK_CHUNK = 256 * 1024
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
        "_proxy_header",
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
        "trusted_peer",
        "upgraded",
        "write_paused",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.driver = HTTPDriver(server.limits, server.parse_head)
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
        self.trusted_peer = False  # in FORWARDED_ALLOW_IPS: its proxy headers are believed
        self._proxy_header: bytes | None = None  # bytes of a PROXY header still expected, else None

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.client = _address(transport.get_extra_info("peername"))
        self.server_addr = _address(transport.get_extra_info("sockname"))
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        server = self.server
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            self.trusted_peer = server.trusted.trusts_unix()
        else:
            self.trusted_peer = self.client is not None and self.client[0] in server.trusted
        if server.proxy_protocol and self.trusted_peer:
            self._proxy_header = b""
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
        if self._proxy_header is not None:
            data = self._take_proxy_header(data)
            if not data:
                return
        self.driver.receive_data(data)
        self._process()

    def _take_proxy_header(self, data: bytes) -> bytes:
        """Consume the PROXY protocol header; returns the bytes after it (b"" while it is incomplete)."""
        buffered = self._proxy_header + data if self._proxy_header else data
        try:
            parsed = parse_proxy_header(buffered, self.server.proxy_protocol)
        except ProxyHeaderError as exc:
            server_log.info("Closing the connection from %s: %s", _peer(self.client), exc)
            self._proxy_header = None
            self._close()
            return b""
        if parsed is None:
            self._proxy_header = buffered
            return b""
        info, used = parsed
        self._proxy_header = None
        if info.source is not None:
            self.client = info.source
            self.trusted_peer = info.source[0] in self.server.trusted
        if info.destination is not None:
            self.server_addr = info.destination
        rest = buffered[used:]
        if not rest:
            self._set_deadline(IDLE, self.server.request_timeout)
        return rest

    def eof_received(self) -> bool | None:
        if self.upgraded is not None:
            self.upgraded.eof_received()
            return None
        if self.deadline_kind == LINGER or self._proxy_header is not None:
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
        if self.deadline_kind == NO_DEADLINE and self.upgraded is None:
            self._set_deadline(SEND, self.server.send_timeout)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.deadline_kind == SEND:
            self._set_deadline(NO_DEADLINE, 0)
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
        request_id = rid if rid is not None and _SANE_REQUEST_ID.fullmatch(rid) else request_ids.next()
        path = target.path
        raw_path = target.raw_path
        health = server.health.app_for(path, server) if server.health is not None else None
        mount = server.table.match(path if path != "*" else "/") if health is None else None
        if server.root_path:
            # As uvicorn does: the full path includes ROOT_PATH, so frameworks strip it back.
            path = server.root_path + path
            raw_path = server.root_path_bytes + raw_path
        client, scheme, headers = self.client, self.scheme, head.headers
        if self.trusted_peer:
            client, scheme, headers = apply_forwarded(headers, client, scheme, server.trusted)
        scope: Scope = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": _HTTP_VERSIONS.get(head.http_version) or head.http_version.decode("ascii"),
            "method": _METHODS.get(head.method) or head.method.decode("ascii"),
            "scheme": scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": target.query_string,
            "root_path": server.root_path,
            "headers": headers,
            "client": client,
            "server": self.server_addr,
            "extensions": {},
        }
        mount_app = mount.app if mount is not None else None
        app: ASGIApp
        if health is not None:
            app = health
            scope["state"] = {}
        elif mount is None:
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
        scope["extensions"] = {name: {} for name in HTTP_EXTENSIONS}
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

    async def sendfile(self, file: BinaryIO, offset: int, count: int) -> None:
        """Write ``count`` bytes of ``file`` from ``offset``: ``os.sendfile`` through the loop where the
        transport allows it (plain TCP or Unix on the stock loop), else reads written with backpressure
        (TLS, uvloop).  Raises OSError when the connection fails midway."""
        transport = self.transport
        if self.closing or transport is None:
            raise ConnectionResetError("connection closed")
        try:
            sent = await self.loop.sendfile(transport, file, offset, count, fallback=False)
        except (NotImplementedError, RuntimeError) as exc:  # SendfileNotAvailableError is a RuntimeError
            if transport.is_closing():
                raise ConnectionResetError("connection closed") from exc
        else:
            if sent < count:
                _file_shrank(file, count - sent)
            return
        file.seek(offset)
        remaining = count
        while remaining > 0:
            chunk = file.read(min(SENDFILE_FALLBACK_CHUNK, remaining))
            if not chunk:
                _file_shrank(file, remaining)
            self.write(chunk)
            remaining -= len(chunk)
            await self.drain()
            if self.closing:
                raise ConnectionResetError("connection closed")

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
        # A drain that must not cut idle clients (a handover, a recycle) keeps this connection
        # open: the response that just ended may not have said "Connection: close", so the
        # client may reuse it; its next response will say it, or its idle timeout ends it.
        if (self.server.draining and self.server.close_idle) or not driver.can_keep_alive:
            if driver.request_complete:
                self._close()
            else:
                self._linger_close()
            return
        pending = driver.next_cycle()
        if driver.head_started:
            self._set_deadline(HEAD, self.server.request_timeout)
        else:
            self._set_deadline(IDLE, self.server.keepalive_timeout)
        if self._read_paused:
            self._resume_reading()
        if pending:
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
        if kind == SEND:
            server_log.info(
                "Closing the connection from %s: it read nothing of the response for %.0f s",
                _peer(self.client),
                self.server.send_timeout,
            )
            self._abort()
        elif kind in (IDLE, LINGER) or self._proxy_header is not None:
            if self.write_paused:  # a whole response still unread: closing would wait on it forever
                self._abort()
            else:
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

    def _abort(self) -> None:
        """Drop the connection and whatever waits in its write buffer (the app's send fails)."""
        if not self.closing and self.transport is not None:
            self.closing = True
            self.deadline_kind = NO_DEADLINE
            self.transport.abort()

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


def _file_shrank(file: BinaryIO, missing: int) -> NoReturn:
    server_log.warning("%s ended %d bytes early while it was being sent: closing", file.name, missing)
    raise OSError(f"{file.name} ended {missing} bytes early")


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a Unix socket peer"


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None
