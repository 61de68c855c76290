"""Rolling-origin backtests and their scores.

**The protocol.** For a horizon ``h`` and ``N`` origins, each series of length ``n`` is cut
at ``N`` origins spaced by the horizon, the last window ending at the last observation:
origin ``k`` (``k = 1`` the earliest, ``k = N`` the latest) trains on the first
``n - (N - k + 1) h`` observations and is scored on the ``h`` that follow. Each family is fit
afresh at every origin on the training part only (its calibration windows, if any, also lie
inside the training part). A window whose training part is shorter than
``families.min_train(season_length)`` (three seasons, at least 10 observations) is skipped
for that series, and its row in ``scores`` says how many windows it has (``n_windows``).

Per window, with ``y`` the actuals, ``f`` the forecasts and ``s`` the *in-sample
seasonal-naive MAE of that window's training part* (the mean of ``|y_t - y_{t-m}|``; as in
the M-competitions and the Tourism competition):

- ``mase = mean|y - f| / s``
- ``smape = mean 200 |y - f| / (|y| + |f|)`` (percent, M3/M4's definition; 0 where both are 0)
- ``bias = mean(f - y) / s`` (positive: over-forecasts)
- ``coverage_L`` = share of ``y`` inside the ``L%`` interval
- ``winkler_L = mean(width + (2/alpha) x distance outside the interval) / s`` (scaled by
  ``s``, as M4's MSIS, so series of every size can be averaged; ``alpha = 1 - L/100``)

A series' measure is the mean over its windows; ``owa = (smape / smape_naive2 + mase /
mase_naive2) / 2`` with Naive2's measures on the same series (M4), and the family's overall
OWA in ``summary`` is M4's: the same ratio of the means over series.

>>> fc = run_window("improved", dataset.frame, h=8, n_origins=4, origin=4, season_length=4,
...                 freq="QS")
>>> table = scores(pd.concat(all_windows), dataset.frame, h=8, n_origins=4, season_length=4)
>>> summary(table)
"""

from __future__ import annotations

import metrics
import numpy as np
import pandas as pd
from families import FAMILIES, LEVELS, REFERENCES, min_train

#: the columns of one backtest's forecasts (an artifact per foreach task)
FORECAST_COLUMNS = (
    "family",
    "origin",
    "unique_id",
    "ds",
    "y",
    "mean",
    "lo_80",
    "hi_80",
    "lo_95",
    "hi_95",
    "interval_source",
    "fit_seconds",
    "model",
)
#: the columns of ``scores``, one row per (family, series)
SCORE_COLUMNS = (
    "family",
    "series_id",
    "mase",
    "smape",
    "owa",
    "bias",
    "coverage_80",
    "coverage_95",
    "winkler_80",
    "winkler_95",
    "fit_seconds",
    "interval_source",
    "n_windows",
    "model",
)


class BacktestError(ValueError):
    """A backtest that cannot be set up: names the parameter and what to change."""


def cutoffs(n: int, h: int, n_origins: int, season_length: int) -> dict[int, int]:
    """``{origin: training length}`` for a series of ``n`` observations: origin ``k`` trains
    on ``n - (n_origins - k + 1) h`` observations; origins with too short a training part are
    left out."""
    shortest = min_train(season_length)
    found = {}
    for k in range(1, n_origins + 1):
        length = n - (n_origins - k + 1) * h
        if length >= shortest:
            found[k] = length
    return found


def check(frame: pd.DataFrame, h: int, n_origins: int, season_length: int) -> None:
    """Refuse a backtest no series can take part in, naming what to change."""
    if h < 1:
        raise BacktestError(f"--horizon must be at least 1, got {h}")
    if n_origins < 1:
        raise BacktestError(f"--origins must be at least 1, got {n_origins}")
    longest = int(frame.groupby("unique_id").size().max())
    need = min_train(season_length) + n_origins * h
    if longest < min_train(season_length) + h:
        raise BacktestError(
            f"the longest series has {longest} observations; one window of --horizon {h} "
            f"needs at least {min_train(season_length) + h} (a training part of "
            f"{min_train(season_length)} and the horizon): lower --horizon"
        )
    if longest < need:
        # some origins are empty for every series: say so rather than silently score fewer
        raise BacktestError(
            f"--origins {n_origins} x --horizon {h} needs series of at least {need} "
            f"observations; the longest has {longest}: lower --origins or --horizon"
        )


def split(
    frame: pd.DataFrame, h: int, n_origins: int, origin: int, season_length: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training part and the ``h`` test observations of every series at ``origin``
    (series too short for that origin are absent from both)."""
    if not 1 <= origin <= n_origins:
        raise BacktestError(f"origin {origin} is outside 1..{n_origins}")
    frame = frame.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    sizes = frame.groupby("unique_id", sort=False)["y"].transform("size").to_numpy()
    position = frame.groupby("unique_id", sort=False).cumcount().to_numpy()
    length = sizes - (n_origins - origin + 1) * h
    keep = length >= min_train(season_length)
    train = frame[keep & (position < length)].reset_index(drop=True)
    test = frame[keep & (position >= length) & (position < length + h)].reset_index(drop=True)
    return train, test


def run_window(
    family: str,
    frame: pd.DataFrame,
    h: int,
    n_origins: int,
    origin: int,
    season_length: int,
    freq: str,
    levels: tuple[int, ...] = LEVELS,
) -> pd.DataFrame:
    """One family's forecasts at one origin, with the actuals beside them."""
    if family not in FAMILIES:
        raise BacktestError(f"unknown family {family!r}; the families are {', '.join(FAMILIES)}")
    train, test = split(frame, h, n_origins, origin, season_length)
    if train.empty:
        return pd.DataFrame({c: [] for c in FORECAST_COLUMNS})
    forecast = FAMILIES[family](train, h, season_length, freq, levels)
    merged = forecast.merge(test, on=["unique_id", "ds"], how="left", validate="one_to_one")
    if merged["y"].isna().any():
        bad = merged[merged["y"].isna()].iloc[0]
        raise BacktestError(
            f"family {family!r} forecast {bad['unique_id']!r} at {bad['ds']}, a date the "
            f"test window does not have (is --data's frequency right?)"
        )
    merged.insert(0, "family", family)
    merged.insert(1, "origin", origin)
    return merged[list(FORECAST_COLUMNS)]


def window_scales(frame: pd.DataFrame, h: int, n_origins: int, season_length: int) -> pd.DataFrame:
    """``unique_id, origin, scale``: each window's in-sample seasonal-naive MAE."""
    rows = []
    ordered = frame.sort_values(["unique_id", "ds"], kind="stable")
    for uid, group in ordered.groupby("unique_id", sort=False):
        y = group["y"].to_numpy(dtype=float)
        for origin, length in cutoffs(len(y), h, n_origins, season_length).items():
            rows.append((uid, origin, metrics.seasonal_naive_mae(y[:length], season_length)))
    return pd.DataFrame(rows, columns=["unique_id", "origin", "scale"])


def window_scores(forecasts: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """One row per (family, series, origin): the window's measures (module docstring)."""
    f = forecasts.merge(scales, on=["unique_id", "origin"], how="left", validate="many_to_one")
    y, mean, s = f["y"].to_numpy(float), f["mean"].to_numpy(float), f["scale"].to_numpy(float)
    parts = {
        "ae": metrics.mase_terms(y, mean, s),
        "sape": metrics.smape_terms(y, mean),
        "e": metrics.bias_terms(y, mean, s),
    }
    for lv in LEVELS:
        lo, hi = f[f"lo_{lv}"].to_numpy(float), f[f"hi_{lv}"].to_numpy(float)
        parts[f"in_{lv}"] = metrics.coverage_terms(y, lo, hi)
        parts[f"w_{lv}"] = metrics.winkler_terms(y, lo, hi, lv, s)
    table = f[["family", "unique_id", "origin", "interval_source", "fit_seconds", "model"]].assign(
        **parts
    )
    grouped = table.groupby(["family", "unique_id", "origin"], sort=False)
    out = grouped.agg(
        mase=("ae", "mean"),
        smape=("sape", "mean"),
        bias=("e", "mean"),
        coverage_80=("in_80", "mean"),
        coverage_95=("in_95", "mean"),
        winkler_80=("w_80", "mean"),
        winkler_95=("w_95", "mean"),
        fit_seconds=("fit_seconds", "first"),
        interval_source=("interval_source", "first"),
        model=("model", "first"),
    )
    return out.reset_index()


def scores(
    forecasts: pd.DataFrame, frame: pd.DataFrame, h: int, n_origins: int, season_length: int
) -> pd.DataFrame:
    """The contract: one row per (family, series) with the means over the series' windows
    (:data:`SCORE_COLUMNS`). ``fit_seconds`` is CPU per window; ``interval_source`` is
    ``conformal``, ``model`` or ``mixed``; ``model`` is the model(s) the family used."""
    windows = window_scores(forecasts, window_scales(frame, h, n_origins, season_length))
    grouped = windows.groupby(["family", "unique_id"], sort=False)
    table = grouped.agg(
        mase=("mase", "mean"),
        smape=("smape", "mean"),
        bias=("bias", "mean"),
        coverage_80=("coverage_80", "mean"),
        coverage_95=("coverage_95", "mean"),
        winkler_80=("winkler_80", "mean"),
        winkler_95=("winkler_95", "mean"),
        fit_seconds=("fit_seconds", "mean"),
        n_windows=("origin", "size"),
        interval_source=("interval_source", _one_or_mixed),
        model=("model", _one_or_mixed),
    ).reset_index()
    table = table.rename(columns={"unique_id": "series_id"})
    reference = table[table["family"] == "naive2"].set_index("series_id")
    if reference.empty:
        table["owa"] = np.nan
    else:
        ref_smape = table["series_id"].map(reference["smape"]).to_numpy(float)
        ref_mase = table["series_id"].map(reference["mase"]).to_numpy(float)
        table["owa"] = [
            metrics.owa(a, b, c, d)
            for a, b, c, d in zip(table["smape"], table["mase"], ref_smape, ref_mase, strict=True)
        ]
    order = {name: i for i, name in enumerate(FAMILIES)}
    table = table.sort_values(
        ["family", "series_id"], key=lambda c: c.map(order) if c.name == "family" else c
    )
    return table[list(SCORE_COLUMNS)].reset_index(drop=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per family: accuracy (mean and median MASE, sMAPE, M4's OWA), risk (the
    spread of per-series MASE: its 90th percentile and the share of series where the family
    is worse than seasonal naive), bias, interval coverage and Winkler scores, wins (series
    where the family has the lowest MASE of the families compared, references aside unless
    they are all there is), CPU, and how many series fell back to the model's own intervals."""
    current = table[table["family"] == "current"].set_index("series_id")["mase"]
    naive2 = table[table["family"] == "naive2"]
    compared = (
        table[~table["family"].isin(REFERENCES)]
        if (~table["family"].isin(REFERENCES)).any()
        else table
    )
    best = compared.loc[compared.groupby("series_id")["mase"].idxmin().dropna()]
    wins = best["family"].value_counts()
    rows = []
    for family, group in table.groupby("family", sort=False):
        against = group["series_id"].map(current)
        owa = np.nan
        if not naive2.empty:
            ref = naive2.set_index("series_id").loc[group["series_id"]]
            owa = metrics.owa(
                group["smape"].mean(),
                group["mase"].mean(),
                ref["smape"].mean(),
                ref["mase"].mean(),
            )
        rows.append(
            {
                "family": family,
                "n_series": len(group),
                "mase": group["mase"].mean(),
                "mase_median": group["mase"].median(),
                "mase_p90": group["mase"].quantile(0.9),
                "mase_sd": group["mase"].std(),
                "smape": group["smape"].mean(),
                "owa": owa,
                "bias": group["bias"].mean(),
                "worse_than_current": float((group["mase"] > against).mean()),
                "coverage_80": group["coverage_80"].mean(),
                "coverage_95": group["coverage_95"].mean(),
                "winkler_80": group["winkler_80"].mean(),
                "winkler_95": group["winkler_95"].mean(),
                "wins": int(wins.get(family, 0)),
                "cpu_seconds": float((group["fit_seconds"] * group["n_windows"]).sum()),
                "fallback_series": int((group["interval_source"] != "conformal").sum()),
            }
        )
    return pd.DataFrame(rows)


def _one_or_mixed(values: pd.Series) -> str:
    distinct = values.unique()
    return str(distinct[0]) if len(distinct) == 1 else "mixed"
