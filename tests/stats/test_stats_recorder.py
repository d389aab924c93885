"""StatsRecorder: per-route counters, the snapshot format, and change detection."""

from __future__ import annotations

import json
import os

from qactuar.stats.histogram import Histogram
from qactuar.stats.recorder import StatsRecorder


def test_counts_per_route_and_status_class() -> None:
    recorder = StatsRecorder(role="worker", generation=3)
    for _ in range(7):
        recorder.record("/api", 200, 100, 0.002)
    recorder.record("/api", 304, 0, 0.001)
    recorder.record("/api", 503, 20, 0.5)
    recorder.record("/", 101, 0, 0.01)
    recorder.record("", 400, 0, 0.0)
    snapshot = recorder.snapshot()

    assert snapshot["requests"] == 11
    api = snapshot["routes"]["/api"]
    assert api["requests"] == 9
    assert api["status"] == {"2xx": 7, "3xx": 1, "5xx": 1}
    assert api["bytes"] == 720
    latency = Histogram.from_pairs(api["latency"])
    assert latency.count == 9
    assert 0.002 * 0.95 < latency.percentile(50) < 0.002 * 1.05
    assert snapshot["routes"]["/"]["status"] == {"1xx": 1}
    assert snapshot["routes"][""]["status"] == {"4xx": 1}


def test_statuses_outside_100_599_are_other() -> None:
    recorder = StatsRecorder(role="worker", generation=1)
    for status in (99, 600, 999, 1000, 200):
        recorder.record("/", status, 0, 0.001)
    assert recorder.snapshot()["routes"]["/"]["status"] == {"2xx": 1, "other": 4}


def test_snapshot_is_cumulative_json_and_numbered() -> None:
    recorder = StatsRecorder(role="child", generation=2)
    recorder.record("/", 200, 5, 0.001)
    recorder.connections(3)
    recorder.in_flight(1)
    first = recorder.snapshot()
    assert json.loads(json.dumps(first)) == first
    assert first["pid"] == os.getpid()
    assert (first["role"], first["generation"]) == ("child", 2)
    assert (first["connections"], first["in_flight"]) == (3, 1)
    assert first["started_at"] > 0

    recorder.record("/", 200, 5, 0.001)
    second = recorder.snapshot()
    assert second["seq"] > first["seq"]
    assert second["routes"]["/"]["requests"] == 2
    assert first["routes"]["/"]["requests"] == 1  # an earlier snapshot is not changed by later records


def test_changed_since_last_snapshot() -> None:
    recorder = StatsRecorder(role="worker", generation=1)
    assert recorder.changed_since_last_snapshot  # a new process announces itself
    recorder.snapshot()
    assert not recorder.changed_since_last_snapshot
    recorder.record("/", 200, 0, 0.001)
    assert recorder.changed_since_last_snapshot
    recorder.snapshot()
    recorder.connections(0)
    recorder.in_flight(0)
    assert not recorder.changed_since_last_snapshot  # same gauge values
    recorder.connections(2)
    assert recorder.changed_since_last_snapshot
    recorder.snapshot()
    recorder.in_flight(1)
    assert recorder.changed_since_last_snapshot
