"""StatsAggregator: exact totals across processes that come and go, time series, windows, app rows."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from qactuar.stats.aggregate import StatsAggregator
from qactuar.stats.histogram import Histogram
from qactuar.stats.models import Role
from qactuar.stats.recorder import StatsRecorder

APP_ROWS: list[dict[str, Any]] = [
    {"route": "/", "spec": "apps.site:app", "source": "config", "state": "loaded", "error": None},
    {"route": "/api", "spec": "apps.api:app", "source": "git", "state": "loaded"},
    {
        "route": "/broken",
        "spec": "apps.broken:app",
        "source": "config",
        "state": "failed",
        "error": "ImportError",
    },
]


def recorder(
    pid: int, role: Role = "worker", generation: int = 1, started_at: float = 1000.0
) -> StatsRecorder:
    """A recorder posing as another process."""
    stats = StatsRecorder(role=role, generation=generation)
    stats.pid = pid
    stats.started_at = started_at
    return stats


def serve(stats: StatsRecorder, route: str, n: int, *, status: int = 200, seconds: float = 0.001) -> None:
    for _ in range(n):
        stats.record(route, status, 10, seconds)


def test_exact_route_counts_across_recycled_and_exited_workers() -> None:
    aggregator = StatsAggregator()
    w1, w2, w3 = recorder(101), recorder(102), recorder(103)
    serve(w1, "/", 20)
    serve(w2, "/api", 10)
    aggregator.update(w1.snapshot())
    aggregator.update(w2.snapshot())
    serve(w1, "/", 10)
    serve(w1, "/api", 5)
    stale = w1.snapshot()
    serve(w1, "/", 5)
    final = w1.snapshot()
    aggregator.update(final)
    aggregator.update(stale)  # arrived out of order: ignored
    aggregator.process_exited(101)  # recycled after serving 35 + 5
    serve(w2, "/", 40)
    serve(w3, "/", 25)
    serve(w3, "/api", 20)
    serve(w2, "/api", 15)
    for stats in (w2, w3):
        aggregator.update(stats.snapshot())
    aggregator.update(final)  # a duplicate of an exited process's last snapshot changes nothing

    assert aggregator.route_counts() == {"/": 100, "/api": 50}
    assert aggregator.totals().requests == 150
    assert [p.pid for p in aggregator.processes()] == [102, 103]


def test_stale_and_repeated_seq_are_ignored() -> None:
    aggregator = StatsAggregator()
    stats = recorder(7)
    serve(stats, "/", 3)
    older = stats.snapshot()
    serve(stats, "/", 4)
    newer = stats.snapshot()
    aggregator.update(newer)
    aggregator.update(older)
    aggregator.update(newer)
    assert aggregator.route_counts() == {"/": 7}


def test_late_final_snapshot_after_exit_counts_once() -> None:
    aggregator = StatsAggregator()
    stats = recorder(8, role="child")
    serve(stats, "/", 2)
    aggregator.update(stats.snapshot())
    serve(stats, "/", 3)
    last_words = stats.snapshot()
    aggregator.process_exited(8)  # reaped before its pipe was drained
    aggregator.update(last_words)
    aggregator.update(last_words)
    assert aggregator.route_counts() == {"/": 5}
    assert aggregator.processes() == []


def test_reused_pid_is_a_new_process() -> None:
    aggregator = StatsAggregator()
    first = recorder(9, started_at=1000.0)
    serve(first, "/", 4)
    aggregator.update(first.snapshot())
    second = recorder(9, started_at=2000.0)  # same pid, never reported as exited
    serve(second, "/", 1)
    aggregator.update(second.snapshot())
    assert aggregator.route_counts() == {"/": 5}
    assert [p.started_at for p in aggregator.processes()] == [2000.0]


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.pop("routes"),
        lambda s: s.update(role="emperor"),
        lambda s: s["routes"]["/"].update(latency=[[10_000, 1]]),
        lambda s: s["routes"]["/"].update(requests="many"),
    ],
)
def test_malformed_snapshot_raises_and_changes_nothing(damage: Any) -> None:
    aggregator = StatsAggregator()
    stats = recorder(10)
    serve(stats, "/", 1)
    serve(stats, "/api", 1)
    snapshot = stats.snapshot()
    damage(snapshot)
    with pytest.raises(ValueError, match="malformed"):
        aggregator.update(snapshot)
    assert aggregator.route_counts() == {}


def test_counts_going_backwards_are_refused_whole() -> None:
    aggregator = StatsAggregator()
    stats = recorder(11)
    serve(stats, "/", 5)
    serve(stats, "/api", 5)
    good = stats.snapshot()
    aggregator.update(good)
    serve(stats, "/api", 1)
    bad = stats.snapshot()
    bad["routes"]["/"]["requests"] = 1  # "/" shrank while "/api" grew: apply neither
    with pytest.raises(ValueError, match="backwards"):
        aggregator.update(bad)
    assert aggregator.route_counts() == {"/": 5, "/api": 5}


def test_time_series_with_a_fake_clock() -> None:
    aggregator = StatsAggregator()
    stats = recorder(12)
    aggregator.tick(1000.0)  # baseline
    serve(stats, "/", 8)
    serve(stats, "/", 2, status=500, seconds=0.2)
    stats.connections(3)
    aggregator.update(stats.snapshot())
    aggregator.tick(1001.0)
    serve(stats, "/api", 30, seconds=0.01)
    stats.connections(1)
    aggregator.update(stats.snapshot())
    aggregator.tick(1003.0)  # a late tick: the point covers two seconds
    aggregator.tick(1003.0)  # a clock that did not move adds nothing

    overall = aggregator.series(None, 60)
    assert [(p.t, p.requests, p.req_per_s) for p in overall] == [(1001.0, 10, 10.0), (1003.0, 30, 15.0)]
    assert overall[0].status == {"2xx": 8, "5xx": 2}
    assert [p.open_connections for p in overall] == [3, 1]
    assert overall[1].p50_ms == pytest.approx(10.0, rel=0.05)

    site = aggregator.series("/", 60)
    assert [(p.requests, p.open_connections) for p in site] == [(10, None), (0, None)]
    assert site[0].p99_ms == pytest.approx(200.0, rel=0.05)
    assert site[1].p50_ms is None  # no requests is not 0 ms
    api = aggregator.series("/api", 60)
    assert [(p.t, p.requests) for p in api] == [(1003.0, 30)]  # appeared between ticks: starts from zero
    assert aggregator.series("/nowhere", 60) == []
    assert [p.t for p in aggregator.series(None, 1)] == [1003.0]


def test_series_keep_ten_minutes() -> None:
    aggregator = StatsAggregator()
    stats = recorder(13)
    for second in range(700):
        serve(stats, "/", 1)
        aggregator.update(stats.snapshot())
        aggregator.tick(float(second))
    assert len(aggregator.series(None, 3600)) == 600
    assert len(aggregator.series("/", 3600)) == 600
    assert len(aggregator.series("/", 60)) == 60
    assert aggregator.series(None, 3600)[-1].t == 699.0


def test_apps_merges_rows_with_windows() -> None:
    aggregator = StatsAggregator()
    stats = recorder(14)
    rejected = recorder(15)
    aggregator.tick(0.0)
    for second in range(1, 81):
        if second <= 10:
            serve(stats, "/", 2, seconds=1.0)  # slow, but more than 60 s before the last tick
        serve(stats, "/", 5, seconds=0.004)
        if second > 70:  # the last 10 s: one 5xx in every 5 requests to /api
            serve(stats, "/api", 4)
            serve(stats, "/api", 1, status=503)
        serve(rejected, "", 1, status=400, seconds=0.0)
        aggregator.update(stats.snapshot())
        aggregator.update(rejected.snapshot())
        aggregator.tick(float(second))

    site, api, broken = aggregator.apps(APP_ROWS)
    assert (site.route, site.spec, site.source, site.state, site.error) == (
        "/",
        "apps.site:app",
        "config",
        "loaded",
        None,
    )
    assert site.requests == 20 + 400
    assert site.req_per_s == pytest.approx(5.0)
    assert site.error_rate == 0.0
    assert site.p99_ms == pytest.approx(4.0, rel=0.05)  # the 1 s requests left the 60 s window
    assert (api.source, api.requests, api.req_per_s) == ("git", 50, 5.0)
    assert api.error_rate == pytest.approx(0.2)
    assert (broken.state, broken.error, broken.requests, broken.p50_ms) == ("failed", "ImportError", 0, None)

    totals = aggregator.totals()
    assert (totals.requests, totals.rejected) == (420 + 50 + 80, 80)
    assert totals.status == {"2xx": 460, "5xx": 10, "4xx": 80}
    assert totals.req_per_s == pytest.approx(11.0)  # 5 + 5 + 1 rejected
    assert "" not in aggregator.route_counts()


def test_totals_and_processes_count_live_gauges_only() -> None:
    aggregator = StatsAggregator()
    for pid, conns in ((21, 2), (20, 5), (30, 1)):
        stats = recorder(pid, generation=2 if pid == 30 else 1)
        stats.connections(conns)
        stats.in_flight(1)
        aggregator.update(stats.snapshot())
    aggregator.process_exited(21)
    aggregator.process_exited(999)  # never seen: nothing to do
    totals = aggregator.totals()
    assert (totals.processes, totals.connections, totals.in_flight) == (2, 6, 2)
    assert (totals.p50_ms, totals.req_per_s) == (None, 0.0)

    infos = aggregator.processes(usage={20: (12.5, 4096)}, states={30: "draining"})
    assert [(p.pid, p.generation, p.state, p.cpu_percent, p.rss_bytes) for p in infos] == [
        (20, 1, "serving", 12.5, 4096),
        (30, 2, "draining", None, None),
    ]


def test_memory_stays_bounded_with_10000_exited_children() -> None:
    aggregator = StatsAggregator()

    def churn(first_pid: int, n: int) -> None:
        for pid in range(first_pid, first_pid + n):
            child = recorder(pid, role="child")
            serve(child, "/", 1, seconds=0.001 * (pid % 50 + 1))
            aggregator.update(child.snapshot())
            aggregator.process_exited(pid)

    tracemalloc.start()
    try:
        churn(100_000, 1_000)  # fills the cache of recently exited processes
        before = tracemalloc.take_snapshot()
        churn(101_000, 9_000)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 64 * 1024, growth
    assert aggregator.route_counts() == {"/": 10_000}
    assert aggregator.processes() == []


def test_percentiles_come_from_merged_histograms() -> None:
    aggregator = StatsAggregator()
    aggregator.tick(0.0)
    fast, slow = recorder(40), recorder(41)
    serve(fast, "/", 90, seconds=0.001)
    serve(slow, "/", 10, seconds=0.5)
    aggregator.update(fast.snapshot())
    aggregator.update(slow.snapshot())
    aggregator.tick(1.0)
    expected = Histogram()
    for value in [0.001] * 90 + [0.5] * 10:
        expected.add(value)
    (point,) = aggregator.series("/", 10)
    assert point.p50_ms == pytest.approx(expected.percentile(50) * 1000)
    assert point.p99_ms == pytest.approx(expected.percentile(99) * 1000)
