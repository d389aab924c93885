"""One serving process's HTTP server: listeners, live connections, deadlines and draining.

Every process model runs this unchanged: async mode in its only process, pre-fork in
each worker, post-fork in each per-connection child.  It owns no sockets of its own;
listening sockets are handed in already bound.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING

from qactuar._version import __version__
from qactuar.health import HealthEndpoints
from qactuar.http.driver import Limits
from qactuar.http.heads import head_parser
from qactuar.http.protocol import HTTPProtocol
from qactuar.http.proxy_headers import TrustedPeers
from qactuar.logs import BufferedStreamHandler, escape_log_text
from qactuar.types import Scope

if TYPE_CHECKING:
    from qactuar.apps.table import AppTable
    from qactuar.config import Config
    from qactuar.http.cycle import RequestCycle

server_log = logging.getLogger("qt_server")
access_log = logging.getLogger("qt_access")

ResponseHook = Callable[[str, int, int, float], None]
"""Called once per finished response with (route, status, bytes sent, seconds)."""


class Server:
    def __init__(
        self,
        config: Config,
        table: AppTable,
        *,
        ssl_context: ssl.SSLContext | None = None,
        on_response: ResponseHook | None = None,
    ) -> None:
        self.config = config
        self.table = table
        self.ssl_context = ssl_context
        self.on_response = on_response
        self.on_connection_lost: Callable[[], None] | None = None
        self.limits = Limits(
            max_request_line=config.MAX_REQUEST_LINE,
            max_header_bytes=config.MAX_HEADER_BYTES,
            max_headers=config.MAX_HEADERS,
            max_body_bytes=config.MAX_BODY_BYTES,
        )
        self.parse_head = head_parser(config.HTTP_PARSER)
        self.request_timeout = config.REQUEST_TIMEOUT
        self.send_timeout = config.SEND_TIMEOUT
        self.keepalive_timeout = config.KEEPALIVE_TIMEOUT
        self.root_path = config.ROOT_PATH
        self.root_path_bytes = config.ROOT_PATH.encode("utf-8")
        self.limit_concurrency = config.LIMIT_CONCURRENCY
        # Proxies (qactuar/http/proxy_headers.py, proxy_protocol.py) and health (qactuar/health.py).
        self.trusted = TrustedPeers(config.FORWARDED_ALLOW_IPS)
        self.proxy_protocol = config.PROXY_PROTOCOL if config.PROXY_PROTOCOL != "off" else ""
        self.health = HealthEndpoints(config.HEALTH_PATH) if config.HEALTH_PATH else None
        self.ready = True  # false from the start of a shutdown: readiness probes get 503
        self.server_header = f"qactuar/{__version__}".encode("ascii")
        self.connections: set[HTTPProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.active_requests = 0
        self.requests_served = 0
        self.draining = False
        self.close_idle = True
        self._listeners: list[asyncio.Server] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._date_second = 0
        self._date = b""

    # -- per-request helpers used by the protocol ---------------------------------------

    def date_header(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, usegmt=True).encode("ascii")
        return self._date

    def start_request(self, task: asyncio.Task[None]) -> None:
        self.active_requests += 1
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    def log_path(scope: Scope) -> str:
        query = scope["query_string"]
        path = scope["raw_path"].decode("ascii", "replace")
        if query:
            path += "?" + query.decode("ascii", "replace")
        return escape_log_text(path)

    def log_response(self, conn: HTTPProtocol, cycle: RequestCycle) -> None:
        scope = cycle.scope
        self.record_request(
            scope,
            method=scope["method"],
            version=scope["http_version"],
            route=cycle.route,
            status=cycle.status,
            nbytes=cycle.bytes_sent,
            elapsed=conn.loop.time() - cycle.started_at,
            request_id=cycle.request_id.decode("ascii", "replace"),
        )

    def record_request(
        self,
        scope: Scope,
        *,
        method: str,
        version: str,
        route: str,
        status: int,
        nbytes: int,
        elapsed: float,
        request_id: str,
    ) -> None:
        """Count one finished request (HTTP or WebSocket) and write its access line."""
        self.requests_served += 1
        if self.on_response is not None:
            self.on_response(route, status, nbytes, elapsed)
        if not access_log.isEnabledFor(logging.INFO):
            return
        path = self.log_path(scope)
        client = scope["client"]  # as trusted proxies describe it
        # makeRecord + handle is Logger.info without its findCaller() stack walk, which costs about
        # a tenth of an access line and names a line of this file that nobody needs.
        record = access_log.makeRecord(
            access_log.name,
            logging.INFO,
            __file__,
            0,
            '%s - "%s %s HTTP/%s" %d %dB %.2fms %s',
            (
                f"{client[0]}:{client[1]}" if client else "-",
                method,
                path,
                version,
                status,
                nbytes,
                elapsed * 1000.0,
                request_id,
            ),
            None,
            extra={
                "host": client[0] if client else "-",
                "port": client[1] if client else 0,
                "request_id": request_id,
                "route": route,
                "method": method,
                "http_version": version,
                "path": path,
                "status": status,
                "bytes": nbytes,
                "duration_ms": round(elapsed * 1000.0, 3),
            },
        )
        access_log.handle(record)

    def log_rejection(self, conn: HTTPProtocol, status: int, cycle: RequestCycle | None) -> None:
        """A request the server refused itself (malformed, over a limit, timed out)."""
        if cycle is not None:
            self.log_response(conn, cycle)
            return
        self.requests_served += 1
        if self.on_response is not None:
            self.on_response("", status, 0, 0.0)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                '%s - "-" %d 0B rejected',
                _client(conn),
                status,
                extra={"request_id": "-", "method": "-", "path": "-", "status": status},
            )

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, sockets: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        for sock in sockets:
            listener = await loop.create_server(
                lambda: HTTPProtocol(self),
                sock=sock,
                ssl=self.ssl_context,
                backlog=self.config.BACKLOG,
            )
            self._listeners.append(listener)
        self._schedule_sweep()

    def _sweep_interval(self) -> float:
        shortest = min(self.request_timeout, self.keepalive_timeout)
        return max(0.05, min(1.0, shortest / 4))

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        for conn in list(self.connections):
            conn.check_deadline(now)
        BufferedStreamHandler.flush_all()
        self._schedule_sweep()

    def stop_accepting(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()

    async def drain(self, timeout: float, *, close_idle: bool = True) -> bool:
        """Stop accepting, finish in-flight requests within ``timeout``, close the rest.

        With ``close_idle`` false, idle keep-alive connections are not cut: each ends on its
        idle timeout or after one more response (sent with ``Connection: close``).
        Returns True when everything finished in time.

        A shutdown (``close_idle``) first fails readiness; with SHUTDOWN_DELAY it then keeps
        serving for that long (within ``timeout``) so load balancers see the 503 before the
        listeners close (see qactuar/health.py).
        """
        if close_idle:
            self.ready = False
            delay = min(self.config.SHUTDOWN_DELAY, timeout)
            if delay > 0:
                server_log.debug("Readiness fails; still serving for %.1fs (SHUTDOWN_DELAY)", delay)
                await asyncio.sleep(delay)
                timeout -= delay
        self.stop_accepting()
        self.draining = True
        self.close_idle = close_idle
        for conn in list(self.connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.connections or self.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.05)
            for conn in list(self.connections):
                conn.shutdown()
        for conn in list(self.connections):
            conn.shutdown(final=True)
        if self.connections:
            # Let closing handshakes (WebSocket close 1001) go out before anything is cut.
            settle = loop.time() + 1.0
            while self.connections and loop.time() < settle:
                await asyncio.sleep(0.02)
        clean = not self.connections and not self.tasks
        if not clean:
            server_log.warning(
                "Graceful timeout (%.1fs) reached: closing %d connection(s), cancelling %d request(s)",
                timeout,
                len(self.connections),
                len(self.tasks),
            )
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
            for task in list(self.tasks):
                task.cancel()
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=1.0)
        if self._sweeper is not None:
            self._sweeper.cancel()
        return clean


def _client(conn: HTTPProtocol) -> str:
    client = conn.client
    return f"{client[0]}:{client[1]}" if client else "-"
