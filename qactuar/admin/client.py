"""Talking to a running server's admin socket: finding it, logging in, requests and subscriptions.

Two clients over the one codec: ``AdminClient`` (asyncio, for the TUI: requests may overlap, events are
delivered while requests run) and ``SyncAdminClient`` (blocking sockets, for the ``qactuar`` CLI, which does
one thing and exits).  Both log in with a hello before anything else, as the server demands.

``locate(config)`` answers "where is the server and what is its token" from the same Config a server run
next to it would use: ``ADMIN_SOCKET`` when set, else ``ADMIN_HOST:ADMIN_PORT`` -- or, when ``ADMIN_PORT``
is 0, the address that server recorded in ``admin.addr`` beside the token file.  So the CLI and the TUI
need no flags when run in a server's directory.

Failures the operator can act on are two exceptions, each one line with no traceback needed:
``AdminUnavailable`` (not running, not reachable, login refused, connection lost) and ``AdminError`` (the
server answered a request with an error; its message is passed on unchanged).

A slow consumer of an ``AdminClient`` subscription does not stall the connection: each subscription keeps
its newest ``queue_size`` events, and the next one delivered counts the ones it lost in ``dropped`` (added
to what the server itself left out).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from qactuar._version import __version__
from qactuar.admin.protocol import (
    CLOSED,
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
from qactuar.admin.statefiles import addr_file, parse_address, read_token
from qactuar.config import Config
from qactuar.net import format_address

CONNECT_TIMEOUT = 5.0
RECV_BYTES = 65536


class AdminUnavailable(Exception):  # noqa: N818 - it names a state, like ConnectionRefused
    """The admin server cannot be reached, refused the login, or went away; the message says which."""


class AdminError(Exception):
    """The admin server answered a request with an error (unknown command, bad arguments, refused)."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where an admin server listens, and the token to log in with."""

    address: str | tuple[str, int]  # a Unix socket path, or (host, port)
    token: str = field(repr=False)
    token_file: str = ""  # where the token came from, for messages

    def __str__(self) -> str:
        if isinstance(self.address, str):
            return self.address
        return format_address(*self.address)


def locate(config: Config) -> Location:
    """The admin server a server run with ``config`` would have; AdminUnavailable when nothing says where."""
    token_file = config.admin_token_file()
    try:
        token = read_token(token_file)
    except FileNotFoundError:
        raise AdminUnavailable(
            f"no admin token file at {token_file}: is a Qactuar server running with this configuration? "
            "(run this next to its qactuar.toml, or give --config FILE or --token-file F)"
        ) from None
    except (OSError, ValueError) as exc:
        raise AdminUnavailable(f"cannot read the admin token: {exc}") from None
    if config.ADMIN_SOCKET:
        return Location(str(Path(config.ADMIN_SOCKET).absolute()), token, str(token_file))
    if config.ADMIN_PORT:
        return Location((config.ADMIN_HOST, config.ADMIN_PORT), token, str(token_file))
    record = addr_file(token_file)
    try:
        address = parse_address(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdminUnavailable(
            f"ADMIN_PORT is 0 and no running server has recorded its admin address in {record}: "
            "is the server running? (or give --admin HOST:PORT)"
        ) from None
    except (OSError, ValueError) as exc:
        raise AdminUnavailable(f"cannot read the admin address from {record}: {exc}") from None
    return Location(address, token, str(token_file))


def _unreachable(location: Location, exc: OSError) -> AdminUnavailable:
    if isinstance(exc, ConnectionRefusedError | FileNotFoundError):
        what = "admin socket" if isinstance(location.address, str) else "admin server"
        return AdminUnavailable(
            f"no Qactuar {what} at {location} ({exc.strerror or 'refused'}): is the server running?"
        )
    if isinstance(exc, TimeoutError):
        return AdminUnavailable(f"the admin server at {location} did not answer within {CONNECT_TIMEOUT:g} s")
    return AdminUnavailable(f"cannot connect to the admin server at {location}: {exc.strerror or exc}")


def _refused(location: Location, error: Error) -> AdminUnavailable:
    hint = f" (token from {location.token_file})" if "token" in error.error and location.token_file else ""
    return AdminUnavailable(f"the admin server at {location} refused the login: {error.error}{hint}")


def _lost(location: Location, error: Error | None) -> AdminUnavailable:
    why = f": {error.error}" if error else ""
    return AdminUnavailable(f"the admin server at {location} closed the connection{why}")


def _check_welcome(location: Location, message: Message) -> None:
    if isinstance(message, Error):
        raise _refused(location, message)
    if not isinstance(message, Welcome):
        raise AdminUnavailable(f"{location} answered the login with {type(message).__name__}, not a welcome")


def _result(response: Response) -> Any:
    if not response.ok:
        raise AdminError(response.error)
    return response.data


# --- blocking ----------------------------------------------------------------------------------------------


class SyncAdminClient:
    """A blocking admin connection: ``with SyncAdminClient(locate(config)) as admin: admin.request(...)``.

    ``timeout`` bounds each request (None: wait as long as the server takes, e.g. for ``reload``).
    Events of a subscription that arrive while a request waits are kept until the subscription is read.
    """

    def __init__(
        self, location: Location, *, timeout: float | None = 60.0, client_name: str = "qactuar-cli"
    ) -> None:
        self.location = location
        self.timeout = timeout
        self.client_name = client_name
        self._codec = Codec("client")
        self._sock: socket.socket | None = None
        self._events: deque[Event] = deque()
        self._next_id = 1

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        address = self.location.address
        try:
            if isinstance(address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(CONNECT_TIMEOUT)
                try:
                    sock.connect(address)
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise _unreachable(self.location, exc) from None
        self._sock = sock
        try:
            self._write(Hello(token=self.location.token, client=f"{self.client_name} {__version__}"))
            _check_welcome(self.location, self._read(CONNECT_TIMEOUT))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request(self, command: str, **args: Any) -> Any:
        """Run ``command``; its data, or AdminError with the server's message."""
        request_id = self._send_request(command, args)
        while True:
            message = self._read_reply(self.timeout)
            if isinstance(message, Event):
                self._events.append(message)
            elif message.id == request_id:
                return _result(message)

    def subscribe(self, topic: str, **args: Any) -> SyncSubscription:
        """Subscribe now; iterate the result for events (it blocks waiting for the next one)."""
        data = self.request("subscribe", topic=topic, **args)
        return SyncSubscription(self, int(data["sub"]))

    def _next_event(self, sub: int) -> Event:
        while True:
            for event in self._events:
                if event.sub == sub:
                    self._events.remove(event)
                    return event
            message = self._read_reply(None)
            if isinstance(message, Event):
                self._events.append(message)

    def _send_request(self, command: str, args: dict[str, Any]) -> int:
        request_id, self._next_id = self._next_id, self._next_id + 1
        self._write(Request(request_id, command, args))
        return request_id

    def _write(self, message: Hello | Request) -> None:
        if self._sock is None:
            raise AdminUnavailable(f"not connected to the admin server at {self.location}")
        try:
            self._sock.sendall(self._codec.encode(message))
        except OSError as exc:
            raise _unreachable(self.location, exc) from None

    def _read(self, timeout: float | None) -> Message:
        """The next message; AdminUnavailable when the connection ends or breaks, or nothing comes in time."""
        if self._sock is None:
            raise AdminUnavailable(f"not connected to the admin server at {self.location}")
        self._sock.settimeout(timeout)
        while True:
            try:
                message = self._codec.next_message()
            except ProtocolError as exc:
                raise AdminUnavailable(
                    f"the admin server at {self.location} broke the protocol: {exc}"
                ) from None
            if not isinstance(message, Signal):
                return message
            if message is CLOSED:
                raise _lost(self.location, None)
            try:
                data = self._sock.recv(RECV_BYTES)
            except TimeoutError:
                raise AdminUnavailable(
                    f"the admin server at {self.location} did not answer within {timeout:g} s"
                ) from None
            except OSError as exc:
                raise _unreachable(self.location, exc) from None
            self._codec.receive_data(data)

    def _read_reply(self, timeout: float | None) -> Response | Event:
        message = self._read(timeout)
        if isinstance(message, Error):
            raise _lost(self.location, message)
        if not isinstance(message, Response | Event):
            raise AdminUnavailable(f"the admin server at {self.location} sent an unexpected {message}")
        return message


class SyncSubscription:
    """Events of one subscription, blocking for each; ``close()`` unsubscribes."""

    def __init__(self, client: SyncAdminClient, sub: int) -> None:
        self.client = client
        self.sub = sub

    def __iter__(self) -> Iterator[Event]:
        while True:
            yield self.client._next_event(self.sub)

    def close(self) -> None:
        self.client.request("unsubscribe", sub=self.sub)


# --- asyncio -----------------------------------------------------------------------------------------------


class _End:
    """Queued last in a subscription: it ended, cleanly (error None) or because the connection did."""

    def __init__(self, error: AdminUnavailable | None) -> None:
        self.error = error


class Subscription:
    """The events of one ``AdminClient`` subscription: ``async for event in sub``; ``await sub.close()``."""

    def __init__(self, client: AdminClient, sub: int, queue_size: int) -> None:
        self.client = client
        self.sub = sub
        self._queue: asyncio.Queue[Event | _End] = asyncio.Queue()
        self._queue_size = queue_size
        self._lost = 0
        self._end: _End | None = None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._end is not None:
            return self._finish(self._end)
        item = await self._queue.get()
        if isinstance(item, _End):
            self._end = item
            return self._finish(item)
        if self._lost:
            item, self._lost = replace(item, dropped=item.dropped + self._lost), 0
        return item

    def _finish(self, end: _End) -> Event:
        if end.error is not None:
            raise end.error
        raise StopAsyncIteration

    def _deliver(self, event: Event) -> None:
        if self._queue.qsize() >= self._queue_size:
            lost = self._queue.get_nowait()
            self._lost += 1 + (lost.dropped if isinstance(lost, Event) else 0)
        self._queue.put_nowait(event)

    def _stop(self, error: AdminUnavailable | None) -> None:
        self._queue.put_nowait(_End(error))

    async def close(self) -> None:
        """Unsubscribe (if still connected) and end the iteration."""
        if self.client._subscriptions.pop(self.sub, None) is None:
            return
        self._stop(None)
        with contextlib.suppress(AdminUnavailable):
            await self.client.request("unsubscribe", sub=self.sub)


class AdminClient:
    """An asyncio admin connection: ``client = await AdminClient.connect(locate(config))``."""

    def __init__(
        self,
        location: Location,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        queue_size: int,
    ) -> None:
        self.location = location
        self._reader = reader
        self._writer = writer
        self._codec = Codec("client")
        self._queue_size = queue_size
        self._waiting: dict[int, asyncio.Future[Response]] = {}
        self._subscriptions: dict[int, Subscription] = {}
        self._next_id = 1
        self._ended: AdminUnavailable | None = None
        self._read_task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        location: Location,
        *,
        timeout: float = CONNECT_TIMEOUT,
        client_name: str = "qactuar-tui",
        queue_size: int = 256,
    ) -> AdminClient:
        """Connect and log in within ``timeout`` seconds; AdminUnavailable if that fails."""
        address = location.address
        try:
            async with asyncio.timeout(timeout):
                if isinstance(address, str):
                    reader, writer = await asyncio.open_unix_connection(address)
                else:
                    reader, writer = await asyncio.open_connection(*address)
                admin = cls(location, reader, writer, queue_size=queue_size)
                try:
                    await admin._login(client_name)
                except BaseException:
                    writer.close()
                    raise
        except OSError as exc:  # TimeoutError included
            raise _unreachable(location, exc) from None
        admin._read_task = asyncio.get_running_loop().create_task(admin._read_loop())
        return admin

    async def _login(self, client_name: str) -> None:
        hello = Hello(token=self.location.token, client=f"{client_name} {__version__}")
        self._writer.write(self._codec.encode(hello))
        try:
            _check_welcome(self.location, await self._read())
        except ProtocolError as exc:
            raise AdminUnavailable(f"the admin server at {self.location} broke the protocol: {exc}") from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def request(self, command: str, **args: Any) -> Any:
        """Run ``command``; its data, or AdminError with the server's message (AdminUnavailable if gone)."""
        if self._ended is not None:
            raise self._ended
        request_id, self._next_id = self._next_id, self._next_id + 1
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            self._writer.write(self._codec.encode(Request(request_id, command, args)))
            await self._writer.drain()
            return _result(await future)
        except OSError as exc:
            raise _unreachable(self.location, exc) from None
        finally:
            self._waiting.pop(request_id, None)

    async def subscribe(self, topic: str, **args: Any) -> Subscription:
        """Subscribe to ``topic`` ("stats", "log") with its arguments (log: route, level, logger, text)."""
        data = await self.request("subscribe", topic=topic, **args)
        subscription = Subscription(self, int(data["sub"]), self._queue_size)
        self._subscriptions[subscription.sub] = subscription
        return subscription

    async def close(self) -> None:
        self._end(None)
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task

    async def _read(self) -> Message:
        while True:
            message = self._codec.next_message()
            if not isinstance(message, Signal):
                return message
            if message is CLOSED:
                raise _lost(self.location, None)
            self._codec.receive_data(await self._reader.read(RECV_BYTES))

    async def _read_loop(self) -> None:
        error: AdminUnavailable | None
        try:
            while True:
                message = await self._read()
                if isinstance(message, Response):
                    future = self._waiting.get(message.id)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif isinstance(message, Event):
                    subscription = self._subscriptions.get(message.sub)
                    if subscription is not None:
                        subscription._deliver(message)
                elif isinstance(message, Error):
                    raise _lost(self.location, message)
        except AdminUnavailable as exc:
            error = exc
        except ProtocolError as exc:
            error = AdminUnavailable(f"the admin server at {self.location} broke the protocol: {exc}")
        except OSError as exc:
            error = _unreachable(self.location, exc)
        self._end(error)

    def _end(self, error: AdminUnavailable | None) -> None:
        """The connection is over: fail the waiting requests and end the subscriptions."""
        if self._ended is None:
            self._ended = error or AdminUnavailable(f"the connection to {self.location} was closed")
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(self._ended)
        subscriptions, self._subscriptions = self._subscriptions, {}
        for subscription in subscriptions.values():
            subscription._stop(error)
