"""The admin server: runs in the master's event loop, authenticates first, then answers commands.

Theory of operation
-------------------
``AdminServer.start()`` makes sure the token file exists, binds the admin address (``listen.py``) and serves
it with one ``_Session`` (an ``asyncio.Protocol``) per connection; this is the only module that touches the
admin sockets.  It never raises for an address it cannot have: it logs one "Admin socket off" line saying
why and what to change, and returns ``[]`` -- the server it lives in goes on serving HTTP.

A session is a small state machine:

``LOGIN``
    Only a hello is accepted, within ``auth_timeout`` seconds of connecting.  Bytes that look like HTTP, a
    bad frame, a request, a wrong token or silence: the connection is closed (with an ``error`` frame
    saying why, except to HTTP) and no command is ever looked at.  ``auth.Gatekeeper`` checks the token,
    keeps the failed-login lockout and logs the rejection.
``READY``
    Requests run as tasks, so a slow ``reload`` does not hold up a ``ping``; replies carry the request's id
    and may come in any order.  An unknown command or bad arguments get an error reply and the connection
    stays open.  A protocol error (bad frame, a second hello) closes it.
``CLOSED``
    Subscriptions stop at once.  Requests already running finish (a ``reload`` is not cut in half because a
    client went away); their replies are dropped.  ``AdminServer.close()`` cancels them.

Limits, all in ``AdminLimits``: frame size (in the codec; 4 KiB until the login), open connections,
requests in flight and subscriptions per connection, login and idle timeouts, and the bytes queued to a
client.  When a client's queue is full, reading its requests pauses and its events are left out (counted
in the next event's ``dropped``), so a client that does not read cannot grow the master's memory.  A
connection with a subscription or a request in flight is never idle.

A client that vanishes says so with a FIN or a RST, and its session ends at once -- unless its host died or
the network between went away, when nothing arrives at all.  A TCP connection then lives for as long as
nothing is sent on it, and a quiet subscription (a ``log`` filter that matches nothing) keeps its session
from idling out: it would hold one of ``max_connections`` for good.  So TCP sessions use keepalive probes
(``keepalive_idle``, then 3 probes 10 s apart): a silent peer is dropped about ``keepalive_idle`` + 30 s
later.  A session that is sending (``stats``) ends when the kernel gives up retransmitting to the dead
peer (``tcp_retries2``, about 15 minutes on Linux).

Forked children inherit every file descriptor, CLOEXEC or not (CLOEXEC acts on exec only), so ``fds()``
lists the listening socket and every accepted connection: a process that forks must close them in the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from qactuar._version import __version__
from qactuar.admin.auth import Gatekeeper
from qactuar.admin.backend import AdminBackend, BackendError
from qactuar.admin.commands import COMMANDS, Command, Context, redact
from qactuar.admin.listen import ListenError, listen_tcp, listen_unix
from qactuar.admin.params import ArgumentError, parse_args
from qactuar.admin.protocol import (
    MAX_FRAME,
    PROTOCOL_VERSION,
    Codec,
    Error,
    Event,
    Hello,
    Message,
    ProtocolError,
    Request,
    Response,
    Signal,
    Welcome,
)
from qactuar.admin.statefiles import addr_file, ensure_token, remove_addr, write_addr
from qactuar.admin.subscriptions import Subscriptions
from qactuar.config import Config
from qactuar.logs import escape_log_text
from qactuar.net import format_address

server_log = logging.getLogger("qt_server")
HELLO_FRAME = 4096  # before login a frame can only be a hello: nobody unknown makes us buffer a MiB
KEEPALIVE_INTERVAL = 10  # seconds between TCP keepalive probes to a silent admin client
KEEPALIVE_PROBES = 3  # unanswered probes before the kernel drops the connection


@dataclass(frozen=True, slots=True)
class AdminLimits:
    max_frame: int = MAX_FRAME  # payload bytes of one message, either way
    max_connections: int = 32  # open at once, logged in or not
    max_in_flight: int = 8  # requests running per connection; reading pauses beyond
    max_subscriptions: int = 16  # per connection
    auth_timeout: float = 5.0  # seconds from connect to hello
    idle_timeout: float = 300.0  # seconds without a request (and nothing subscribed or running)
    failures: int = 5  # failed logins within failure_window ...
    failure_window: float = 10.0
    lockout: float = 10.0  # ... refuse logins for this long
    stats_interval: float = 1.0  # seconds between stats events
    write_buffer: int = 4 * MAX_FRAME  # bytes queued to one client before it counts as slow
    keepalive_idle: int = 60  # seconds of silence on a TCP session before keepalive probes start


@dataclass(slots=True)
class _Shared:
    """What every session of one server uses."""

    backend: AdminBackend
    limits: AdminLimits
    gate: Gatekeeper
    secrets: tuple[str, ...]
    sessions: set[_Session] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _peer_name(transport: asyncio.Transport) -> str:
    """Who is connected: ``host:port``, or the peer's pid and uid on a Unix socket (Linux)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        if sys.platform == "linux":
            creds = struct.Struct("3i")
            with contextlib.suppress(OSError):
                pid, uid, _ = creds.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, creds.size))
                return f"unix pid={pid} uid={uid}"
        return "unix"
    peer = transport.get_extra_info("peername")
    return format_address(str(peer[0]), int(peer[1])) if peer else "?"


def _keep_alive(sock: socket.socket, idle: int) -> None:
    """Probe a silent TCP peer after ``idle`` seconds (KEEPALIVE_PROBES probes, KEEPALIVE_INTERVAL apart).

    ``sock`` is what the transport's "socket" extra is (asyncio's TransportSocket, which has setsockopt).
    """
    options = (
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        # Linux names; elsewhere the system's keepalive timing applies
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", None), idle),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_PROBES),
    )
    for level, option, value in options:
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(level, option, value)


class _Session(asyncio.Protocol):
    def __init__(self, shared: _Shared) -> None:
        self.shared = shared
        self.limits = shared.limits
        self.codec = Codec("server", max_frame=min(HELLO_FRAME, self.limits.max_frame))
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.logged_in = False
        self.closing = False
        self.in_flight = 0
        self.write_paused = False
        self.read_paused = False
        self.timer: asyncio.TimerHandle | None = None
        self.subscriptions = Subscriptions(
            shared.backend,
            self._emit,
            limit=self.limits.max_subscriptions,
            stats_interval=self.limits.stats_interval,
        )
        self.context = Context(shared.backend, self.subscriptions, shared.secrets)

    # --- asyncio.Protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = _peer_name(self.transport)
        if len(self.shared.sessions) >= self.limits.max_connections:
            reason = f"{self.limits.max_connections} admin connections are open already"
            self.shared.gate.reject(self.peer, reason, failed_login=False)
            self._close(f"too many admin connections ({reason}); try again later")
            return
        self.shared.sessions.add(self)
        self.transport.set_write_buffer_limits(high=self.limits.write_buffer)
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            _keep_alive(sock, self.limits.keepalive_idle)
        self._set_timer(self.limits.auth_timeout, self._login_timeout)

    def data_received(self, data: bytes) -> None:
        if not self.closing:
            self.codec.receive_data(data)
            self._process()

    def eof_received(self) -> None:
        self._close(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._cancel_timer()
        self.subscriptions.close()
        self.shared.sessions.discard(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._flow()

    # --- reading -------------------------------------------------------------------------------------------

    def _flow(self) -> None:
        """Read requests only while their replies have room and fewer than the cap are running."""
        blocked = self.write_paused or self.in_flight >= self.limits.max_in_flight
        if self.closing or self.transport is None or blocked == self.read_paused:
            return
        self.read_paused = blocked
        if blocked:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()
            self._process()  # requests that arrived while paused may be buffered already

    def _process(self) -> None:
        while not (self.closing or self.read_paused):
            try:
                message = self.codec.next_message()
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
            if isinstance(message, Signal):
                return
            if self.logged_in:
                self._start(message)
            else:
                self._login(message)

    def _protocol_error(self, exc: ProtocolError) -> None:
        if self.logged_in:
            server_log.warning(
                "Admin connection from %s closed: %s", escape_log_text(self.peer), escape_log_text(str(exc))
            )
        else:  # bytes that look like HTTP may come from a browser page in a loop: they cannot lock us out
            self.shared.gate.reject(self.peer, str(exc), failed_login=not exc.http)
        self._close(None if exc.http else f"protocol error: {exc}")

    def _login(self, message: Message) -> None:
        gate = self.shared.gate
        if not isinstance(message, Hello):
            gate.reject(self.peer, "the first message was not a hello", failed_login=True)
            self._close("the first message must be a hello carrying the admin token")
            return
        wait = gate.locked_out()
        if wait:
            gate.reject(self.peer, "login during a lockout", failed_login=False)
            self._close(f"too many failed logins; try again in {math.ceil(wait)} s")
            return
        if not gate.token_ok(message.token):
            gate.reject(self.peer, "wrong token", failed_login=True)
            self._close("authentication failed: wrong admin token")
            return
        if message.version != PROTOCOL_VERSION:
            self._close(
                f"protocol version {message.version} is not supported; this server speaks {PROTOCOL_VERSION}"
            )
            return
        self.logged_in = True
        self.codec.max_frame = self.limits.max_frame
        self._send(Welcome(server=f"qactuar {__version__}"))
        self._set_timer(self.limits.idle_timeout, self._idle)
        server_log.debug(
            "Admin client %s logged in (%s)", escape_log_text(self.peer), escape_log_text(message.client)
        )

    def _start(self, message: Message) -> None:
        if not isinstance(message, Request):
            self._protocol_error(ProtocolError("a second hello on a logged-in connection"))
            return
        self._set_timer(self.limits.idle_timeout, self._idle)
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._run(message))
        self.shared.tasks.add(task)
        task.add_done_callback(self._done)
        self._flow()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.shared.tasks.discard(task)
        self.in_flight -= 1
        self._flow()

    # --- running a request ---------------------------------------------------------------------------------

    async def _run(self, request: Request) -> None:
        command = COMMANDS.get(request.command)
        try:
            if command is None:
                raise ArgumentError(
                    f"unknown command {request.command!r:.60}; commands: {', '.join(sorted(COMMANDS))}"
                )
            args = parse_args(request.command, command.params, request.args, rest=command.rest)
            response = Response(request.id, True, await command.run(self.context, args))
            result = "ok"
        except (ArgumentError, BackendError) as exc:
            response = Response(request.id, False, error=str(exc))
            result = f"{'refused' if isinstance(exc, ArgumentError) else 'failed'}: {exc}"
        except Exception:
            server_log.exception("Admin command %s failed", escape_log_text(repr(request.command)))
            response = Response(
                request.id, False, error=f"internal error in {request.command!r}; the server log has details"
            )
            result = "internal error"
        self._audit(command, request, result)
        self._respond(response)

    def _audit(self, command: Command | None, request: Request, result: str) -> None:
        if command is not None and command.mutating:  # secrets are cut out: a client may paste anything
            args = json.dumps(redact(request.args, self.shared.secrets), ensure_ascii=False)
            server_log.info(
                "Admin audit: %s ran %s %s: %s",
                escape_log_text(self.peer),
                request.command,
                escape_log_text(args),
                escape_log_text(redact(result, self.shared.secrets)),
            )

    # --- writing -------------------------------------------------------------------------------------------

    def _send(self, message: Response | Event | Error | Welcome) -> bool:
        """Write ``message``; False when the connection is closing (ProtocolError if it cannot be encoded)."""
        if self.closing or self.transport is None:
            return False
        self.transport.write(self.codec.encode(message))
        return True

    def _respond(self, response: Response) -> None:
        try:
            self._send(response)
        except ProtocolError as exc:  # too large for a frame, or the backend returned something not JSON
            server_log.error("Admin reply to request %d could not be sent: %s", response.id, exc)
            self._send(Response(response.id, False, error=f"the reply could not be sent: {exc}"))

    def _emit(self, event: Event) -> bool:
        if self.write_paused:
            return False
        try:
            return self._send(event)
        except ProtocolError as exc:
            server_log.warning("Admin %s event left out: %s", event.event, exc)
            return False

    # --- ending --------------------------------------------------------------------------------------------

    def _set_timer(self, seconds: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        self.timer = asyncio.get_running_loop().call_later(seconds, callback)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _login_timeout(self) -> None:
        reason = f"no hello within {self.limits.auth_timeout:g} s"
        self.shared.gate.reject(self.peer, reason, failed_login=False)
        self._close(reason)

    def _idle(self) -> None:
        if self.in_flight or len(self.subscriptions):
            self._set_timer(self.limits.idle_timeout, self._idle)
        else:
            self._close(f"idle for {self.limits.idle_timeout:g} s")

    def _close(self, error: str | None) -> None:
        """Send ``error`` (when given) as the last frame and close."""
        if self.closing or self.transport is None:
            return
        if error is not None:
            self._send(Error(error))
        self.closing = True
        self._cancel_timer()
        self.subscriptions.close()
        self.transport.close()

    def abort(self) -> None:
        self.closing = True
        self.subscriptions.close()
        if self.transport is not None:
            self.transport.abort()

    def fileno(self) -> int:
        sock = self.transport.get_extra_info("socket") if self.transport else None
        return sock.fileno() if sock is not None else -1


class AdminServer:
    """The admin socket of one master.  ``start()`` and ``close()`` run in the master's event loop."""

    def __init__(self, backend: AdminBackend, config: Config, *, limits: AdminLimits | None = None) -> None:
        self.backend = backend
        self.config = config
        self.limits = limits or AdminLimits()
        self.addresses: list[str] = []
        self._servers: list[asyncio.Server] = []
        self._started = False
        self._shared: _Shared | None = None
        self._cleanups: list[Callable[[], None]] = []

    async def start(self) -> list[str]:
        """Listen; return the addresses ("host:port" or "unix:/path"), or [] when the admin socket is off."""
        if self._started:
            raise RuntimeError("AdminServer.start() was called twice")
        self._started = True
        token_file = self.config.admin_token_file()
        try:
            token = ensure_token(token_file)
        except OSError as exc:
            return self._off(
                f"cannot use the admin token file {token_file}: {exc.strerror or exc}; "
                "set STATE_DIR or ADMIN_TOKEN_FILE to a place this user can write"
            )
        limits = self.limits
        gate = Gatekeeper(
            token, failures=limits.failures, window=limits.failure_window, lockout=limits.lockout
        )
        self._shared = shared = _Shared(self.backend, limits, gate, (token,))
        try:
            sock = self._listen()
        except ListenError as exc:
            return self._off(str(exc))
        loop = asyncio.get_running_loop()
        if sock.family == socket.AF_UNIX:
            server = await loop.create_unix_server(lambda: _Session(shared), sock=sock)
        else:
            server = await loop.create_server(lambda: _Session(shared), sock=sock)
        self._servers.append(server)
        server_log.info("Admin socket listening on %s (token in %s)", ", ".join(self.addresses), token_file)
        return list(self.addresses)

    def _off(self, reason: str) -> list[str]:
        server_log.warning("Admin socket off: %s. HTTP serving is not affected.", reason)
        return []

    def _listen(self) -> socket.socket:
        config = self.config
        if config.ADMIN_SOCKET:
            path = Path(config.ADMIN_SOCKET).absolute()
            sock = listen_unix(path)
            inode = path.stat().st_ino
            self._cleanups.append(lambda: _remove_socket_file(path, inode))
            self.addresses.append(f"unix:{path}")
            return sock
        sock = listen_tcp(config.ADMIN_HOST, config.ADMIN_PORT, allow_remote=config.ADMIN_ALLOW_REMOTE)
        host, port = sock.getsockname()[:2]
        self.addresses.append(format_address(host, port))
        if config.ADMIN_PORT == 0:
            record = addr_file(config.admin_token_file())
            try:
                write_addr(record, host, port)
            except OSError as exc:
                server_log.warning(
                    "Admin socket on %s, but it cannot be recorded in %s (%s): clients must be given the "
                    "address with --admin",
                    self.addresses[-1],
                    record,
                    exc.strerror or exc,
                )
            else:
                self._cleanups.append(lambda: remove_addr(record, host, port))
        return sock

    def fds(self) -> list[int]:
        """The admin socket's file descriptors now, listening and connected: close them in forked children."""
        listening = [sock.fileno() for server in self._servers for sock in server.sockets]
        connected = [session.fileno() for session in self._shared.sessions] if self._shared else []
        return [fd for fd in listening + connected if fd >= 0]

    async def close(self) -> None:
        """Stop listening, drop every connection, cancel running requests, and remove the files written."""
        for server in self._servers:
            server.close()
        if self._shared is not None:
            for session in list(self._shared.sessions):
                session.abort()
            tasks = list(self._shared.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        for cleanup in self._cleanups:
            cleanup()
        self._cleanups.clear()


def _remove_socket_file(path: Path, inode: int) -> None:
    """Remove the socket file if it is still the one this server created."""
    with contextlib.suppress(OSError):
        if path.lstat().st_ino == inode:
            os.unlink(path)
