"""FeedContext's receive-latency statistics: samples binned in bulk (issue 16)."""

from __future__ import annotations

import bisect
import itertools
import random

import pytest

from feedctl.feed import LATENCY_BUCKETS_MS, _Latency

pytestmark = pytest.mark.unit


def test_bulk_binned_figures_equal_binning_each_sample() -> None:
    rng = random.Random(16)
    # a count that is not a multiple of the batch: the last samples are binned on read
    values = [rng.uniform(0, 20_000) for _ in range(3 * _Latency.BATCH + 17)]
    lat = _Latency(size=500)
    for v in values:
        lat.add(v)
    per_sample = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for v in values:
        per_sample[bisect.bisect_left(LATENCY_BUCKETS_MS, v)] += 1
    hist = lat.histogram()
    assert hist is not None
    assert hist["counts"] == list(itertools.accumulate(per_sample))
    assert hist["count"] == len(values)
    assert hist["sum_ms"] == pytest.approx(sum(values), abs=1e-2)
    newest = sorted(values[-500:])
    assert lat.percentile(0.5) == newest[round(0.5 * 499)]
    assert lat.percentile(0.99) == newest[round(0.99 * 499)]
