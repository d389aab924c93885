"""Health endpoints answered by the server itself, before any app is routed to.

With ``HEALTH_PATH = "/healthz"`` every serving process answers:

* ``/healthz/live``  -- 200 while the process's event loop answers at all (liveness: restart me
  if this times out);
* ``/healthz/ready`` -- 200 while this server takes new traffic, 503 from the moment a shutdown
  begins (readiness: stop sending me requests).

Any method is answered (probes use GET or HEAD); the body is a short JSON object, never cached.

What a load balancer sees during a shutdown (SIGTERM, or STOPPING=1 under systemd): readiness
turns 503 at once, on every connection still open to the server.  New connections then depend on
SHUTDOWN_DELAY: with 0 (the default) the listeners close at once and a probe is refused -- also a
failure to any balancer, but one it may count slowly.  With SHUTDOWN_DELAY = N the server keeps
accepting and serving for N seconds while ``/ready`` answers 503, so balancers that poll the
readiness path take the host out of rotation before its listeners close; only then does the drain
(GRACEFUL_TIMEOUT, which the delay is part of) begin.  A generation handover or worker recycle is
not a shutdown: the host keeps serving through the newer processes, so readiness stays 200 there.

"No generation serving" needs no flag: these answers come from serving processes, so when no
generation serves, nothing answers and the probe fails by timing out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qactuar.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from qactuar.server import Server

_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def _answer(status: int, body: bytes) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": list(_HEADERS)})
        await send({"type": "http.response.body", "body": body})

    return app


_LIVE = _answer(200, b'{"status": "live"}\n')
_READY = _answer(200, b'{"status": "ready"}\n')
_NOT_READY = _answer(503, b'{"status": "draining"}\n')


class HealthEndpoints:
    """The two paths under HEALTH_PATH, matched on the request path before routing."""

    __slots__ = ("live", "ready")

    def __init__(self, base: str) -> None:
        self.live = base + "/live"
        self.ready = base + "/ready"

    def app_for(self, path: str, server: Server) -> ASGIApp | None:
        """The app that answers ``path``, or None when it is not a health path."""
        if path == self.live:
            return _LIVE
        if path == self.ready:
            return _READY if server.ready else _NOT_READY
        return None
