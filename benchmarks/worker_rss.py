"""Peak RSS per serving process: pre-fork servers with the same app and load, one after the other.

run_bench.py reports the RSS of a whole process tree; this reports each process, so a worker's
memory can be compared with a worker's. A *worker* is a process of the server's tree that held an
established client connection during the load (so a master, a generation, a supervisor or
multiprocessing's resource tracker never counts as one); the others are listed too.

    /work/bench-venv/bin/python benchmarks/worker_rss.py --requests 20000 --seconds 20 \\
        --label qactuar --server 'qactuar serve {app} --workers 2 --host {host} --port {port}' \\
        --label uvicorn --server 'uvicorn {app} --workers 2 --host {host} --port {port}'

`run.py --set worker-rss` runs it with run.py's templates. The load (keep-alive GETs from a few
threads) is bounded by count and time; every server is stopped by its process group.

Exit status: 0 if every server was measured, 1 otherwise, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

DEFAULT_BENCH_DIR = Path(__file__).resolve().parents[2] / "shared" / "bench"
HOST = "127.0.0.1"


class StartError(RuntimeError):
    """The server exited or did not answer."""


@dataclass
class Peak:
    role: str
    rss_mib: float = 0.0
    served: bool = False


@dataclass
class Sampler:
    """Peak RSS of every process of a tree, and which of them held a client connection."""

    root: int
    port: int
    peaks: dict[int, Peak] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        root = psutil.Process(self.root)
        depth0 = len(root.parents())
        for process in [root, *root.children(recursive=True)]:
            try:
                rss = process.memory_info().rss / 2**20
                role = "top" if process.pid == self.root else f"depth {len(process.parents()) - depth0}"
                peak = self.peaks.setdefault(process.pid, Peak(role))
                peak.rss_mib = max(peak.rss_mib, rss)
                peak.served = peak.served or self.holds_client(process)
            except psutil.Error:
                continue

    def holds_client(self, process: psutil.Process) -> bool:
        return any(
            c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
            for c in process.net_connections(kind="tcp")
        )

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.sample()
            self.stop.wait(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"server exited with code {proc.returncode}: {last_line(log)}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=1)
            conn.request("GET", "/")
            conn.getresponse().read()
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    raise StartError(f"server did not answer within {timeout:.0f} s: {last_line(log)}")


def load(port: int, requests: int, seconds: float, threads: int = 8) -> int:
    """Keep-alive GETs from `threads` threads, at most `requests` in all and `seconds` long. -> errors."""
    deadline = time.monotonic() + seconds
    per_thread = requests // threads
    errors = [0] * threads

    def run(index: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        for _ in range(per_thread):
            if time.monotonic() > deadline:
                return
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                conn.close()

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 10)
    return sum(errors)


def stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue


def measure(template: str, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """Start the server, load it, stop it. -> per-process peaks, or an "error"."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(args.bench_dir), str(args.bench_dir.parent)])}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            shlex.split(template.format(app=args.app, host=HOST, port=port)),
            cwd=args.bench_dir,
            env=env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sampler = Sampler(proc.pid, port)
    thread = threading.Thread(target=sampler.run, daemon=True)
    try:
        wait_ready(proc, port, log)
        thread.start()
        errors = load(port, args.requests, args.seconds)
        time.sleep(0.3)
    except StartError as exc:
        return {"error": f"failed to start: {exc}"}
    finally:
        sampler.stop.set()
        if thread.is_alive():
            thread.join(5)
        stop(proc)
    return summarize(sampler.peaks, errors)


def summarize(peaks: dict[int, Peak], errors: int) -> dict[str, Any]:
    processes = [
        {"pid": pid, "role": p.role, "served": p.served, "peak_rss_mib": round(p.rss_mib, 1)}
        for pid, p in sorted(peaks.items())
    ]
    workers = [p.rss_mib for p in peaks.values() if p.served]
    out: dict[str, Any] = {"processes": processes, "load_errors": errors, "workers": len(workers)}
    if not workers:
        out["error"] = "no process held a client connection"
        return out
    out["worker_peak_rss_mib_max"] = round(max(workers), 1)
    out["worker_peak_rss_mib_median"] = round(statistics.median(workers), 1)
    return out


def markdown(summaries: list[dict[str, Any]]) -> str:
    lines = ["| server | process | pid | worker | peak RSS MiB |", "| --- | --- | --: | --- | --: |"]
    for s in summaries:
        if "processes" not in s:
            lines.append(f"| {s['server']} | {s['error']} | | | |")
        for p in s.get("processes", []):
            worker = "yes" if p["served"] else ""
            lines.append(f"| {s['server']} | {p['role']} | {p['pid']} | {worker} | {p['peak_rss_mib']:.1f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--server",
        action="append",
        required=True,
        metavar="CMD_TEMPLATE",
        help="server command template with {app} {host} {port}; repeat for each server",
    )
    p.add_argument("--label", action="append", default=[], help="name of the --server at the same position")
    p.add_argument("--app", default="hello", help="ASGI app; a bare name means apps:<name>")
    p.add_argument("--requests", type=int, default=20000, help="at most this many requests per server")
    p.add_argument("--seconds", type=float, default=20.0, help="at most this long a load per server")
    p.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH_DIR, help="directory of apps.py")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the results here")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.label) > len(args.server):
        parser.error("more --label than --server")
    if args.requests < 8 or not 0 < args.seconds <= 600:
        parser.error("--requests must be >= 8 and --seconds in (0, 600]")
    if ":" not in args.app:
        args.app = f"apps:{args.app}"
    args.bench_dir = args.bench_dir.resolve()
    labels = args.label + [f"{i + 1}" for i in range(len(args.label), len(args.server))]
    summaries = []
    with tempfile.TemporaryDirectory(prefix="worker-rss-") as tmp:
        for label, template in zip(labels, args.server, strict=True):
            result = measure(template, args, Path(tmp) / "server.log")
            summaries.append({"server": label, "command_template": template, **result})
            print(f"{label}: {result.get('error') or 'workers: ' + str(result['workers'])}", file=sys.stderr)
    print(markdown(summaries))
    if args.json:
        config = {"app": args.app, "requests": args.requests, "seconds": args.seconds}
        args.json.write_text(json.dumps({"config": config, "summaries": summaries}, indent=2) + "\n")
    return 1 if any("error" in s for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
