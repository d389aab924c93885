"""Raw ASGI apps that the end-to-end tests mount; each shows one behaviour."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from qactuar.types import Receive, Scope, Send


async def _reply(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await _reply(send, 200, b"Hello, world!", [(b"content-type", b"text/plain")])


async def scope_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the scope as JSON (bytes shown as latin-1 text)."""
    if scope["type"] != "http":
        return

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    body = json.dumps({k: plain(v) for k, v in scope.items()}).encode()
    await _reply(send, 200, body, [(b"content-type", b"application/json")])


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams the request body back, chunk by chunk, without a content-length."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        await send({"type": "http.response.body", "body": message.get("body", b""), "more_body": True})
        if not message.get("more_body"):
            break
    await send({"type": "http.response.body", "body": b""})


async def count_body(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body and answers with its length and a checksum."""
    if scope["type"] != "http":
        return
    import hashlib

    digest = hashlib.sha256()
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        size += len(body)
        digest.update(body)
        if not message.get("more_body"):
            break
    await _reply(send, 200, json.dumps({"size": size, "sha256": digest.hexdigest()}).encode())


async def ignore_body(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers without reading the request body."""
    if scope["type"] != "http":
        return
    await _reply(send, 200, b"ignored")


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends ?n= chunks of 1 KiB (default 16), chunked."""
    if scope["type"] != "http":
        return
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    count = int(query.get("n", "16"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(count):
        await send({"type": "http.response.body", "body": b"%04d" % i + b"x" * 1020, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


DISCONNECTS: list[str] = []


async def stream_until_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams forever; on disconnect appends a line to the file named by ?file=."""
    if scope["type"] != "http":
        return
    path = scope["query_string"].decode().partition("file=")[2]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    disconnects = 0

    async def watch() -> None:
        nonlocal disconnects
        message = await receive()  # the (empty) request body
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnects += 1

    watcher = asyncio.ensure_future(watch())
    try:
        while True:
            await send({"type": "http.response.body", "body": b"x" * 4096, "more_body": True})
            await asyncio.sleep(0.01)
    except OSError:
        await asyncio.wait_for(watcher, 5)
        with open(path, "a") as fh:
            fh.write(f"disconnects={disconnects}\n")


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    """Sleeps ?s= seconds (default 1) before answering."""
    if scope["type"] != "http":
        return
    seconds = float(scope["query_string"].decode().partition("s=")[2] or 1)
    await asyncio.sleep(seconds)
    await _reply(send, 200, b"slept")


async def status(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the status given as the last path segment, optional body text after '?'."""
    if scope["type"] != "http":
        return
    code = int(scope["path"].rsplit("/", 1)[1])
    await _reply(send, code, scope["query_string"])


async def raise_before(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    raise ValueError("boom before the response")


async def raise_after_start(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise ValueError("boom after start")


async def raise_mid_body(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise ValueError("boom mid body")


async def no_response(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def header_injection(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await _reply(send, 200, b"x", [(b"x-evil", b"a\r\nSet-Cookie: pwned=1")])


async def double_start(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def bad_type(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": "200", "headers": []})


async def pid(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await _reply(send, 200, str(os.getpid()).encode())


async def lifespan_state(scope: Scope, receive: Receive, send: Send) -> None:
    """Sets state at startup; requests answer with what they see in scope['state']."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "set at startup"
                scope["state"]["pid"] = os.getpid()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                marker = os.environ.get("QACTUAR_TEST_SHUTDOWN_FILE")
                if marker:
                    with open(marker, "a") as fh:
                        fh.write(f"shutdown {os.getpid()}\n")
                await send({"type": "lifespan.shutdown.complete"})
                return
    state = {k: v for k, v in scope["state"].items()}
    await _reply(send, 200, json.dumps(state).encode(), [(b"content-type", b"application/json")])


async def failing_startup(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _reply(send, 200, b"should never be served")
