"""The histogram against numpy over the raw values: within its stated precision (3
significant digits: at most 1/1024 above the true value, never below)."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from shipyard.loadtest.histogram import EXACT, Histogram, bucket_of, bucket_range

PERCENTS = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]


def _close(got: int, true: float) -> bool:
    return true <= got <= true * (1 + 1 / 1024) + 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_agree_with_numpy_within_three_significant_digits(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(1, 50_000)
    # latencies as a load test sees them: mostly fast, a long tail, a few stalls
    values = [int(rng.lognormvariate(7, 1.5)) for _ in range(n)]
    values += [rng.randrange(250_000, 2_000_000) for _ in range(n // 100)]
    h = Histogram()
    for v in values:
        h.record(v)
    raw = np.array(values)
    for p in PERCENTS:
        true = float(np.percentile(raw, p, method="inverted_cdf"))
        got = h.percentile(p)
        assert _close(got, true), (p, got, true)
    assert h.percentiles(PERCENTS) == [h.percentile(p) for p in PERCENTS]
    assert (h.count, h.min, h.max) == (len(values), min(values), max(values))
    assert h.mean == pytest.approx(raw.mean())


def test_every_bucket_is_narrower_than_a_thousandth_of_its_values() -> None:
    for value in [*range(0, 5000), *(random.Random(1).randrange(1, 10**10) for _ in range(20000))]:
        low, high = bucket_range(bucket_of(value))
        assert low <= value <= high
        if value >= EXACT:
            assert (high - low + 1) / low <= 1 / 1024


def test_merged_histograms_equal_one_histogram_of_everything() -> None:
    rng = random.Random(7)
    parts = [[rng.randrange(0, 10**7) for _ in range(rng.randrange(0, 3000))] for _ in range(4)]
    whole, pieces = Histogram(), []
    for part in parts:
        piece = Histogram()
        for v in part:
            piece.record(v)
            whole.record(v)
        pieces.append(pickle.loads(pickle.dumps(piece)))  # as worker processes send them
    merged = Histogram.merged(pieces)
    assert merged.counts == whole.counts
    assert (merged.count, merged.min, merged.max, merged.total) == (
        whole.count,
        whole.min,
        whole.max,
        whole.total,
    )
    assert merged.percentiles(PERCENTS) == whole.percentiles(PERCENTS)


def test_an_empty_histogram_answers_zero_and_a_bad_percentile_is_refused() -> None:
    h = Histogram()
    assert h.percentile(99) == 0 and h.percentiles([50, 99]) == [0, 0] and h.mean == 0
    h.record(5)
    with pytest.raises(ValueError, match="between 0 and 100"):
        h.percentile(101)
