"""The ASGI websocket scope (spec 2.4), made from the HTTP scope the server built for the upgrade.

Routing, root_path, the lifespan state copy and the request id are decided once, by the HTTP
protocol, for both kinds of request; this only changes what differs for a WebSocket.
"""

from __future__ import annotations

from qactuar.types import Scope

WEBSOCKET_EXTENSIONS = ("websocket.http.response",)
# A scheme forwarded by a trusted proxy may already be a WebSocket one; it is kept then.
_SCHEMES = {"http": "ws", "https": "wss"}


def websocket_scope(http_scope: Scope, subprotocols: list[str]) -> Scope:
    scope = dict(http_scope)
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = _SCHEMES.get(http_scope["scheme"], http_scope["scheme"])
    scope["subprotocols"] = subprotocols
    scope["extensions"] = {**http_scope.get("extensions", {}), **{name: {} for name in WEBSOCKET_EXTENSIONS}}
    return scope
