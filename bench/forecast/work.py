"""The work both sides of ``bench/forecast.py --only parallel`` do, defined once: the
statistical models over the Tourism quarterly series and the rolling origins.

Seasonal naive, AutoETS, AutoARIMA and AutoTheta (season 4), horizon 8, four origins spaced
by the horizon, the last window ending at the last observation — statsforecast's
``cross_validation(h=8, n_windows=4, step_size=8)`` — each configured as the example's
families configure them (``families.local_models``: AutoARIMA with its reduced search), so
these are the point forecasts of the families ``current``, ``ets``, ``arima`` and ``theta``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "forecast_options"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

MODELS = ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta")
H, ORIGINS = 8, 4


def model(name: str, season_length: int) -> Any:
    """A fresh statsforecast model by name, as the example's families make it."""
    from families import local_models

    return local_models(season_length)[name]()


def tourism(series: int = 0) -> tuple[pd.DataFrame, int, str]:
    """The Tourism quarterly series long enough for every origin (426 of the 427: one has
    30 observations, and 4 origins of 8 leave it no training part; the example's backtest
    skips such windows, statsforecast's ``cross_validation`` cannot), the first ``series``
    of them (0: all), as the example's data module loads them: (frame, season_length,
    freq)."""
    from data import load
    from families import min_train

    dataset = load("tourism")
    frame = dataset.frame
    long_enough = ORIGINS * H + min_train(dataset.season_length)
    sizes = frame.groupby("unique_id", sort=False)["y"].transform("size")
    frame = frame[sizes >= long_enough]
    if series:
        keep = frame["unique_id"].drop_duplicates().iloc[:series]
        frame = frame[frame["unique_id"].isin(keep)]
    return frame.reset_index(drop=True), int(dataset.season_length), str(dataset.freq)


def cut(frame: pd.DataFrame, origin: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training part, the h observations after it) of every series at ``origin`` (1: the
    earliest of ``ORIGINS``, spaced by ``H``, the last ending at the last observation)."""
    back = (ORIGINS - origin + 1) * H
    position = frame.groupby("unique_id").cumcount(ascending=False)  # 0 = last observation
    train = frame[position >= back]
    window = frame[(position < back) & (position >= back - H)]
    return train, window
