"""WebSocket apps that the end-to-end tests mount; each shows one behaviour.

Apps that must tell a test what the server delivered to them (a disconnect code, say) write
it as JSON to the file named by the ``report`` query parameter: the test and the app are in
different processes, and in the forking modes the app may be in any worker.
"""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from qactuar.types import ASGIApp, Receive, Scope, Send


def websocket_only(app: ASGIApp) -> ASGIApp:
    """Ignore lifespan (and HTTP) scopes: these apps only speak WebSocket."""

    @functools.wraps(app)
    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await app(scope, receive, send)

    return wrapper


def _query(scope: Scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


def _report(scope: Scope, payload: Any) -> None:
    target = _query(scope).get("report")
    if target:
        tmp = Path(target + ".tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(target)


@websocket_only
async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts (choosing 'chat' when offered), echoes every message, reports the disconnect."""
    await receive()
    subprotocol = "chat" if "chat" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-echo", b"yes")]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _report(scope, message)
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


@websocket_only
async def scope_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts and sends its scope as JSON (bytes shown as latin-1 text), then closes."""

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps({k: plain(v) for k, v in scope.items()})})
    await send({"type": "websocket.close", "code": 1000})


@websocket_only
async def deny(scope: Scope, receive: Receive, send: Send) -> None:
    """Closes before accepting: the server answers 403."""
    await receive()
    await send({"type": "websocket.close"})
    _report(scope, await receive())


@websocket_only
async def deny_custom(scope: Scope, receive: Receive, send: Send) -> None:
    """Denies with the websocket.http.response extension: 401, a header and a two-part body."""
    await receive()
    assert "websocket.http.response" in scope["extensions"]
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"entry"})


@websocket_only
async def server_close(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts; on a text message "CODE reason" closes with that code and reason."""
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    code, _, reason = message["text"].partition(" ")
    await send({"type": "websocket.close", "code": int(code), "reason": reason})
    _report(scope, await receive())


@websocket_only
async def slow_reader(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts, reads nothing until the file ``go`` exists (10 s at most), then reads ``count``
    messages and answers with how many bytes arrived and whether they came in order."""
    query = _query(scope)
    go = Path(query["go"])
    await receive()
    await send({"type": "websocket.accept"})
    for _ in range(500):
        if go.exists():
            break
        await asyncio.sleep(0.02)
    total = 0
    in_order = True
    for index in range(int(query["count"])):
        message = await receive()
        data = message["bytes"]
        in_order = in_order and data[:8] == index.to_bytes(8, "big")
        total += len(data)
    await send({"type": "websocket.send", "text": json.dumps({"bytes": total, "in_order": in_order})})
    await receive()


@websocket_only
async def receive_after_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads until the disconnect, then calls receive() once more and reports what happened."""
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] != "websocket.disconnect":
        pass
    try:
        again: Any = await asyncio.wait_for(receive(), 2)
    except RuntimeError as exc:
        again = f"RuntimeError: {exc}"
    _report(scope, {"first": message, "again": again})


@websocket_only
async def raise_after_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    raise RuntimeError("boom after accept")


@websocket_only
async def raise_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    raise RuntimeError("boom before accept")


@websocket_only
async def bad_message(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts, then sends a message with both text and bytes: the server raises into the app,
    which reports the error and closes with 4000."""
    await receive()
    await send({"type": "websocket.accept"})
    try:
        await send({"type": "websocket.send", "text": "a", "bytes": b"b"})
    except RuntimeError as exc:
        await send({"type": "websocket.send", "text": f"RuntimeError: {exc}"})
    await send({"type": "websocket.close", "code": 4000})


async def _starlette_home(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"http root_path={request.scope['root_path']}")


async def _starlette_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"url={websocket.url.path} root_path={websocket.scope['root_path']}")
    try:
        while True:
            await websocket.send_text((await websocket.receive_text()).upper())
    except WebSocketDisconnect:
        pass


starlette_app = Starlette(
    routes=[Route("/", _starlette_home), WebSocketRoute("/echo", _starlette_echo, name="echo")]
)
