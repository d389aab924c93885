"""Histogram: bucket layout, percentiles of known distributions, merge/minus, the compact form."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from itertools import pairwise
from statistics import NormalDist

import pytest

from qactuar.stats.histogram import EDGES, LOW, NBUCKETS, PER_DOUBLING, Histogram, bucket_bounds, bucket_index

WIDTH = 2 ** (1 / PER_DOUBLING) - 1  # relative width of one bucket: the precision promised


def histogram_of(values: list[float]) -> Histogram:
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    return histogram


def assert_close(estimate: float, exact: float) -> None:
    assert abs(estimate - exact) <= exact * WIDTH, (estimate, exact)


def test_layout_covers_50us_to_60s_in_log_steps() -> None:
    assert EDGES[0] == LOW
    assert EDGES[-1] >= 60.0 > EDGES[-2]
    ratios = {round(b / a, 12) for a, b in pairwise(EDGES)}
    assert ratios == {round(2 ** (1 / PER_DOUBLING), 12)}
    assert NBUCKETS == len(EDGES) + 1


def test_bucket_index_edges_and_open_ends() -> None:
    assert bucket_index(0.0) == 0
    assert bucket_index(LOW / 2) == 0
    assert bucket_index(LOW) == 1  # an edge belongs to the bucket above it
    assert bucket_index(EDGES[10]) == 11
    assert bucket_index(3600.0) == NBUCKETS - 1
    for value in (1e-4, 0.0123, 1.5, 59.0):
        low, high = bucket_bounds(bucket_index(value))
        assert low <= value < high


@pytest.mark.parametrize(
    ("name", "values", "quantile"),
    [
        ("uniform 1ms-1s", [i / 1000 for i in range(1, 1001)], lambda p: p * 1.0),
        (
            "exponential mean 20ms",
            [-0.02 * math.log(1 - (i + 0.5) / 20_000) for i in range(20_000)],
            lambda p: -0.02 * math.log(1 - p),
        ),
        (
            "lognormal median 5ms",
            [math.exp(NormalDist(math.log(0.005), 1.2).inv_cdf((i + 0.5) / 20_000)) for i in range(20_000)],
            lambda p: math.exp(NormalDist(math.log(0.005), 1.2).inv_cdf(p)),
        ),
    ],
)
def test_percentiles_of_known_distributions_within_one_bucket(
    name: str, values: list[float], quantile: Callable[[float], float]
) -> None:
    histogram = histogram_of(values)
    assert histogram.count == len(values)
    for p in (10, 50, 90, 99, 99.9):
        assert_close(histogram.percentile(p), quantile(p / 100))


def test_percentile_of_one_value_stays_in_its_bucket() -> None:
    histogram = histogram_of([0.0042] * 7)
    low, high = bucket_bounds(bucket_index(0.0042))
    for p in (0, 50, 100):
        assert low <= histogram.percentile(p) <= high


def test_percentile_open_buckets() -> None:
    assert histogram_of([0.0] * 4).percentile(0) == 0.0
    assert 0.0 < histogram_of([0.0] * 4).percentile(50) < LOW
    assert histogram_of([120.0, 500.0]).percentile(99) == EDGES[-1]  # nothing known beyond the top edge


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="empty"):
        Histogram().percentile(50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        histogram_of([0.1]).percentile(101)


def test_merge_equals_histogram_of_all_values() -> None:
    first, second = [0.001 * i for i in range(1, 300)], [0.5 + 0.01 * i for i in range(100)]
    merged = histogram_of(first)
    merged.merge(histogram_of(second))
    assert merged.counts == histogram_of(first + second).counts


def test_minus_gives_the_window_between_cumulative_snapshots() -> None:
    cumulative = histogram_of([0.001] * 50)
    earlier = cumulative.copy()
    for value in (0.2, 0.3, 0.3):
        cumulative.add(value)
    window = cumulative.minus(earlier)
    assert window.counts == histogram_of([0.2, 0.3, 0.3]).counts
    assert earlier.count == 50  # copy() is independent
    with pytest.raises(ValueError, match="older"):
        earlier.minus(cumulative)


def test_compact_form_round_trips_through_json() -> None:
    histogram = histogram_of([0.0, 0.00007, 0.003, 0.003, 2.0, 99.0])
    pairs = histogram.to_pairs()
    assert pairs == sorted(pairs) and all(n > 0 for _, n in pairs)
    assert len(pairs) == 5
    assert Histogram.from_pairs(json.loads(json.dumps(pairs))).counts == histogram.counts


def test_from_pairs_rejects_unknown_buckets() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Histogram.from_pairs([[NBUCKETS, 1]])
