"""The shared dataclasses survive a JSON trip and tolerate a peer one version apart."""

from __future__ import annotations

import json
import time

import pytest

from qactuar.stats.models import AppInfo, ProcessInfo, StatsPoint, Totals

SAMPLES = [
    ProcessInfo(
        pid=7, role="worker", generation=2, state="serving", requests=5, cpu_percent=1.5, started_at=1.0
    ),
    AppInfo(route="/api", spec="apps.api:app", source="git", state="failed", error="boom", p50_ms=None),
    StatsPoint(
        t=100.0, requests=3, req_per_s=3.0, p50_ms=1.2, p99_ms=9.0, status={"2xx": 3}, open_connections=4
    ),
    Totals(requests=10, rejected=1, status={"2xx": 9, "4xx": 1}, p99_ms=12.5),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip_through_json(sample: ProcessInfo | AppInfo | StatsPoint | Totals) -> None:
    data = json.loads(json.dumps(sample.to_dict()))
    assert type(sample).from_dict(data) == sample


def test_from_dict_ignores_unknown_keys_and_defaults_missing_ones() -> None:
    point = StatsPoint.from_dict({"t": 5.0, "added_in_a_later_version": True})
    assert point == StatsPoint(t=5.0)


def test_from_dict_without_a_required_field_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="AppInfo"):
        AppInfo.from_dict({"route": "/"})


def test_process_age() -> None:
    info = ProcessInfo(pid=1, role="master", generation=0, state="running", started_at=time.time() - 30)
    assert 29 < info.age < 40
    assert "age" not in info.to_dict()
