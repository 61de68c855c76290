"""Forecasting options side by side: backtest each model family over rolling origins and
score them against seasonal naive and Naive2, so the numbers decide.

    python examples/forecast_options/flow.py run                       # Tourism quarterly, h=8
    python examples/forecast_options/flow.py run --data visnights --origins 2
    python examples/forecast_options/flow.py run --data sales.csv --horizon 6 --origins 3 \\
        --families current,improved

    start ─► backtest (one per family x origin) ─► join ─► report ─► bulk
          ─► forecast (one per shard) ─► publish ─► end

``start`` loads the series (``--data``: ``tourism``, ``visnights``, ``airpassengers`` or a CSV
of ``series_id,date,value``) and fans out over every (family, origin) pair; ``current``
(seasonal naive) and ``naive2`` (OWA's reference) always run. Each ``backtest`` task fits one
family on every series' training part at one origin (see ``backtest.py`` for the protocol)
and keeps its forecasts. ``join`` gathers them into ``forecasts`` and scores them:
``scores`` (one row per family and series: ``family, series_id, mase, smape, owa, bias,
coverage_80, coverage_95, winkler_80, winkler_95, fit_seconds, interval_source, n_windows,
model``) and ``summary`` (one row per family).

``report`` writes the card a decision-maker reads (``report.py``: the options side by side,
the recommendation and its rule — the simplest option within 2% of the best mean MASE) and
registers the recommended option as ``forecaster``; ``bulk`` begins a version of the cache
namespace ``forecasts`` and deals the series into shards (one for a global model); each
``forecast`` task refits the option on its series' whole history and writes their forecasts
with intervals; ``publish`` makes the version live and moves ``forecaster@prod`` to the
version that made it (``service.py`` serves it). Quarterly once scheduled (``shipyard
schedule create``), and whenever a ``forecast-data-arrived`` event names new data.
"""

from __future__ import annotations

import time

import backtest
import pandas as pd
from data import load
from families import DEFAULT, FAMILIES, LEVELS, REFERENCES
from publish import ALIAS, MODEL, NAMESPACE, Forecaster, entries, shards
from report import card as report_card
from report import options_table, recommend

from shipyard import FlowSpec, Parameter, cache, current, retry, schedule, step, trigger
from shipyard.cards import card
from shipyard.flow.spec import Inputs
from shipyard.registry import Registry

#: the shards the bulk step forecasts in parallel (a global model forecasts in one)
SHARDS = 4

#: the order the foreach hands out work: the slowest families first, so that the workers
#: finish together
COST_ORDER = ("improved", "ensemble", "arima", "ets", "lightgbm", "theta", "current", "naive2")


@schedule(cron="0 6 2 1,4,7,10 *")  # 06:00 UTC on the 2nd day of every quarter
@trigger(event={"name": "forecast-data-arrived", "parameters": {"data": "path"}})
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
        self.next(self.report)

    @card(type="blank")
    @step
    def report(self) -> None:
        """The report card, the recommendation its rule makes, and the recommended option
        registered as ``forecaster`` with its backtest figures."""
        self.options = options_table(self.scores)
        self.recommendation = recommend(self.options)
        choice = self.recommendation
        print(f"recommendation: {choice.family}: {choice.reason}")
        n_series = self.scores["series_id"].nunique()
        note = (
            f"{self.dataset_name}: {n_series} series, {self.n_origins} rolling origins of "
            f"{self.h} steps (spaced by the horizon, the last window ending at the last "
            f"observation), families {', '.join(self.family_names)}. Every family is fit "
            "afresh at every origin on the training part only."
        )
        for component in report_card(self.scores, self.forecasts, self.frame, choice, note=note):
            current.card.append(component)
        self.forecaster = Forecaster(
            family=choice.family,
            season_length=int(self.season_length),
            freq=str(self.freq),
            horizon=int(self.h),
            levels=tuple(self.levels),
        )
        current.register_model(
            MODEL,
            self.forecaster,
            metrics=_metrics(self.options, choice.family),
            tags=[
                f"family={choice.family}",
                f"data={self.dataset_name}",
                f"horizon={self.h}",
                f"origins={self.n_origins}",
            ],
        )
        self.next(self.bulk)

    @step
    def bulk(self) -> None:
        """Begin the cache version every shard writes into and deal the series into shards
        (a step of its own: a join's transition is linear)."""
        self.model_version = _registered_version()
        self.forecasts_cache = cache.bulk(
            NAMESPACE, meta={"run": current.pathspec, "model": f"{MODEL}:{self.model_version}"}
        )
        series_ids = [str(s) for s in dict.fromkeys(self.frame["unique_id"])]
        self.shard_series = shards(series_ids, 1 if self.forecaster.is_global else SHARDS)
        self.shard_ids = list(range(len(self.shard_series)))
        self.next(self.forecast, foreach="shard_ids")

    @retry(times=1, minutes_between_retries=0)
    @step
    def forecast(self) -> None:
        """Refit the option on this shard's series (their whole history) and write their
        next ``h`` values with intervals (a retry rewrites the same keys)."""
        mine = set(self.shard_series[self.input])
        history = self.frame[self.frame["unique_id"].astype(str).isin(mine)]
        frame = self.forecaster.forecast(history)
        model = f"{MODEL}:{self.model_version}"
        with self.forecasts_cache.part(self.input) as part:
            self.written = part.put_many(entries(frame, family=self.forecaster.family, model=model))
        print(f"shard {self.input}: {self.written} series forecast")
        self.next(self.publish)

    @step
    def publish(self, inputs: Inputs) -> None:
        """Make the cache version live once every shard has written, then move
        ``forecaster@prod`` to the version whose forecasts it holds."""
        self.written = sum(i.written for i in inputs)
        self.merge_artifacts(inputs, exclude=["written"])
        self.cache_version = self.forecasts_cache.commit(parts=len(inputs)).version
        Registry().set_alias(MODEL, self.model_version, ALIAS)
        self.next(self.end)

    @step
    def end(self) -> None:
        """Say what was decided and where the numbers are."""
        print(
            f"{self.dataset_name}: {self.scores['series_id'].nunique()} series, "
            f"{len(self.family_names)} families, {self.n_origins} origins of {self.h}"
        )
        print(f"recommendation: {self.recommendation.family} ({self.recommendation.reason})")
        print(
            f"{MODEL}:{self.model_version} ({self.forecaster.describe()}) at {MODEL}@{ALIAS}; "
            f"cache {NAMESPACE!r} version {self.cache_version}: {self.written} series"
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


def _metrics(options: pd.DataFrame, family: str) -> dict[str, float]:
    """The chosen option's backtest figures (and the current method's mean MASE) for the
    registry; only the finite ones (the registry refuses NaN)."""
    table = options.set_index("family")
    row = table.loc[family]
    found = {
        "mase": row["mase_mean"],
        "mase_median": row["mase_median"],
        "smape": row["smape_mean"],
        "owa": row["owa"],
        "worse_than_naive": row["worse_than_naive"],
        "coverage_80": row["coverage_80"],
        "coverage_95": row["coverage_95"],
    }
    if "current" in table.index:
        found["current_mase"] = table.loc["current", "mase_mean"]
    return {k: float(v) for k, v in found.items() if pd.notna(v)}


def _registered_version() -> int:
    """The version of ``forecaster`` this run's ``report`` task registered (committed when
    the task succeeded, so a later step finds it in the registry)."""
    mine = [
        v.version
        for v in Registry().versions(MODEL)
        if v.flow_name == current.flow_name and v.run_id == current.run_id
    ]
    if not mine:
        raise RuntimeError(f"{current.flow_name}/{current.run_id} registered no {MODEL!r}")
    return max(mine)


def _cost_rank(family: str) -> int:
    return COST_ORDER.index(family) if family in COST_ORDER else len(COST_ORDER)


if __name__ == "__main__":
    ForecastOptionsFlow()
