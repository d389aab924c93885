"""Apps the console's live tests mount: one that answers, one whose error repeats the request path.

``explode`` raises with the decoded request path in its message, so a path carrying Rich markup and
terminal escapes reaches the console inside a traceback, as hostile app output would.
"""

from __future__ import annotations

from qactuar.types import Receive, Scope, Send


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello from the console tests"})


async def explode(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    raise RuntimeError(f"cannot serve {scope['path']}")
