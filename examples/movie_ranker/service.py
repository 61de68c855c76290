"""The home row as a service: precomputed rows from the cache, a popular row for everyone else.

    shipyard deploy examples/movie_ranker/service.py:Ranker --name ranker --follow ranker@prod
    curl -H 'content-type: application/json' localhost:8000/ranker/home \\
         -d '{"profile_id": "u00042", "limit": 5}'

``home`` never computes a ranking in the request path: it reads the row the flow wrote into
the ``home-rows`` namespace, and answers with the model's popularity row for a profile the
cache does not know — or when the cache cannot be reached at all, so the page still renders.

``score_title`` does compute per request: the features of ``features.py`` (``FEATURES.row``,
the same code the scorer flow trained on), from the request's facts and the precomputed
profile and title aggregates as of the last refresh, through the model ``ranker-scorer``
(``scorer_flow.py``). Every request is written to the serving log (facts, aggregates,
features, prediction), which ``skew.py``'s ``SkewFlow`` checks daily.

    curl -H 'content-type: application/json' localhost:8000/ranker/score_title \\
         -d '{"profile_id": "7", "item_id": "31", "genres": "Drama", "year": 1995}'
"""

from __future__ import annotations

import functools
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shipyard import HTTPError, cache
from shipyard.features import FeatureSet
from shipyard.features.servinglog import ServingLog
from shipyard.registry import Model, ModelNotFound
from shipyard.serve import Service, endpoint

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from features import FEATURES, Aggregates, movielens_events  # noqa: E402

NAMESPACE = "home-rows"
SCORER = "ranker-scorer"
#: the longest row a request may ask for (the flow precomputes 20 per profile by default)
MAX_ROW = 20


#: ``score_title``'s title year and request time (UNIX seconds), as validated
Year = Annotated[int | None, Field(ge=1870, le=2100)]
At = Annotated[float | None, Field(ge=0, allow_inf_nan=False)]


class HomeRow(BaseModel):
    profile_id: str
    items: list[str]
    source: Literal["cache", "popular"]
    #: the model version this replica serves ("ranker:3"): a deployment that follows
    #: ranker@prod rolls to the next one when prod moves
    model: str


class Pair(BaseModel):
    profile_id: str
    item_id: str


class Scored(BaseModel):
    request_id: str
    #: P(the profile rates the title 4 or more)
    score: float
    features: dict[str, float]
    model: str


@functools.cache
def serving_aggregates() -> Aggregates:
    """The profile and title aggregates the service reads (built once per process from the
    MovieLens copy; a production service reads them from the precompute cache)."""
    return Aggregates(movielens_events())


class Ranker(Service):
    """Personalised home rows, read from the precompute cache; per-request scores from
    features computed online."""

    features: FeatureSet = FEATURES
    #: every request's facts, lookups, feature vector (named once per segment) and score
    serving_log = ServingLog(
        sample=1.0, max_age=timedelta(minutes=5), retention=timedelta(days=30), features=FEATURES
    )

    def load(self) -> None:
        try:
            model = Model("ranker@prod")
        except ModelNotFound:  # no alias yet (a first deploy by hand): the latest version
            model = Model("ranker")
        self.model = model.load()
        self.version = model.resolve()
        self.popular = self.model.popular(MAX_ROW)
        self.rows = cache.reader(NAMESPACE, lru=10_000)
        try:
            scorer = Model(SCORER)
            self.scorer: Any = scorer.load()
            self.scorer_version = scorer.resolve()
            self.aggregates = serving_aggregates()
        except ModelNotFound:  # not trained yet: home rows serve, score_title says so
            self.scorer = None

    def lookup_time(self, at: float) -> float:
        """The as-of time of the aggregates a request at ``at`` is served: the last refresh."""
        return Aggregates.refreshed(at)

    @endpoint
    def home(self, profile_id: str, limit: Annotated[int, Field(ge=1, le=MAX_ROW)] = 10) -> HomeRow:
        """The profile's home row: its precomputed ranking, else the most popular items."""
        row = self.rows.get(profile_id, default=None)
        if row is None:
            return HomeRow(
                profile_id=profile_id,
                items=self.popular[:limit],
                source="popular",
                model=self.version,
            )
        return HomeRow(
            profile_id=profile_id, items=list(row)[:limit], source="cache", model=self.version
        )

    @endpoint(batch=True, max_batch_size=256, max_wait_ms=5)
    def score(self, pairs: list[Pair]) -> list[float | None]:
        """The model's preference score per (profile, item); null for an unknown one."""
        return list(self.model.score([(p.profile_id, p.item_id) for p in pairs]))

    @endpoint
    def score_title(
        self,
        profile_id: str,
        item_id: str,
        genres: str | None = None,
        year: Year = None,
        at: At = None,
    ) -> Scored:
        """How likely the profile is to rate the title 4 or more. ``genres`` (MovieLens'
        ``Drama|Sci-Fi``) and ``year`` describe the title; ``at`` is the request's time
        (default now; set it to replay history)."""
        facts, lookups, row, vector, score = self.score_facts(profile_id, item_id, genres, year, at)
        request_id = uuid.uuid4().hex
        self.serving_log.log(
            facts=facts, lookups=lookups, features=vector, prediction=score, request_id=request_id
        )
        return Scored(request_id=request_id, score=score, features=row, model=self.scorer_version)

    def score_facts(
        self,
        profile_id: str,
        item_id: str,
        genres: str | None,
        year: int | None,
        at: float | None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[Any], float]:
        """``score_title``'s work but the log: the request's facts, the aggregates it is
        served, its feature row, the row's values (the vector the scorer was given) and its
        score."""
        if self.scorer is None:
            raise HTTPError(
                503, f"no model {SCORER!r} yet: run examples/movie_ranker/scorer_flow.py"
            )
        facts: dict[str, Any] = {
            "profile_id": profile_id,
            "item_id": item_id,
            "genres": genres,
            "at": time.time() if at is None else at,
        }
        if year is not None:
            facts["year"] = year
        lookups = self.aggregates.lookups(facts, as_of=self.lookup_time(facts["at"]))
        row = self.features.row(facts, lookups)
        vector = list(row.values())
        score = float(self.scorer.predict([vector])[0])
        return facts, lookups, row, vector, score
