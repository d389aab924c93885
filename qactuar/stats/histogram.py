"""Latency histogram with fixed log-scale buckets: cheap to add to, exact to merge and subtract.

Theory of operation
-------------------
Every process uses the same bucket edges, so histograms from different workers merge by adding counts
bucket by bucket, and two cumulative snapshots of one process subtract into the histogram of the window
between them. Nothing is sampled and nothing decays; precision is fixed by the layout instead.

Layout: 16 buckets per doubling starting at 50 µs (``LOW``), so each bucket is 2^(1/16) ≈ 4.4% wide and
any percentile is known to within that relative error. The finite buckets stop at the first edge at or above
60 s (≈62.3 s), which makes 324 finite buckets plus two open ones: index 0 holds everything below 50 µs
(including zero, which the server records for requests it rejects itself) and the last index holds
everything at or above the top edge. 326 counters per histogram, ~2.6 KiB as a list.

``add`` is one ``bisect_right`` over the precomputed edges plus one list increment. Measured (CPython 3.11)
against ``int(math.log2(seconds / LOW) * 16) + 1`` with the range checks that needs (log2 fails on 0): as
standalone functions bisect took ≈160 ns per call and log2 ≈290 ns; inlined in ``StatsRecorder.record`` both
cost the same for typical latencies (≈235 ns per record). Bisect is kept: it agrees exactly with ``EDGES``,
where the formula can land a value one bucket off at an edge through rounding.

The compact form is a list of ``[bucket_index, count]`` pairs for the non-empty buckets only, which is what
crosses the pipe from workers to the master: a route's latencies usually cover a few dozen buckets.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence

LOW = 50e-6
"""Lower edge of the first finite bucket, in seconds."""
PER_DOUBLING = 16
"""Buckets per doubling of latency."""
HIGH = 60.0
"""The finite buckets reach at least this far, in seconds."""

_FINITE = math.ceil(math.log2(HIGH / LOW) * PER_DOUBLING)
EDGES: tuple[float, ...] = tuple(LOW * 2 ** (i / PER_DOUBLING) for i in range(_FINITE + 1))
"""Bucket edges: bucket ``i`` holds ``EDGES[i-1] <= seconds < EDGES[i]``; 0 and ``len(EDGES)`` are open."""
NBUCKETS = len(EDGES) + 1

Pairs = list[list[int]]
"""The compact, JSON-able form: ``[[bucket_index, count], ...]`` for non-empty buckets, ascending."""


def bucket_index(seconds: float) -> int:
    """The bucket a latency falls in (below ``LOW`` → 0, at or above the top edge → ``NBUCKETS - 1``)."""
    return bisect_right(EDGES, seconds)


def bucket_bounds(index: int) -> tuple[float, float]:
    """The ``[low, high)`` seconds of a bucket; the open buckets are reported as ``[0, LOW)`` and
    ``[top edge, top edge]`` since nothing is known about where inside them a value fell."""
    if index <= 0:
        return 0.0, EDGES[0]
    if index >= len(EDGES):
        return EDGES[-1], EDGES[-1]
    return EDGES[index - 1], EDGES[index]


class Histogram:
    """Counts of latencies per bucket. ``counts`` is public so a hot path can hold it directly."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: list[int] = [0] * NBUCKETS

    def add(self, seconds: float) -> None:
        self.counts[bisect_right(EDGES, seconds)] += 1

    @property
    def count(self) -> int:
        """Number of values added (summed on demand so ``add`` stays one increment)."""
        return sum(self.counts)

    def copy(self) -> Histogram:
        clone = Histogram()
        clone.counts[:] = self.counts
        return clone

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts into this histogram, e.g. one worker's into the master's total."""
        self.counts[:] = [a + b for a, b in zip(self.counts, other.counts, strict=True)]

    def minus(self, older: Histogram) -> Histogram:
        """The histogram of what was added between ``older`` and this cumulative snapshot.

        A negative difference means ``older`` is not an earlier state of the same counts; it raises rather
        than produce percentiles from nonsense.
        """
        diff = Histogram()
        diff.counts[:] = [a - b for a, b in zip(self.counts, older.counts, strict=True)]
        if min(diff.counts) < 0:
            raise ValueError("minus(): 'older' has counts this histogram does not")
        return diff

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile (0-100) in seconds, interpolated geometrically inside its bucket.

        Raises ValueError on an empty histogram: there is no honest number to give, and callers show
        "no data" differently from "0 ms".
        """
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be within 0..100, got {p}")
        total = self.count
        if total == 0:
            raise ValueError("percentile of an empty histogram")
        rank = p / 100 * total
        seen = 0
        for index, n in enumerate(self.counts):
            if n and seen + n >= rank:
                low, high = bucket_bounds(index)
                fraction = (rank - seen) / n
                if index == 0:  # linear: the underflow bucket starts at zero
                    return low + (high - low) * fraction
                return float(low * (high / low) ** fraction)
            seen += n
        raise AssertionError("unreachable: rank <= total")

    def to_pairs(self) -> Pairs:
        return [[index, n] for index, n in enumerate(self.counts) if n]

    def add_pairs(self, pairs: Iterable[Sequence[int]]) -> None:
        """Add counts given in the compact form (negative counts are allowed: applying a delta)."""
        counts = self.counts
        for index, n in pairs:
            if not 0 <= index < NBUCKETS:
                raise ValueError(f"histogram bucket index out of range: {index}")
            counts[index] += n

    @classmethod
    def from_pairs(cls, pairs: Iterable[Sequence[int]]) -> Histogram:
        histogram = cls()
        histogram.add_pairs(pairs)
        return histogram

    def __repr__(self) -> str:
        return f"Histogram({self.to_pairs()!r})"
