"""The chosen option as a registered model, and its forecasts in the precompute cache.

    model = Forecaster("improved", season_length=4, freq="QS", horizon=8)
    current.register_model(MODEL, model, metrics=...)    # forecaster:N
    frame = model.forecast(history)                      # any series, h steps ahead
    part.put_many(entries(frame, model="forecaster:N"))  # key: the series id

A :class:`Forecaster` is small on purpose — a family's name and its parameters — because
every family refits on the history it is given (the options are automatic methods, chosen
per series by validation, or a global model over lags), so what is worth keeping is *how*
to forecast, not one fit. The values written into the cache are plain data (msgpack): per
series, the dates and the mean with its 80% and 95% bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: the model name the flow registers the chosen option under
MODEL = "forecaster"
#: the alias the flow moves to the version whose forecasts the cache holds
ALIAS = "prod"
#: the cache namespace the bulk step writes and the service reads
NAMESPACE = "forecasts"
#: families fit across all series at once (one global model): forecast in one shard
GLOBAL_FAMILIES = frozenset({"lightgbm", "ensemble"})
#: the interval columns a family returns, in the order they are stored
BOUNDS = ("lo_80", "hi_80", "lo_95", "hi_95")


@dataclass(frozen=True)
class Forecaster:
    """One option, ready to forecast any series: the family and its parameters."""

    family: str
    season_length: int
    freq: str
    horizon: int
    levels: tuple[int, ...] = (80, 95)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_global(self) -> bool:
        """Whether the family fits one model across all the series it is given."""
        return self.family in GLOBAL_FAMILIES

    def forecast(self, history: pd.DataFrame, h: int | None = None) -> pd.DataFrame:
        """Forecast every series of ``history`` (``unique_id, ds, y``) ``h`` steps ahead
        (default: the horizon it was chosen for): one row per (unique_id, ds) with
        ``mean``, the interval bounds and ``interval_source``."""
        from families import FAMILIES  # the example's module, beside this one

        steps = self.horizon if h is None else int(h)
        if steps < 1:
            raise ValueError(f"h must be at least 1, got {h!r}")
        try:
            family = FAMILIES[self.family]
        except KeyError:
            raise ValueError(
                f"unknown family {self.family!r}; known: {', '.join(sorted(FAMILIES))}"
            ) from None
        return family(history, steps, self.season_length, self.freq, self.levels, **self.params)

    def describe(self) -> str:
        return (
            f"{self.family} (season {self.season_length}, freq {self.freq}, "
            f"horizon {self.horizon}, levels {'/'.join(map(str, self.levels))})"
        )


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _iso(dates: pd.Series) -> list[str]:
    """ISO dates, with the time only when a date has one (hourly data)."""
    stamps = [pd.Timestamp(d) for d in dates]
    if all(s == s.normalize() for s in stamps):
        return [s.date().isoformat() for s in stamps]
    return [s.isoformat() for s in stamps]


def entries(
    frame: pd.DataFrame, *, family: str, model: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(series_id, value)`` per series of a forecast frame, the value plain data: ``family,
    model, ds`` (ISO dates), ``mean``, ``lo_80, hi_80, lo_95, hi_95`` (lists, one per step;
    null where a bound is missing) and ``interval_source``."""
    missing = {"unique_id", "ds", "mean"} - set(frame.columns)
    if missing:
        raise ValueError(f"the forecast frame lacks the column(s) {sorted(missing)}")
    for series_id, part in frame.sort_values(["unique_id", "ds"]).groupby("unique_id", sort=True):
        sources = (
            sorted(set(part["interval_source"].astype(str)))
            if "interval_source" in part
            else ["model"]
        )
        value: dict[str, Any] = {
            "series_id": str(series_id),
            "family": family,
            "model": model,
            "ds": _iso(part["ds"]),
            "mean": [_number(v) for v in part["mean"]],
        }
        for bound in BOUNDS:
            value[bound] = [_number(v) for v in part[bound]] if bound in part else None
        value["interval_source"] = sources[0] if len(sources) == 1 else "mixed"
        yield str(series_id), value


def shards(series_ids: list[str], count: int) -> list[list[str]]:
    """``series_ids`` dealt into at most ``count`` non-empty shards, in order."""
    count = max(1, min(int(count), len(series_ids)))
    size = math.ceil(len(series_ids) / count) if series_ids else 0
    return [series_ids[i : i + size] for i in range(0, len(series_ids), size)] or [[]]


__all__ = [
    "ALIAS",
    "BOUNDS",
    "GLOBAL_FAMILIES",
    "MODEL",
    "NAMESPACE",
    "Forecaster",
    "entries",
    "shards",
]
