"""Pre-fork: the generation supervises a pool of workers, each an event loop on the shared socket.

The generation process has imported the app table; each worker is forked from it and runs
lifespan startup itself (state is per process, as with uvicorn's workers), then accepts on
the inherited listening sockets.

Supervision, in one loop that wakes on signals (set_wakeup_fd) or every 0.1 s:
* reap with ``waitpid(-1, WNOHANG)``; a worker that dies is replaced, with exponential
  backoff when workers keep dying at boot (no respawn storm, no CPU spin);
* heartbeat: a worker whose slot has not beaten for WORKER_TIMEOUT gets SIGABRT
  (faulthandler prints where it was stuck), then SIGKILL, and is replaced;
* recycling: a worker that reached MAX_REQUESTS marks its slot; a replacement is started
  and only when it is READY is the old one told to drain (SIGTERM);
* TTIN/TTOU change the target size; TERM drains everything within GRACEFUL_TIMEOUT;
  QUIT stops at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import signal
import socket
import time
from dataclasses import dataclass, field

from qactuar.process.channel import read_messages
from qactuar.process.context import GenerationContext
from qactuar.process.exits import EXIT_BOOT_FAILED, EXIT_OK, describe_exit
from qactuar.process.runtime import ServingRuntime, fork_with_signals_blocked
from qactuar.process.serving import StopRequest, serve_until, start_apps
from qactuar.process.slots import SlotState, SlotTable
from qactuar.process.supervise import KILL_GRACE, Child, SignalQueue, check_heartbeats, kill_quietly, reap

# What stops a worker: blocked across its fork until it has reset the handlers it inherited.
WORKER_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR2}
server_log = logging.getLogger("qt_server")

MAX_WORKERS = 256
BOOT_GRACE = 2.0  # a worker that dies younger than this died "at boot"
MAX_BACKOFF = 10.0


@dataclass
class PoolState:
    target: int
    workers: dict[int, Child] = field(default_factory=dict)
    boot_failures: int = 0
    next_spawn_at: float = 0.0
    ever_ready: bool = False
    stopping: bool = False


class WorkerPool:
    def __init__(self, ctx: GenerationContext) -> None:
        config = ctx.config
        self.config = config
        self.table = ctx.table
        self.sockets = ctx.sockets
        self.channel = ctx.channel
        self.generation = ctx.number
        self.ssl_context = ctx.ssl_context
        self.slots = SlotTable(MAX_WORKERS)
        # Async mode under the master (--reload) is one worker: one process serving, as asked.
        workers = 1 if config.MODE == "async" else config.worker_count()
        self.state = PoolState(target=min(workers, MAX_WORKERS))
        self.signals = SignalQueue()

    # -- the supervisor loop -------------------------------------------------------------

    def run(self) -> int:
        self.signals.install(
            (
                signal.SIGTERM,
                signal.SIGINT,
                signal.SIGQUIT,
                signal.SIGUSR2,
                signal.SIGCHLD,
            )
        )
        state = self.state
        while True:
            for sig in self.signals.drain():
                code = self.handle_signal(sig)
                if code is not None:
                    return code
            self.reap()
            if not state.ever_ready and state.boot_failures >= max(3, state.target):
                server_log.error("Generation %d: workers keep failing at boot; giving up", self.generation)
                self.channel.send("gen", {"event": "failed", "reason": "workers keep failing at boot"})
                self.stop(graceful=False)
                return EXIT_BOOT_FAILED
            self.check_heartbeats()
            self.manage()
            self.report_ready()
            if self.signals.wait(0.1, also=self.channel.sock):
                self.read_control()

    def handle_signal(self, sig: int) -> int | None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stop(graceful=True)
            return EXIT_OK
        if sig == signal.SIGUSR2:  # retired by a newer generation: drain without cutting idle clients
            self.stop(graceful=True, lazy=True)
            return EXIT_OK
        if sig == signal.SIGQUIT:
            self.stop(graceful=False)
            return EXIT_OK
        return None

    def read_control(self) -> None:
        """Commands from the master on the channel (the only one: set the pool size)."""
        for message in read_messages(self.channel.sock, flags=socket.MSG_DONTWAIT):
            if message.get("k") == "scale":
                target = max(1, min(int(message.get("workers", 1)), MAX_WORKERS))
                if target != self.state.target:
                    server_log.info("Generation %d: scaling to %d workers", self.generation, target)
                    self.state.target = target

    def report_ready(self) -> None:
        state = self.state
        if state.ever_ready:
            return
        ready = sum(1 for w in state.workers.values() if self.slots.read(w.slot)[1] is SlotState.READY)
        if ready >= state.target:
            state.ever_ready = True
            self.channel.send("gen", {"event": "ready", "workers": sorted(state.workers)})

    def reap(self) -> None:
        for pid, status in reap():
            worker = self.state.workers.pop(pid, None)
            if worker is None:
                continue
            self.slots.release(worker.slot)
            age = time.monotonic() - worker.started
            self.channel.send("gen", {"event": "worker_exited", "pid": pid, "status": describe_exit(status)})
            if worker.retiring or self.state.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            server_log.warning(
                "Worker %d exited unexpectedly (%s) after %.1fs", pid, describe_exit(status), age
            )
            if age < BOOT_GRACE or code == EXIT_BOOT_FAILED:
                self.state.boot_failures += 1
                delay = min(MAX_BACKOFF, 0.1 * 2 ** min(self.state.boot_failures, 10))
                self.state.next_spawn_at = time.monotonic() + delay
                server_log.warning("Next worker start in %.1fs (backoff)", delay)
            else:
                self.state.boot_failures = 0

    def check_heartbeats(self) -> None:
        check_heartbeats(
            self.state.workers.values(),
            self.slots,
            self.config.WORKER_TIMEOUT,
            self.config.LIFESPAN_STARTUP_TIMEOUT,
        )

    def manage(self) -> None:
        state = self.state
        if state.stopping:
            return
        active = [w for w in state.workers.values() if not w.retiring]
        # Recycling: a worker that asked for a replacement gets one; it retires once that is READY.
        for worker in active:
            if self.slots.read(worker.slot)[1] is SlotState.RECYCLE and not worker.replacement_started:
                worker.replacement_started = True
                self.spawn()
        recycling = [w for w in active if w.replacement_started]
        fresh_ready = [
            w for w in active if not w.replacement_started and self.slots.read(w.slot)[1] is SlotState.READY
        ]
        for worker in recycling:
            if len(fresh_ready) >= state.target:
                self.retire(worker)
        active = [w for w in state.workers.values() if not w.retiring]
        serving = [w for w in active if not w.replacement_started]
        if len(serving) < state.target and time.monotonic() >= state.next_spawn_at:
            self.spawn()
        elif len(serving) > state.target:
            oldest = min(serving, key=lambda w: w.started)
            self.retire(oldest)

    def retire(self, worker: Child) -> None:
        worker.retiring = True
        kill_quietly(worker.pid, signal.SIGUSR2)

    def spawn(self) -> None:
        slot = self.slots.free_index()
        if slot is None:
            return
        jitter = self.config.MAX_REQUESTS_JITTER
        max_requests = self.config.MAX_REQUESTS + (random.randint(0, jitter) if jitter else 0)
        # Claimed before the fork: a fast child may mark itself READY before the parent runs again.
        self.slots.claim(slot, 0)
        pid = fork_with_signals_blocked(WORKER_STOP_SIGNALS)  # the worker unblocks them (run_worker)
        if pid == 0:
            code = 1
            try:
                code = run_worker(self, slot, max_requests)
            finally:
                os._exit(code)
        self.slots.set_pid(slot, pid)
        self.state.workers[pid] = Child(pid=pid, slot=slot, started=time.monotonic())
        self.channel.send("gen", {"event": "worker_started", "pid": pid})

    def stop(self, *, graceful: bool, lazy: bool = False) -> None:
        """Stop every worker: drain within GRACEFUL_TIMEOUT (then SIGKILL), or at once."""
        state = self.state
        state.stopping = True
        sig = (signal.SIGUSR2 if lazy else signal.SIGTERM) if graceful else signal.SIGQUIT
        for worker in state.workers.values():
            kill_quietly(worker.pid, sig)
        for sock in self.sockets:  # never accepted on here; the workers' copies close as they drain
            sock.close()
        deadline = time.monotonic() + (self.config.GRACEFUL_TIMEOUT + 2.0 if graceful else KILL_GRACE)
        while state.workers and time.monotonic() < deadline:
            self.reap()
            self.signals.wait(0.05)
            for sig_seen in self.signals.drain():
                if sig_seen == signal.SIGQUIT:
                    deadline = min(deadline, time.monotonic() + KILL_GRACE)
                    for worker in state.workers.values():
                        kill_quietly(worker.pid, signal.SIGQUIT)
        for worker in state.workers.values():
            server_log.warning("Worker %d did not stop in time: killing it", worker.pid)
            kill_quietly(worker.pid, signal.SIGKILL)
        while state.workers:
            self.reap()
            if state.workers:
                time.sleep(0.01)


# -- inside a worker ---------------------------------------------------------------------------


def run_worker(pool: WorkerPool, slot: int, max_requests: int) -> int:
    runtime = ServingRuntime(
        pool.config, pool.channel, pool.slots, slot, role="worker", generation=pool.generation
    )
    loop = runtime.after_fork()
    # Blocked across the fork; from here until the loop handles them (after lifespan startup) they
    # take their default action: a worker stopped while it starts just ends.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_STOP_SIGNALS)
    try:
        return loop.run_until_complete(_serve(pool, runtime, max_requests))
    finally:
        runtime.finish()


async def _serve(pool: WorkerPool, runtime: ServingRuntime, max_requests: int) -> int:
    config = pool.config
    ticker = asyncio.ensure_future(runtime.tick_forever())
    if not await start_apps(config, pool.table):
        await pool.table.shutdown()
        return EXIT_BOOT_FAILED
    stop = StopRequest()
    loop = asyncio.get_running_loop()
    shutdown = functools.partial(stop.request, close_idle=True)
    loop.add_signal_handler(signal.SIGTERM, shutdown)
    loop.add_signal_handler(signal.SIGINT, shutdown)
    loop.add_signal_handler(signal.SIGUSR2, functools.partial(stop.request, close_idle=False))
    loop.add_signal_handler(signal.SIGQUIT, os._exit, EXIT_OK)
    recorder = runtime.recorder
    assert recorder is not None

    served = 0

    def on_response(route: str, status: int, nbytes: int, seconds: float) -> None:
        nonlocal served
        recorder.record(route, status, nbytes, seconds)
        served += 1
        if served == max_requests and not stop.is_set():
            server_log.info(
                "Worker %d served %d requests (MAX_REQUESTS): asking for a replacement", os.getpid(), served
            )
            runtime.mark(SlotState.RECYCLE)

    def serving(server: object) -> None:
        runtime.server = server  # type: ignore[assignment]
        runtime.mark(SlotState.READY)

    await serve_until(
        config,
        pool.table,
        pool.sockets,
        stop,
        ssl_context=pool.ssl_context,
        on_response=on_response,
        on_serving=serving,
    )
    runtime.mark(SlotState.DRAINING)
    await pool.table.shutdown()
    ticker.cancel()
    return EXIT_OK
