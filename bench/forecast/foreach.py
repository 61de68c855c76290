"""shipyard's parallel foreach over the same work: one task per (model, origin).

    python bench/forecast/foreach.py run --out OUT.pkl --max-workers 2 [--series N]

Each task fits one statsforecast model (``n_jobs=1``) on every series' training part at one
origin and forecasts the next ``H``; the join puts the tasks' frames together in the shape
of statsforecast's ``cross_validation`` (``unique_id, ds, cutoff, y`` and one column per
model) and writes it to OUT.pkl.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import statsforecast.models  # noqa: F401 - imported once by the zygote, not by each task
from statsforecast import StatsForecast

sys.path.insert(0, str(Path(__file__).resolve().parent))

from work import MODELS, ORIGINS, H, cut, model, tourism  # noqa: E402

#: the models by CPU per task on the Tourism series, the dearest first
COST_ORDER = ("AutoARIMA", "AutoETS", "AutoTheta", "SeasonalNaive")

from shipyard import FlowSpec, Parameter, step  # noqa: E402
from shipyard.flow.spec import Inputs  # noqa: E402


class ForecastForeachFlow(FlowSpec):
    """(model x origin) tasks over the Tourism quarterly series."""

    out = Parameter("out", default="", help="where the join writes the forecasts (a pickle)")
    series = Parameter("series", default=0, help="the first N series only (0: all)")

    @step
    def start(self) -> None:
        self.frame, self.season, self.freq = tourism(self.series)
        # the longest tasks first, so that the two workers finish together
        by_cost = sorted(MODELS, key=COST_ORDER.index)
        self.work = [(name, origin) for name in by_cost for origin in range(1, ORIGINS + 1)]
        self.next(self.fit, foreach="work")

    @step
    def fit(self) -> None:
        name, origin = self.input
        train, window = cut(self.frame, origin)
        sf = StatsForecast(models=[model(name, self.season)], freq=self.freq, n_jobs=1)
        predicted = sf.forecast(df=train, h=H)
        cutoff = train.groupby("unique_id")["ds"].max().rename("cutoff")
        predicted = predicted.merge(cutoff, on="unique_id")
        self.part = predicted.merge(window, on=["unique_id", "ds"], how="left")
        self.part["origin"] = origin
        self.next(self.join)

    @step
    def join(self, inputs: Inputs) -> None:
        parts = [i.part for i in inputs]
        keys = ["unique_id", "ds", "cutoff", "y"]
        merged = None
        for name in MODELS:
            mine = pd.concat([p[[*keys, name]] for p in parts if name in p], ignore_index=True)
            merged = mine if merged is None else merged.merge(mine, on=keys)
        assert merged is not None
        self.rows = len(merged)
        if self.out:
            merged.to_pickle(self.out)
        self.next(self.end)

    @step
    def end(self) -> None:
        print(f"{self.rows} forecasts")


if __name__ == "__main__":
    ForecastForeachFlow()
