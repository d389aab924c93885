"""ASGI 2 ("double callable") detection and the adapter that presents such apps as ASGI 3.

An ASGI 2 app is called with the scope alone and returns an instance that is then awaited with
``(receive, send)``. Detection follows uvicorn's idea of looking at the callable rather than
calling it, but uses the signature instead of "is it a coroutine function", so a plain function
that returns an awaitable is not mistaken for ASGI 2:

- a class is ASGI 2 unless its instances are awaitable (``__await__``), because ``App(scope)``
  builds the per-connection instance;
- any other callable is ASGI 2 when it accepts exactly one positional argument and not three.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import cast

from qactuar.types import ASGIApp, Receive, Scope, Send

ASGI2Instance = Callable[[Receive, Send], Awaitable[None]]
ASGI2App = Callable[[Scope], ASGI2Instance]


class ASGI2Adapter:
    """Wraps an ASGI 2 app so the server can call it as ``app(scope, receive, send)``."""

    def __init__(self, app: ASGI2App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)

    def __repr__(self) -> str:
        return f"ASGI2Adapter({self.app!r})"


def accepts_args(obj: object, count: int) -> bool:
    """True when ``obj`` can be called with ``count`` positional arguments (unknown = True)."""
    try:
        signature = inspect.signature(cast(Callable[..., object], obj))
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True


def is_asgi2(app: object) -> bool:
    if inspect.isclass(app):
        return not hasattr(app, "__await__")
    return accepts_args(app, 1) and not accepts_args(app, 3)


def as_asgi3(app: Callable[..., object]) -> ASGIApp:
    """Return ``app`` itself for ASGI 3 apps and an :class:`ASGI2Adapter` around ASGI 2 apps."""
    if is_asgi2(app):
        return ASGI2Adapter(cast(ASGI2App, app))
    return cast(ASGIApp, app)
