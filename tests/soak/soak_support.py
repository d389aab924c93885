"""Load generators and measurements for the load and soak tests.

The clients are raw asyncio protocols with a minimal HTTP/1.1 and WebSocket parser, not an
HTTP library: on a 2-core machine the client shares the CPU with the server, and 100 httpx
clients would measure httpx.  Everything is bounded: a fixed number of connections, a fixed
duration, a timeout on every wait, and loopback only.

Durations: ``QACTUAR_SOAK_SECONDS`` (default 3) is the load phase of each test in each mode.
The default suite runs them short; ``QACTUAR_SOAK_SECONDS=60 pytest -m soak`` is the long soak.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import math
import os
import random
import resource
import socket
import statistics
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from modes import mode_settings
from server_process import ServerProcess, live_descendants

StartServer = Callable[..., ServerProcess]

MiB = 1024 * 1024
APPS = {"/hello": "basic:hello", "/count": "basic:count_body", "/ws": "ws:echo"}
SAMPLER = Path(__file__).with_name("tree_sampler.py")


def soak_seconds() -> float:
    """The load phase of each soak test, from ``QACTUAR_SOAK_SECONDS`` (default 3 s)."""
    return float(os.environ.get("QACTUAR_SOAK_SECONDS") or 3.0)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


# How many connections each test holds; every count can be raised for a long run.
CLIENTS = env_int("QACTUAR_SOAK_CLIENTS", 100)  # keep-alive clients
SLOWLORIS = env_int("QACTUAR_SOAK_SLOWLORIS", 500)  # slow connections
ABANDONED = env_int("QACTUAR_SOAK_ABANDONED", 2000)  # abandoned connections
ABANDONED_POSTFORK = env_int("QACTUAR_SOAK_ABANDONED_POSTFORK", 1000)  # ... in post-fork (a fork each)
WS = env_int("QACTUAR_SOAK_WS", 1000)  # WebSockets open at once
WS_POSTFORK = env_int("QACTUAR_SOAK_WS_POSTFORK", 200)  # ... in post-fork (a process each)


def needed_fds() -> int:
    """Open files this process (and an async-mode server) needs: the most connections a test holds
    at once, plus room."""
    return max(ABANDONED, ABANDONED_POSTFORK, WS, WS_POSTFORK, SLOWLORIS + 100, CLIENTS) + 1000


def is_postfork(mode: str) -> bool:
    return mode_settings(mode)[0] == "postfork"


def serve(start_server: StartServer, mode: str, settings: dict[str, Any]) -> ServerProcess:
    """A server for a SERVING_MODES entry, serving APPS, stopped by the start_server fixture."""
    base, extra = mode_settings(mode)
    server: ServerProcess = start_server(APPS, mode=base, settings={**extra, **settings})
    return server


def report(test: str, mode: str, **figures: object) -> None:
    """One line of figures, shown with ``pytest -s``."""
    print(f"\nSOAK {test} [{mode}] " + " ".join(f"{name}={value}" for name, value in figures.items()))


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (servers started after this
    inherit it); returns the soft limit, which the caller compares with what it needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed and (hard == resource.RLIM_INFINITY or soft < hard):
        soft = hard if hard != resource.RLIM_INFINITY else max(needed, soft)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- the server's process tree --------------------------------------------------------------------


@dataclass(frozen=True)
class TreeSample:
    at: float  # time.monotonic() of the reading (CLOCK_MONOTONIC: the same clock in every process)
    processes: int
    rss: int  # sum of RSS: shared pages counted once per process
    uss: int  # sum of USS: pages private to each process, where a leak lands
    fds: int


def tree_fds(pid: int) -> int:
    """Open file descriptors of the server's whole tree (processes that exit meanwhile are skipped)."""
    total = 0
    for process in [psutil.Process(pid), *live_descendants(pid)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            total += process.num_fds()
    return total


class TreeSampler:
    """Samples the server tree every ``interval`` seconds from a separate process
    (tree_sampler.py, which says why); stopped by its pid on exit."""

    def __init__(self, pid: int, workdir: Path, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.path = workdir / f"samples-{pid}.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> TreeSampler:
        with open(self.path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(SAMPLER), str(self.pid), str(self.interval)], stdout=out
            )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    @property
    def samples(self) -> list[TreeSample]:
        found = []
        for line in self.path.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line cut by the terminate
                row = json.loads(line)
                found.append(TreeSample(row["at"], row["processes"], row["rss"], row["uss"], row["fds"]))
        return found


@dataclass(frozen=True)
class Growth:
    """Memory over the steady part of a run.

    ``rss_growth`` and ``uss_growth`` are the trend: the Theil-Sen slope (the median of the slopes
    between every pair of samples) times the window's length.  A leak is a steady slope and shows
    in full; a burst that comes and goes (the master parsing a backlog of stats and log datagrams
    swung its RSS by up to 20 MiB in post-fork runs) barely moves a median, where comparing the
    two ends of the run would count it whole.  The medians of the first and last three samples
    are reported beside it."""

    baseline_rss: int
    final_rss: int
    rss_growth: int
    baseline_uss: int
    final_uss: int
    uss_growth: int
    samples: int
    seconds: float

    def describe(self) -> str:
        return (
            f"RSS {self.baseline_rss / MiB:.1f} -> {self.final_rss / MiB:.1f} MiB "
            f"(trend {self.rss_growth / MiB:+.1f}), USS {self.baseline_uss / MiB:.1f} -> "
            f"{self.final_uss / MiB:.1f} MiB (trend {self.uss_growth / MiB:+.1f}), "
            f"{self.samples} samples over {self.seconds:.0f} s"
        )


def theil_sen_growth(points: list[tuple[float, int]]) -> int:
    """The median pairwise slope of (time, value) points times their time span."""
    slopes = [
        (v2 - v1) / (t2 - t1) for i, (t1, v1) in enumerate(points) for t2, v2 in points[i + 1 :] if t2 > t1
    ]
    return int(statistics.median(slopes) * (points[-1][0] - points[0][0]))


def memory_growth(samples: list[TreeSample], start: float, end: float) -> Growth:
    """The growth of the tree's summed RSS and USS over the samples taken in [start, end]."""
    steady = [s for s in samples if start <= s.at <= end]
    assert len(steady) >= 6, f"too few samples in the {end - start:.1f} s after the warm-up: {samples}"
    head, tail = steady[:3], steady[-3:]

    def median(values: list[int]) -> int:
        return int(statistics.median(values))

    return Growth(
        baseline_rss=median([s.rss for s in head]),
        final_rss=median([s.rss for s in tail]),
        rss_growth=theil_sen_growth([(s.at, s.rss) for s in steady]),
        baseline_uss=median([s.uss for s in head]),
        final_uss=median([s.uss for s in tail]),
        uss_growth=theil_sen_growth([(s.at, s.uss) for s in steady]),
        samples=len(steady),
        seconds=steady[-1].at - steady[0].at,
    )


# -- HTTP keep-alive load ----------------------------------------------------------------------------


@dataclass
class LoadStats:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def error(self, text: str) -> None:
        if len(self.errors) < 1000:
            self.errors.append(text)


def parse_response(buf: bytearray) -> tuple[int, bytes, int] | None:
    """(status, body, bytes used) of the first complete response in ``buf`` with a content-length,
    or None when more bytes are needed.  Raises ValueError on anything else."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            raise ValueError(f"no end of head in {bytes(buf[:200])!r}")
        return None
    head = bytes(buf[:end]).lower()
    if not head.startswith(b"http/1.1 "):
        raise ValueError(f"not a response: {head[:200]!r}")
    status = int(head[9:12])
    marker = head.find(b"\r\ncontent-length:")
    if marker < 0:
        raise ValueError(f"no content-length: {head!r}")
    line_end = head.find(b"\r\n", marker + 2)
    length = int(head[marker + 17 : line_end if line_end > 0 else len(head)])
    total = end + 4 + length
    if len(buf) < total:
        return None
    return status, bytes(buf[end + 4 : total]), total


class KeepAliveClient(asyncio.Protocol):
    """One keep-alive connection.  It sends one request and, once it is answered, calls
    ``ready``; after ``go(stop_at)`` it sends the request again as soon as each response arrives
    (no pipelining) until ``stop_at``.  Every response must be 200 with ``expect_body``."""

    def __init__(
        self,
        request: bytes,
        expect_body: bytes,
        stats: LoadStats,
        ready: Callable[[], None],
        done: asyncio.Future[None],
    ) -> None:
        self.request = request
        self.expect_body = expect_body
        self.stats = stats
        self.ready = ready
        self.done = done
        self.stop_at = 0.0  # 0 until go(): the warm-up request
        self.buf = bytearray()
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def go(self, stop_at: float) -> None:
        self.stop_at = stop_at
        if not self.done.done():
            self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = self.loop.time()
        self.transport.write(self.request)

    def _finish(self, error: str | None = None) -> None:
        if error is not None:
            self.stats.error(error)
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            parsed = parse_response(self.buf)
        except ValueError as exc:
            self._finish(str(exc))
            return
        if parsed is None:
            return
        status, body, used = parsed
        del self.buf[:used]
        now = self.loop.time()
        if status != 200 or body != self.expect_body:
            self._finish(f"unexpected response {status} {body[:100]!r}")
        elif self.buf:
            self._finish(f"bytes past the response: {bytes(self.buf[:100])!r}")
        elif not self.stop_at:
            self.ready()
        else:
            self.stats.requests += 1
            self.stats.latencies.append(now - self.sent_at)
            if now >= self.stop_at:
                self._finish()
            else:
                self._send()

    def eof_received(self) -> bool | None:
        self._finish("the server closed a keep-alive connection mid-run")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self._finish(f"connection lost mid-run: {exc!r}")


async def keepalive_load(
    host: str,
    port: int,
    *,
    clients: int,
    seconds: float,
    on_start: Callable[[], None] = lambda: None,
    path: str = "/hello",
    expect: bytes = b"Hello, world!",
) -> LoadStats:
    """``clients`` concurrent keep-alive connections.  Warm-up: every connection is opened and
    has one request answered (in post-fork, every child is forked).  Then ``on_start()`` is
    called and every client loads the server for ``seconds``."""
    loop = asyncio.get_running_loop()
    stats = LoadStats()
    request = f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode()
    ready_count = 0
    all_ready = asyncio.Event()

    def ready() -> None:
        nonlocal ready_count
        ready_count += 1
        if ready_count == clients:
            all_ready.set()

    protocols: list[KeepAliveClient] = []
    futures: list[asyncio.Future[None]] = []
    for _ in range(clients):
        done: asyncio.Future[None] = loop.create_future()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    functools.partial(KeepAliveClient, request, expect, stats, ready, done), host, port
                ),
                10,
            )
        except (OSError, TimeoutError) as exc:
            stats.error(f"connect failed: {exc!r}")
            continue
        protocols.append(protocol)
        futures.append(done)
    try:
        async with asyncio.timeout(30):
            await all_ready.wait()
    except TimeoutError:
        stats.error(f"only {ready_count} of {clients} clients were answered within 30 s")
    on_start()
    stop_at = loop.time() + seconds
    for protocol in protocols:
        protocol.go(stop_at)
    # Every client ends by itself at stop_at; one still waiting well after that has stalled.
    _, pending = await asyncio.wait(futures, timeout=seconds + 15)
    for _ in pending:
        stats.error("a request stalled for more than 15 s")
    for protocol in protocols:
        if protocol.transport is not None:
            protocol.transport.close()
    return stats


# -- single requests and slow clients ---------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader, timeout: float) -> tuple[int, bytes]:
    buf = bytearray()
    async with asyncio.timeout(timeout):
        while True:
            parsed = parse_response(buf)
            if parsed is not None:
                return parsed[0], parsed[1]
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError(f"closed before a full response: {bytes(buf[:200])!r}")
            buf += chunk


async def one_request(host: str, port: int, path: str = "/hello", timeout: float = 10.0) -> tuple[int, bytes]:
    """A fresh connection, one request with ``Connection: close``."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
        return await read_response(reader, timeout)
    finally:
        writer.close()


@dataclass
class ProbeStats:
    timed: list[tuple[float, float]] = field(default_factory=list)  # (loop.time() at the start, latency)
    errors: list[str] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        return [latency for _, latency in self.timed]


async def probe(
    host: str, port: int, *, stop: asyncio.Event, stats: ProbeStats, keepalive: bool, pause: float = 0.05
) -> None:
    """A normal client: GET /hello every ``pause`` seconds until ``stop``, on one keep-alive
    connection or on a fresh connection each time (the latency then includes connect and accept)."""
    loop = asyncio.get_running_loop()
    request = b"GET /hello HTTP/1.1\r\nHost: soak\r\n\r\n"
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    try:
        while not stop.is_set():
            started = loop.time()
            try:
                if keepalive:
                    if writer is None:
                        async with asyncio.timeout(10):
                            reader, writer = await asyncio.open_connection(host, port)
                    assert reader is not None
                    writer.write(request)
                    status, body = await read_response(reader, 10)
                else:
                    status, body = await one_request(host, port)
            except (OSError, ValueError, TimeoutError) as exc:
                stats.errors.append(f"{loop.time() - started:.2f} s: {exc!r}")
                if writer is not None:
                    writer.close()
                writer = None
            else:
                stats.timed.append((started, loop.time() - started))
                if status != 200 or body != b"Hello, world!":
                    stats.errors.append(f"unexpected response {status} {body[:100]!r}")
            await asyncio.sleep(pause)
    finally:
        if writer is not None:
            writer.close()


@dataclass
class SlowStats:
    connections: int = 0  # slow connections opened in all
    timed_out: int = 0  # cut by the server with a 408
    closed_without_408: list[str] = field(default_factory=list)
    bytes_trickled: int = 0


async def slowloris(
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    stats: SlowStats,
    interval: float,
    on_cut: Callable[[], None] = lambda: None,
) -> None:
    """Sends a request head one byte every ~``interval`` seconds and never finishes it; when the
    server cuts the connection (``on_cut()`` is called), opens a new one at once, as an attacker
    would.  Ends, closing its connection, when ``stop`` is set."""
    while not stop.is_set():
        async with asyncio.timeout(30):
            reader, writer = await asyncio.open_connection(host, port)
        stats.connections += 1
        try:
            writer.write(b"GET /hello HTTP/1.1\r\nHost: soak\r\n")
            header = b"X-Slow-" + str(random.randrange(1 << 30)).encode() + b": " + b"a" * 64
            position = 0
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval * random.uniform(0.5, 1.5)):
                        answer = await reader.read(65536)
                    on_cut()
                    if answer.startswith(b"HTTP/1.1 408 "):
                        stats.timed_out += 1
                    else:
                        stats.closed_without_408.append(repr(answer[:100]))
                    break
                writer.write(header[position % len(header) : position % len(header) + 1])
                stats.bytes_trickled += 1
                position += 1
        except OSError as exc:
            stats.closed_without_408.append(repr(exc))
        finally:
            writer.close()


# -- WebSocket clients --------------------------------------------------------------------------------

WS_KEY = base64.b64encode(os.urandom(16))


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payloads under 64 KiB)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    else:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return header + mask + masked


async def ws_read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    if second & 0x80:
        raise ValueError("the server masked a frame")
    return first & 0x0F, await reader.readexactly(length)


@dataclass
class WSStats:
    opened: int = 0
    all_open_after: float = 0.0  # seconds from the first connect until every handshake was answered
    messages: int = 0
    clean_closes: int = 0
    pongs_sent: int = 0
    errors: list[str] = field(default_factory=list)
    handshake_latencies: list[float] = field(default_factory=list)

    def error(self, text: str) -> None:
        if len(self.errors) < 1000:
            self.errors.append(text)


@dataclass
class WSFleet:
    """``count`` WebSocket clients: all are opened first (at most ``connecting`` handshakes in
    flight), then, once every one is open, each echoes a text message every ~``interval`` seconds
    for ``seconds`` (at least once), then closes with 1000 and waits for the server's close frame
    and the end of the TCP stream.  ``on_all_open`` is called when every handshake is answered."""

    host: str
    port: int
    path: str
    count: int
    seconds: float
    interval: float = 1.0
    timeout: float = 30.0
    connecting: int = 100
    on_all_open: Callable[[], None] = lambda: None
    stats: WSStats = field(default_factory=WSStats)
    _all_open: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _slots: asyncio.Semaphore = field(init=False)
    _stop_at: float = field(init=False, default=math.inf)
    _began: float = field(init=False, default=0.0)

    async def run(self) -> WSStats:
        loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self.connecting)
        self._began = loop.time()
        sessions = [asyncio.ensure_future(self._session(index)) for index in range(self.count)]
        try:
            async with asyncio.timeout(self.timeout * 4):
                await self._all_open.wait()
        except TimeoutError:
            self.stats.error(f"only {self.stats.opened} of {self.count} WebSockets opened")
        self.on_all_open()
        self._stop_at = loop.time() + self.seconds
        self._all_open.set()
        _, pending = await asyncio.wait(sessions, timeout=self.seconds + self.timeout * 2)
        for task in pending:
            task.cancel()
            self.stats.error("a session did not end")
        return self.stats

    async def _session(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        stats = self.stats
        try:
            async with self._slots:
                started = loop.time()
                async with asyncio.timeout(self.timeout):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    writer.write(
                        f"GET {self.path} HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ".encode()
                        + WS_KEY
                        + b"\r\n\r\n"
                    )
                    head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 101 "):
                    writer.close()
                    raise ValueError(f"handshake refused: {head[:200]!r}")
                stats.handshake_latencies.append(loop.time() - started)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
            stats.error(f"#{index} handshake: {exc!r}")
            return
        stats.opened += 1
        if stats.opened == self.count:
            stats.all_open_after = loop.time() - self._began
            self._all_open.set()
        try:
            await self._all_open.wait()
            await self._exchange(index, reader, writer)
            await self._close(reader, writer)
            stats.clean_closes += 1
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
            stats.error(f"#{index}: {exc!r}")
        finally:
            writer.close()

    async def _exchange(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        sequence = 0
        while True:
            text = f"message {sequence} from {index}".encode()
            writer.write(ws_frame(0x1, text))
            async with asyncio.timeout(self.timeout):
                while True:
                    opcode, payload = await ws_read_frame(reader)
                    if opcode == 0x9:  # the server's keepalive ping
                        writer.write(ws_frame(0xA, payload))
                        self.stats.pongs_sent += 1
                        continue
                    if opcode != 0x1 or payload != text:
                        raise ValueError(f"expected the echo of {text!r}, got {opcode:#x} {payload[:100]!r}")
                    break
            self.stats.messages += 1
            sequence += 1
            remaining = self._stop_at - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, self.interval * random.uniform(0.5, 1.5)))

    async def _close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(ws_frame(0x8, struct.pack("!H", 1000)))
        async with asyncio.timeout(self.timeout):
            while True:
                opcode, payload = await ws_read_frame(reader)
                if opcode == 0x8:
                    break
            code = struct.unpack("!H", payload[:2])[0] if payload else 1005
            if code != 1000:
                raise ValueError(f"the server answered the close with {code}")
            rest = await reader.read()
        if rest:
            raise ValueError(f"bytes after the close frame: {rest[:100]!r}")


# -- abandoned connections ---------------------------------------------------------------------------


def rst_close(sock: socket.socket) -> None:
    """Close with a TCP reset instead of a FIN (SO_LINGER on, zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
