"""The chosen option's forecasts, served from the precompute cache.

    shipyard deploy examples/forecast_options/service.py:Forecasts --name forecasts
    curl -H 'content-type: application/json' localhost:8000/forecasts/get \\
         -d '{"series_id": "Q1", "h": 4}'

``get`` never fits a model in the request path: it reads what the flow's bulk step wrote
into the ``forecasts`` namespace (every series, the whole horizon, with 80% and 95%
intervals) and answers the first ``h`` steps. A series the cache does not hold is a 404
naming it; ``h`` beyond the stored horizon is a 422 naming the field; no forecasts published
yet (or the cache unreachable) is a 503 saying so.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from shipyard import HTTPError, cache
from shipyard.serve import Service, endpoint

NAMESPACE = "forecasts"


class Point(BaseModel):
    ds: str
    mean: float | None
    lo_80: float | None
    hi_80: float | None
    lo_95: float | None
    hi_95: float | None


class Forecast(BaseModel):
    series_id: str
    h: int
    #: the option that made it and the registered version ("forecaster:3")
    family: str
    model: str
    #: "conformal", or "model" when the series was too short for conformal windows
    interval_source: str
    forecast: list[Point]


class Forecasts(Service):
    """Forecasts with intervals per series, read from the precompute cache."""

    def load(self) -> None:
        self.rows = cache.reader(NAMESPACE, lru=10_000, strict=True)

    @endpoint
    def get(self, series_id: str, h: Annotated[int, Field(ge=1)]) -> Forecast:
        """The next ``h`` steps of ``series_id``: mean and 80% / 95% intervals."""
        try:
            row = self.rows.get(series_id, default=None)
        except cache.CacheError as exc:
            raise HTTPError(
                503,
                f"no forecasts to serve yet: {exc} (the flow "
                "examples/forecast_options/flow.py publishes them)",
            ) from None
        if row is None:
            raise HTTPError(
                404, f"no forecast for series {series_id!r}: the flow has not forecast it",
                field="series_id",
            )  # fmt: skip
        stored = len(row["mean"])
        if h > stored:
            raise HTTPError(
                422, f"h={h} is beyond the {stored} steps forecast for {series_id!r}; "
                f"ask for 1 to {stored}", field="h",
            )  # fmt: skip
        empty = [None] * stored
        points = [
            Point(
                ds=row["ds"][i],
                mean=row["mean"][i],
                **{b: (row[b] or empty)[i] for b in ("lo_80", "hi_80", "lo_95", "hi_95")},
            )
            for i in range(h)
        ]
        return Forecast(
            series_id=series_id,
            h=h,
            family=row["family"],
            model=row["model"],
            interval_source=row["interval_source"],
            forecast=points,
        )
