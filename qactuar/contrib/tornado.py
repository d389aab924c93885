"""Serve a Tornado ``RequestHandler`` class or ``tornado.web.Application`` as an ASGI app.

Tornado's own server talks to an application through two small interfaces: on the way in,
``Application.start_request()`` returns an ``HTTPMessageDelegate`` that is fed
``headers_received``, ``data_received`` and ``finish``; on the way out, the handler writes through
an ``HTTPConnection`` (``write_headers``, ``write``, ``finish``).  ``TornadoWrapper`` stands where
Tornado's ``HTTP1Connection`` would, so routing, ``prepare()``, ``on_finish()``, cookies (plain and
secure), XSRF checks, error pages, ``flush()`` streaming, ``@stream_request_body`` and
``on_connection_close()`` all run as they do under Tornado's server.  The ASGI server owns the
framing (Content-Length or chunked, keep-alive), so none of that is done here.

Choices:

* The request Tornado sees has the path relative to the mount: ``root_path`` is taken off, so an
  Application written for ``/`` works at any route (``reverse_url()`` gives mount-relative URLs).
* ``remote_ip`` and ``protocol`` come from the ASGI scope's ``client`` and ``scheme``, which the
  server has already corrected from trusted proxy headers; Tornado's ``xheaders`` is not needed.
* Writes are sent in order through one chain of tasks; each ``flush()`` future resolves when its
  bytes were handed to the server (backpressure included), or fails with Tornado's
  ``StreamClosedError`` once the client has gone, which is what Tornado handlers expect.
* When the client disconnects before the response is finished, the handler's
  ``on_connection_close()`` runs and the ASGI call returns; the handler's coroutine may finish on
  its own afterwards, its writes going nowhere.
* Lifespan events are acknowledged (Tornado has no startup/shutdown hooks of its own);
  WebSocket connections are refused (403): Tornado's ``WebSocketHandler`` needs Tornado's server.

Tornado is an optional dependency (``pip install 'qactuar[compat]'``); importing this module
without it raises ImportError.  ``qactuar.util.TornadoWrapper`` is the seed's spelling of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from tornado import httputil, web
from tornado.iostream import StreamClosedError

from qactuar.types import Message, Receive, Scope, Send

__all__ = ["TornadoWrapper"]


class _Context:
    """What ``HTTPServerRequest`` reads from ``connection.context``."""

    __slots__ = ("protocol", "remote_ip")

    def __init__(self, remote_ip: str, protocol: str) -> None:
        self.remote_ip = remote_ip
        self.protocol = protocol


class _ASGIConnection(httputil.HTTPConnection):
    """Tornado's view of the response side: each write becomes an ASGI message, sent in order."""

    def __init__(self, scope: Scope, send: Send) -> None:
        client = scope.get("client")
        self.context = _Context(client[0] if client else "", scope.get("scheme", "http"))
        self._send = send
        self._last: asyncio.Future[None] | None = None
        self._close_callback: Callable[[], None] | None = None
        self.gone = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- the HTTPConnection interface -------------------------------------------------------

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        assert isinstance(start_line, httputil.ResponseStartLine)
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.get_all()]
        future = self._queue({"type": "http.response.start", "status": start_line.code, "headers": raw})
        if chunk:
            future = self.write(chunk)
        return future

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        return self._queue({"type": "http.response.body", "body": chunk, "more_body": True})

    def finish(self) -> None:
        last = self._queue({"type": "http.response.body", "body": b"", "more_body": False})
        last.add_done_callback(self._finished)

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        self._close_callback = callback

    # -- plumbing ---------------------------------------------------------------------------

    def _queue(self, message: Message) -> asyncio.Future[None]:
        previous = self._last
        task = asyncio.ensure_future(self._send_after(previous, message))
        task.add_done_callback(_observed)
        self._last = task
        return task

    async def _send_after(self, previous: asyncio.Future[None] | None, message: Message) -> None:
        if previous is not None:
            await previous
        if self.gone:
            raise StreamClosedError()
        try:
            await self._send(message)
        except OSError as exc:  # the server's ClientDisconnected is an OSError
            self.connection_lost()
            raise StreamClosedError(real_error=exc) from None

    def _finished(self, last: asyncio.Future[None]) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self) -> None:
        if self.gone:
            return
        self.gone = True
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            callback()
        if not self.done.done():
            self.done.set_result(None)


class TornadoWrapper:
    """An ASGI app serving ``target``: a ``RequestHandler`` subclass (for every path of its mount,
    built with ``handler_kwargs``) or a whole ``tornado.web.Application``.

    ``settings`` are Application settings (cookie_secret, xsrf_cookies, ...) for a handler class.
    """

    def __init__(
        self,
        target: type[web.RequestHandler] | web.Application,
        *,
        handler_kwargs: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(target, web.Application):
            if handler_kwargs or settings:
                raise TypeError("handler_kwargs and settings apply to a RequestHandler class only")
            self.application = target
        elif isinstance(target, type) and issubclass(target, web.RequestHandler):
            self.application = web.Application(
                [(r".*", target, dict(handler_kwargs or {}))], **dict(settings or {})
            )
        else:
            raise TypeError(f"expected a tornado RequestHandler subclass or Application, got {target!r}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _acknowledge_lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        elif kind == "http":
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = _ASGIConnection(scope, send)
        delegate = self.application.start_request(None, conn)
        headers = httputil.HTTPHeaders()
        for name, value in scope["headers"]:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        start_line = httputil.RequestStartLine(
            scope["method"], _request_uri(scope), "HTTP/" + scope.get("http_version", "1.1")
        )
        await _maybe(delegate.headers_received(start_line, headers))
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                delegate.on_connection_close()
                conn.connection_lost()
                return
            body = message.get("body", b"")
            if body:
                await _maybe(delegate.data_received(body))
            if not message.get("more_body", False):
                break
        delegate.finish()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, conn))
        try:
            await conn.done
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def _observed(task: asyncio.Future[None]) -> None:
    """Mark a write's failure as seen: it only means the client left, and the handler may not await it."""
    if not task.cancelled():
        task.exception()


def _request_uri(scope: Scope) -> str:
    """The request-target Tornado routes on: the raw path below the mount, plus the query."""
    raw_path: bytes | None = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path is not None else quote(scope["path"])
    root = quote(scope.get("root_path", ""))
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :] or "/"
    query = scope.get("query_string", b"")
    return path + ("?" + query.decode("latin-1") if query else "")


async def _maybe(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result


async def _watch_disconnect(receive: Receive, conn: _ASGIConnection) -> None:
    """After the request body: tell the handler when the client leaves before the response ends."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            conn.connection_lost()
            return


async def _acknowledge_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
