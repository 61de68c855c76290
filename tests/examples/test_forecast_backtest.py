"""examples/forecast_options, the backtest half: the measures by hand on tiny series, Naive2's
seasonal adjustment, the rolling-origin protocol, the pooled conformal intervals and their
fallback, the same backtest written with statsforecast's ``cross_validation`` giving the same
MASE, CSV errors naming line and column, and a small run of the flow (``scores``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from support.example_modules import example_modules

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "forecast_options"
data: Any = None
metrics: Any = None
families: Any = None
backtest: Any = None


@pytest.fixture(scope="module", autouse=True)
def _example_modules() -> Iterator[None]:
    """This example's modules while this test module runs, and none of them after."""
    global data, metrics, families, backtest
    with example_modules(EXAMPLE, "data", "metrics", "families", "backtest") as modules:
        data, metrics = modules["data"], modules["metrics"]
        families, backtest = modules["families"], modules["backtest"]
        yield


def _frame(series: dict[str, list[float]], start: str = "2000-01-01") -> pd.DataFrame:
    rows = []
    for uid, values in series.items():
        dates = pd.date_range(start, periods=len(values), freq="QS")
        rows.append(pd.DataFrame({"unique_id": uid, "ds": dates, "y": np.asarray(values, float)}))
    return pd.concat(rows, ignore_index=True)


# ------------------------------------------------------------------------ measures


def test_measures_by_hand_on_a_tiny_series() -> None:
    train = np.array([1.0, 2, 3, 4, 2, 3, 4, 6])  # seasonal diffs 1, 1, 1, 2
    scale = metrics.seasonal_naive_mae(train, 4)
    assert scale == pytest.approx(1.25)
    actual, forecast = np.array([3.0, 4, 0]), np.array([2.0, 6, 0])
    assert metrics.mase(actual, forecast, scale) == pytest.approx((1 + 2 + 0) / 3 / 1.25)
    # 200|y-f|/(|y|+|f|): 40, 40, and 0 where both are 0
    assert metrics.smape(actual, forecast) == pytest.approx((40 + 40 + 0) / 3)
    assert metrics.bias(actual, forecast, scale) == pytest.approx((-1 + 2 + 0) / 3 / 1.25)
    lo, hi = np.array([2.5, 3.0, 1.0]), np.array([3.5, 5.0, 2.0])
    assert metrics.coverage(actual, lo, hi) == pytest.approx(2 / 3)
    # 80%: alpha 0.2, penalty 2/0.2 = 10 per unit outside: widths 1, 2, 1; the last is 1 below
    assert metrics.winkler(actual, lo, hi, 80, scale) == pytest.approx((1 + 2 + 1 + 10) / 3 / 1.25)
    assert metrics.owa(10.0, 1.0, 20.0, 2.0) == pytest.approx(0.5)
    no_interval = metrics.coverage_terms(actual, np.array([2.5, np.nan, 1]), hi)
    np.testing.assert_array_equal(no_interval, [1.0, np.nan, 0.0])
    assert np.isnan(metrics.seasonal_naive_mae(np.array([1.0, 2, 3, 4]), 4))
    assert np.isnan(metrics.mase(actual, forecast, 0.0))  # a constant training part


def test_naive2_adjusts_a_seasonal_series_and_leaves_a_plain_one_alone() -> None:
    pattern = np.array([0.8, 1.2, 1.1, 0.9])
    seasonal = 100 * np.tile(pattern, 6)
    assert families.is_seasonal(seasonal, 4)
    np.testing.assert_allclose(families.seasonal_indices(seasonal, 4), pattern)
    out = families.Naive2(4).forecast(seasonal, 6, level=[80])
    np.testing.assert_allclose(out["mean"], 100 * np.r_[pattern, pattern[:2]])
    rng = np.random.default_rng(0)
    walk = 50 + np.cumsum(rng.normal(size=40))
    assert not families.is_seasonal(walk, 4)
    np.testing.assert_allclose(families.Naive2(4).forecast(walk, 3)["mean"], [walk[-1]] * 3)
    assert not families.is_seasonal(seasonal[:11], 4)  # fewer than 3 seasons: not tested


# ------------------------------------------------------------------------ protocol


def test_origins_are_spaced_by_the_horizon_and_the_last_ends_at_the_last_observation() -> None:
    # min_train for quarterly data is 12: origins 1 and 2 of a 30-long series are too short
    assert backtest.cutoffs(30, 8, 4, 4) == {3: 14, 4: 22}
    assert backtest.cutoffs(60, 8, 4, 4) == {1: 28, 2: 36, 3: 44, 4: 52}
    frame = _frame({"long": list(range(1, 61)), "short": list(range(101, 131))})
    seen = {}
    for origin in (1, 2, 3, 4):
        train, test = backtest.split(frame, 8, 4, origin, 4)
        for uid, group in test.groupby("unique_id"):
            seen[(uid, origin)] = (
                len(train[train["unique_id"] == uid]),
                group["y"].tolist(),
            )
    assert seen[("long", 4)] == (52, list(range(53, 61)))  # ends at the last observation
    assert seen[("long", 3)] == (44, list(range(45, 53)))
    assert seen[("long", 1)] == (28, list(range(29, 37)))
    assert seen[("short", 4)] == (22, list(range(123, 131)))
    assert ("short", 2) not in seen and ("short", 1) not in seen
    with pytest.raises(backtest.BacktestError, match="--origins 9 x --horizon 8 needs"):
        backtest.check(frame, 8, 9, 4)
    with pytest.raises(backtest.BacktestError, match="--horizon must be at least 1"):
        backtest.check(frame, 0, 2, 4)


def test_each_window_is_scaled_by_its_own_training_part_and_a_series_mase_is_their_mean() -> None:
    # a seasonal pattern whose swing grows, plus noise: each origin's scale differs
    t = np.arange(44, dtype=float)
    noise = np.random.default_rng(3).normal(scale=2.0, size=44)
    y = 10 + t + (1 + t / 10) * np.tile([3.0, -1, 2, -4], 11) + noise
    frame = _frame({"a": list(y)})
    windows = [backtest.run_window("current", frame, 8, 3, k, 4, "QS") for k in (1, 2, 3)]
    table = backtest.scores(pd.concat(windows), frame, 8, 3, 4)
    row = table.set_index("family").loc["current"]
    by_hand, errors, scales = [], [], []
    for k in (1, 2, 3):
        length = 44 - (3 - k + 1) * 8
        train, test = y[:length], y[length : length + 8]
        forecast = np.tile(train[-4:], 2)  # seasonal naive
        errors.append(np.mean(np.abs(test - forecast)))
        scales.append(np.mean(np.abs(train[4:] - train[:-4])))
        by_hand.append(errors[-1] / scales[-1])
    assert len(set(np.round(scales, 6))) == 3
    assert row["mase"] == pytest.approx(np.mean(by_hand))
    # not one scale for every window (the whole series', or the last training part's)
    whole = np.mean(np.abs(y[4:] - y[:-4]))
    for single in (whole, scales[-1]):
        assert row["mase"] != pytest.approx(np.mean(errors) / single, rel=1e-3)
    assert row["n_windows"] == 3 and row["series_id"] == "a"
    assert list(table.columns) == list(backtest.SCORE_COLUMNS)


# ------------------------------------------------------------------------ intervals


def test_conformal_quantiles_are_pooled_per_step_and_short_series_keep_the_models_own() -> None:
    h, m = 2, 4
    train = _frame(
        {
            "a": [1.0, 2] * 12,  # seasonal diffs all 0: the constant-series scale, 1
            "b": list(np.arange(24.0)),  # seasonal diffs all 4: scale 4
            "c": [3.0, 3, 4, 4] * 4,  # 16 - 2 x 2 < 12: too short for calibration windows
        }
    )
    ok = families.SeriesForecast
    # calibration cutoffs 20 and 22; actuals a: (1, 2), (1, 2); b: (20, 21), (22, 23)
    a = ok(np.array([10.0, 10]), {}, np.array([[2.0, 1], [1, 2]]), "x", 0.1)
    b = ok(np.array([20.0, 20]), {}, np.array([[20.0, 22], [26, 23]]), "x", 0.1)
    native = {"lo-80": np.array([0.0, 0]), "hi-80": np.array([9.0, 9])}
    c = ok(np.array([4.0, 4]), native, None, "x", 0.1)
    out = families.conformal(train, {"a": a, "b": b, "c": c}, h, m, "QS", (50, 80))
    assert dict(out.groupby("unique_id")["interval_source"].first()) == {
        "a": "conformal",
        "b": "conformal",
        "c": "model",
    }
    # scores |f - y| / scale per step: step 1 a (1, 0), b (0, 1) -> {0, 0, 1, 1};
    # step 2 a (1, 0), b (0.25, 0) -> {0, 0, 0.25, 1}. n = 4: 50% takes the
    # ceil(5 x 0.5) = 3rd smallest (1 and 0.25), 80% the ceil(5 x 0.8) = 4th (1 and 1)
    half = out.set_index("unique_id")
    np.testing.assert_allclose(half.loc["a", "hi_50"] - half.loc["a", "mean"], [1.0, 0.25])
    np.testing.assert_allclose(half.loc["b", "mean"] - half.loc["b", "lo_50"], [4.0, 1.0])
    np.testing.assert_allclose(half.loc["a", "hi_80"] - half.loc["a", "mean"], [1.0, 1.0])
    np.testing.assert_allclose(half.loc["c", "hi_80"], [9.0, 9.0])
    assert half.loc["c", "lo_50"].isna().all()  # the model had no 50% interval


def test_each_calibration_window_is_scaled_by_the_data_before_its_cutoff() -> None:
    """A score is scaled by what was known when its window was forecast, as the interval is
    at the origin: here the series jumps after the first cutoff, so the whole training
    part's scale (6) would shrink the scores and the intervals with them."""
    h, m = 2, 4
    y = [*np.arange(20.0), 30, 31, 32, 33]  # seasonal diffs 4, then 14 from position 20
    train = _frame({"d": y})
    # cutoffs 20 and 22: actuals (30, 31) and (32, 33); errors (4, 0) and (0, 5)
    calibration = np.array([[26.0, 31], [32, 28]])
    result = families.SeriesForecast(np.array([40.0, 40]), {}, calibration, "x", 0.1)
    out = families.conformal(train, {"d": result}, h, m, "QS", (50,))
    before_20, before_22, whole = 4.0, (16 * 4 + 2 * 14) / 18, (16 * 4 + 4 * 14) / 20
    # 2 scores per step: 50% takes the ceil(3 x 0.5) = 2nd smallest, the larger
    step1, step2 = max(4 / before_20, 0 / before_22), max(0 / before_20, 5 / before_22)
    half = out["hi_50"].to_numpy() - out["mean"].to_numpy()
    np.testing.assert_allclose(half, [step1 * whole, step2 * whole])
    assert set(out["interval_source"]) == {"conformal"}


def test_series_too_short_for_calibration_windows_fall_back_and_are_flagged() -> None:
    rng = np.random.default_rng(1)
    season = np.tile([5.0, -3, 2, -4], 20)
    series = {f"long{i}": list(100 + season + rng.normal(size=80)) for i in range(10)}
    series["short"] = list(50 + season[:18] + rng.normal(size=18))  # 18 - 2 windows x 4 < 12
    out = families.FAMILIES["current"](_frame(series), 4, 4, "QS", (80, 95))
    flags = out.groupby("unique_id")["interval_source"].first()
    assert flags.pop("short") == "model" and set(flags) == {"conformal"}
    assert (out["lo_95"] < out["lo_80"]).all() and (out["hi_80"] < out["hi_95"]).all()
    assert (out["fit_seconds"] >= 0).all() and out["fit_seconds"].notna().all()
    # 9 calibrated series give 18 scores per step: too few for a 95% bound (19 needed), so
    # every series keeps the model's own intervals, flagged
    fewer = {k: v for k, v in series.items() if k != "long0"}
    out = families.FAMILIES["current"](_frame(fewer), 4, 4, "QS", (80, 95))
    assert set(out["interval_source"]) == {"model"}


def test_improved_calibrates_on_the_selection_not_on_the_model_it_selected() -> None:
    """The conformal score of a choosing family is the last window forecast by the model
    the earlier window alone picks; the earlier window is left out of the pool."""
    rng = np.random.default_rng(7)
    y = 100 + np.tile([8.0, -5, 3, -6], 10) + np.cumsum(rng.normal(scale=3, size=40))
    train = _frame({"s": list(y)})
    h, m = 4, 4
    names = ["SeasonalNaive", "Naive2"]
    chosen = families.local_family(train, h, m, (80, 95), names, choose=True)["s"]
    assert chosen.model in names
    own = {
        name: families.fit_local(families.local_models(m)[name], y, h, m, (80,), final=False)
        for name in names
    }
    first = 40 - 2 * h  # the calibration windows start at 32 and 36
    early = {n: np.mean(np.abs(own[n].calibration[0] - y[first : first + h])) for n in names}
    picked = min(early, key=early.__getitem__)
    assert np.isnan(chosen.calibration[0]).all()
    np.testing.assert_allclose(chosen.calibration[1], own[picked].calibration[1])
    assert chosen.seconds > 0


# ---------------------------------------------- the same backtest with cross_validation


def test_the_same_backtest_with_statsforecast_cross_validation_gives_the_same_mase() -> None:
    """Seasonal naive, AutoETS and the improved option (whichever of AutoETS, AutoARIMA and
    AutoTheta it chose per series and window) score exactly what statsforecast's own
    ``cross_validation`` over the same windows scores."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    frame = data.load("visnights").head(5).frame
    h, n_origins, m = 8, 2, 4
    windows = pd.concat(
        [
            backtest.run_window(family, frame, h, n_origins, k, m, "QS")
            for family in ("current", "ets", "improved")
            for k in (1, 2)
        ]
    )
    ours = backtest.scores(windows, frame, h, n_origins, m)

    models = [
        SeasonalNaive(season_length=m),
        AutoETS(season_length=m),
        AutoARIMA(season_length=m, **families.ARIMA_SEARCH),
        AutoTheta(season_length=m),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = StatsForecast(models=models, freq="QS").cross_validation(
            df=frame, h=h, n_windows=n_origins, step_size=h
        )
    cv = cv.reset_index() if "unique_id" not in cv.columns else cv
    chosen = windows[windows["family"] == "improved"].groupby(["unique_id", "origin"])["model"]
    chosen = chosen.first()
    assert chosen.nunique() >= 2  # the choice is per series and window
    theirs: dict[tuple[str, str], list[float]] = {}
    for (uid, cutoff), window in cv.groupby(["unique_id", "cutoff"]):
        history = frame[(frame["unique_id"] == uid) & (frame["ds"] <= cutoff)]["y"].to_numpy()
        scale = np.mean(np.abs(history[m:] - history[:-m]))
        origin = n_origins - (76 - len(history)) // h + 1
        for family, model in (
            ("current", "SeasonalNaive"),
            ("ets", "AutoETS"),
            ("improved", chosen[(uid, origin)]),
        ):
            error = np.mean(np.abs(window["y"] - window[model])) / scale
            theirs.setdefault((family, uid), []).append(error)
    assert len(theirs) == 15 and all(len(v) == 2 for v in theirs.values())
    compared = ours[ours["family"].isin(["current", "ets", "improved"])]
    assert len(compared) == 15
    for row in compared.itertuples():
        assert row.mase == pytest.approx(np.mean(theirs[(row.family, row.series_id)]), rel=1e-6)


def test_the_ensemble_is_the_mean_of_its_members() -> None:
    frame = data.load("visnights").head(3).frame
    train, _ = backtest.split(frame, 8, 1, 1, 4)
    args = (train, 8, 4, "QS", (80, 95))
    members = {
        "AutoTheta": families.theta(*args),
        "lightgbm": families.lightgbm(*args),
    }
    together = families.ensemble(*args)
    expected = np.mean([members[name]["mean"].to_numpy() for name in families.ENSEMBLE], axis=0)
    np.testing.assert_allclose(together["mean"].to_numpy(), expected, rtol=1e-9)
    assert set(together["interval_source"]) == {"model"}  # 6 scores: too few for 95%
    assert together["model"].iloc[0] == "mean(AutoTheta, LightGBM)"


# ------------------------------------------------------------------------ data


def test_csv_loads_and_its_errors_name_the_line_and_column(tmp_path: Path) -> None:
    good = tmp_path / "sales.csv"
    rows = ["series_id,date,value,note"]
    for sid in ("north", "south"):
        for month in range(1, 40):
            year, mo = 2020 + (month - 1) // 12, (month - 1) % 12 + 1
            rows.append(f"{sid},{year}-{mo:02d}-01,{month * 1.5},x")
    good.write_text("\n".join(rows) + "\n")
    ds = data.load(str(good))
    assert (ds.n_series, ds.freq, ds.season_length, ds.horizon) == (2, "MS", 12, 18)
    assert ds.frame["unique_id"].tolist()[:1] == ["north"] and len(ds.frame) == 78

    def fails(text: str, match: str) -> None:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(data.DataError, match=match):
            data.load(str(bad))

    fails("id,date,value\na,2020-01-01,1\n", r"bad\.csv:1: .*lacks the column\(s\) series_id")
    fails(
        "series_id,date,value\na,2020-01-01,1\na,first of may,2\n",
        r"bad\.csv:3: column date: 'first of may' is not a date",
    )
    fails(
        "series_id,date,value\na,2020-01-01,1\na,2020-02-01,lots\n",
        r"bad\.csv:3: column value: 'lots' is not a number",
    )
    fails(
        "series_id,date,value\na,2020-01-01,1\na,2020-02-01,\n",
        r"bad\.csv:3: column value: '' is not a number",
    )
    fails(
        "series_id,date,value\na,2020-01-01,1\na,2020-02-01,2\na,2020-01-01,3\n",
        r"bad\.csv:4: series 'a' has 2020-01-01 twice",
    )
    fails(
        "series_id,date,value\n" + "".join(f"a,2020-{mo:02d}-01,1\n" for mo in (1, 2, 3, 5, 6)),
        r"bad\.csv:2: series 'a' is not regular in column date, e\.g\. 2020-04-01 is missing",
    )
    fails("", r"bad\.csv: the file is empty")
    with pytest.raises(data.DataError, match="neither a data set"):
        data.load(str(tmp_path / "nowhere.csv"))


def test_the_named_data_sets_load_offline_with_their_shapes() -> None:
    tourism = data.load("tourism")
    lengths = tourism.lengths()
    assert (tourism.n_series, tourism.season_length, tourism.horizon) == (427, 4, 8)
    assert (lengths.min(), lengths.max()) == (30, 130)
    assert (tourism.frame.groupby("unique_id")["ds"].max() == pd.Timestamp("2007-10-01")).all()
    visnights = data.load("visnights")
    assert visnights.n_series == 20 and set(visnights.lengths()) == {76}
    assert data.load("airpassengers").frame["y"].iloc[:3].tolist() == [112.0, 118.0, 132.0]


# ------------------------------------------------------------------------ the flow


def test_the_flow_backtests_every_family_and_origin_and_keeps_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.testing import run_flow

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    run = run_flow(
        EXAMPLE / "flow.py",
        data="visnights",
        series=3,
        origins=2,
        families="current,improved,lightgbm",
    )
    assert run.successful
    tasks = run["backtest"].tasks()
    assert len(tasks) == 4 * 2  # current, improved, lightgbm and naive2, at 2 origins
    assert {(t.data.family, t.data.origin) for t in tasks} == {
        (f, o) for f in ("current", "improved", "lightgbm", "naive2") for o in (1, 2)
    }
    joined = run["join"].task.data
    scores, forecasts = joined.scores, joined.forecasts
    assert isinstance(scores, pd.DataFrame)
    assert {"family", "series_id", "mase", "smape", "owa", "coverage_80"} <= set(scores.columns)
    assert len(scores) == 4 * 3 and not scores.duplicated(["family", "series_id"]).any()
    assert len(forecasts) == 4 * 3 * 2 * 8
    assert (scores["n_windows"] == 2).all() and (scores["mase"] > 0).all()
    naive2 = scores[scores["family"] == "naive2"]
    np.testing.assert_allclose(naive2["owa"], 1.0)
    # the contract's numbers come from the forecasts kept beside them
    sid = scores["series_id"].iloc[0]
    one = forecasts[(forecasts["family"] == "improved") & (forecasts["unique_id"] == sid)]
    frame = joined.frame
    y = frame[frame["unique_id"] == sid]["y"].to_numpy()
    by_hand = []
    for origin, window in one.groupby("origin"):
        train = y[: 76 - (2 - origin + 1) * 8]
        scale = np.mean(np.abs(train[4:] - train[:-4]))
        by_hand.append(np.mean(np.abs(window["y"] - window["mean"])) / scale)
    row = scores[(scores["family"] == "improved") & (scores["series_id"] == sid)]
    assert row["mase"].iloc[0] == pytest.approx(np.mean(by_hand))
    summary = joined.summary.set_index("family")
    assert summary.loc["naive2", "owa"] == pytest.approx(1.0)
    assert summary["wins"].sum() == 3  # each series won by one of the compared families
    assert (summary["cpu_seconds"] > 0).all()
