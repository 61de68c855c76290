"""The skew statistics on synthetic frames: row-level mismatch by request id, JS / PSI / L∞
against hand-computed values, prediction skew, thresholds per feature, and the card."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shipyard.cards.document import render_components
from shipyard.cards.skew import skew_components
from shipyard.features.skew import (
    SkewError,
    Thresholds,
    categorical_skew,
    check_skew,
    distribution_skew,
    numeric_skew,
    prediction_skew,
    row_skew,
)


def _log(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "count": rng.integers(0, 50, n),
            "mean": rng.normal(3.5, 0.5, n),
            "genre": rng.choice(["drama", "comedy", "horror"], n, p=[0.5, 0.3, 0.2]).astype(object),
        }
    )


def test_identical_rows_do_not_mismatch_even_shuffled_and_with_float_noise():
    online = _log()
    offline = online.sample(frac=1.0, random_state=1).copy()  # another order: joined by id
    offline["mean"] = offline["mean"] * (1 + 1e-9)  # JSON round-trip noise, not skew
    online.loc[5, "genre"] = None
    offline.loc[offline["request_id"] == "r5", "genre"] = None  # both missing: equal
    rows = {r.feature: r for r in row_skew(online, offline)}
    assert set(rows) == {"count", "mean", "genre"}
    assert all(r.mismatched == 0 and r.compared == 2000 and not r.flagged for r in rows.values())


def test_row_mismatch_rate_and_examples_name_the_requests():
    online = _log()
    offline = online.copy()
    offline.loc[:29, "mean"] += 0.5  # 30 of 2000 = 1.5 %
    offline.loc[:1, "genre"] = "Drama"  # 2 of 2000 = 0.1 %: at the threshold, not over it
    rows = {r.feature: r for r in row_skew(online, offline)}
    assert rows["mean"].mismatched == 30 and rows["mean"].rate == pytest.approx(0.015)
    assert rows["mean"].flagged
    example = rows["mean"].examples[0]
    assert example["request_id"] == "r0"
    assert example["offline"] == pytest.approx(example["online"] + 0.5)
    assert len(rows["mean"].examples) == 5
    assert rows["genre"].mismatched == 2 and not rows["genre"].flagged
    assert rows["count"].mismatched == 0


def test_requests_without_a_recompute_are_counted_not_compared():
    online = _log(100)
    offline = online.iloc[10:].copy()
    rows = row_skew(online, offline, features=["count"])
    assert rows[0].compared == 90 and rows[0].missing == 10 and rows[0].mismatched == 0


def test_an_empty_recompute_is_an_error_not_a_clean_bill():
    online = _log(10)
    with pytest.raises(SkewError, match="offline recompute is empty"):
        row_skew(online, online.iloc[:0])


def test_a_logged_string_where_a_number_belongs_is_a_mismatch():
    online = _log(100)
    offline = online.copy()
    online["count"] = online["count"].astype(object)
    online.loc[3, "count"] = "12"  # a stringified number online
    (row,) = row_skew(online, offline, features=["count"])
    assert row.mismatched == (0 if offline.loc[3, "count"] == 12 else 1)


def test_js_and_psi_match_hand_computed_values():
    rng = np.random.default_rng(0)
    train = rng.uniform(0, 1, 100_000)
    # serving: everything below the training median moves above it -> half the bins empty
    serve = rng.uniform(0.5, 1, 100_000)
    measures, labels, p, q = numeric_skew(train, serve, bins=2)
    assert len(labels) == 3 and labels[0].startswith("< 0.4") and labels[-1] == "missing"
    assert p[:2] == pytest.approx([0.5, 0.5], abs=0.01)
    assert q[:2] == pytest.approx([0, 1], abs=0.001)
    # JS (base 2) of (1/2, 1/2) vs (0, 1), m = (1/4, 3/4): 1/2 KL(p|m) + 1/2 KL(q|m) = 0.311
    kl_p = 0.5 * math.log2(0.5 / 0.25) + 0.5 * math.log2(0.5 / 0.75)
    kl_q = math.log2(1 / 0.75)
    expected_js = 0.5 * kl_p + 0.5 * kl_q
    assert measures["js"] == pytest.approx(expected_js, abs=0.01)
    expected_psi = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert measures["psi"] == pytest.approx(expected_psi, rel=0.02)


def test_same_distribution_is_near_zero_and_missing_values_have_their_own_bin():
    rng = np.random.default_rng(1)
    train, serve = rng.normal(size=200_000), rng.normal(size=200_000)
    measures, *_ = numeric_skew(train, serve)
    assert measures["js"] < 1e-3 and measures["psi"] < 1e-3
    serve[:20_000] = np.nan  # 10 % missing online only
    measures, labels, p, q = numeric_skew(train, serve)
    assert labels[-1] == "missing" and p[-1] == 0 and q[-1] == pytest.approx(0.1)
    assert measures["psi"] > 0.25


def test_linf_is_the_largest_change_in_one_values_share():
    train = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20, dtype=object)
    serve = pd.Series(["a"] * 40 + ["b"] * 30 + ["c"] * 20 + [None] * 10, dtype=object)
    measures, labels, p, q = categorical_skew(train, serve)
    assert measures["linf"] == pytest.approx(0.10)
    assert set(labels[:2]) == {"a", "missing"}


def test_thresholds_are_settable_per_feature_and_checked():
    rng = np.random.default_rng(2)
    train = pd.DataFrame({"x": rng.normal(size=50_000), "y": rng.normal(size=50_000)})
    serve = pd.DataFrame({"x": rng.normal(1, 1, 50_000), "y": rng.normal(1, 1, 50_000)})
    loose = {"y": {"psi": 5.0, "js": 1.0}}
    out = {d.feature: d for d in distribution_skew(train, serve, thresholds=loose)}
    assert "psi" in out["x"].over  # shifted by one sd: PSI ~1
    assert out["y"].over == []
    assert out["y"].thresholds["psi"] == 5.0
    few = distribution_skew(train, serve.iloc[:99], features=["x"])[0]
    assert few.measures["psi"] > 0.25 and few.over == [] and not few.enough  # 99 < MIN_ROWS
    with pytest.raises(SkewError, match="unknown field"):
        distribution_skew(train, serve, thresholds={"x": {"jsd": 0.1}})
    with pytest.raises(SkewError, match="does not compare: \\['z'\\]"):
        distribution_skew(train, serve, thresholds={"z": {"psi": 0.1}})
    with pytest.raises(SkewError, match="psi must be a number >= 0"):
        Thresholds(psi=-1)
    with pytest.raises(SkewError, match="the serving log has no column"):
        distribution_skew(train, serve.drop(columns="y"), features=["x", "y"])


def test_prediction_skew_compares_logged_and_replayed():
    logged = np.linspace(0, 1, 1000)
    replayed = logged.copy()
    replayed[::100] += 0.2  # 10 of 1000
    p = prediction_skew(logged, replayed, ids=[f"r{i}" for i in range(1000)])
    assert p.mismatched == 10 and p.flagged
    assert p.max_abs_diff == pytest.approx(0.2) and p.examples[0]["request_id"] == "r0"
    with pytest.raises(SkewError, match="replay every logged request"):
        prediction_skew(logged, replayed[:-1])


def test_report_flags_metrics_and_card():
    online = _log()
    offline = online.copy()
    offline.loc[:99, "count"] += 1
    online["score"] = online["mean"] * 2
    replayed = online["score"].to_numpy().copy()
    training = _log(seed=5)
    report = check_skew(
        online, offline=offline, training=training, prediction="score", replayed=replayed
    )
    assert [(f["feature"], f["check"]) for f in report.flagged] == [("count", "row")]
    assert report.row_alarm
    metrics = report.metrics()
    assert metrics["row_mismatch.count"] == pytest.approx(0.05)
    assert metrics["prediction_mismatch"] == 0.0 and metrics["flagged"] == 1.0
    assert {"js.mean", "psi.mean", "linf.genre"} <= set(metrics)
    html = "".join(render_components(skew_components(report)))
    assert "count" in html and "ALARM" in html and "examples of mismatches" in html
