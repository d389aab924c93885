"""Apps for the production-feature tests: pathsend, trailers, a slow request, a scope echo."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from qactuar.types import Receive, Scope, Send


def _query(scope: Scope) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(scope["query_string"].decode()).items()}


async def pathsend(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends the file named by ?path= with http.response.pathsend (tests only: any path is served)."""
    if scope["type"] != "http":
        return
    assert "http.response.pathsend" in scope["extensions"]
    query = _query(scope)
    headers = [(b"content-type", b"application/octet-stream")]
    if "length" in query:
        headers.append((b"content-length", query["length"].encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.pathsend", "path": query["path"]})


async def trailers(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams three chunks, then a checksum trailer sent in two trailer messages."""
    if scope["type"] != "http":
        return
    assert "http.response.trailers" in scope["extensions"]
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"trailer", b"x-checksum, x-count")],
            "trailers": True,
        }
    )
    for part in (b"one ", b"two ", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    await send(
        {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")], "more_trailers": True}
    )
    await send({"type": "http.response.trailers", "headers": [(b"x-count", b"3")]})


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers after ?seconds= (default 2)."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(float(_query(scope).get("seconds", "2")))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"slow done"})


async def who(scope: Scope, receive: Receive, send: Send) -> None:
    """The scope's client, scheme, server and host header as JSON."""
    if scope["type"] != "http":
        return
    headers: dict[str, Any] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    body = {
        "client": scope["client"],
        "scheme": scope["scheme"],
        "server": scope["server"],
        "host": headers.get("host"),
        "extensions": sorted(scope.get("extensions") or {}),
    }
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
