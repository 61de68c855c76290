"""Forecasting options side by side: backtest each model family over rolling origins and
score them against seasonal naive and Naive2, so the numbers decide.

    python examples/forecast_options/flow.py run                       # Tourism quarterly, h=8
    python examples/forecast_options/flow.py run --data visnights --origins 2
    python examples/forecast_options/flow.py run --data sales.csv --horizon 6 --origins 3 \\
        --families current,improved

    start ─► backtest (one per family x origin) ─► join ─► end

``start`` loads the series (``--data``: ``tourism``, ``visnights``, ``airpassengers`` or a CSV
of ``series_id,date,value``) and fans out over every (family, origin) pair; ``current``
(seasonal naive) and ``naive2`` (OWA's reference) always run. Each ``backtest`` task fits one
family on every series' training part at one origin (see ``backtest.py`` for the protocol)
and keeps its forecasts. ``join`` gathers them into ``forecasts`` and scores them:
``scores`` (one row per family and series: ``family, series_id, mase, smape, owa, bias,
coverage_80, coverage_95, winkler_80, winkler_95, fit_seconds, interval_source, n_windows,
model``) and ``summary`` (one row per family).
"""

from __future__ import annotations

import time

import backtest
import pandas as pd
from data import load
from families import DEFAULT, FAMILIES, LEVELS, REFERENCES

from shipyard import FlowSpec, Parameter, current, step
from shipyard.flow.spec import Inputs

#: the order the foreach hands out work: the slowest families first, so that the workers
#: finish together
COST_ORDER = ("improved", "ensemble", "arima", "ets", "lightgbm", "theta", "current", "naive2")


class ForecastOptionsFlow(FlowSpec):
    """Rolling-origin backtests of forecasting options, scored per series."""

    data = Parameter(
        "data",
        default="tourism",
        help="tourism, visnights, airpassengers, or a CSV of series_id,date,value",
    )
    horizon = Parameter("horizon", default=0, help="steps ahead (0: the data set's own)")
    origins = Parameter("origins", default=4, help="rolling origins, spaced by the horizon")
    families = Parameter(
        "families",
        default=",".join(DEFAULT),
        help=f"comma-separated families of {', '.join(FAMILIES)}",
    )
    series = Parameter("series", default=0, help="keep the first N series (0: all)")

    @step
    def start(self) -> None:
        """Load the series, check the backtest fits them, and fan out over (family, origin)."""
        dataset = load(str(self.data))
        if self.series < 0:
            raise ValueError(f"--series must be 0 (all) or a count, got {self.series}")
        if self.series:
            dataset = dataset.head(int(self.series))
        print(dataset.describe())
        self.dataset_name = dataset.name
        self.frame = dataset.frame
        self.season_length = dataset.season_length
        self.freq = dataset.freq
        self.h = int(self.horizon) or dataset.horizon
        self.n_origins = int(self.origins)
        backtest.check(self.frame, self.h, self.n_origins, self.season_length)
        self.family_names = parse_families(str(self.families))
        self.levels = LEVELS
        ranked = sorted(self.family_names, key=_cost_rank)
        self.grid = [(f, o) for f in ranked for o in range(self.n_origins, 0, -1)]
        print(
            f"backtest: {len(self.family_names)} families x {self.n_origins} origins, "
            f"horizon {self.h} = {len(self.grid)} tasks"
        )
        self.next(self.backtest, foreach="grid")

    @step
    def backtest(self) -> None:
        """One family at one origin: fit on every series' training part, forecast the
        window, keep the forecasts beside the actuals."""
        self.family, self.origin = self.input
        cpu, wall = time.process_time(), time.perf_counter()
        self.forecast = backtest.run_window(
            self.family,
            self.frame,
            self.h,
            self.n_origins,
            self.origin,
            self.season_length,
            self.freq,
            self.levels,
        )
        self.cpu_seconds = time.process_time() - cpu
        self.wall_seconds = time.perf_counter() - wall
        n = self.forecast["unique_id"].nunique()
        print(
            f"{self.family} origin {self.origin}/{self.n_origins}: {n} series in "
            f"{self.wall_seconds:.1f} s ({self.cpu_seconds:.1f} CPU-s)"
        )
        self.next(self.join)

    @step
    def join(self, inputs: Inputs) -> None:
        """Gather every window's forecasts and score them: ``forecasts``, ``scores``,
        ``summary`` (and ``tasks``: each backtest task's CPU and wall seconds)."""
        self.merge_artifacts(
            inputs,
            include=[
                "dataset_name",
                "frame",
                "season_length",
                "freq",
                "h",
                "n_origins",
                "family_names",
                "levels",
            ],
        )
        self.tasks = pd.DataFrame(
            [
                {
                    "family": i.family,
                    "origin": i.origin,
                    "cpu_seconds": i.cpu_seconds,
                    "wall_seconds": i.wall_seconds,
                }
                for i in inputs
            ]
        )
        parts = [i.forecast for i in inputs if len(i.forecast)]
        self.forecasts = pd.concat(parts, ignore_index=True).sort_values(
            ["family", "origin", "unique_id", "ds"], kind="stable", ignore_index=True
        )
        self.scores = backtest.scores(
            self.forecasts, self.frame, self.h, self.n_origins, self.season_length
        )
        self.summary = backtest.summary(self.scores)
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(self.summary.round(3).to_string(index=False))
        self.next(self.end)

    @step
    def end(self) -> None:
        """Say where the numbers are."""
        print(
            f"{self.dataset_name}: {self.scores['series_id'].nunique()} series, "
            f"{len(self.family_names)} families, {self.n_origins} origins of {self.h}"
        )
        print(f"look at it: shipyard show {current.flow_name}/{current.run_id}")


def parse_families(text: str) -> list[str]:
    """``--families`` as a list, the references (``current``, ``naive2``) added."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(
            f"--families: unknown {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(FAMILIES)}"
        )
    for ref in REFERENCES:
        if ref not in names:
            names.append(ref)
    return list(dict.fromkeys(names))


def _cost_rank(family: str) -> int:
    return COST_ORDER.index(family) if family in COST_ORDER else len(COST_ORDER)


if __name__ == "__main__":
    ForecastOptionsFlow()
