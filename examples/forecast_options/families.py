"""The options, each a named model family: a function from the training part of every series
to their next ``h`` values with 80% and 95% intervals.

>>> forecast = FAMILIES["improved"](train, h=8, season_length=4, freq="QS", levels=(80, 95))
>>> forecast.columns    # unique_id ds mean lo_80 hi_80 lo_95 hi_95 interval_source
...                     # fit_seconds model

- ``current``: seasonal naive (what the team does today).
- ``improved``: AutoETS, AutoARIMA or AutoTheta (statsforecast), chosen per series by its
  mean absolute error over the calibration windows (below).
- ``lightgbm``: one global LightGBM over every series' lags (mlforecast), each series
  standardised by its own mean and deviation — the "fashionable" slot.
- ``ensemble``: the mean of the AutoTheta and the LightGBM forecasts (a statistical and a
  machine-learned model; AutoETS would add ~0.08 CPU-s per series and window, a third of
  the whole report's budget on Tourism, so it is left to ``improved``).
- ``naive2``: the M4 reference for OWA (naive on the seasonally adjusted series).
- ``ets``, ``arima``, ``theta``: one statsforecast model alone (for comparing with the
  Tourism competition's published numbers).

A new family is one function with the :data:`Family` signature and one entry in
:data:`FAMILIES`; the helpers below (:func:`local_family`, :func:`conformal`) do the rest.

**Intervals.** Every family calibrates split-conformal intervals the same way: the last
``CALIBRATION_WINDOWS x h`` observations of each series' training part are held out, the
model is fit once on what precedes them and run forward (its parameters fixed, its state
updated with the data) from each calibration cutoff; each window's absolute errors, divided
by the in-sample seasonal-naive MAE of the data *before that window's cutoff*, are pooled
across series per horizon step, and the interval for step ``j`` is ``mean +- q_j x scale``,
``scale`` the same MAE of the whole training part (the data before the origin) and ``q_j``
the finite-sample conformal quantile (rank ``ceil((n + 1) level)`` of the ``n`` pooled
scores). Scores and intervals are so scaled alike, by what was known when the forecast was
made; dividing the calibration errors by the whole training part's MAE instead (larger on
growing series: it includes the windows) left the intervals 4-8 points under nominal on
Tourism. Calibration only ever uses data before the origin. The point forecast is always
the model refit on the whole training part.

For ``improved`` the calibration costs no fit of its own: the candidates' fits before the
windows are the ones that choose the model, and the scores are those of the *selection* —
the last window forecast by the model the earlier window alone would have chosen (the
chosen model's own errors on the windows that chose it run small). So each candidate is fit
once per series and origin, and the chosen one once more on the whole training part.

A series whose training part is too short to hold the windows and still fit
(``len < CALIBRATION_WINDOWS x h + min_train``) keeps the model's own intervals, flagged
``interval_source = "model"``; so does every series when the pooled scores are too few for
the level (fewer than ``ceil((n + 1) level)``: under 19 scores for 95%).

**CPU.** ``fit_seconds`` is each series' CPU time (``time.process_time``) for its fits and
forecasts, calibration included; a global model's time is shared by the series in proportion
to their observations. AutoARIMA searches a reduced space (:data:`ARIMA_SEARCH`): on the
Tourism series the full default search costs ~7x the CPU for no better MASE, and stopping
the stepwise search after 6 models rather than 10 took 43-45% less CPU for a mean MASE
0.9% lower at origin 2 of 4 and 0.3% higher at origin 4 (427 series; statsforecast fails
outright below 5 models). AutoARIMA is most of ``improved``'s cost.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from mlforecast import MLForecast
from mlforecast.target_transforms import LocalStandardScaler
from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

# (imported here, not in the functions: a flow's tasks fork from a process that has imported
# this module, so no task pays the ~1 CPU-s these imports cost)

#: ``(train, h, season_length, freq, levels) -> forecasts``; see the module docstring
Family = Callable[[pd.DataFrame, int, int, str, tuple[int, ...]], pd.DataFrame]

CALIBRATION_WINDOWS = 2
LEVELS = (80, 95)
#: AutoARIMA's search (statsforecast's defaults but for these): stepwise from (1,d,1)(0,D,0),
#: orders up to (2,d,2)(1,D,1), at most 6 models, CSS-approximated likelihoods while searching
ARIMA_SEARCH: dict[str, Any] = {
    "approximation": True,
    "max_p": 2,
    "max_q": 2,
    "max_P": 1,
    "max_Q": 1,
    "nmodels": 6,
    "start_p": 1,
    "start_q": 1,
    "start_P": 0,
    "start_Q": 0,
}
#: the ensemble's members (names of :data:`LOCAL_MODELS` or ``"lightgbm"``)
ENSEMBLE = ("AutoTheta", "lightgbm")
COLUMNS = (
    "unique_id",
    "ds",
    "mean",
    "lo_80",
    "hi_80",
    "lo_95",
    "hi_95",
    "interval_source",
    "fit_seconds",
    "model",
)


def min_train(season_length: int) -> int:
    """The shortest training part a series may have in a window: three seasons (at least
    10 observations), enough for every model here and for the seasonal-naive scale."""
    return max(3 * season_length, 10)


# ------------------------------------------------------------------------ local models


class LocalModel(Protocol):
    """statsforecast's model interface, as far as the families use it."""

    def fit(self, y: np.ndarray) -> Any: ...

    def forward(self, y: np.ndarray, h: int, level: list[int] | None = None) -> dict[str, Any]: ...

    def forecast(self, y: np.ndarray, h: int, level: list[int] | None = None) -> dict[str, Any]: ...


class Naive2:
    """M4's Naive2: the last value of the seasonally adjusted series, reseasonalised.
    The series is adjusted by classical multiplicative decomposition when the autocorrelation
    at the seasonal lag is significant at 90% (M4's test); otherwise it is plain naive."""

    def __init__(self, season_length: int) -> None:
        self.season_length = season_length

    def fit(self, y: np.ndarray) -> Naive2:
        return self

    def forward(self, y: np.ndarray, h: int, level: list[int] | None = None) -> dict[str, Any]:
        return self.forecast(y, h, level)

    def forecast(self, y: np.ndarray, h: int, level: list[int] | None = None) -> dict[str, Any]:
        m = self.season_length
        indices = seasonal_indices(y, m) if is_seasonal(y, m) else np.ones(max(m, 1))
        n = len(y)
        position = np.arange(n) % len(indices)
        adjusted = y / indices[position]
        future = indices[(n + np.arange(h)) % len(indices)]
        mean = adjusted[-1] * future
        out: dict[str, Any] = {"mean": mean}
        steps = np.diff(adjusted)
        sigma = float(np.sqrt(np.mean(steps**2))) if len(steps) else 0.0
        for lv in level or []:
            z = _z(lv)
            half = z * sigma * np.sqrt(np.arange(1, h + 1)) * future
            out[f"lo-{lv}"], out[f"hi-{lv}"] = mean - half, mean + half
        return out


def is_seasonal(y: np.ndarray, m: int) -> bool:
    """M4's seasonality test: the lag-``m`` autocorrelation beyond the 90% limit
    ``1.645 / sqrt(n) x sqrt(1 + 2 sum_{k<m} acf_k^2)``; needs ``n >= 3m`` and ``m > 1``."""
    n = len(y)
    if m <= 1 or n < 3 * m:
        return False
    centred = y - y.mean()
    denominator = float(np.sum(centred**2))
    if denominator == 0:
        return False
    acf = np.array([np.sum(centred[k:] * centred[: n - k]) / denominator for k in range(1, m + 1)])
    limit = 1.645 / math.sqrt(n) * math.sqrt(1 + 2 * float(np.sum(acf[: m - 1] ** 2)))
    return bool(abs(acf[m - 1]) > limit)


def seasonal_indices(y: np.ndarray, m: int) -> np.ndarray:
    """Classical multiplicative decomposition's seasonal indices (averaging to 1), indexed
    by position modulo ``m`` from the series' first observation."""
    n = len(y)
    if m % 2 == 0:
        weights = np.r_[0.5, np.ones(m - 1), 0.5] / m
    else:
        weights = np.ones(m) / m
    trend = np.convolve(y, weights, mode="valid")
    offset = (len(weights) - 1) // 2
    ratios = y[offset : offset + len(trend)] / trend
    positions = (np.arange(len(trend)) + offset) % m
    indices = np.array([ratios[positions == p].mean() for p in range(m)])
    if not np.all(np.isfinite(indices)) or np.any(indices <= 0):
        return np.ones(m)
    return indices * m / indices.sum() if n else indices


def local_models(season_length: int) -> dict[str, Callable[[], LocalModel]]:
    """The per-series models, by name, each a factory of a fresh unfitted model."""
    m = season_length
    return {
        "SeasonalNaive": lambda: SeasonalNaive(season_length=m),
        "AutoETS": lambda: AutoETS(season_length=m),
        "AutoARIMA": lambda: AutoARIMA(season_length=m, **ARIMA_SEARCH),
        "AutoTheta": lambda: AutoTheta(season_length=m),
        "Naive2": lambda: Naive2(m),
    }


LOCAL_MODELS = ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta", "Naive2")


# -------------------------------------------------------------- per-series results


@dataclass
class SeriesForecast:
    """One series' forecast before the conformal step."""

    mean: np.ndarray
    native: dict[str, np.ndarray]  # "lo-80" ... the model's own intervals
    calibration: np.ndarray | None  # (windows, h) forecasts of the calibration windows
    model: str
    seconds: float
    members: dict[str, SeriesForecast] = field(default_factory=dict)


def _calibration_cuts(n: int, h: int, season_length: int) -> list[int] | None:
    """Where each calibration window starts (the length of the data before it), or None
    when the series is too short to hold the windows."""
    first = n - CALIBRATION_WINDOWS * h
    if first < min_train(season_length):
        return None
    return [first + k * h for k in range(CALIBRATION_WINDOWS)]


def fit_local(
    factory: Callable[[], LocalModel],
    y: np.ndarray,
    h: int,
    season_length: int,
    levels: Sequence[int],
    *,
    final: bool = True,
) -> SeriesForecast | None:
    """Calibrate one model on one series (fit before the windows, run forward from each
    cutoff) and, if ``final``, refit it on everything for the forecast. None if it fails."""
    started = time.process_time()
    cuts = _calibration_cuts(len(y), h, season_length)
    calibration = None
    try:
        if cuts is not None:
            fitted = factory().fit(y[: cuts[0]])
            calibration = np.vstack([fitted.forward(y=y[:cut], h=h)["mean"] for cut in cuts])
            if not np.all(np.isfinite(calibration)):
                calibration = None
        mean, native = np.full(h, np.nan), {}
        if final:
            out = factory().forecast(y=y, h=h, level=list(levels))
            mean = np.asarray(out["mean"], dtype=float)
            native = {k: np.asarray(v, dtype=float) for k, v in out.items() if k != "mean"}
            if not np.all(np.isfinite(mean)):
                return None
    except Exception:  # a model that cannot fit this series: the caller falls back
        return None
    return SeriesForecast(mean, native, calibration, "", time.process_time() - started)


def _finish_local(
    factory: Callable[[], LocalModel],
    y: np.ndarray,
    h: int,
    season_length: int,
    levels: Sequence[int],
    chosen: SeriesForecast,
) -> SeriesForecast | None:
    """The point forecast (and own intervals) of a calibrated-only model."""
    started = time.process_time()
    try:
        out = factory().forecast(y=y, h=h, level=list(levels))
    except Exception:
        return None
    mean = np.asarray(out["mean"], dtype=float)
    if not np.all(np.isfinite(mean)):
        return None
    chosen.mean = mean
    chosen.native = {k: np.asarray(v, dtype=float) for k, v in out.items() if k != "mean"}
    chosen.seconds += time.process_time() - started
    return chosen


def _fallback(y: np.ndarray, h: int, season_length: int, levels: Sequence[int]) -> SeriesForecast:
    """Seasonal naive, for a series every model of a family failed on."""
    factory = local_models(season_length)["SeasonalNaive"]
    result = fit_local(factory, y, h, season_length, levels)
    if result is None:  # shorter than a season: the last value
        last = np.full(h, y[-1], dtype=float)
        result = SeriesForecast(last, {}, None, "", 0.0)
    result.model = "SeasonalNaive (fallback)"
    return result


def local_family(
    train: pd.DataFrame,
    h: int,
    season_length: int,
    levels: Sequence[int],
    models: Sequence[str],
    *,
    choose: bool,
) -> dict[str, SeriesForecast]:
    """Fit ``models`` on each series. ``choose``: keep, per series, the model with the lowest
    mean absolute error over the calibration windows (the first model where there are none)
    and refit only it; otherwise ``models`` must be one model."""
    factories = local_models(season_length)
    results: dict[str, SeriesForecast] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsforecast's convergence chatter
        for uid, y in _series(train):
            if not choose:
                (name,) = models
                result = fit_local(factories[name], y, h, season_length, levels)
                if result is None:
                    result = _fallback(y, h, season_length, levels)
                else:
                    result.model = name
                results[uid] = result
                continue
            candidates: dict[str, SeriesForecast] = {}
            for name in models:
                fitted = fit_local(factories[name], y, h, season_length, levels, final=False)
                if fitted is not None:
                    candidates[name] = fitted
            calibrating = {name: c.seconds for name, c in candidates.items()}
            errors = _calibration_errors(y, h, season_length, candidates)
            ranked = sorted(errors, key=errors.__getitem__) if errors else []
            ranked += [m for m in models if m in candidates and m not in ranked]
            chosen = None
            for name in ranked:
                chosen = _finish_local(
                    factories[name], y, h, season_length, levels, candidates[name]
                )
                if chosen is not None:
                    chosen.model = name
                    break
            if chosen is None:
                chosen = _fallback(y, h, season_length, levels)
            else:
                chosen.calibration = _procedure_calibration(y, h, season_length, candidates)
            # every candidate's calibration counts, not only the chosen one's
            chosen.seconds += sum(calibrating.values()) - calibrating.get(chosen.model, 0.0)
            results[uid] = chosen
    return results


def _calibration_errors(
    y: np.ndarray,
    h: int,
    season_length: int,
    candidates: dict[str, SeriesForecast],
    windows: slice = slice(None),
) -> dict[str, float]:
    cuts = _calibration_cuts(len(y), h, season_length)
    if cuts is None:
        return {}
    actual = np.vstack([y[cut : cut + h] for cut in cuts])[windows]
    return {
        name: float(np.mean(np.abs(c.calibration[windows] - actual)))
        for name, c in candidates.items()
        if c.calibration is not None
    }


def _procedure_calibration(
    y: np.ndarray, h: int, season_length: int, candidates: dict[str, SeriesForecast]
) -> np.ndarray | None:
    """Calibration forecasts of the *selection*, not of the selected model: the chosen
    model's own errors on the windows it was chosen by are the smallest of the candidates'
    (too narrow intervals, ~7 points under nominal on Tourism). So the last window is
    forecast by the model the earlier windows alone would have chosen, and only that window
    is a conformal score (the other rows are NaN and left out)."""
    early = _calibration_errors(y, h, season_length, candidates, slice(0, -1))
    if not early:
        return None
    pick = min(early, key=early.__getitem__)
    calibration = candidates[pick].calibration
    assert calibration is not None
    out = np.full_like(calibration, np.nan)
    out[-1] = calibration[-1]
    return out


def _series(train: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    ordered = train.sort_values(["unique_id", "ds"], kind="stable")
    return [
        (str(uid), group["y"].to_numpy(dtype=float))
        for uid, group in ordered.groupby("unique_id", sort=False)
    ]


# --------------------------------------------------------------------- LightGBM


def lightgbm_forecasts(
    train: pd.DataFrame, h: int, season_length: int, freq: str, levels: Sequence[int]
) -> dict[str, SeriesForecast]:
    """One global LightGBM over lags 1..2m of every series (standardised per series),
    recursive over the horizon; calibrated on a fit that ends before the windows, then
    refit on everything. Its own intervals (for series too short to calibrate): normal,
    from the series' in-sample one-step residuals, widened with sqrt(step)."""
    started = time.process_time()
    lags = list(range(1, 2 * max(season_length, 2) + 1))

    def model() -> MLForecast:
        regressor = LGBMRegressor(
            n_estimators=150,
            learning_rate=0.05,
            num_leaves=15,
            min_child_samples=10,
            subsample=1.0,
            n_jobs=1,
            random_state=0,
            verbose=-1,
        )
        return MLForecast(
            models={"lightgbm": regressor},
            freq=freq,
            lags=lags,
            target_transforms=[LocalStandardScaler()],
        )

    train = train.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    sizes = train.groupby("unique_id", sort=False).size()
    position = train.groupby("unique_id", sort=False).cumcount()
    calibrated: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cuts = {uid: _calibration_cuts(int(n), h, season_length) for uid, n in sizes.items()}
        ok = [uid for uid, c in cuts.items() if c is not None]
        if ok:
            first = train["unique_id"].map({u: c[0] if c else 0 for u, c in cuts.items()})
            early = train[train["unique_id"].isin(ok) & (position < first)]
            fitted = model().fit(early, static_features=[])
            windows = []
            for k in range(CALIBRATION_WINDOWS):
                upto = first + k * h
                history = train[train["unique_id"].isin(ok) & (position < upto)]
                windows.append(_by_series(fitted.predict(h, new_df=history), "lightgbm", h))
            calibrated = {uid: np.vstack([w[uid] for w in windows]) for uid in ok}
        final = model().fit(train, static_features=[], fitted=True)
        means = _by_series(final.predict(h), "lightgbm", h)
        insample = final.forecast_fitted_values()
    residuals = (insample["y"] - insample["lightgbm"]).groupby(insample["unique_id"]).std()
    seconds = time.process_time() - started
    total = float(sizes.sum())
    results: dict[str, SeriesForecast] = {}
    for uid, n in sizes.items():
        y = train["y"].to_numpy()[(train["unique_id"] == uid).to_numpy()]
        sigma = residuals.get(uid, np.nan)
        if not np.isfinite(sigma):
            sigma = _seasonal_diff_sd(y, season_length)
        mean = means[str(uid)]
        native = {}
        for lv in levels:
            half = _z(lv) * sigma * np.sqrt(np.arange(1, h + 1))
            native[f"lo-{lv}"], native[f"hi-{lv}"] = mean - half, mean + half
        share = seconds * float(n) / total
        results[str(uid)] = SeriesForecast(
            mean, native, calibrated.get(str(uid)), "LightGBM", share
        )
    return results


def _by_series(predictions: pd.DataFrame, column: str, h: int) -> dict[str, np.ndarray]:
    predictions = predictions.sort_values(["unique_id", "ds"], kind="stable")
    return {
        str(uid): group[column].to_numpy(dtype=float)[:h]
        for uid, group in predictions.groupby("unique_id", sort=False)
    }


def _seasonal_diff_sd(y: np.ndarray, m: int) -> float:
    lag = m if len(y) > m else 1
    diffs = y[lag:] - y[:-lag] if len(y) > lag else np.zeros(1)
    return float(np.std(diffs)) if len(diffs) > 1 else float(abs(y[-1]) * 0.1 + 1e-9)


# ------------------------------------------------------------------- conformal


def scale(y: np.ndarray, season_length: int) -> float:
    """The in-sample seasonal-naive MAE (naive when the series is shorter than a season and
    a bit); 1 when that is zero (a constant series)."""
    lag = season_length if len(y) > season_length else 1
    if len(y) <= lag:
        return 1.0
    mae = float(np.mean(np.abs(y[lag:] - y[:-lag])))
    return mae if mae > 0 else 1.0


def conformal(
    train: pd.DataFrame,
    results: dict[str, SeriesForecast],
    h: int,
    season_length: int,
    freq: str,
    levels: Sequence[int],
) -> pd.DataFrame:
    """Turn per-series results into the family's table, with pooled, scaled split-conformal
    intervals where the series was calibrated and the model's own elsewhere."""
    series = dict(_series(train))
    scales = {uid: scale(y, season_length) for uid, y in series.items()}
    scores = []
    for uid, r in results.items():
        if r.calibration is None:
            continue
        y = series[uid]
        cuts = _calibration_cuts(len(y), h, season_length)
        assert cuts is not None
        actual = np.vstack([y[cut : cut + h] for cut in cuts])
        # each window's errors over the scale of the data before its cutoff: what the
        # interval at the origin is scaled by (the scale of the data before the origin)
        at_cut = np.array([scale(y[:cut], season_length) for cut in cuts])[:, None]
        block = np.abs(r.calibration - actual) / at_cut
        scores.append(block[~np.isnan(block).any(axis=1)])  # windows left out are NaN
    quantiles: dict[int, np.ndarray] = {}
    n = sum(len(block) for block in scores)
    # with fewer scores than ceil((n + 1) level) needs, the conformal bound is infinite: the
    # models' own intervals then stand for every series (a handful of series, not Tourism)
    if scores and all(math.ceil((n + 1) * lv / 100) <= n for lv in levels):
        pooled = np.vstack(scores)  # (calibrated series x windows, h)
        for lv in levels:
            rank = min(1.0, math.ceil((n + 1) * lv / 100) / n)
            # the k-th smallest score, k = ceil((n + 1) level): inverted_cdf at k / n
            quantiles[lv] = np.quantile(pooled, rank, axis=0, method="inverted_cdf")
    last = train.groupby("unique_id", sort=False)["ds"].max()
    frames = []
    for uid, r in results.items():
        dates = pd.date_range(last[uid], periods=h + 1, freq=freq)[1:]
        row: dict[str, Any] = {"unique_id": uid, "ds": dates, "mean": r.mean}
        conformal_ok = r.calibration is not None and bool(quantiles)
        for lv in levels:
            if conformal_ok:
                half = quantiles[lv] * scales[uid]
                lo, hi = r.mean - half, r.mean + half
            else:
                lo = r.native.get(f"lo-{lv}", np.full(h, np.nan))
                hi = r.native.get(f"hi-{lv}", np.full(h, np.nan))
            row[f"lo_{lv}"], row[f"hi_{lv}"] = lo, hi
        row["interval_source"] = "conformal" if conformal_ok else "model"
        row["fit_seconds"] = r.seconds
        row["model"] = r.model
        frames.append(pd.DataFrame(row))
    columns = ["unique_id", "ds", "mean"]
    columns += [f"{side}_{lv}" for lv in levels for side in ("lo", "hi")]
    columns += ["interval_source", "fit_seconds", "model"]
    if not frames:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(frames, ignore_index=True)[columns]


def _z(level: int) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 200)


# --------------------------------------------------------------------- families


def _single(name: str) -> Family:
    def family(
        train: pd.DataFrame, h: int, season_length: int, freq: str, levels: tuple[int, ...]
    ) -> pd.DataFrame:
        results = local_family(train, h, season_length, levels, [name], choose=False)
        return conformal(train, results, h, season_length, freq, levels)

    family.__name__ = f"family_{name}"
    family.__doc__ = f"{name} on every series, conformal intervals."
    return family


current = _single("SeasonalNaive")
naive2 = _single("Naive2")
ets = _single("AutoETS")
arima = _single("AutoARIMA")
theta = _single("AutoTheta")


def improved(
    train: pd.DataFrame, h: int, season_length: int, freq: str, levels: tuple[int, ...]
) -> pd.DataFrame:
    """AutoETS, AutoARIMA or AutoTheta per series, whichever forecast the calibration
    windows best (AutoETS where a series is too short to have them)."""
    results = local_family(
        train, h, season_length, levels, ["AutoETS", "AutoARIMA", "AutoTheta"], choose=True
    )
    return conformal(train, results, h, season_length, freq, levels)


def lightgbm(
    train: pd.DataFrame, h: int, season_length: int, freq: str, levels: tuple[int, ...]
) -> pd.DataFrame:
    """One global LightGBM on lags (mlforecast)."""
    results = lightgbm_forecasts(train, h, season_length, freq, levels)
    return conformal(train, results, h, season_length, freq, levels)


def ensemble(
    train: pd.DataFrame, h: int, season_length: int, freq: str, levels: tuple[int, ...]
) -> pd.DataFrame:
    """The mean of :data:`ENSEMBLE`'s members (forecasts and calibration forecasts alike);
    its own intervals, where it has no calibration, are the members' bounds averaged."""
    members: list[dict[str, SeriesForecast]] = []
    for name in ENSEMBLE:
        if name == "lightgbm":
            members.append(lightgbm_forecasts(train, h, season_length, freq, levels))
        else:
            members.append(local_family(train, h, season_length, levels, [name], choose=False))
    combined: dict[str, SeriesForecast] = {}
    for uid in members[0]:
        parts = [m[uid] for m in members]
        mean = np.mean([p.mean for p in parts], axis=0)
        keys = set.intersection(*(set(p.native) for p in parts))
        native = {k: np.mean([p.native[k] for p in parts], axis=0) for k in keys}
        calibrations = [p.calibration for p in parts]
        calibration = (
            None
            if any(c is None for c in calibrations)
            else np.mean(np.stack(calibrations), axis=0)  # type: ignore[arg-type]
        )
        model = "mean(" + ", ".join(p.model for p in parts) + ")"
        combined[uid] = SeriesForecast(
            mean, native, calibration, model, sum(p.seconds for p in parts)
        )
    return conformal(train, combined, h, season_length, freq, levels)


FAMILIES: dict[str, Family] = {
    "current": current,
    "improved": improved,
    "lightgbm": lightgbm,
    "ensemble": ensemble,
    "naive2": naive2,
    "ets": ets,
    "arima": arima,
    "theta": theta,
}
#: the families every report runs whatever ``--families`` says (the references)
REFERENCES = ("current", "naive2")
#: what ``--families`` defaults to
DEFAULT = ("current", "improved", "lightgbm", "ensemble")
