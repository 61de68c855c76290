"""A latency histogram of our own, after HdrHistogram: log-linear buckets that keep 3
significant digits, mergeable, with percentile queries.

Values are whole microseconds. Below 2,048 µs every value has its own bucket; above, each
power of two is cut into 1,024 equal buckets, so a bucket is never wider than 1/1,024 of the
values in it: a percentile is reported at most 0.1 % above the true value, never below.
Counts live in a dict keyed by bucket (sparse): a second's worth of latencies is a few hundred
entries, cheap to pickle from a worker process and to merge.

>>> h = Histogram()
>>> for micros in (900, 1_000, 1_100, 250_000):
...     h.record(micros)
>>> h.count, h.percentile(50), h.max
(4, 1000, 250000)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

#: buckets per power of two above the exact range: 3 significant digits (1/1024 < 1/1000)
SUB_BUCKETS = 1024
#: values below this have a bucket each
EXACT = 2 * SUB_BUCKETS
_SHIFT = EXACT.bit_length() - 1  # 11


def bucket_of(value: int) -> int:
    """The bucket index of ``value`` (µs, >= 0)."""
    if value < EXACT:
        return value
    exponent = value.bit_length() - _SHIFT
    return SUB_BUCKETS * exponent + (value >> exponent)


def bucket_range(index: int) -> tuple[int, int]:
    """The lowest and highest values (inclusive) that fall in bucket ``index``."""
    if index < EXACT:
        return index, index
    exponent = index // SUB_BUCKETS - 1
    mantissa = index - SUB_BUCKETS * exponent
    return mantissa << exponent, ((mantissa + 1) << exponent) - 1


class Histogram:
    """Counts of latencies in microseconds; see the module's docstring for the precision."""

    __slots__ = ("counts", "count", "min", "max", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.min = 0
        self.max = 0
        self.total = 0  # sum of the values, for the mean

    def record(self, micros: int) -> None:
        """Count one value (negative ones count as 0)."""
        if micros < 0:
            micros = 0
        index = micros if micros < EXACT else bucket_of(micros)
        counts = self.counts
        counts[index] = counts.get(index, 0) + 1
        if self.count == 0 or micros < self.min:
            self.min = micros
        if micros > self.max:
            self.max = micros
        self.count += 1
        self.total += micros

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other``'s counts to this one (returns self)."""
        if not other.count:
            return self
        counts = self.counts
        for index, n in other.counts.items():
            counts[index] = counts.get(index, 0) + n
        self.min = other.min if not self.count else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total
        return self

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        """A new histogram holding the counts of all of ``histograms``."""
        result = cls()
        for histogram in histograms:
            result.merge(histogram)
        return result

    def percentile(self, percent: float) -> int:
        """The value at ``percent`` (0-100): the smallest recorded value with at least
        ``percent`` % of the values at or below it (the nearest-rank definition, as
        ``numpy.percentile(..., method="inverted_cdf")``), reported as the top of its bucket
        and never above the largest value recorded. 0 when empty."""
        if not self.count:
            return 0
        if not 0 <= percent <= 100:
            raise ValueError(f"a percentile is between 0 and 100, got {percent!r}")
        rank = max(1, math.ceil(percent * self.count / 100 - 1e-9))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return max(self.min, min(bucket_range(index)[1], self.max))
        return self.max  # pragma: no cover - the counts add up to self.count

    def percentiles(self, percents: Iterable[float]) -> list[int]:
        """:meth:`percentile` of each of ``percents``, in one pass over the buckets."""
        wanted = list(percents)
        if not self.count:
            return [0 for _ in wanted]
        ranks = sorted(
            (max(1, math.ceil(p * self.count / 100 - 1e-9)), i) for i, p in enumerate(wanted)
        )
        answers = [self.max] * len(wanted)
        seen, at = 0, 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            while at < len(ranks) and seen >= ranks[at][0]:
                answers[ranks[at][1]] = max(self.min, min(bucket_range(index)[1], self.max))
                at += 1
            if at == len(ranks):
                break
        return answers

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def distribution(self) -> Iterator[tuple[float, int]]:
        """(percentile reached, value) at each bucket, lowest first: the HdrHistogram-style
        percentile distribution that the report plots."""
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            yield 100.0 * seen / self.count, min(bucket_range(index)[1], self.max)

    def __getstate__(self) -> tuple[dict[int, int], int, int, int, int]:
        return self.counts, self.count, self.min, self.max, self.total

    def __setstate__(self, state: tuple[dict[int, int], int, int, int, int]) -> None:
        self.counts, self.count, self.min, self.max, self.total = state

    def __repr__(self) -> str:
        return f"Histogram(count={self.count}, min={self.min}, max={self.max})"


__all__ = ["EXACT", "SUB_BUCKETS", "Histogram", "bucket_of", "bucket_range"]
