"""The targets of the performance issue, measured by one ``run.py --all``: summary.md and summary.json.

Each row compares a qactuar server with a peer (or another qactuar server) measured in the same
harness invocation (interleaved rounds, medians), so every ratio comes from one run. ``run.py``
calls :func:`write_summary` with the reports of the sets it ran; ``readme_table.py`` renders the
same rows into the README from summary.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALL_APPS = ("hello", "echo", "stream")
TWO_APPS = ("hello", "echo")
PINNED_PURE = "Pure path (h11, asyncio), pinned"
PINNED_FAST = "Fast path (httptools, uvloop), pinned"
ACCESS_LOG = "Access log on ÷ off, pinned"
PREFORK = "Pre-fork, 2 workers, unpinned"
POSTFORK = "Post-fork keep-alive ÷ pre-fork, unpinned"
CLOSE = "Post-fork ÷ pre-fork, `Connection: close` (conn/s), unpinned"
RSS = "Peak RSS per worker, 2 workers (lower is better)"
REASON_WIDTH = 160


@dataclass(frozen=True)
class Target:
    group: str
    set_name: str  # the run.py set that measures both servers
    apps: tuple[str, ...]
    ours: str
    peer: str
    minimum: float | None  # ours ÷ peer must be at least this; None: reported without a target


TARGETS: tuple[Target, ...] = (
    Target(PINNED_PURE, "core", ALL_APPS, "qactuar-async", "uvicorn-h11", 1.5),
    Target(PINNED_PURE, "core", ALL_APPS, "qactuar-prefork-1w", "uvicorn-h11", 1.5),
    Target(PINNED_FAST, "core", ("hello",), "qactuar-async-fast", "granian-1w", 1.0),
    Target(PINNED_FAST, "core", ("hello",), "qactuar-prefork-1w-fast", "granian-1w", 1.0),
    Target(PINNED_FAST, "core", ALL_APPS, "qactuar-async-fast", "uvicorn-httptools-uvloop", 1.2),
    Target(PINNED_FAST, "core", ALL_APPS, "qactuar-prefork-1w-fast", "uvicorn-httptools-uvloop", 1.2),
    Target(ACCESS_LOG, "core", ("hello",), "qactuar-async-log", "qactuar-async", 0.5),
    Target(ACCESS_LOG, "core", ("hello",), "qactuar-async-fast-log", "qactuar-async-fast", 0.5),
    Target(PREFORK, "prefork", TWO_APPS, "qactuar-prefork-2w", "uvicorn-2w-h11", 1.1),
    Target(PREFORK, "prefork", TWO_APPS, "qactuar-prefork-2w-fast", "uvicorn-2w-httptools", 1.1),
    Target(POSTFORK, "prefork", TWO_APPS, "qactuar-postfork", "qactuar-prefork-2w", 0.9),
    Target(CLOSE, "postfork-close", ("hello",), "qactuar-postfork", "qactuar-prefork-2w", None),
    Target(RSS, "worker-rss", ("hello",), "qactuar-prefork-2w", "uvicorn-2w-h11", None),
    Target(RSS, "worker-rss", ("hello",), "qactuar-prefork-2w-fast", "uvicorn-2w-httptools", None),
)


# --------------------------------------------------------------------------
# One server's figure from a set report


@dataclass(frozen=True)
class Figure:
    value: float  # req/s or conn/s median; MiB for peak RSS per worker
    unit: str
    low: float
    high: float
    spread_pct: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Missing:
    status: str  # "not run", "failed" or "invalid"
    reason: str


def failure_reason(runs: list[dict[str, Any]]) -> str:
    """Why a server had no successful run, in one line (from the harness's per-run errors)."""
    errors = [r.get("error") or "no successful run" for r in runs if not r.get("ok")]
    if not errors:
        return "no successful run"
    head, _, tail = errors[0].partition("\n")
    head = head.removeprefix("ServerError: ").rstrip(":")
    if not head.startswith(("server exited", "server did not answer")):
        return f"failed: {head}"
    output = [line.strip() for line in tail.splitlines() if line.strip()]
    return f"failed to start ({head})" + (f": {output[-1]}" if output else "")


def rate_problem(s: dict[str, Any]) -> str | None:
    errors = s["non2xx_total"] + s["socket_errors_total"]
    if errors:
        return f"{errors} errors under load"
    if not s["check_ok"]:
        return "wrong response (check MISMATCH)"
    if s["runs_ok"] < s["runs"]:
        return f"only {s['runs_ok']} of {s['runs']} rounds succeeded"
    return None


def figure(report: dict[str, Any] | None, app: str, label: str, unit: str) -> Figure | Missing:
    entry = (report or {}).get("apps", {}).get(app)
    if entry is None or label not in entry["servers"]:
        return Missing("not run", "not run")
    result = entry["result"] or {}
    s = next((s for s in result.get("summaries", []) if s["server"] == label), None)
    if s is None:
        return Missing("failed", f"no result (harness exit status {entry['exit_code']})")
    if "worker_peak_rss_mib_max" in s:
        rss = float(s["worker_peak_rss_mib_max"])
        return Figure(rss, "MiB", rss, rss, None, None)
    if "rps_median" not in s:
        return Missing("failed", s.get("error") or failure_reason(result.get("runs", {}).get(label, [])))
    problem = rate_problem(s)
    if problem:
        return Missing("invalid", problem)
    return Figure(s["rps_median"], unit, s["rps_min"], s["rps_max"], s["rps_spread_pct"], s["p99_ms_median"])


# --------------------------------------------------------------------------
# Rows


def target_row(target: Target, app: str, reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    report = reports.get(target.set_name)
    unit = "conn/s" if target.set_name == "postfork-close" else "req/s"
    ours, peer = (figure(report, app, label, unit) for label in (target.ours, target.peer))
    row: dict[str, Any] = {
        "group": target.group,
        "set": target.set_name,
        "app": app,
        "qactuar": target.ours,
        "peer": target.peer,
        "minimum": target.minimum,
        "target": None if target.minimum is None else f">= {target.minimum:.2f}x",
    }
    if isinstance(ours, Missing):
        return {**row, "ratio": None, "status": ours.status, "reason": f"{target.ours}: {ours.reason}"}
    if isinstance(peer, Missing):
        return {**row, "ratio": None, "status": peer.status, "reason": f"{target.peer}: {peer.reason}"}
    for side, fig in (("qactuar", ours), ("peer", peer)):
        row |= {
            f"{side}_value": fig.value,
            f"{side}_p99_ms": fig.p99_ms,
            f"{side}_spread_pct": fig.spread_pct,
        }
    row["unit"] = ours.unit
    ratio = ours.value / peer.value if peer.value else None
    if target.minimum is None or ratio is None:
        status = "reported"
    else:
        status = "met" if ratio >= target.minimum else "not met"
    row |= {
        "ratio": ratio,
        "status": status,
        "reason": None,
        "ranges_overlap": ours.low <= peer.high and peer.low <= ours.high,
    }
    if target.set_name == "postfork-close" and ours.value and peer.value:
        row["fork_cost_ms"] = 1000 / ours.value - 1000 / peer.value
    return row


def target_rows(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [target_row(t, app, reports) for t in TARGETS for app in t.apps]


def count(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row["status"]] = out.get(row["status"], 0) + 1
    return out


# --------------------------------------------------------------------------
# Markdown


def md_table(head: list[str], rows: list[list[str]], left: int, also_left: tuple[int, ...] = ()) -> str:
    """Markdown table; the first `left` columns and those in `also_left` are left-aligned, the rest
    right-aligned."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    is_left = [i < left or i in also_left for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if is_left[i] else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    sep = "|" + "|".join("-" * (w + 1) + ("-" if is_left[i] else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def _cell(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 3] + "..."


def _value(row: dict[str, Any], side: str) -> str:
    value = row.get(f"{side}_value")
    if value is None:
        return ""
    return f"{value:.1f} MiB" if row["unit"] == "MiB" else f"{value:,.0f} {row['unit']}"


def _pair(row: dict[str, Any], key: str, fmt: str) -> str:
    a, b = row.get(f"qactuar_{key}"), row.get(f"peer_{key}")
    if a is None or b is None:
        return ""
    return f"{a:{fmt}} / {b:{fmt}}"


def _note(row: dict[str, Any]) -> str:
    notes = []
    if "fork_cost_ms" in row:
        notes.append(f"≈ {row['fork_cost_ms']:.2f} ms more per connection than pre-fork (fork + set-up)")
    if row.get("ranges_overlap") and row["unit"] != "MiB":
        notes.append("min-max ranges overlap")
    return "; ".join(notes)


def rows_table(rows: list[dict[str, Any]]) -> str:
    head = [
        "comparison", "app", "target", "ratio", "met", "qactuar", "peer",
        "p99 ms (qactuar / peer)", "spread (qactuar / peer)", "note",
    ]  # fmt: skip
    cells = []
    previous = None
    for row in rows:
        key = (row["group"], row["qactuar"], row["peer"])
        comparison = f"{row['group']}: `{row['qactuar']}` ÷ `{row['peer']}`" if key != previous else ""
        previous = key
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        status = row["reason"] if row["reason"] else row["status"]
        if row["status"] == "reported":
            status = "no target"
        cells.append(
            [
                comparison,
                row["app"],
                row["target"] or "-",
                ratio,
                _cell(status),
                _value(row, "qactuar"),
                _value(row, "peer"),
                _pair(row, "p99_ms", ".2f"),
                _pair(row, "spread_pct", ".1f"),
                _note(row),
            ]
        )
    return md_table(head, cells, left=3, also_left=(4, 9))


def result_line(counts: dict[str, int]) -> str:
    targets = sum(n for status, n in counts.items() if status != "reported")
    parts = [f"{counts.get('met', 0)} of {targets} targets met", f"{counts.get('not met', 0)} not met"]
    parts += [f"{counts[s]} {s}" for s in ("failed", "invalid", "not run") if counts.get(s)]
    line = ", ".join(parts)
    if counts.get("reported"):
        line += f"; {counts['reported']} row(s) reported without a target"
    return line + "."


def describe_versions(versions: dict[str, str | None]) -> str:
    commit = versions.get("qactuar_commit")
    parts = [
        f"{name} {version or 'not installed'}"
        for name, version in versions.items()
        if name != "qactuar_commit"
    ]
    return ", ".join(parts) + (f"; qactuar commit {commit}" if commit else "")


def describe_machine(machine: dict[str, Any]) -> str:
    return (
        f"nproc {machine['nproc']} (available CPUs {machine['cpus_available']}), "
        f"CPU model `{machine['cpu_model']}`, {machine['platform']}"
    )


def describe_load(options: dict[str, Any]) -> str:
    return (
        f"wrk with {options['connections']} keep-alive connections, {options['duration']} s measured "
        f"after {options['warmup']} s warm-up, {options['rounds']} interleaved round(s), medians (pinned "
        f"rows: server on CPU 0, wrk on CPU 1); `Connection: close`: close_bench.py with "
        f"{options['close_threads']} client threads; RSS: worker_rss.py, at most "
        f"{options['rss_requests']} requests or {options['rss_seconds']} s per server"
    )


LEGEND = (
    "ratio = qactuar's figure ÷ the peer's, both from the same harness invocation (for RSS: the largest "
    "peak RSS of a process that served a connection, lower is better); met: ratio >= target; spread = "
    "(max - min) / median over rounds; `min-max ranges overlap`: this run does not separate the two "
    "servers. A failed or invalid row (errors under load, wrong response) has no ratio."
)


def render_summary(summary: dict[str, Any]) -> str:
    lines = [
        "# Benchmark summary",
        "",
        "Every target of the performance issue, from one run of `benchmarks/run.py --all`.",
        "",
        f"- Date (UTC): {summary['date_utc']}",
        f"- Command: `{summary['command']}`",
        f"- Machine: {describe_machine(summary['machine'])}",
        f"- Versions: {describe_versions(summary['versions'])}",
        f"- Load: {describe_load(summary['options'])}",
        f"- Result: {result_line(summary['counts'])}",
        "",
        rows_table(summary["rows"]),
        "",
        LEGEND,
        "",
        "## Sets",
        "",
        *(
            f"- [`{name}`]({name}.md) ({s['date_utc']}): "
            + ("ok" if s["ok"] else f"{len(s['problems'])} problem(s)")
            for name, s in summary["sets"].items()
        ),
    ]
    problems = [f"- {name}: {p}" for name, s in summary["sets"].items() for p in s["problems"]]
    if problems:
        lines += ["", "## Problems", "", *problems]
    return "\n".join(lines) + "\n"


def write_summary(reports: dict[str, dict[str, Any]], meta: dict[str, Any], out_dir: Path) -> str:
    """Write <out_dir>/summary.json and summary.md from the set reports of one run. -> the Markdown."""
    rows = target_rows(reports)
    summary = {
        **meta,
        "counts": count(rows),
        "rows": rows,
        "sets": {
            name: {
                "date_utc": r["date_utc"],
                "ok": r["ok"],
                "problems": r["problems"],
                "command": r["command"],
            }
            for name, r in reports.items()
        },
    }
    md = render_summary(summary)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "summary.md").write_text(md)
    return md
