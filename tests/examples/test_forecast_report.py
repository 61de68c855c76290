"""examples/forecast_options, after the backtests: the options table and the recommendation
rule (on small hand-made ``scores``), the card (it renders, names the choice, draws the fan
charts of the best and worst series, flags the fallback intervals), the cache entries the
bulk step writes, and the ``/forecasts/get`` service over a real cache (answers, 404, 422,
503)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from support.example_modules import example_modules

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "forecast_options"
report: Any = None
publish: Any = None


@pytest.fixture(scope="module", autouse=True)
def _example_modules() -> Iterator[None]:
    """This example's modules while this test module runs, and none of them after."""
    global report, publish
    with example_modules(EXAMPLE, "report", "publish") as modules:
        report, publish = modules["report"], modules["publish"]
        yield


def _summary(means: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"family": list(means), "mase_mean": list(means.values())})


# ------------------------------------------------------------------------ the rule


def test_the_simplest_option_within_two_percent_of_the_best_is_chosen() -> None:
    choice = report.recommend(
        _summary({"ensemble": 1.40, "lightgbm": 1.55, "improved": 1.42, "current": 1.70})
    )
    # improved is 1.4% above the best (ensemble) and simpler: it wins
    assert choice.family == "improved" and choice.best == "ensemble"
    assert choice.within == ("improved", "ensemble")
    assert choice.mase == pytest.approx(1.42) and choice.best_mase == pytest.approx(1.40)
    assert choice.vs_current == pytest.approx(1 - 1.42 / 1.70)
    assert "within 1.4% of the best, ensemble" in choice.reason
    assert "16.5% lower than the current option's (1.700)" in choice.reason
    assert "within 2% of the best" in choice.rule
    assert "current < improved < lightgbm < ensemble" in choice.rule
    # the flow's own summary names the column mase: the same choice
    theirs = _summary({"ensemble": 1.40, "improved": 1.42}).rename(columns={"mase_mean": "mase"})
    assert report.recommend(theirs).family == "improved"


def test_the_best_wins_when_nothing_simpler_is_close_and_current_can_win() -> None:
    far = report.recommend(_summary({"current": 1.70, "improved": 1.50, "ensemble": 1.40}))
    assert far.family == "ensemble" and far.within == ("ensemble",)
    assert "lowest mean MASE" in far.reason and "no simpler option" in far.reason
    # seasonal naive within 2% of the best: keep the current method
    keep = report.recommend(_summary({"current": 1.02, "improved": 1.00, "lightgbm": 1.3}))
    assert keep.family == "current" and keep.vs_current == 0.0
    # exactly at the limit counts as within; a tie goes to the simpler option
    edge = report.recommend(_summary({"lightgbm": 1.00, "improved": 1.02}))
    assert edge.family == "improved" and edge.vs_current is None
    tie = report.recommend(_summary({"ensemble": 1.0, "lightgbm": 1.0}))
    assert tie.family == "lightgbm" and tie.best == "lightgbm"
    # a zero tolerance picks the best outright
    assert report.recommend(_summary({"current": 1.01, "improved": 1.0}), 0.0).family == "improved"


def test_the_rule_ignores_naive2_and_unscored_options_and_refuses_nonsense() -> None:
    choice = report.recommend(
        _summary({"naive2": 0.5, "current": 1.3, "improved": float("nan"), "chronos": 1.1})
    )
    # naive2 is a reference, improved has no score; an unknown family ranks after the known
    assert choice.family == "chronos" and choice.within == ("chronos",)
    with pytest.raises(ValueError, match="nothing was scored"):
        report.recommend(_summary({"naive2": 1.0}))
    with pytest.raises(ValueError, match="tolerance"):
        report.recommend(_summary({"current": 1.0}), 2.0)
    with pytest.raises(ValueError, match="mase_mean"):
        report.recommend(pd.DataFrame({"family": ["current"]}))
    order = sorted(
        ["ensemble", "x", "arima", "improved", "current", "a"], key=report.simplicity_rank
    )
    assert order == ["current", "arima", "improved", "ensemble", "a", "x"]


# ------------------------------------------------------------------- synthetic runs

SERIES = [f"S{i}" for i in range(6)]
H = 4


def _scores() -> pd.DataFrame:
    """Per-(family, series) scores shaped like the join's: current's MASE is 1 + i/10;
    improved is better on every series but S5, lightgbm a little worse than improved."""
    rows = []
    for i, sid in enumerate(SERIES):
        naive = 1.0 + i / 10
        per = {
            "current": naive,
            "improved": naive * (0.8 if sid != "S5" else 1.2),
            "lightgbm": naive * (0.85 if sid != "S5" else 1.1),
            "naive2": naive * 1.1,
        }
        for family, mase in per.items():
            rows.append(
                {
                    "family": family,
                    "series_id": sid,
                    "mase": mase,
                    "smape": 10 * mase,
                    "owa": np.nan,
                    "bias": 0.0,
                    "coverage_80": 0.75 if family == "current" else 0.8,
                    "coverage_95": 0.9,
                    "winkler_80": 5 * mase,
                    "winkler_95": 8 * mase,
                    "fit_seconds": {"current": 0.01, "naive2": 0.01}.get(family, 0.5),
                    "interval_source": "model"
                    if (family, sid) == ("improved", "S0")
                    else ("mixed" if (family, sid) == ("lightgbm", "S1") else "conformal"),
                }  # fmt: skip
            )
    return pd.DataFrame(rows)


def _history() -> pd.DataFrame:
    dates = pd.date_range("2000-01-01", periods=24, freq="QS")
    frames = [
        pd.DataFrame({"unique_id": sid, "ds": dates, "y": 100 + 10 * i + np.tile([0, 5, -3, 8], 6)})
        for i, sid in enumerate(SERIES)
    ]
    return pd.concat(frames, ignore_index=True)


def _forecasts(history: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for family in ("current", "improved", "lightgbm", "naive2"):
        for origin in (1, 2):
            for sid, part in history.groupby("unique_id"):
                end = len(part) - (2 - origin) * H
                window = part.iloc[end - H : end]
                for ds, y in zip(window["ds"], window["y"], strict=True):
                    mean = y + (1 if family == "improved" else 3)
                    rows.append(
                        {
                            "family": family, "origin": origin, "unique_id": sid, "ds": ds,
                            "y": y, "mean": mean, "lo_80": mean - 4, "hi_80": mean + 4,
                            "lo_95": mean - 7, "hi_95": mean + 7,
                            "interval_source": "conformal", "fit_seconds": 0.1,
                        }
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_options_table_measures_accuracy_risk_coverage_cost_and_wins() -> None:
    table = report.options_table(_scores()).set_index("family")
    assert table.index.tolist() == ["current", "improved", "lightgbm"]  # naive2: a reference
    naive = np.array([1.0 + i / 10 for i in range(6)])
    improved = naive * np.array([0.8] * 5 + [1.2])
    assert table.loc["improved", "mase_mean"] == pytest.approx(improved.mean())
    assert table.loc["improved", "mase_median"] == pytest.approx(np.median(improved))
    assert table.loc["improved", "mase_p90"] == pytest.approx(np.quantile(improved, 0.9))
    iqr = np.quantile(improved, 0.75) - np.quantile(improved, 0.25)
    assert table.loc["improved", "mase_iqr"] == pytest.approx(iqr)
    # worse than seasonal naive on one series of six; current is never worse than itself
    assert table.loc["improved", "worse_than_naive"] == pytest.approx(1 / 6)
    assert table.loc["current", "worse_than_naive"] == 0.0
    # improved wins S0-S4; on S5 both others are above seasonal naive, which wins it
    assert table["wins"].to_dict() == {"current": 1, "improved": 5, "lightgbm": 0}
    # M4's OWA: sMAPE and MASE each relative to naive2's, averaged
    assert table.loc["current", "owa"] == pytest.approx(1 / 1.1)
    assert table.loc["current", "coverage_80"] == pytest.approx(0.75)
    assert table.loc["improved", "cpu_seconds"] == pytest.approx(3.0)
    # fit_seconds per window when the scores say how many windows a series had
    windows = report.options_table(_scores().assign(n_windows=3)).set_index("family")
    assert windows.loc["improved", "cpu_seconds"] == pytest.approx(9.0)
    assert table["fallback_series"].to_dict() == {"current": 0, "improved": 1, "lightgbm": 1}
    with pytest.raises(ValueError, match=r"\['mase'\]"):
        report.options_table(_scores().drop(columns="mase"))


def test_coverage_per_origin_counts_actuals_inside_each_origins_intervals() -> None:
    rows = []
    for family, origin, ys in (
        ("lightgbm", 1, [0.0, 0.0]),
        ("improved", 1, [0.0, 10.0]),  # one of two outside the 80% interval
        ("improved", 2, [0.0, 0.5, 30.0, -30.0]),  # two of four outside both
        ("naive2", 1, [50.0, 50.0]),  # the reference: not an option
    ):
        for y in ys:
            rows.append({"family": family, "origin": origin, "y": y,
                         "lo_80": -1.0, "hi_80": 1.0, "lo_95": -20.0, "hi_95": 20.0})  # fmt: skip
    table = report.coverage_by_origin(pd.DataFrame(rows))
    assert table["family"].tolist() == ["improved", "lightgbm"]  # simplest first, no naive2
    improved = table.set_index("family").loc["improved"]
    assert improved["80% origin 1"] == 0.5 and improved["80% origin 2"] == 0.5
    assert improved["95% origin 1"] == 1.0 and improved["95% origin 2"] == 0.5
    assert improved["80% all"] == pytest.approx(3 / 6) and improved["95% all"] == 4 / 6
    assert table.set_index("family").loc["lightgbm", "80% all"] == 1.0


def test_extremes_rank_by_mase_relative_to_seasonal_naive() -> None:
    scores = _scores()
    scores.loc[(scores["family"] == "improved") & (scores["series_id"] == "S2"), "mase"] = 0.1
    best, worst = report.extremes(scores, "improved")
    assert best[0] == "S2" and worst[0] == "S5" and len(best) == len(worst) == 2
    assert not set(best) & set(worst)
    # current against itself is always 1: ranked by its own MASE
    assert report.extremes(scores, "current") == (["S0", "S1"], ["S5", "S4"])


def test_the_card_renders_the_choice_the_table_the_fans_and_the_fallbacks() -> None:
    from shipyard.cards import LineChart
    from shipyard.cards.components import render_component

    history = _history()
    components = report.card(_scores(), _forecasts(history), history)
    html = "".join(render_component(c) for c in components)
    assert "could not be rendered" not in html
    assert "Recommendation: <strong>improved</strong>" in html
    assert "lower than the current option" in html
    assert html.count("<svg") == 2 + 3 * 4  # two histograms, 2 best + 2 worst per option
    fans = [c for c in components if isinstance(c, LineChart)]
    assert len(fans) == 12 and fans[0].title.startswith("current, best: S0")
    titles = [f.title for f in fans if f.title.startswith("improved, worst")]
    assert titles[0].startswith("improved, worst: S5 (MASE 1.80, ×1.20)")
    assert "Intervals that fell back to the model" in html
    assert "Interval coverage per origin" in html
    assert "<td>S0</td><td>model</td>" in html and "<td>S1</td><td>mixed</td>" in html
    # a fan chart: history, actuals, forecast and both bands, over the last origin
    svg = render_component(fans[0])
    for name in ("history", "actual", "forecast", "80% lo", "95% hi"):
        assert f">{name}</text>" in svg
    assert "2005Q4" in svg  # the last quarter of the series


def test_fan_chart_series_line_up_on_the_dates() -> None:
    history = _history()
    chart = report.fan_chart(history, _forecasts(history), "improved", "S1", "t")
    n_window, n_past = H, 12  # the last origin's window, 3 seasons of history before it
    assert len(chart.x) == n_past + n_window
    assert (
        chart.y["history"][:n_past]
        == history[history.unique_id == "S1"]["y"].tolist()[-n_window - n_past : -n_window]
    )
    assert chart.y["forecast"][:n_past] == [None] * n_past
    tail = history[history.unique_id == "S1"]["y"].tolist()[-n_window:]
    assert chart.y["actual"][n_past:] == tail
    assert chart.y["forecast"][n_past:] == [y + 1 for y in tail]
    assert chart.y["95% lo"][n_past:] == [y + 1 - 7 for y in tail]


# ------------------------------------------------------------------ the cache entries


def _forecast_frame() -> pd.DataFrame:
    dates = pd.date_range("2024-01-01", periods=3, freq="QS")
    return pd.DataFrame(
        {
            "unique_id": ["B"] * 3 + ["A"] * 3,
            "ds": list(dates) * 2,
            "mean": [1.0, 2.0, 3.0, 10.0, 20.0, float("nan")],
            "lo_80": [0.5, 1.5, 2.5, 9, 19, 29],
            "hi_80": [1.5, 2.5, 3.5, 11, 21, 31],
            "lo_95": [0.0, 1.0, 2.0, 8, 18, 28],
            "hi_95": [2.0, 3.0, 4.0, 12, 22, 32],
            "interval_source": ["conformal"] * 3 + ["model", "model", "conformal"],
        }
    )


def test_entries_are_plain_data_per_series_with_dates_and_bounds() -> None:
    import msgpack

    found = dict(publish.entries(_forecast_frame(), family="improved", model="forecaster:2"))
    assert sorted(found) == ["A", "B"]
    b = found["B"]
    assert b["ds"] == ["2024-01-01", "2024-04-01", "2024-07-01"]
    assert b["mean"] == [1.0, 2.0, 3.0] and b["hi_95"] == [2.0, 3.0, 4.0]
    assert (b["family"], b["model"], b["interval_source"]) == (
        "improved",
        "forecaster:2",
        "conformal",
    )
    assert found["A"]["mean"][2] is None and found["A"]["interval_source"] == "mixed"
    assert msgpack.unpackb(msgpack.packb(b)) == b  # msgpack, no pickle needed
    with pytest.raises(ValueError, match=r"\['mean'\]"):
        list(publish.entries(_forecast_frame().drop(columns="mean"), family="x", model="y"))


def test_dates_keep_what_the_frequency_needs() -> None:
    quarters = pd.date_range("2007-01-01", periods=3, freq="QS")
    assert report.date_labels(quarters) == ["2007Q1", "2007Q2", "2007Q3"]
    months = pd.date_range("2007-01-01", periods=3, freq="MS")
    assert report.date_labels(months) == ["2007-01", "2007-02", "2007-03"]
    assert report.date_labels(pd.date_range("2007-01-01", periods=2, freq="D")) == [
        "2007-01-01",
        "2007-01-02",
    ]
    hours = pd.date_range("2007-01-01 22:00", periods=3, freq="h")
    assert report.date_labels(hours)[2] == "2007-01-02 00:00"
    frame = pd.DataFrame({"unique_id": "h", "ds": hours, "mean": [1.0, 2.0, 3.0]})
    (value,) = dict(publish.entries(frame, family="x", model="m:1")).values()
    assert value["ds"] == ["2007-01-01T22:00:00", "2007-01-01T23:00:00", "2007-01-02T00:00:00"]


def test_shards_deal_every_series_once() -> None:
    ids = [f"s{i}" for i in range(7)]
    parts = publish.shards(ids, 3)
    assert len(parts) == 3 and sum(parts, []) == ids
    assert publish.shards(ids, 20) == [[s] for s in ids]
    assert publish.shards(["a"], 0) == [["a"]]


# ------------------------------------------------------------------------ the service


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def test_service_answers_from_the_cache_with_intervals_and_clear_errors(
    cache_home: Path,
) -> None:
    from shipyard import cache
    from shipyard.serve import ServiceClient

    service = importlib.import_module("service")
    with ServiceClient(service.Forecasts) as client:
        status, body = client.post("get", {"series_id": "A", "h": 1})
        assert status == 503 and "no forecasts to serve yet" in body["error"]["message"]

    with cache.writer(publish.NAMESPACE) as writer:
        writer.put_many(publish.entries(_forecast_frame(), family="improved", model="forecaster:1"))
    with ServiceClient(service.Forecasts) as client:
        status, body = client.post("get", {"series_id": "B", "h": 2})
        assert status == 200, body
        assert body == {
            "series_id": "B",
            "h": 2,
            "family": "improved",
            "model": "forecaster:1",
            "interval_source": "conformal",
            "forecast": [
                {"ds": "2024-01-01", "mean": 1.0, "lo_80": 0.5, "hi_80": 1.5,
                 "lo_95": 0.0, "hi_95": 2.0},
                {"ds": "2024-04-01", "mean": 2.0, "lo_80": 1.5, "hi_80": 2.5,
                 "lo_95": 1.0, "hi_95": 3.0},
            ],
        }  # fmt: skip
        status, body = client.post("get", {"series_id": "A", "h": 3})
        assert status == 200 and body["forecast"][2]["mean"] is None
        status, body = client.post("get", {"series_id": "Q999", "h": 2})
        assert status == 404 and body["error"]["field"] == "series_id"
        assert "'Q999'" in body["error"]["message"]
        status, body = client.post("get", {"series_id": "B", "h": 4})
        assert status == 422 and body["error"]["field"] == "h"
        assert "beyond the 3 steps" in body["error"]["message"]
        status, body = client.post("get", {"series_id": "B", "h": 0})
        assert status == 422 and body["error"]["field"] == "h"
        status, body = client.post("get", {"series_id": "B"})
        assert status == 422 and body["error"]["field"] == "h"


# ------------------------------------------------------------------ the flow, end to end


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One small run of the whole flow (8 Tourism series, 1 origin, the current and the
    improved option) in its own home, shared by the tests below."""
    from shipyard.testing import run_flow

    home = tmp_path_factory.mktemp("forecast-options") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPYARD_HOME", str(home))
        for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
            mp.delenv(name, raising=False)
        run = run_flow(EXAMPLE / "flow.py", series=8, origins=1, families="current,improved")
        yield {"run": run, "home": home}


@pytest.fixture
def in_decided_home(decided: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("SHIPYARD_HOME", str(decided["home"]))
    for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    return decided


def test_flow_reports_registers_the_choice_and_publishes_every_series(
    in_decided_home: dict[str, Any],
) -> None:
    from shipyard import Model, cache
    from shipyard.cards import get_cards

    run = in_decided_home["run"]
    assert run.successful
    data = run["end"].task.data
    choice, options = data.recommendation, data.options
    assert choice == report.recommend(report.options_table(data.scores))
    assert set(options["family"]) == {"current", "improved"}
    # the card: the recommendation, the table, the fan charts
    (found,) = get_cards(run["report"].task)
    html = found.html
    assert f"Recommendation: <strong>{choice.family}</strong>" in html
    assert "The options" in html and "Best and worst series of each option" in html
    assert html.count("<svg") == 2 + 2 * 4
    # the registered option, moved to prod by publish
    model = Model("forecaster@prod")
    assert model.version == data.model_version
    info = model.info
    assert f"family={choice.family}" in info.tags and "horizon=8" in info.tags
    row = options.set_index("family").loc[choice.family]
    assert info.metrics["mase"] == pytest.approx(row["mase_mean"])
    assert info.metrics["current_mase"] == pytest.approx(
        options.set_index("family").loc["current", "mase_mean"]
    )
    forecaster = model.load()
    assert (forecaster.family, forecaster.horizon, forecaster.season_length) == (
        choice.family,
        8,
        4,
    )
    # the cache: one entry per series, the option's forecast from the whole history
    rows = cache.reader(publish.NAMESPACE)
    assert rows.version == data.cache_version
    frame = data.frame
    ids = [str(s) for s in dict.fromkeys(frame["unique_id"])]
    entries = rows.get_many(ids)
    assert sorted(entries) == sorted(ids) and data.written == len(ids) == 8
    one = ids[3]
    own = forecaster.forecast(frame[frame["unique_id"] == one])
    entry = entries[one]
    assert entry["model"] == f"forecaster:{model.version}"
    assert entry["mean"] == pytest.approx(own["mean"].tolist())
    last = pd.Timestamp(frame[frame["unique_id"] == one]["ds"].max())
    assert entry["ds"][0] == (last + pd.offsets.QuarterBegin(startingMonth=1)).date().isoformat()
    for e in entries.values():
        assert len(e["mean"]) == 8
        for i in range(8):
            assert e["lo_95"][i] <= e["lo_80"][i] <= e["mean"][i] <= e["hi_80"][i] <= e["hi_95"][i]


def test_service_serves_the_published_forecasts(in_decided_home: dict[str, Any]) -> None:
    from shipyard import cache
    from shipyard.serve import ServiceClient

    service = importlib.import_module("service")
    run = in_decided_home["run"]
    series_id = str(run["end"].task.data.frame["unique_id"].iloc[0])
    entry = cache.reader(publish.NAMESPACE).get(series_id)
    with ServiceClient(service.Forecasts) as client:
        status, body = client.post("get", {"series_id": series_id, "h": 3})
        assert status == 200, body
        assert body["model"] == entry["model"] and len(body["forecast"]) == 3
        assert [p["mean"] for p in body["forecast"]] == entry["mean"][:3]
        assert [p["hi_95"] for p in body["forecast"]] == entry["hi_95"][:3]
        status, body = client.post("get", {"series_id": series_id, "h": 9})
        assert status == 422 and body["error"]["field"] == "h"


def test_the_flow_runs_quarterly_and_on_new_data() -> None:
    from shipyard.schedules.cron import Cron
    from shipyard.schedules.decorators import EventSpec, triggers_of

    flow = importlib.import_module("flow")
    found = triggers_of(flow.ForecastOptionsFlow)
    assert found.time is not None and found.time.cron == "0 6 2 1,4,7,10 *"
    assert found.time.timezone == "UTC"
    Cron.parse(found.time.cron)  # a valid expression: the 2nd of Jan, Apr, Jul, Oct
    assert found.events == (EventSpec("forecast-data-arrived", {"data": "path"}),)
