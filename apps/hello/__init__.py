"""Hello, world: the smallest useful raw ASGI app, with lifespan.

Startup records ``state["started_at"]`` (seconds since the epoch); each request's scope carries a
copy of that state, as the ASGI lifespan spec describes.
"""

from __future__ import annotations

import time
from typing import Any

BODY = b"Hello, world!"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
    elif scope["type"] == "http":
        await _hello(scope, send)


async def _lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started_at"] = time.time()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _hello(scope: dict[str, Any], send: Any) -> None:
    if scope["method"] in {"GET", "HEAD"}:
        status, body, headers = 200, BODY, [(b"content-type", b"text/plain; charset=utf-8")]
    else:
        status, body, headers = 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
