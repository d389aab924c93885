"""Peak RSS per serving process, Qactuar pre-fork against uvicorn --workers, same app and load.

run_bench.py reports the RSS of a whole process tree; this reports each process, so a
worker's memory can be compared with a worker's (the master/generation of Qactuar and the
supervisor of uvicorn are shown on their own lines).

    /work/bench-venv/bin/python benchmarks/worker_rss.py --requests 20000

Load is bounded by count and time; every server is stopped by pid (its process group).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parents[2] / "shared" / "bench"
SERVERS = {
    "qactuar-prefork-2w": "qactuar serve {app} --mode prefork --workers 2 --host 127.0.0.1 --port {port} "
    "--no-access-log --no-uvloop --log-level warning --admin-port 0",
    "uvicorn-2w-h11": "uvicorn {app} --host 127.0.0.1 --port {port} --workers 2 --http h11 --loop asyncio "
    "--log-level warning --no-access-log",
    "uvicorn-2w-httptools": "uvicorn {app} --host 127.0.0.1 --port {port} --workers 2 --http httptools "
    "--loop uvloop --log-level warning --no-access-log",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer")


def load(port: int, requests: int, seconds: float, threads: int = 8) -> None:
    deadline = time.monotonic() + seconds
    per_thread = requests // threads

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(per_thread):
            if time.monotonic() > deadline:
                return
            conn.request("GET", "/")
            conn.getresponse().read()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 10)


def measure(
    label: str, template: str, app: str, requests: int, seconds: float
) -> list[tuple[str, int, float]]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{BENCH_DIR}:{BENCH_DIR.parent}"}
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    proc = subprocess.Popen(
        shlex.split(template.format(app=app, port=port)),
        cwd=BENCH_DIR,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peaks: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                for process in [root, *root.children(recursive=True)]:
                    rss = process.memory_info().rss / 2**20
                    role = (
                        "top"
                        if process.pid == proc.pid
                        else f"depth {len(process.parents()) - len(root.parents())}"
                    )
                    previous = peaks.get(process.pid, (role, 0.0))[1]
                    peaks[process.pid] = (role, max(previous, rss))
            except psutil.Error:
                pass
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    try:
        wait_ready(port)
        sampler.start()
        load(port, requests, seconds)
        time.sleep(0.3)
    finally:
        stop.set()
        if sampler.is_alive():
            sampler.join(5)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return [(role, pid, rss) for pid, (role, rss) in sorted(peaks.items())]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--app", default="apps:hello")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print("| server | process | pid | peak RSS MiB |")
    print("| --- | --- | --: | --: |")
    for label, template in SERVERS.items():
        for role, pid, rss in measure(label, template, args.app, args.requests, args.seconds):
            print(f"| {label} | {role} | {pid} | {rss:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
