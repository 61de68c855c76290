"""Forecast accuracy measures, as in the M-competitions and the Tourism competition.

>>> train = np.array([1.0, 2, 3, 4, 2, 3, 4, 5])
>>> actual, forecast = np.array([3.0, 4]), np.array([2.0, 5])
>>> s = seasonal_naive_mae(train, 4)            # 1.0: the in-sample seasonal-naive MAE
>>> mase(actual, forecast, s)                   # 1.0
>>> smape(actual, forecast)                     # 100 * (2/5 + 2/9) / 2 = 31.1...

Each measure has an element-wise form (``*_terms``: one value per forecast step, which the
backtest averages per window with pandas) and a scalar form for one window.

- ``seasonal_naive_mae(train, m)``: ``mean |y_t - y_{t-m}|`` over the training part — the
  MASE scale (Hyndman and Koehler, 2006; the M4 and Tourism competitions' seasonal scaling).
- ``mase = mean|y - f| / scale``.
- ``smape = mean 200 |y - f| / (|y| + |f|)``, in percent (M3/M4); a step where both are 0
  counts 0.
- ``bias = mean(f - y) / scale``: positive when the forecasts run high.
- ``coverage = share of y inside [lo, hi]``.
- ``winkler = mean(hi - lo + (2 / alpha)(lo - y)^+ + (2 / alpha)(y - hi)^+) / scale`` for a
  ``1 - alpha`` interval (Winkler 1972; scaled like M4's MSIS).
- ``owa = (smape / smape_naive2 + mase / mase_naive2) / 2`` (M4).
"""

from __future__ import annotations

import numpy as np


def seasonal_naive_mae(train: np.ndarray, season_length: int) -> float:
    """In-sample MAE of the seasonal naive forecast (NaN if the training part is not longer
    than a season)."""
    train = np.asarray(train, dtype=float)
    m = season_length
    if len(train) <= m:
        return float("nan")
    return float(np.mean(np.abs(train[m:] - train[:-m])))


def _scale(scale: np.ndarray | float) -> np.ndarray:
    s = np.asarray(scale, dtype=float)
    return np.where(s > 0, s, np.nan)  # a constant training part: scaled measures undefined


def mase_terms(y: np.ndarray, f: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.asarray(y, float) - np.asarray(f, float)) / _scale(scale)


def smape_terms(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    y, f = np.asarray(y, float), np.asarray(f, float)
    denominator = np.abs(y) + np.abs(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 200 * np.abs(y - f) / denominator, 0.0)


def bias_terms(y: np.ndarray, f: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(f, float) - np.asarray(y, float)) / _scale(scale)


def coverage_terms(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """1 inside the interval, 0 outside, NaN where a model gave no interval (left out of
    the means rather than counted as a miss)."""
    y, lo, hi = np.asarray(y, float), np.asarray(lo, float), np.asarray(hi, float)
    inside = ((y >= lo) & (y <= hi)).astype(float)
    return np.where(np.isnan(lo) | np.isnan(hi), np.nan, inside)


def winkler_terms(
    y: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float, scale: np.ndarray | float
) -> np.ndarray:
    y, lo, hi = np.asarray(y, float), np.asarray(lo, float), np.asarray(hi, float)
    alpha = 1 - level / 100
    penalty = (2 / alpha) * (np.maximum(lo - y, 0) + np.maximum(y - hi, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (hi - lo + penalty) / _scale(scale)


def mase(y: np.ndarray, f: np.ndarray, scale: float) -> float:
    return float(np.mean(mase_terms(y, f, scale)))


def smape(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(smape_terms(y, f)))


def bias(y: np.ndarray, f: np.ndarray, scale: float) -> float:
    return float(np.mean(bias_terms(y, f, scale)))


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    return float(np.mean(coverage_terms(y, lo, hi)))


def winkler(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float, scale: float) -> float:
    return float(np.mean(winkler_terms(y, lo, hi, level, scale)))


def owa(smape_: float, mase_: float, smape_naive2: float, mase_naive2: float) -> float:
    """M4's overall weighted average relative to Naive2 (1 = as good as Naive2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(0.5 * (np.float64(smape_) / smape_naive2 + np.float64(mase_) / mase_naive2))
