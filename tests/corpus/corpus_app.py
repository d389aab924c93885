"""The app the corpus server mounts at ``/``: reads the whole body, answers 200 with JSON.

The JSON holds the scope fields the corpus checks (byte strings as latin-1 text, one
character per byte) and the body's size, SHA-256 and, when it is small, the body itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from qactuar.types import Receive, Scope, Send

INLINE_BODY = 4096


def _text(value: bytes) -> str:
    return value.decode("latin-1")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        size += len(body)
        digest.update(body)
        if size <= INLINE_BODY:
            chunks.append(body)
        if not message.get("more_body"):
            break
    payload: dict[str, Any] = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": _text(scope["raw_path"]),
        "query_string": _text(scope["query_string"]),
        "http_version": scope["http_version"],
        "headers": [[_text(name), _text(value)] for name, value in scope["headers"]],
        "body_size": size,
        "body_sha256": digest.hexdigest(),
        "body": _text(b"".join(chunks)) if size <= INLINE_BODY else None,
    }
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))],
        }
    )
    await send({"type": "http.response.body", "body": data})
