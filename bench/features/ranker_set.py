"""A ranker-like feature set for bench/features.py: eight features over request facts and
two precomputed aggregates (a profile's ratings, a title's popularity)."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

from shipyard.features import FeatureSet, Lookup, feature

NOW = 1_790_000_000.0
DAY = 86_400.0
FAVOURITES = frozenset({"Drama", "Comedy", "Thriller"})


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


@feature
def rating_count(facts: Any, lookups: Any) -> int:
    return int(lookups["profile"]["count"])


@feature
def mean_rating(facts: Any, lookups: Any) -> float:
    profile = lookups["profile"]
    return float(profile["sum"]) / profile["count"] if profile["count"] else 3.5


@feature
def popularity(facts: Any, lookups: Any) -> float:
    return math.log1p(lookups["title"]["views"])


@feature
def genre_overlap(facts: Any) -> int:
    return len(FAVOURITES.intersection(facts.get("genres") or ()))


@feature
def days_since_release(facts: Any) -> float:
    released = facts.get("released")
    return (NOW - released) / DAY if released is not None else 365.0


@feature
def title_words(facts: Any) -> int:
    return len(_norm(facts.get("title")).split())


@feature
def is_sequel(facts: Any) -> bool:
    title = _norm(facts.get("title"))
    return title.endswith((" 2", " ii", " 3", " iii"))


@feature
def recent(facts: Any) -> bool:
    released = facts.get("released")
    return released is not None and NOW - released < 90 * DAY


FUNCTIONS = [
    rating_count,
    mean_rating,
    popularity,
    genre_overlap,
    days_since_release,
    title_words,
    is_sequel,
    recent,
]
FEATURES = FeatureSet(
    "bench-ranker",
    FUNCTIONS,
    lookups={
        "profile": Lookup("profile_id", timedelta(hours=6), default={"count": 0, "sum": 0.0}),
        "title": Lookup("title", timedelta(days=1), default={"views": 0}),
    },
)
WEIGHTS = [0.01, 0.5, 0.2, 0.3, -0.001, 0.05, 0.1, 0.4]
_RC, _MR, _PO, _GO, _DS, _TW, _IS, _RE = (f.fn for f in FUNCTIONS)


def by_hand(facts: Any, lookups: Any) -> dict[str, Any]:
    """What a user writes without a FeatureSet: each plain function called by name."""
    return {
        "rating_count": _RC(facts, lookups),
        "mean_rating": _MR(facts, lookups),
        "popularity": _PO(facts, lookups),
        "genre_overlap": _GO(facts),
        "days_since_release": _DS(facts),
        "title_words": _TW(facts),
        "is_sequel": _IS(facts),
        "recent": _RE(facts),
    }


_PROFILES = {
    f"p{i}": {"count": 10 + i, "sum": 3.7 * (10 + i), "as_of": NOW - 3600} for i in range(100)
}
_TITLE = {"views": 12_345, "as_of": NOW - 7200}


def lookups_for(profile_id: str) -> dict[str, Any]:
    """What a service fetches from its cache for the request (here: a dict)."""
    return {"profile": _PROFILES.get(profile_id), "title": _TITLE}


def facts_for(i: int) -> dict[str, Any]:
    return {
        "profile_id": f"p{i % 100}",
        "title": "The Big Sleep 2" if i % 7 == 0 else "Heat",
        "genres": ["Drama", "Crime"] if i % 2 else ["Comedy"],
        "released": NOW - (i % 1000) * DAY,
    }


if __name__ == "__main__":
    start = time.perf_counter()
    print(FEATURES.version, time.perf_counter() - start)
