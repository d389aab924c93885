"""Apps for the process-model tests: pids, blocking the loop, crashing at boot."""

from __future__ import annotations

import asyncio
import os
import time

from qactuar.types import Receive, Scope, Send


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": body})


async def pid(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await _reply(send, 200, str(os.getpid()).encode())


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    """Sleeps ?s= seconds, then answers with the pid."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(float(scope["query_string"].decode().partition("s=")[2] or 1))
    await _reply(send, 200, str(os.getpid()).encode())


async def block(scope: Scope, receive: Receive, send: Send) -> None:
    """Blocks the event loop (a CPU-bound or sync-I/O bug)."""
    if scope["type"] != "http":
        return
    time.sleep(60)
    await _reply(send, 200, b"never")


async def crash_at_boot(scope: Scope, receive: Receive, send: Send) -> None:
    """Kills its worker during lifespan startup."""
    if scope["type"] == "lifespan":
        await receive()
        os._exit(9)
    await _reply(send, 200, b"never")
