#!/usr/bin/env python3
"""Run Qactuar's benchmark comparison sets and write Markdown/JSON reports.

Every set is measured with the shared harness (``<repo>/../shared/bench``):
``run_bench.py`` (wrk, keep-alive) for the throughput sets, this directory's
``close_bench.py`` (one new connection per request) for the
``Connection: close`` set and ``worker_rss.py`` for the peak RSS per worker.
For each app of a set, *all* of the set's servers run in one harness
invocation (interleaved rounds), so the ratios in a table come from one run.
The harness takes one app per invocation, so a set with three apps makes
three invocations.

Run it with the bench venv's interpreter, from anywhere::

    /work/bench-venv/bin/python benchmarks/run.py --all      # every set, then summary.md/.json
    /work/bench-venv/bin/python benchmarks/run.py --set core
    /work/bench-venv/bin/python benchmarks/run.py --set prefork --set postfork-close
    /work/bench-venv/bin/python benchmarks/run.py --list

Output per set: ``<out-dir>/<set>.md`` (table, machine, command) and
``<out-dir>/<set>.json`` (summary plus the harness's full JSON per app); the
harness's own JSON file per app is also kept as ``<set>.<app>.raw.json``.
``--all`` also writes ``<out-dir>/summary.md`` and ``summary.json``: every
target of the benchmark issue with its measured ratio (see ``summary.py``);
``readme_table.py`` copies it into the README.

Exit status: 0 if every row is valid; 1 if a server failed (no successful
run, some failed rounds, wrong response, or errors under load) or the
harness failed; 2 on usage errors; 130 when interrupted. A target that is
not met does not change the exit status.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from summary import failure_reason, md_table, write_summary

BENCH_PKG_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_PKG_DIR.parent
DEFAULT_BENCH_DIR = REPO_DIR.parent / "shared" / "bench"
DEFAULT_OUT_DIR = BENCH_PKG_DIR / "results"
CLOSE_BENCH = BENCH_PKG_DIR / "close_bench.py"
WORKER_RSS = BENCH_PKG_DIR / "worker_rss.py"
VERSIONED = ("qactuar", "uvicorn", "httptools", "uvloop", "granian", "h11", "psutil")

# --------------------------------------------------------------------------
# Server templates ({app} {host} {port} are filled in by the harness)

PURE = "--http h11 --no-uvloop"
FAST = "--http httptools --uvloop"
QUIET = "--no-access-log --log-level warning"
ACCESS_LOG = "--access-log --log-level info"  # qt_access logs at INFO: level warning would hide it


# A free admin port and a throwaway state directory: never clash with another qactuar on the machine.
ISOLATED = "--admin-port 0 --state-dir /tmp/qactuar-bench-state"


def _qactuar(mode: str, path: str = PURE, logging: str = QUIET) -> str:
    return f"qactuar serve {{app}} {mode} --host {{host}} --port {{port}} {path} {logging} {ISOLATED}"


def _uvicorn(options: str) -> str:
    return f"uvicorn {{app}} --host {{host}} --port {{port}} {options} --log-level warning --no-access-log"


def _granian(options: str) -> str:
    return f"granian --interface asgi --host {{host}} --port {{port}} {options} --log-level warning {{app}}"


TEMPLATES: dict[str, str] = {
    "qactuar-async": _qactuar("--mode async"),
    "qactuar-prefork-1w": _qactuar("--mode prefork --workers 1"),
    "qactuar-async-fast": _qactuar("--mode async", FAST),
    "qactuar-prefork-1w-fast": _qactuar("--mode prefork --workers 1", FAST),
    "qactuar-async-log": _qactuar("--mode async", PURE, ACCESS_LOG),
    "qactuar-async-fast-log": _qactuar("--mode async", FAST, ACCESS_LOG),
    "qactuar-prefork-2w": _qactuar("--mode prefork --workers 2"),
    "qactuar-prefork-2w-fast": _qactuar("--mode prefork --workers 2", FAST),
    "qactuar-postfork": _qactuar("--mode postfork"),
    "uvicorn-h11": _uvicorn("--http h11 --loop asyncio"),
    "uvicorn-httptools-uvloop": _uvicorn("--http httptools --loop uvloop"),
    "uvicorn-2w-h11": _uvicorn("--workers 2 --http h11 --loop asyncio"),
    "uvicorn-2w-httptools": _uvicorn("--workers 2 --http httptools --loop uvloop"),
    "granian-1w": _granian("--workers 1"),
}


@dataclass(frozen=True)
class BenchSet:
    name: str
    description: str
    harness: str  # "wrk" (run_bench.py), "close" (close_bench.py) or "rss" (worker_rss.py)
    apps: tuple[str, ...]
    servers: tuple[str, ...]  # labels in TEMPLATES; the first is the ratio baseline
    pinned: bool  # --server-cpus 0 --load-cpus 1
    hello_only: tuple[str, ...] = ()  # more servers, measured on the hello app only

    @property
    def all_servers(self) -> tuple[str, ...]:
        return self.servers + self.hello_only

    def servers_for(self, app: str) -> tuple[str, ...]:
        return self.all_servers if app == "hello" else self.servers


SETS: dict[str, BenchSet] = {
    s.name: s
    for s in (
        BenchSet(
            "core",
            "One process on one core: qactuar (async, and prefork with one worker) on the pure path "
            "(h11, asyncio) and on the fast path (httptools, uvloop) against uvicorn's matching "
            "configurations; on hello also granian (one worker) and qactuar with its access log on.",
            "wrk",
            ("hello", "echo", "stream"),
            (
                "qactuar-async",
                "qactuar-prefork-1w",
                "uvicorn-h11",
                "qactuar-async-fast",
                "qactuar-prefork-1w-fast",
                "uvicorn-httptools-uvloop",
            ),
            pinned=True,
            hello_only=("granian-1w", "qactuar-async-log", "qactuar-async-fast-log"),
        ),
        BenchSet(
            "prefork",
            "Two workers, unpinned (workers and wrk share both cores): qactuar prefork on the pure and "
            "the fast path against uvicorn with 2 workers and the same parser, and qactuar postfork "
            "(keep-alive).",
            "wrk",
            ("hello", "echo"),
            (
                "qactuar-prefork-2w",
                "uvicorn-2w-h11",
                "qactuar-prefork-2w-fast",
                "uvicorn-2w-httptools",
                "qactuar-postfork",
            ),
            pinned=False,
        ),
        BenchSet(
            "postfork-close",
            "A new TCP connection per request (`Connection: close`), unpinned: "
            "qactuar postfork against qactuar prefork (2 workers). Measured with close_bench.py, "
            "because run_bench.py cannot add request headers.",
            "close",
            ("hello",),
            ("qactuar-postfork", "qactuar-prefork-2w"),
            pinned=False,
        ),
        BenchSet(
            "worker-rss",
            "Peak RSS of each serving process, 2 workers, unpinned: qactuar prefork against uvicorn "
            "with 2 workers and the same parser. Measured with worker_rss.py (keep-alive GETs from 8 "
            "Python threads, one round), because run_bench.py reports whole process trees.",
            "rss",
            ("hello",),
            ("qactuar-prefork-2w", "uvicorn-2w-h11", "qactuar-prefork-2w-fast", "uvicorn-2w-httptools"),
            pinned=False,
        ),
    )
}

PINNING = ("--server-cpus", "0", "--load-cpus", "1")


# --------------------------------------------------------------------------
# Environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _output(argv: list[str], *, check: bool = True) -> str | None:
    """stdout + stderr of a short command, or None if it could not run (or failed, with check)."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=check)
    except (OSError, subprocess.SubprocessError):
        return None
    return (res.stdout + res.stderr).strip()


_VERSIONS_CODE = """
import importlib.metadata as m, json, sys
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
print(json.dumps({"python": sys.version.split()[0], **{n: version(n) for n in sys.argv[1:]}}))
"""


def versions(python: str) -> dict[str, str | None]:
    """Python and package versions of the bench interpreter, wrk's, and qactuar's commit."""
    found = _output([python, "-c", _VERSIONS_CODE, *VERSIONED])
    out: dict[str, str | None] = json.loads(found) if found else {"python": None}
    wrk = _output(["wrk", "-v"], check=False)  # wrk -v exits with status 1
    out["wrk"] = wrk.splitlines()[0].partition(" Copyright")[0].removeprefix("wrk ") if wrk else None
    out["qactuar_commit"] = _output(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    return out


def machine_info(python: str) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpus_available": sorted(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "python": _output([python, "-c", "import sys; print(sys.version.split()[0])"]) or "unknown",
        "python_executable": python,
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------
# Running one set


@dataclass
class AppRun:
    app: str
    servers: list[str]
    argv: list[str]
    raw_json: Path
    exit_code: int | None = None
    result: dict[str, Any] | None = None


def harness_argv(
    bset: BenchSet, app: str, servers: list[str], args: argparse.Namespace, raw_json: Path
) -> list[str]:
    pairs = [arg for label in servers for arg in ("--label", label, "--server", TEMPLATES[label])]
    tail = ["--app", app, *pairs, "--json", str(raw_json)]
    if bset.harness == "rss":
        return [
            args.python,
            str(WORKER_RSS),
            "--bench-dir",
            str(args.bench_dir),
            "--requests",
            str(args.rss_requests),
            "--seconds",
            str(args.rss_seconds),
            *tail,
        ]
    timing = ["--duration", str(args.duration), "--rounds", str(args.rounds), "--warmup", str(args.warmup)]
    if bset.pinned:
        timing += PINNING
    if bset.harness == "wrk":
        return [
            args.python,
            str(args.bench_dir / "run_bench.py"),
            "--connections",
            str(args.connections),
            *timing,
            *tail,
        ]
    return [
        args.python,
        str(CLOSE_BENCH),
        "--bench-dir",
        str(args.bench_dir),
        "--threads",
        str(args.close_threads),
        "--requests",
        str(args.close_requests),
        *timing,
        *tail,
    ]


def time_budget(bset: BenchSet, args: argparse.Namespace, n_servers: int) -> float:
    """Upper bound on one harness invocation (its own watchdogs should end it well before)."""
    if bset.harness == "rss":
        return float(n_servers * (args.rss_seconds + 30 + 10 + 20 + 30) + 60)  # startup, join, stop, slack
    per_run = args.duration + args.warmup + 30 + 10 + 5 + 1 + 30  # startup, stop, grace, pause, slack
    return float(args.rounds * n_servers * per_run + 60)


def run_harness(argv: list[str], budget: float) -> int:
    """Run the harness with inherited stdout/stderr, bounded by budget seconds.

    The harness runs in its own process group, so a terminal Ctrl-C reaches
    only run.py, which forwards exactly one SIGINT (the harness then stops the
    server it is measuring and reports); the same on timeout. SIGKILL follows
    if it has not exited 60 s later.
    """
    print("+ " + shlex.join(argv), flush=True)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, process_group=0)
    try:
        return proc.wait(budget)
    except subprocess.TimeoutExpired:
        print(f"run.py: harness exceeded {budget:.0f} s, interrupting it", file=sys.stderr, flush=True)
        proc.send_signal(signal.SIGINT)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return 124


# --------------------------------------------------------------------------
# Reporting


def _rps_unit(bset: BenchSet) -> str:
    return "conn/s" if bset.harness == "close" else "req/s"


def _busy(s: dict[str, Any]) -> str:
    a, b = s.get("server_cores_busy_pct_median"), s.get("load_cores_busy_pct_median")
    if a is None and b is None:
        return "-"
    return f"{'-' if a is None else f'{a:.0f}%'}/{'-' if b is None else f'{b:.0f}%'}"


def row_problems(app: str, s: dict[str, Any]) -> list[str]:
    where = f"{s['server']} / {app}"
    if "runs_ok" not in s:  # worker_rss.py
        out = [f"{where}: {s['error']}"] if "error" in s else []
        if s.get("load_errors"):
            out.append(f"{where}: {s['load_errors']} errors under load")
        return out
    if s["runs_ok"] == 0:
        return [f"{where}: FAILED (no successful run)"]
    out = []
    if s["runs_ok"] < s["runs"]:
        out.append(f"{where}: only {s['runs_ok']} of {s['runs']} rounds succeeded")
    if not s.get("check_ok", False):
        out.append(f"{where}: response check MISMATCH (wrong status or body size)")
    errors = s.get("non2xx_total", 0) + s.get("socket_errors_total", 0)
    if errors:
        out.append(
            f"{where}: {errors} errors under load (non2xx {s.get('non2xx_total', 0)}, "
            f"socket {s.get('socket_errors_total', 0)}); the row does not count"
        )
    return out


def table_head(bset: BenchSet) -> list[str]:
    if bset.harness == "rss":
        return ["app", "server", "process", "pid", "worker", "peak RSS MiB"]
    head = [
        "app", "server", f"{_rps_unit(bset)} median", "min-max", "spread", "ratio vs first",
        "p50 ms", "p99 ms", "errors", "RSS MiB", "busy srv/load", "check",
    ]  # fmt: skip
    if bset.harness == "close":
        head.insert(-1, "client CPU")
    return head


def table_alignment(bset: BenchSet) -> tuple[int, tuple[int, ...]]:
    """(left, also_left) of md_table for the set's table: text columns left, figures right."""
    return (3, (4,)) if bset.harness == "rss" else (2, ())


def rss_rows(run: AppRun, summaries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for s in summaries:
        if "processes" not in s:
            rows.append([run.app, s["server"], f"FAILED: {s.get('error', '')}", "", "", ""])
        for p in s.get("processes", []):
            worker = "yes" if p["served"] else ""
            rows.append([run.app, s["server"], p["role"], str(p["pid"]), worker, f"{p['peak_rss_mib']:.1f}"])
    return rows


def rate_row(bset: BenchSet, app: str, s: dict[str, Any], base: float | None) -> list[str]:
    errors = s["non2xx_total"] + s["socket_errors_total"]
    err_cell = (
        str(errors)
        if not errors
        else f"{errors} (non2xx {s['non2xx_total']}, sock {s['socket_errors_total']})"
    )
    check = "ok" if s["check_ok"] else "MISMATCH"
    if s["runs_ok"] < s["runs"]:
        check += f", {s['runs_ok']}/{s['runs']} runs"
    row = [
        app,
        s["server"],
        f"{s['rps_median']:,.0f}",
        f"{s['rps_min']:,.0f}-{s['rps_max']:,.0f}",
        f"{s['rps_spread_pct']:.1f}%",
        f"{s['rps_median'] / base:.2f}x" if base else "n/a",
        f"{s['p50_ms_median']:.2f}",
        f"{s['p99_ms_median']:.2f}",
        err_cell,
        f"{s['peak_rss_mib_median']:.1f}",
        _busy(s),
    ]
    if bset.harness == "close":
        row.append(f"{s.get('load_cpu_pct_median', 0.0):.0f}%")
    return [*row, check]


def summary_rows(bset: BenchSet, runs: list[AppRun]) -> list[list[str]]:
    width = len(table_head(bset))
    rows = []
    for run in runs:
        result = run.result or {}
        summaries = result.get("summaries", [])
        if not summaries:
            rows.append([run.app, "(harness produced no result)"] + [""] * (width - 2))
        elif bset.harness == "rss":
            rows += rss_rows(run, summaries)
        else:
            base = summaries[0].get("rps_median")
            for s in summaries:
                if "rps_median" in s:
                    rows.append(rate_row(bset, run.app, s, base))
                else:
                    reason = failure_reason(result.get("runs", {}).get(s["server"], []))
                    rows.append([run.app, s["server"], f"FAILED: {reason}"] + [""] * (width - 3))
    return rows


def peer_ratios(runs: list[AppRun]) -> list[dict[str, Any]]:
    """Every qactuar row against every non-qactuar row of the same app (median / median)."""
    out = []
    for run in runs:
        ok = [s for s in (run.result or {}).get("summaries", []) if "rps_median" in s]
        ours = [s for s in ok if s["server"].startswith("qactuar")]
        peers = [s for s in ok if not s["server"].startswith("qactuar")]
        for q in ours:
            for p in peers:
                overlap = q["rps_min"] <= p["rps_max"] and p["rps_min"] <= q["rps_max"]
                out.append(
                    {
                        "app": run.app,
                        "qactuar": q["server"],
                        "peer": p["server"],
                        "ratio": q["rps_median"] / p["rps_median"] if p["rps_median"] else None,
                        "ranges_overlap": overlap,
                    }
                )
    return out


def option_argv(harnesses: set[str], args: argparse.Namespace) -> list[str]:
    """The options that shape the measurements of these harnesses, as run.py arguments."""
    argv = []
    if harnesses & {"wrk", "close"}:
        argv += ["--duration", str(args.duration), "--rounds", str(args.rounds), "--warmup", str(args.warmup)]
    if "wrk" in harnesses:
        argv += ["--connections", str(args.connections)]
    if "close" in harnesses:
        argv += ["--close-threads", str(args.close_threads), "--close-requests", str(args.close_requests)]
    if "rss" in harnesses:
        argv += ["--rss-requests", str(args.rss_requests), "--rss-seconds", str(args.rss_seconds)]
    if args.python != sys.executable:
        argv += ["--python", args.python]
    if args.bench_dir != DEFAULT_BENCH_DIR.resolve():
        argv += ["--bench-dir", str(args.bench_dir)]
    if args.only:
        argv += ["--only", ",".join(args.only)]
    return argv


def reproduce_command(selection: list[str], harnesses: set[str], args: argparse.Namespace) -> str:
    argv = [sys.executable, "benchmarks/run.py", *selection, *option_argv(harnesses, args)]
    return f"cd {shlex.quote(str(REPO_DIR))} && {shlex.join(argv)}"


def set_command(bset: BenchSet, args: argparse.Namespace) -> str:
    return reproduce_command(["--set", bset.name], {bset.harness}, args)


def load_description(bset: BenchSet, args: argparse.Namespace) -> str:
    if bset.harness == "rss":
        return (
            f"worker_rss.py, keep-alive GETs from 8 Python threads, at most {args.rss_requests} requests "
            f"and {args.rss_seconds} s per server, one round"
        )
    rounds = f"{args.duration} s measured after {args.warmup} s warm-up, {args.rounds} interleaved round(s)"
    if bset.harness == "wrk":
        return f"wrk, {args.connections} keep-alive connections, 1 thread; {rounds}"
    return (
        f"close_bench.py, {args.close_threads} client threads, one new connection per request "
        f"(`Connection: close`), at most {args.close_requests} requests; {rounds}"
    )


def table_legend(bset: BenchSet) -> str:
    if bset.harness == "rss":
        return (
            "peak RSS: the highest RSS of each process while it served; worker: the process held a "
            "client connection during the load (masters, generations, supervisors and multiprocessing's "
            "resource tracker never do)."
        )
    close = (
        "conn/s: request + response + server-side close cycles per second, one connection each; "
        "client CPU: the Python client threads' CPU in % of one core (near 100%: the client is "
        "the limit and the row is a lower bound). "
    )
    return (
        f"{_rps_unit(bset)}: median over rounds; min-max: range over rounds; spread = (max - min) / median; "
        "errors = non-2xx + socket errors (must be 0); RSS: peak of the whole process tree; "
        "busy srv/load: how busy the server / load CPUs were (pinned sets only). "
        + (close if bset.harness == "close" else "")
        + 'How to read these numbers: `../shared/bench/README.md` ("Reading the table") and '
        "`benchmarks/README.md`."
    )


def peer_section(runs: list[AppRun]) -> list[str]:
    ratios = peer_ratios(runs)
    if not ratios:
        return []
    rows = [
        [
            r["app"],
            r["qactuar"],
            r["peer"],
            "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            "overlap: not separated" if r["ranges_overlap"] else "no overlap",
        ]
        for r in ratios
    ]
    return [
        "",
        "## qactuar vs peers",
        "",
        md_table(["app", "qactuar", "peer", "qactuar/peer", "min-max ranges"], rows, left=3),
        "",
        "qactuar/peer = qactuar's median / the peer's median, from the same invocation. "
        "If the ranges overlap, this run does not separate the two (add rounds/duration).",
    ]


def render_markdown(
    bset: BenchSet,
    runs: list[AppRun],
    *,
    info: dict[str, Any],
    args: argparse.Namespace,
    date: str,
    problems: list[str],
) -> str:
    pin = (
        "server pinned to CPU 0, load generator to CPU 1"
        if bset.pinned
        else "unpinned (servers and load generator share all CPUs)"
    )
    lines = [
        f"# Benchmark set `{bset.name}`",
        "",
        bset.description,
        "",
        f"- Date (UTC): {date}",
        f"- Machine: nproc {info['nproc']} (available CPUs {info['cpus_available']}), "
        f"CPU model `{info['cpu_model']}`, Python {info['python']}, {info['platform']}",
        f"- Load: {load_description(bset, args)}",
        f"- Pinning: {pin}",
        f'- Ratio baseline ("ratio vs first"): `{runs[0].servers[0]}`',
        f"- Reproduce: `{set_command(bset, args)}`",
        "",
        md_table(table_head(bset), summary_rows(bset, runs), *table_alignment(bset)),
        "",
        table_legend(bset),
        *peer_section(runs),
    ]
    if problems:
        lines += ["", "## Problems", "", *(f"- {p}" for p in problems)]
    lines += [
        "",
        "<details><summary>Harness commands</summary>",
        "",
        "```sh",
        *(shlex.join(r.argv) for r in runs),
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def set_report(
    bset: BenchSet, runs: list[AppRun], *, info: dict[str, Any], args: argparse.Namespace, date: str
) -> dict[str, Any]:
    problems: list[str] = []
    for run in runs:
        if run.exit_code is None:
            problems.append(f"{run.app}: not run (interrupted)")
            continue
        if run.result is None:
            problems.append(f"{run.app}: harness wrote no readable JSON")
        if run.exit_code not in (0, 1):  # 1 = some server failed (reported per row)
            problems.append(f"{run.app}: harness exited with status {run.exit_code}")
        for s in (run.result or {}).get("summaries", []):
            problems += row_problems(run.app, s)
    return {
        "set": bset.name,
        "description": bset.description,
        "date_utc": date,
        "machine": info,
        "command": set_command(bset, args),
        "options": {
            "duration": args.duration if bset.harness != "rss" else None,
            "rounds": args.rounds if bset.harness != "rss" else 1,
            "warmup": args.warmup if bset.harness != "rss" else None,
            "connections": args.connections if bset.harness == "wrk" else None,
            "close_threads": args.close_threads if bset.harness == "close" else None,
            "close_requests": args.close_requests if bset.harness == "close" else None,
            "rss_requests": args.rss_requests if bset.harness == "rss" else None,
            "rss_seconds": args.rss_seconds if bset.harness == "rss" else None,
            "pinned": bset.pinned,
            "harness": bset.harness,
        },
        "servers": [
            {"label": label, "template": TEMPLATES[label]}
            for label in dict.fromkeys(label for r in runs for label in r.servers)
        ],
        "peer_ratios": peer_ratios(runs),
        "ok": not problems,
        "problems": problems,
        "apps": {
            r.app: {
                "servers": r.servers,
                "harness_command": r.argv,
                "exit_code": r.exit_code,
                "result": r.result,
            }
            for r in runs
        },
    }


def plan_runs(bset: BenchSet, kept: list[str], args: argparse.Namespace) -> list[AppRun]:
    runs = []
    for app in bset.apps:
        servers = [s for s in bset.servers_for(app) if s in kept]
        if servers:
            raw = args.out_dir / f"{bset.name}.{app}.raw.json"
            runs.append(AppRun(app, servers, harness_argv(bset, app, servers, args, raw), raw))
    return runs


def run_set(bset: BenchSet, kept: list[str], args: argparse.Namespace) -> dict[str, Any] | None:
    """Run one set, write <set>.md and <set>.json. -> the report (None on --dry-run)."""
    runs = plan_runs(bset, kept, args)
    print(f"\n=== set {bset.name}: {', '.join(kept)} on {', '.join(r.app for r in runs)}", flush=True)
    if args.dry_run:
        for r in runs:
            print(shlex.join(r.argv))
        return None
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for r in runs:
        r.raw_json.unlink(missing_ok=True)  # never report a stale file
    info = machine_info(args.python)
    for run in runs:
        run.exit_code = run_harness(run.argv, time_budget(bset, args, len(run.servers)))
        try:
            run.result = json.loads(run.raw_json.read_text())
        except (OSError, ValueError) as exc:
            print(f"run.py: {run.app}: no readable harness JSON ({exc})", file=sys.stderr)
        if run.exit_code == 130:
            break

    report = set_report(bset, runs, info=info, args=args, date=date)
    md = render_markdown(bset, runs, info=info, args=args, date=date, problems=report["problems"])
    (args.out_dir / f"{bset.name}.md").write_text(md)
    (args.out_dir / f"{bset.name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("\n" + md)
    print(f"wrote {args.out_dir / (bset.name + '.md')} and {args.out_dir / (bset.name + '.json')}")
    if any(r.exit_code == 130 for r in runs):
        raise KeyboardInterrupt
    return report


def run_all(plan: list[tuple[BenchSet, list[str]]], args: argparse.Namespace) -> bool:
    """Run every set of the plan; with --all also write summary.md/.json. -> True if every row is valid."""
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    reports = {}
    for bset, kept in plan:
        report = run_set(bset, kept, args)
        if report is not None:
            reports[bset.name] = report
    if args.all and not args.dry_run:
        meta = {
            "date_utc": date,
            "command": reproduce_command(["--all"], {s.harness for s in SETS.values()}, args),
            "machine": machine_info(args.python),
            "versions": versions(args.python),
            "options": {
                key: getattr(args, key)
                for key in (
                    "duration",
                    "rounds",
                    "warmup",
                    "connections",
                    "close_threads",
                    "close_requests",
                    "rss_requests",
                    "rss_seconds",
                )
            },
        }
        print("\n" + write_summary(reports, meta, args.out_dir))
    return all(r["ok"] for r in reports.values())


# --------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Run qactuar's benchmark comparison sets through ../shared/bench.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        choices=sorted(SETS),
        default=None,
        help="comparison set to run (repeatable; default: core)",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="run every set, then write summary.md and summary.json (the targets and their ratios)",
    )
    p.add_argument("--duration", type=int, default=10, help="measured seconds per run (<= 600)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per app")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per run (<= 60)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (wrk sets)")
    p.add_argument(
        "--close-threads",
        type=int,
        default=4,
        help="client threads = concurrent connections (postfork-close)",
    )
    p.add_argument(
        "--close-requests",
        type=int,
        default=100_000,
        help="at most this many requests per measured run (postfork-close)",
    )
    p.add_argument(
        "--rss-requests", type=int, default=20_000, help="at most this many requests per server (worker-rss)"
    )
    p.add_argument(
        "--rss-seconds", type=int, default=20, help="at most this long a load per server (worker-rss, <= 600)"
    )
    p.add_argument(
        "--only",
        type=lambda v: [x.strip() for x in v.split(",") if x.strip()],
        default=None,
        metavar="LABELS",
        help="comma-separated server labels to keep (ratios are then vs the first kept server)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs the harness (its bin/ must have the servers)",
    )
    p.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH_DIR, help="directory of run_bench.py")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where to write <set>.md/.json")
    p.add_argument("--list", action="store_true", help="list the sets and their servers, then exit")
    p.add_argument("--dry-run", action="store_true", help="print the harness commands, run nothing")
    return p


def list_sets() -> None:
    for bset in SETS.values():
        pin = "pinned server CPU 0 / load CPU 1" if bset.pinned else "unpinned"
        print(f"{bset.name}: apps {', '.join(bset.apps)}; {pin}; harness {bset.harness}")
        for label in bset.all_servers:
            where = " (hello only)" if label in bset.hello_only else ""
            print(f"  {label:26} {TEMPLATES[label]}{where}")


def validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.all and args.sets:
        parser.error("--all runs every set: leave out --set")
    args.sets = list(SETS) if args.all else list(dict.fromkeys(args.sets or ["core"]))
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60 or args.rounds < 1:
        parser.error("--duration must be 1..600, --warmup 0..60, --rounds >= 1")
    if args.connections < 1 or args.close_threads < 1 or args.close_requests < 1:
        parser.error("--connections, --close-threads and --close-requests must be >= 1")
    if args.rss_requests < 8 or not 1 <= args.rss_seconds <= 600:
        parser.error("--rss-requests must be >= 8, --rss-seconds 1..600")
    args.bench_dir = args.bench_dir.resolve()
    if not (args.bench_dir / "run_bench.py").is_file():
        parser.error(f"{args.bench_dir / 'run_bench.py'} not found (use --bench-dir)")
    python = shutil.which(args.python)
    if python is None:
        parser.error(f"--python {args.python!r} is not an executable")
    args.python = os.path.abspath(python)  # keep a venv symlink as it is
    args.out_dir = args.out_dir.resolve()
    if args.only:
        known = {label for name in args.sets for label in SETS[name].all_servers}
        unknown = [label for label in args.only if label not in known]
        if unknown:
            parser.error(f"--only: no server {', '.join(unknown)} in set(s) {', '.join(args.sets)}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        list_sets()
        return 0
    validate(args, parser)
    plan: list[tuple[BenchSet, list[str]]] = []
    for name in args.sets:
        bset = SETS[name]
        kept = [s for s in bset.all_servers if not args.only or s in args.only]
        if kept:
            plan.append((bset, kept))
        else:
            print(f"run.py: --only leaves no server in set {name}; skipping it", file=sys.stderr)
    if not plan:
        parser.error("nothing to run")

    if not args.dry_run:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    # Ctrl-C and SIGTERM -> KeyboardInterrupt, forwarded to the harness as one SIGINT.
    # Installing a handler also un-ignores SIGINT for the harness (a SIG_IGN inherited
    # from a background shell would survive exec and make it deaf to the forwarded SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        ok = run_all(plan, args)
    except KeyboardInterrupt:
        print("run.py: interrupted", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
