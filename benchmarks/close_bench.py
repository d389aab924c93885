#!/usr/bin/env python3
"""New-connection-per-request benchmark (``Connection: close``), stdlib only.

``../shared/bench/run_bench.py`` drives wrk with a Lua script it generates
itself and has no option for extra request headers, so it cannot measure
``Connection: close`` loads. This script does, with the same server
templates, the same server lifecycle and the same CPU pinning:

* servers are started, watched and stopped by run_bench.py's own code
  (loaded from ``--bench-dir``): same ``{app} {host} {port} {python}
  {bench_dir}`` placeholders, same ``PYTHONPATH``/``PATH``, own session, RSS of
  the whole process tree, SIGTERM then SIGKILL of every pid of the tree;
* the load is a few client threads (``--threads``), each doing, per request:
  ``socket()`` + ``connect()``, send one request carrying
  ``Connection: close``, read the whole response, then wait for the server to
  close the connection (EOF). A server that answers but keeps the
  connection open is counted as an error (``not_closed``);
* every run is bounded by ``--duration`` *and* ``--requests`` (whichever
  comes first) plus the per-socket ``--timeout``;
* servers run interleaved over ``--rounds`` (A B, A B, ...); the first server
  is the ratio baseline.

The headline number is connections per second (= requests per second, one
request per connection). The client is Python, so at high rates it can be
the bottleneck: compare ``load CPU`` (client threads' CPU, % of one core)
and ``busy srv/load``. A row whose client is near 100% of a core is a lower
bound for that server.

Run it with the bench venv's interpreter (the servers are looked up in its
``bin/``)::

    /work/bench-venv/bin/python benchmarks/close_bench.py --app hello \\
        --label qactuar-postfork --server 'qactuar serve {app} --mode postfork --host {host} --port {port}' \\
        --duration 5 --rounds 1 --json /tmp/close.json

Exit status: 0 if every server had at least one successful run, 1 otherwise,
2 on usage errors, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import importlib.util
import ipaddress
import json
import math
import os
import platform
import shlex
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_BENCH_DIR = REPO_DIR.parent / "shared" / "bench"
HARNESS_NAMES = (
    "BENCH_DIR",
    "Server",
    "ServerError",
    "free_port",
    "server_env",
    "parse_cpus",
    "per_cpu_times",
    "cpu_busy_pct",
    "resolve_app",
    "expected_body_size",
)


def load_harness(bench_dir: Path) -> ModuleType:
    """Import run_bench.py from bench_dir (its server lifecycle code is reused)."""
    path = bench_dir / "run_bench.py"
    if not path.is_file():
        sys.exit(f"close_bench: {path} not found (use --bench-dir)")
    spec = importlib.util.spec_from_file_location("run_bench", path)
    if spec is None or spec.loader is None:
        sys.exit(f"close_bench: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [name for name in HARNESS_NAMES if not hasattr(module, name)]
    if missing:
        sys.exit(f"close_bench: {path} lacks {', '.join(missing)}; this script needs updating")
    return module


# --------------------------------------------------------------------------
# Load generation


class BadResponseError(Exception):
    """The response could not be read as one HTTP/1.1 response."""


def build_request(method: str, path: str, host: str, port: int, body_size: int) -> bytes:
    fmt_host = f"[{host}]" if ":" in host else host
    lines = [f"{method} {path} HTTP/1.1", f"Host: {fmt_host}:{port}", "Connection: close"]
    if body_size:
        lines += ["Content-Type: application/octet-stream", f"Content-Length: {body_size}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head + b"x" * body_size


def _recv_more(sock: socket.socket, buf: bytearray) -> bool:
    chunk = sock.recv(65536)
    if not chunk:
        return False
    buf += chunk
    return True


def exchange(host: str, port: int, request: bytes, timeout: float) -> tuple[int, int]:
    """One request on a fresh connection; waits for the server's close.

    Returns (status, body bytes). Raises OSError (connect/read/timeout),
    BadResponseError, or ConnectionError("not_closed") if the server sends more
    data instead of closing.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(request)
        buf = bytearray()
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if not _recv_more(sock, buf):
                raise BadResponseError("connection closed before the end of the headers")
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        try:
            status = int(head[0].split(" ", 2)[1])
        except (IndexError, ValueError) as exc:
            raise BadResponseError(f"bad status line {head[0]!r}") from exc
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        start = end + 4
        eof = False
        if "content-length" in headers:
            want = start + int(headers["content-length"])
            while len(buf) < want:
                if not _recv_more(sock, buf):
                    raise BadResponseError("connection closed before the end of the body")
            body = len(buf) - start
        elif "chunked" in headers.get("transfer-encoding", ""):
            while not buf.endswith(b"0\r\n\r\n"):
                if not _recv_more(sock, buf):
                    raise BadResponseError("connection closed before the last chunk")
            body = _dechunked_size(bytes(buf[start:]))
        else:  # delimited by the close itself
            while _recv_more(sock, buf):
                pass
            eof = True
            body = len(buf) - start
        if not eof:
            try:
                extra = sock.recv(1)
            except TimeoutError:
                extra = b"?"  # still open after the timeout
            except ConnectionResetError:
                extra = b""  # closed with a reset: closed all the same
            if extra:
                raise ConnectionError("not_closed")
        return status, body


def _dechunked_size(data: bytes) -> int:
    size, pos = 0, 0
    while True:
        eol = data.index(b"\r\n", pos)
        n = int(data[pos:eol].split(b";", 1)[0], 16)
        if n == 0:
            return size
        size += n
        pos = eol + 2 + n + 2


@dataclass
class LoadStats:
    requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu_s: float = 0.0
    body_mismatch: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def classify(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError) and exc.args == ("not_closed",):
        return "not_closed"
    if isinstance(exc, ConnectionRefusedError):
        return "connect"
    if isinstance(exc, BadResponseError):
        return "bad_response"
    return "read"


def run_load(
    host: str,
    port: int,
    request: bytes,
    *,
    expected: int | None,
    threads: int,
    duration: float,
    max_requests: int,
    timeout: float,
    cpus: set[int] | None,
) -> tuple[LoadStats, float]:
    """Run `threads` client threads for at most `duration` s / `max_requests` in all.

    -> (merged stats, wall seconds).
    """
    quota = math.ceil(max_requests / threads)
    per_thread = [LoadStats() for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(stats: LoadStats) -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)  # this thread only (Linux)
        barrier.wait()
        cpu0 = time.thread_time()
        end = deadline[0]
        lat = stats.latencies_ms
        while stats.requests < quota and time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                status, body = exchange(host, port, request, timeout)
            except (OSError, BadResponseError, ValueError) as exc:
                stats.error(classify(exc))
                continue
            lat.append((time.perf_counter() - t0) * 1000.0)
            stats.requests += 1
            if not 200 <= status < 300:
                stats.error("non2xx")
            elif expected is not None and body != expected:
                stats.body_mismatch += 1
        stats.client_cpu_s = time.thread_time() - cpu0

    pool = [threading.Thread(target=worker, args=(s,), daemon=True) for s in per_thread]
    for t in pool:
        t.start()
    deadline[0] = time.monotonic() + duration
    t_start = time.monotonic()
    barrier.wait()
    for t in pool:
        t.join(duration + timeout * 3 + 10)
    wall = time.monotonic() - t_start
    merged = LoadStats()
    for s in per_thread:
        merged.requests += s.requests
        merged.latencies_ms.extend(s.latencies_ms)
        merged.client_cpu_s += s.client_cpu_s
        merged.body_mismatch += s.body_mismatch
        for kind, n in s.errors.items():
            merged.errors[kind] = merged.errors.get(kind, 0) + n
    return merged, wall


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, math.ceil(pct / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


# --------------------------------------------------------------------------
# One measurement


def measure(
    rb: ModuleType, label: str, template: str, *, args: argparse.Namespace, workdir: Path, round_no: int
) -> dict[str, Any]:
    host = args.host
    port: int = rb.free_port(host)
    cmd = template.format(
        app=args.app,
        host=host,
        port=port,
        python=shlex.quote(sys.executable),
        bench_dir=shlex.quote(str(rb.BENCH_DIR)),
    )
    result: dict[str, Any] = {"server": label, "round": round_no, "port": port, "command": cmd, "ok": False}
    tag = f"{label}#r{round_no}"
    log_path = workdir / f"close-{label.replace('/', '_')}-r{round_no}.log"
    server = rb.Server(
        shlex.split(cmd), str(rb.BENCH_DIR), rb.server_env(), args.server_cpus_set, log_path, host, port
    )
    request = build_request(args.method, args.path, host, port, args.body_size)
    expected = rb.expected_body_size(args.app, args.body_size)
    try:
        t0 = time.monotonic()
        server.start(args.sample_interval)
        server.wait_ready(args.startup_timeout)
        result["startup_s"] = round(time.monotonic() - t0, 3)
        result["rss_ready_mib"] = round(server.tree.sample() / 2**20, 1)

        # One request of the benchmark's shape: status, body size, and the close.
        check: dict[str, Any] = {"expected_bytes": expected}
        try:
            status, body = exchange(host, port, request, 30.0)
            check.update(
                status=status,
                body_bytes=body,
                closed=True,
                ok=200 <= status < 300 and (expected is None or body == expected),
            )
        except (OSError, BadResponseError, ValueError) as exc:
            check.update(ok=False, closed=classify(exc) != "not_closed", error=repr(exc))
        result["check"] = check
        if not check["ok"]:
            log(f"  WARNING {tag}: check request: {check}")

        if args.warmup > 0:
            run_load(
                host,
                port,
                request,
                expected=expected,
                threads=args.threads,
                duration=args.warmup,
                max_requests=args.requests,
                timeout=args.timeout,
                cpus=args.load_cpus_set,
            )

        cpu0, stat0 = server.tree.cpu_seconds(), rb.per_cpu_times()
        stats, wall = run_load(
            host,
            port,
            request,
            expected=expected,
            threads=args.threads,
            duration=args.duration,
            max_requests=args.requests,
            timeout=args.timeout,
            cpus=args.load_cpus_set,
        )
        srv_cpu = server.tree.cpu_seconds() - cpu0
        stat1 = rb.per_cpu_times()
        lat = sorted(stats.latencies_ms)
        non2xx = stats.errors.get("non2xx", 0)
        socket_errors = sum(n for k, n in stats.errors.items() if k != "non2xx")
        result.update(
            {
                "ok": stats.requests > 0,
                "requests": stats.requests,
                "seconds": wall,
                "rps": stats.requests / wall if wall else 0.0,
                "p50_ms": percentile(lat, 50),
                "p90_ms": percentile(lat, 90),
                "p99_ms": percentile(lat, 99),
                "p999_ms": percentile(lat, 99.9),
                "lat_mean_ms": statistics.fmean(lat) if lat else 0.0,
                "lat_max_ms": lat[-1] if lat else 0.0,
                "non2xx": non2xx,
                "socket_errors": socket_errors,
                "errors_detail": dict(stats.errors),
                "body_mismatch": stats.body_mismatch,
                "server_cpu_pct": 100.0 * srv_cpu / wall if wall else 0.0,
                "load_cpu_pct": 100.0 * stats.client_cpu_s / wall if wall else 0.0,
                "cpu_busy_pct": {str(c): rb.cpu_busy_pct(stat0, stat1, [c]) for c in sorted(stat1)},
                "server_cores_busy_pct": rb.cpu_busy_pct(stat0, stat1, args.server_cpus_set or ()),
                "load_cores_busy_pct": rb.cpu_busy_pct(stat0, stat1, args.load_cpus_set or ()),
            }
        )
        if not result["ok"]:
            result["error"] = f"no successful request; errors {stats.errors}"
            log(f"  ERROR {tag}: {result['error']}")
    except (rb.ServerError, OSError, http.client.HTTPException, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"  ERROR {tag}: {exc}")
    finally:
        result.update(server.stop(args.stop_timeout))
        result["peak_rss_mib"] = round(server.tree.peak_rss / 2**20, 1) if server.tree else None
        if result.get("forced_kill") or result.get("leftover_killed"):
            log(
                f"  NOTE {tag}: forced_kill={result['forced_kill']} "
                f"leftover_killed={result['leftover_killed']}"
            )
    if result["ok"]:
        log(
            f"  {tag}: {result['rps']:,.0f} conn/s  p50 {result['p50_ms']:.2f} ms  "
            f"p99 {result['p99_ms']:.2f} ms  errors {result['errors_detail'] or 0}  "
            f"rss {result['peak_rss_mib']} MiB  cpu srv {result['server_cpu_pct']:.0f}% "
            f"client {result['load_cpu_pct']:.0f}%"
        )
    return result


# --------------------------------------------------------------------------
# Summary (same keys as run_bench.py's summaries where the meaning is the same)


def summarize(label: str, template: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r.get("ok")]
    s: dict[str, Any] = {"server": label, "command_template": template, "runs_ok": len(ok), "runs": len(runs)}
    if not ok:
        return s

    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in ok)

    def med_opt(key: str) -> float | None:
        values = [float(r[key]) for r in ok if r.get(key) is not None]
        return statistics.median(values) if values else None

    rps = [float(r["rps"]) for r in ok]
    s.update(
        {
            "rps_median": med("rps"),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "rps_spread_pct": 100.0 * (max(rps) - min(rps)) / med("rps") if med("rps") else 0.0,
            "p50_ms_median": med("p50_ms"),
            "p99_ms_median": med("p99_ms"),
            "non2xx_total": sum(r["non2xx"] for r in ok),
            "socket_errors_total": sum(r["socket_errors"] for r in ok),
            "errors_detail_total": _sum_dicts(r["errors_detail"] for r in ok),
            "body_mismatch_total": sum(r["body_mismatch"] for r in ok),
            "peak_rss_mib_median": med("peak_rss_mib"),
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in ok),
            "server_cpu_pct_median": med("server_cpu_pct"),
            "load_cpu_pct_median": med("load_cpu_pct"),
            "server_cores_busy_pct_median": med_opt("server_cores_busy_pct"),
            "load_cores_busy_pct_median": med_opt("load_cores_busy_pct"),
            "check_ok": all(r.get("check", {}).get("ok") for r in ok)
            and not any(r["body_mismatch"] for r in ok),
        }
    )
    return s


def _sum_dicts(dicts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _busy_cell(s: dict[str, Any]) -> str:
    a, b = s.get("server_cores_busy_pct_median"), s.get("load_cores_busy_pct_median")
    if a is None and b is None:
        return "-"
    return f"{'-' if a is None else f'{a:.0f}%'}/{'-' if b is None else f'{b:.0f}%'}"


def format_table(summaries: list[dict[str, Any]]) -> str:
    base = summaries[0].get("rps_median") if summaries else None
    head = [
        "server",
        "conn/s med",
        "min",
        "max",
        "spread",
        "ratio",
        "p50 ms",
        "p99 ms",
        "errors",
        "RSS MiB",
        "srv CPU",
        "load CPU",
        "busy srv/load",
        "check",
    ]
    rows = []
    for s in summaries:
        if "rps_median" not in s:
            rows.append([s["server"], "FAILED"] + [""] * (len(head) - 2))
            continue
        errors = s["non2xx_total"] + s["socket_errors_total"]
        rows.append(
            [
                s["server"],
                f"{s['rps_median']:,.0f}",
                f"{s['rps_min']:,.0f}",
                f"{s['rps_max']:,.0f}",
                f"{s['rps_spread_pct']:.1f}%",
                f"{s['rps_median'] / base:.2f}x" if base else "n/a",
                f"{s['p50_ms_median']:.2f}",
                f"{s['p99_ms_median']:.2f}",
                str(errors),
                f"{s['peak_rss_mib_median']:.1f}",
                f"{s['server_cpu_pct_median']:.0f}%",
                f"{s['load_cpu_pct_median']:.0f}%",
                _busy_cell(s),
                "ok" if s["check_ok"] else "MISMATCH",
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    sep = "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep] + [line(r) for r in rows])


# --------------------------------------------------------------------------
# CLI


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Connection: close benchmark (one new TCP connection per request) of ASGI servers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--server",
        action="append",
        required=True,
        metavar="CMD_TEMPLATE",
        help="server command template with {app} {host} {port} (also {python}, {bench_dir}); "
        "repeat for each server. The first is the ratio baseline.",
    )
    p.add_argument("--label", action="append", default=[], help="name of the --server at the same position")
    p.add_argument("--app", default="hello", help="ASGI app; a bare name means apps:<name>")
    p.add_argument("--threads", "-t", type=int, default=4, help="client threads (= concurrent connections)")
    p.add_argument("--duration", "-d", type=float, default=10.0, help="measured seconds per run (<= 600)")
    p.add_argument(
        "--requests",
        "-n",
        type=int,
        default=100_000,
        help="at most this many requests per measured run (and per warm-up)",
    )
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run (<= 60, discarded)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--timeout", type=float, default=5.0, help="per-socket-operation timeout (s)")
    p.add_argument(
        "--body-size",
        type=int,
        default=None,
        help="request body bytes (POST); default 1024 for the echo app, else 0",
    )
    p.add_argument("--method", default=None, help="HTTP method; default POST with a body, else GET")
    p.add_argument("--path", default="/", help="request path")
    p.add_argument("--host", default="127.0.0.1", help="loopback address")
    p.add_argument("--server-cpus", default=None, help="pin servers to these CPUs, e.g. '0'")
    p.add_argument("--load-cpus", default=None, help="pin the client threads to these CPUs, e.g. '1'")
    p.add_argument("--startup-timeout", type=float, default=30.0)
    p.add_argument("--stop-timeout", type=float, default=10.0)
    p.add_argument("--pause", type=float, default=1.0, help="idle seconds between runs")
    p.add_argument("--sample-interval", type=float, default=0.2, help="RSS sampling period (s)")
    p.add_argument(
        "--bench-dir", type=Path, default=DEFAULT_BENCH_DIR, help="directory of run_bench.py and apps.py"
    )
    p.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write all runs and summaries here"
    )
    p.add_argument("--log-dir", type=Path, default=None, help="keep the servers' logs here")
    return p


def validate(args: argparse.Namespace, rb: ModuleType, p: argparse.ArgumentParser) -> None:
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        p.error(f"--host must be a loopback address, got {args.host!r}")
    if args.host == "localhost":
        args.host = "127.0.0.1"
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 60:
        p.error("--duration must be in (0, 600] and --warmup in [0, 60]")
    if not 1 <= args.threads <= 256 or args.rounds < 1 or args.requests < 1:
        p.error("--threads must be 1..256, --rounds and --requests >= 1")
    if not 0 < args.timeout <= 60:
        p.error("--timeout must be in (0, 60]")
    if len(args.label) > len(args.server):
        p.error("more --label than --server")
    args.app = rb.resolve_app(args.app)
    if args.body_size is None:
        args.body_size = 1024 if args.app.partition(":")[2] == "echo" else 0
    if args.method is None:
        args.method = "POST" if args.body_size else "GET"
    args.server_cpus_set = rb.parse_cpus(args.server_cpus)
    args.load_cpus_set = rb.parse_cpus(args.load_cpus)
    for cpus in (args.server_cpus_set, args.load_cpus_set):
        if cpus and not cpus <= os.sched_getaffinity(0):
            p.error(f"CPUs {sorted(cpus)} are not all available to this process")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rb = load_harness(args.bench_dir.resolve())
    validate(args, rb, parser)

    labels = list(args.label) + [""] * (len(args.server) - len(args.label))
    specs = [
        (label or f"{i + 1}:{shlex.split(t)[0].rsplit('/', 1)[-1]}", t)
        for i, (label, t) in enumerate(zip(labels, args.server, strict=True))
    ]

    tmp = tempfile.TemporaryDirectory(prefix="close-bench-")
    workdir = args.log_dir if args.log_dir else Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)

    env_info = {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus_available": sorted(os.sched_getaffinity(0)),
        "load_generator": "close_bench.py (Python sockets, Connection: close)",
    }
    config = {
        k: getattr(args, k)
        for k in (
            "app",
            "threads",
            "duration",
            "requests",
            "warmup",
            "rounds",
            "timeout",
            "body_size",
            "method",
            "path",
            "host",
            "server_cpus",
            "load_cpus",
        )
    }
    config["connection"] = "close"
    log(
        f"app={args.app} {args.method} body={args.body_size}B Connection: close threads={args.threads} "
        f"d={args.duration}s (max {args.requests} requests) warmup={args.warmup}s rounds={args.rounds} "
        f"server_cpus={args.server_cpus or 'any'} load_cpus={args.load_cpus or 'any'}"
    )

    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in specs}
    interrupted = False
    # SIGTERM -> KeyboardInterrupt, so the server being measured is stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for rnd in range(1, args.rounds + 1):
            log(f"round {rnd}/{args.rounds}")
            for label, template in specs:
                runs[label].append(measure(rb, label, template, args=args, workdir=workdir, round_no=rnd))
                time.sleep(args.pause)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: reporting what was measured")

    summaries = [summarize(label, template, runs[label]) for label, template in specs]
    base = summaries[0].get("rps_median")
    for s in summaries:
        s["ratio_vs_first"] = s["rps_median"] / base if base and "rps_median" in s else None

    print(
        f"app={args.app} method={args.method} body={args.body_size}B connection=close "
        f"client_threads={args.threads} duration={args.duration}s max_requests={args.requests} "
        f"warmup={args.warmup}s rounds={args.rounds} server_cpus={args.server_cpus or 'any'} "
        f"load_cpus={args.load_cpus or 'any'}"
    )
    print(format_table(summaries))
    print(
        "conn/s = completed request/response/close cycles per second (one request per connection); "
        "ratio = median / first server's median; load CPU = client threads' CPU, % of one core"
    )

    if args.json:
        args.json.write_text(
            json.dumps(
                {"environment": env_info, "config": config, "summaries": summaries, "runs": runs},
                indent=2,
                default=str,
            )
        )
        log(f"wrote {args.json}")
    tmp.cleanup()
    if interrupted:
        return 130
    return 1 if any(s["runs_ok"] == 0 for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
