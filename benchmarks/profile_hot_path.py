"""Profile one keep-alive connection's request path in-process, without sockets or a load generator.

A request is fed to ``HTTPProtocol.data_received`` over a stand-in transport and the loop runs
until the response is written, N times: the server's whole per-request path (driver, routing,
scope, cycle, response framing, stats) with nothing else on the CPU.  Prints microseconds per
request; ``--profile`` adds a cProfile listing.  On a busy machine the microseconds move; count
instructions instead, which do not:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python benchmarks/profile_hot_path.py -n 2000

(the difference between two request counts, divided by the difference, is instructions per request).

Usage: python benchmarks/profile_hot_path.py [--parser h11|httptools] [--app hello|echo] [-n N]
       [--access-log] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import pstats
import time
from typing import Any

from qactuar.apps.router import Mount
from qactuar.apps.table import AppTable
from qactuar.config import Config
from qactuar.http.protocol import HTTPProtocol
from qactuar.logs import BufferedStreamHandler, CachedTimeFormatter
from qactuar.server import Server
from qactuar.types import Receive, Scope, Send

HELLO = b"GET / HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
ECHO_BODY = b"x" * 1024
ECHO = (
    b"POST / HTTP/1.1\r\nHost: localhost:8000\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: %d\r\n\r\n" % len(ECHO_BODY) + ECHO_BODY
)


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


class StandInTransport:
    """What HTTPProtocol uses of an asyncio transport; each write completes the waiting request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.responded: asyncio.Future[None] = loop.create_future()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:
        if not self.responded.done():
            self.responded.set_result(None)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


async def run(requests: int, parser: str, app_name: str, access_log: bool) -> float:
    """Microseconds per request over ``requests`` keep-alive requests on one connection."""
    config = Config(USE_UVLOOP=False, HTTP_PARSER=parser, ACCESS_LOG=access_log)
    logging.getLogger("qt_access").disabled = not access_log
    server = Server(config, AppTable([Mount("/", app_name, echo if app_name == "echo" else hello)]))
    loop = asyncio.get_running_loop()
    transport = StandInTransport(loop)
    protocol = HTTPProtocol(server)
    protocol.connection_made(transport)  # type: ignore[arg-type]
    request = ECHO if app_name == "echo" else HELLO
    started = time.perf_counter()
    for _ in range(requests):
        transport.responded = loop.create_future()
        protocol.data_received(request)
        await transport.responded
        await asyncio.sleep(0)  # let the request's task finish
    return (time.perf_counter() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parser", choices=("h11", "httptools"), default="h11")
    parser.add_argument("--app", choices=("hello", "echo"), default="hello")
    parser.add_argument("-n", "--requests", type=int, default=20000)
    parser.add_argument("--access-log", action="store_true", help="access lines to a string buffer")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile listing")
    args = parser.parse_args()
    if args.access_log:  # the default access handler and format, into a string buffer
        handler = BufferedStreamHandler(io.StringIO())
        handler.setFormatter(CachedTimeFormatter("{asctime} ACCESS {message}", style="{"))
        logging.getLogger("qt_access").addHandler(handler)
        logging.getLogger("qt_access").setLevel(logging.INFO)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    micros = asyncio.run(run(args.requests, args.parser, args.app, args.access_log))
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    print(f"{args.parser} {args.app}: {micros:.1f} us/request over {args.requests} requests")


if __name__ == "__main__":
    main()
