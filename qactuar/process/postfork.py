"""Post-fork (the seed's first model): a fresh child process for every connection.

The generation accepts; each accepted connection is served by a child forked for it
(keep-alive included), which exits when the connection ends.  At most MAX_PROCESSES
children live at once: at the cap the generation stops calling accept(), so new
connections wait in the kernel backlog instead of forking without bound.

Lifespan: startup runs ONCE, in the generation, before any child is forked, and shutdown
runs there when the generation stops.  Children inherit the startup ``state`` copy-on-write,
so values set at startup reach every request.  Running lifespan per child would mean a
startup per connection; the price of running it once is that objects bound to the
generation's event loop (a connection pool, say) cannot be used from a child's loop: such
resources should be created lazily, per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import select
import signal
import socket
import time

from qactuar.http.protocol import HTTPProtocol
from qactuar.process.context import GenerationContext
from qactuar.process.exits import EXIT_NOTHING_TO_SERVE, EXIT_OK, describe_exit
from qactuar.process.runtime import ServingRuntime, fork_with_signals_blocked
from qactuar.process.serving import StopRequest, start_apps
from qactuar.process.slots import SlotState, SlotTable
from qactuar.process.supervise import KILL_GRACE, Child, SignalQueue, check_heartbeats, kill_quietly, reap
from qactuar.server import Server

server_log = logging.getLogger("qt_server")
# Blocked from just before a child is forked until it has its own handlers: a handover's SIGUSR2 (or a
# shutdown's SIGTERM) that reaches a child in between is delivered late, never with the default action.
CHILD_STOP_SIGNALS = {signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR2}


class Acceptor:
    def __init__(self, ctx: GenerationContext) -> None:
        self.config = ctx.config
        self.table = ctx.table
        self.sockets = ctx.sockets
        self.channel = ctx.channel
        self.generation = ctx.number
        self.ssl_context = ctx.ssl_context
        self.cap = ctx.config.MAX_PROCESSES
        self.slots = SlotTable(self.cap)
        self.children: dict[int, Child] = {}
        self.signals = SignalQueue()
        self.served = 0
        self.pid = os.getpid()

    def run(self) -> int:
        lifespan_loop = asyncio.new_event_loop()
        if not lifespan_loop.run_until_complete(start_apps(self.config, self.table)):
            self.channel.send("gen", {"event": "failed", "reason": "every app failed to start"})
            return EXIT_NOTHING_TO_SERVE
        self.signals.install(
            (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR2, signal.SIGCHLD, signal.SIGTTIN)
        )
        self.channel.send("gen", {"event": "ready", "workers": []})
        try:
            stop = self.accept_until_stopped()
            self.stop_children(stop)
        finally:
            lifespan_loop.run_until_complete(self.table.shutdown())
        return EXIT_OK

    def accept_until_stopped(self) -> int:
        """Accept and fork until a stop signal; returns it."""
        for sock in self.sockets:
            sock.setblocking(False)
        while True:
            for sig in self.signals.drain():
                if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR2):
                    return sig
            self.reap()
            check_heartbeats(
                self.children.values(), self.slots, self.config.WORKER_TIMEOUT, self.config.REQUEST_TIMEOUT
            )
            watched: list[socket.socket | SignalQueue] = [self.signals]
            if len(self.children) < self.cap:
                watched.extend(self.sockets)
            with contextlib.suppress(InterruptedError):
                readable, _, _ = select.select(watched, [], [], 0.5)
            for ready in readable:
                if isinstance(ready, socket.socket):
                    self.accept_from(ready)

    def accept_from(self, sock: socket.socket) -> None:
        while len(self.children) < self.cap:
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                server_log.warning("accept() failed: %s", exc)
                return
            self.fork_child(conn)

    def fork_child(self, conn: socket.socket) -> None:
        slot = self.slots.free_index()
        if slot is None:  # cannot happen below the cap; refuse rather than lose track of a child
            conn.close()
            return
        self.slots.claim(slot, 0)
        pid = fork_with_signals_blocked(CHILD_STOP_SIGNALS)  # unblocked once the child handles them
        if pid == 0:
            code = 1
            try:
                code = run_child(self, conn, slot)
            finally:
                os._exit(code)
        conn.close()
        self.slots.set_pid(slot, pid)
        self.children[pid] = Child(pid=pid, slot=slot, started=time.monotonic())

    def reap(self) -> None:
        for pid, status in reap():
            child = self.children.pop(pid, None)
            if child is None:
                continue
            self.slots.release(child.slot)
            self.channel.send("gen", {"event": "child_exited", "pid": pid, "status": describe_exit(status)})
            code = os.waitstatus_to_exitcode(status)
            if code not in (EXIT_OK,):
                server_log.warning("Connection child %d ended with %s", pid, describe_exit(status))

    def stop_children(self, sig: int) -> None:
        for sock in self.sockets:
            sock.close()
        forward = signal.SIGTERM if sig == signal.SIGINT else sig
        for child in self.children.values():
            kill_quietly(child.pid, forward)
        grace = KILL_GRACE if sig == signal.SIGQUIT else self.config.GRACEFUL_TIMEOUT + 2.0
        deadline = time.monotonic() + grace
        while self.children and time.monotonic() < deadline:
            self.reap()
            self.signals.wait(0.05)
            if signal.SIGQUIT in self.signals.drain():
                deadline = min(deadline, time.monotonic() + KILL_GRACE)
        for child in self.children.values():
            kill_quietly(child.pid, signal.SIGKILL)
        while self.children:
            self.reap()
            if self.children:
                time.sleep(0.01)


# -- inside a connection child -----------------------------------------------------------------


def run_child(acceptor: Acceptor, conn: socket.socket, slot: int) -> int:
    for sock in acceptor.sockets:
        sock.close()
    runtime = ServingRuntime(
        acceptor.config, acceptor.channel, acceptor.slots, slot, role="child", generation=acceptor.generation
    )
    loop = runtime.after_fork()
    try:
        return loop.run_until_complete(_serve_connection(acceptor, runtime, conn))
    finally:
        runtime.finish()


async def _serve_connection(acceptor: Acceptor, runtime: ServingRuntime, conn: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    recorder = runtime.recorder
    assert recorder is not None
    server = Server(
        acceptor.config, acceptor.table, ssl_context=acceptor.ssl_context, on_response=recorder.record
    )
    runtime.server = server
    ended = loop.create_future()

    def connection_lost() -> None:
        if not ended.done():
            ended.set_result(None)

    server.on_connection_lost = connection_lost
    stop = StopRequest()
    loop.add_signal_handler(signal.SIGTERM, functools.partial(stop.request, close_idle=True))
    loop.add_signal_handler(signal.SIGUSR2, functools.partial(stop.request, close_idle=False))
    loop.add_signal_handler(signal.SIGQUIT, os._exit, EXIT_OK)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_STOP_SIGNALS)
    await server.start([])
    ticker = asyncio.ensure_future(runtime.tick_forever())
    runtime.mark(SlotState.READY)
    conn.setblocking(False)
    await loop.connect_accepted_socket(lambda: HTTPProtocol(server), conn, ssl=acceptor.ssl_context)
    stopping = asyncio.ensure_future(stop.event.wait())
    await asyncio.wait([ended, stopping], return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        await server.drain(acceptor.config.GRACEFUL_TIMEOUT, close_idle=stop.close_idle)
    elif server.tasks:
        # The client left; let the app notice (http.disconnect) and finish its task.
        await asyncio.wait(list(server.tasks), timeout=acceptor.config.GRACEFUL_TIMEOUT)
    stopping.cancel()
    ticker.cancel()
    return EXIT_OK
