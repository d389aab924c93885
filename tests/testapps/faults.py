"""Apps for the fault-injection suite (tests/faults/): each misbehaves in one way.

Every app answers with something the test can check against the process that served it
(its pid, its resident memory), so a test can tell which worker or child a request reached.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from qactuar.types import Receive, Scope, Send

LEAK_CHUNK = 5 * 1024 * 1024
EXIT_CODE = 13  # what ``exit_mid_request`` exits with: distinct from every code Qactuar uses
STREAM_CHUNK = 64 * 1024

_leaked: list[bytes] = []


def _query(scope: Scope) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part)
    return dict(pairs)


def rss_bytes() -> int:
    """This process's resident set size, from /proc (no psutil in the app)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": body})


async def pid(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await _reply(send, 200, str(os.getpid()).encode())


def _mark(scope: Scope, text: str) -> None:
    """With ?mark=DIR, write ``text`` to DIR/<request id>: the test learns the request runs, and where."""
    folder = _query(scope).get("mark")
    if folder:
        Path(folder, scope["state"]["request_id"]).write_text(text)


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    """Sleeps ?s= seconds (default 1), then answers with its pid; ?mark=DIR says when it started."""
    if scope["type"] != "http":
        return
    _mark(scope, str(os.getpid()))
    await asyncio.sleep(float(_query(scope).get("s", "1")))
    await _reply(send, 200, str(os.getpid()).encode())


async def raises(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    raise RuntimeError("fault injected: the app raised")


async def hang(scope: Scope, receive: Receive, send: Send) -> None:
    """Never answers, and ignores the client leaving (it never calls receive)."""
    if scope["type"] != "http":
        return
    _mark(scope, str(os.getpid()))
    await asyncio.Event().wait()


async def hang_stubborn(scope: Scope, receive: Receive, send: Send) -> None:
    """Never answers and swallows cancellation: only the end of its process stops it."""
    if scope["type"] != "http":
        return
    _mark(scope, str(os.getpid()))
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


async def block(scope: Scope, receive: Receive, send: Send) -> None:
    """Blocks the event loop (sync I/O or a CPU-bound bug) for ?s= seconds (default 30)."""
    if scope["type"] != "http":
        return
    _mark(scope, str(os.getpid()))
    time.sleep(float(_query(scope).get("s", "30")))
    await _reply(send, 200, b"unblocked")


async def leak(scope: Scope, receive: Receive, send: Send) -> None:
    """Keeps 5 MiB more (touched, so resident) per request; answers "<pid> <rss bytes>"."""
    if scope["type"] != "http":
        return
    _leaked.append(b"\x01" * LEAK_CHUNK)
    await _reply(send, 200, f"{os.getpid()} {rss_bytes()}".encode())


async def exit_mid_request(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts a response, sends part of it, then ends its process with os._exit(EXIT_CODE)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    await asyncio.sleep(0.05)  # the partial body leaves first
    os._exit(EXIT_CODE)


async def big_stream(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams ?mb= MiB (default 256) in 64 KiB chunks, chunked.

    With ?dir=, it keeps ``<dir>/<request id>`` up to date with the bytes ``send`` has accepted so
    far, and writes ``closed <n>`` there when ``send`` fails (the server gave up on the client).
    """
    if scope["type"] != "http":
        return
    query = _query(scope)
    total = int(query.get("mb", "256")) * 1024 * 1024
    folder = query.get("dir")
    progress = Path(folder, scope["state"]["request_id"]) if folder else None
    chunk = b"y" * STREAM_CHUNK
    sent = 0

    def note(text: str) -> None:
        if progress is not None:
            progress.write_text(text)

    await send({"type": "http.response.start", "status": 200, "headers": []})
    try:
        while sent < total:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
            if sent % (1024 * 1024) == 0:
                note(str(sent))
        await send({"type": "http.response.body", "body": b""})
    except OSError:
        note(f"closed {sent}")
        raise
    note(f"done {sent}")


async def held_at_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Lifespan startup waits a minute while ``$QACTUAR_TEST_HOLD/hold`` exists (touching ``held`` first)."""
    if scope["type"] == "lifespan":
        folder = Path(os.environ.get("QACTUAR_TEST_HOLD", "/nonexistent"))
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if (folder / "hold").exists():
                    (folder / "held").touch()
                    await asyncio.sleep(60)
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await _reply(send, 200, str(os.getpid()).encode())
