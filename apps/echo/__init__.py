"""Echo: GET/HEAD describe the request; any other method streams the request body back.

The body is echoed chunk by chunk as it arrives (``more_body``), so large uploads are never held
in memory, and the request's content-type is kept on the response.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        if scope["method"] in {"GET", "HEAD"}:
            await _describe(scope, send)
        else:
            await _echo(scope, receive, send)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _describe(scope: dict[str, Any], send: Any) -> None:
    lines = [
        f"method: {scope['method']}",
        f"path: {scope['path']}",
        f"root_path: {scope.get('root_path', '')}",
        f"query: {scope['query_string'].decode('latin-1')}",
        "headers:",
        *(f"  {name.decode('latin-1')}: {value.decode('latin-1')}" for name, value in scope["headers"]),
    ]
    body = ("\n".join(lines) + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    content_type = next(
        (value for name, value in scope["headers"] if name == b"content-type"), b"application/octet-stream"
    )
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
        await send({"type": "http.response.body", "body": message.get("body", b""), "more_body": more})
        if not more:
            return
