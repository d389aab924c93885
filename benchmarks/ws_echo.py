#!/usr/bin/env python3
"""WebSocket echo throughput: N clients each echo M messages through a server; messages/s.

Every server runs the same raw ASGI echo app (``app`` in this file, stdlib only). The load is
the websockets library's asyncio client, in this process: all N clients connect and echo
``--warmup`` messages each (untimed), then each sends a message and waits for its echo, M
times, all N at once. The timed phase is
bounded by ``--max-seconds``; a run that hits it reports what completed.

Besides messages/s the table shows the server's CPU time per message (``/proc``, whole
process tree): with only one core for the clients the client can be the bottleneck, and
CPU per message still compares the servers fairly then.

Pinning: ``--server-cpus 0 --load-cpus 1`` runs the server under ``taskset`` and this process
(the clients) on the other core.

Run it with the bench venv, from anywhere::

    /work/bench-venv/bin/python benchmarks/ws_echo.py --clients 32 --messages 2000 --size 64 \\
        --server-cpus 0 --load-cpus 1 \\
        --label qactuar-async --server 'qactuar serve {app} --mode async --host {host} --port {port}
            --admin-port 0 --no-uvloop --no-access-log --log-level warning' \\
        --label uvicorn-wsproto --server 'uvicorn {app} --host {host} --port {port} --ws wsproto
            --loop asyncio --log-level warning --no-access-log'

Exit status: 0 when every run completed every message, 1 otherwise, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
APP = "ws_echo:app"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# The app every server runs


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


# --------------------------------------------------------------------------
# Servers


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants still running."""
    total = 0.0
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        todo.extend(children.get(current, []))
    return total


class Server:
    def __init__(self, template: str, host: str, cpus: str | None, log: Path) -> None:
        self.host = host
        self.port = free_port(host)
        argv = shlex.split(template.format(app=APP, host=host, port=self.port))
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            argv, cwd=HERE, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start listening")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


# --------------------------------------------------------------------------
# Load


@dataclass
class Result:
    label: str
    completed: int
    expected: int
    seconds: float
    server_cpu: float
    errors: int

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_message(self) -> float:
        return self.server_cpu / self.completed * 1e6 if self.completed else 0.0


async def load(uri: str, args: argparse.Namespace, pid: int, label: str) -> Result:
    from websockets.asyncio.client import connect

    compression = "deflate" if args.compression else None
    payload: str | bytes = "x" * args.size if args.text else os.urandom(args.size)
    clients = [
        await connect(uri, compression=compression, max_size=None, ping_interval=None, open_timeout=10)
        for _ in range(args.clients)
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.max_seconds
    errors = 0

    async def echo(ws: Any, count: int) -> int:
        nonlocal errors
        done = 0
        try:
            for _ in range(count):
                await ws.send(payload)
                if await ws.recv() != payload:
                    errors += 1
                done += 1
                if loop.time() > deadline:
                    break
        except Exception:
            errors += 1
        return done

    await asyncio.gather(*(echo(ws, args.warmup) for ws in clients))  # untimed: both sides warm up
    errors = 0
    deadline = loop.time() + args.max_seconds
    cpu_before = tree_cpu_seconds(pid)
    started = loop.time()
    counts = await asyncio.gather(*(echo(ws, args.messages) for ws in clients))
    elapsed = loop.time() - started
    cpu = tree_cpu_seconds(pid) - cpu_before
    await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
    return Result(label, sum(counts), args.clients * args.messages, elapsed, cpu, errors)


def run_one(label: str, template: str, args: argparse.Namespace, log_dir: Path) -> Result:
    server = Server(template, args.host, args.server_cpus, log_dir / f"{label}.log")
    try:
        server.wait_ready(args.startup_timeout)
        uri = f"ws://{args.host}:{server.port}/"
        return asyncio.run(asyncio.wait_for(load(uri, args, server.proc.pid, label), args.max_seconds + 30))
    except Exception as exc:
        print(f"{label}: FAILED: {exc!r} (log: {server.log.name})", file=sys.stderr)
        return Result(label, 0, args.clients * args.messages, 0.0, 0.0, 1)
    finally:
        server.stop()


# --------------------------------------------------------------------------
# CLI


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server", action="append", required=True, help="command template: {app} {host} {port}"
    )
    parser.add_argument(
        "--label", action="append", default=[], help="name of the --server at the same position"
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--messages", type=int, default=2000, help="messages echoed per client")
    parser.add_argument("--warmup", type=int, default=200, help="untimed messages per client first")
    parser.add_argument("--size", type=int, default=64, help="message size in bytes")
    parser.add_argument("--text", action="store_true", help="text messages (default: binary)")
    parser.add_argument("--compression", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds per server")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="bound on each timed phase")
    parser.add_argument("--startup-timeout", type=float, default=20.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--server-cpus", help="taskset CPU list for the server, e.g. 0")
    parser.add_argument("--load-cpus", help="CPU list for the clients (this process), e.g. 1")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/ws_echo_logs"))
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if len(args.label) > len(args.server):
        parser.error("more --label than --server")
    args.label += [f"server{i}" for i in range(len(args.label), len(args.server))]
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.load_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.load_cpus.split(",")})
    args.log_dir.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    for _ in range(args.rounds):
        for label, template in zip(args.label, args.server, strict=True):
            results.append(run_one(label, template, args, args.log_dir))
    print(
        f"\n{args.clients} clients x {args.messages} messages of {args.size} B "
        f"({'text' if args.text else 'binary'}, compression {'on' if args.compression else 'off'}), "
        f"server CPUs {args.server_cpus or 'any'}, client CPUs {args.load_cpus or 'any'}\n"
    )
    print("| server | messages/s | server CPU µs/msg | completed | errors |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in results:
        cpu = f"{r.cpu_us_per_message:.1f}"
        print(f"| {r.label} | {r.rate:,.0f} | {cpu} | {r.completed}/{r.expected} | {r.errors} |")
    if args.rounds > 1:
        print("\nMedian of the rounds:\n")
        print("| server | messages/s | server CPU µs/msg |")
        print("| --- | ---: | ---: |")
        for label in args.label:
            mine = [r for r in results if r.label == label]
            rate = statistics.median(r.rate for r in mine)
            cpu = statistics.median(r.cpu_us_per_message for r in mine)
            print(f"| {label} | {rate:,.0f} | {cpu:.1f} |")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) | {"rate": r.rate} for r in results], indent=2))
    return 0 if all(r.completed == r.expected and not r.errors for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
