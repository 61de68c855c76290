"""The home row as a service: precomputed rows from the cache, a popular row for everyone else.

    shipyard deploy examples/movie_ranker/service.py:Ranker --name ranker --follow ranker@prod
    curl -H 'content-type: application/json' localhost:8000/ranker/home \\
         -d '{"profile_id": "u00042", "limit": 5}'

``home`` never computes a ranking in the request path: it reads the row the flow wrote into
the ``home-rows`` namespace, and answers with the model's popularity row for a profile the
cache does not know — or when the cache cannot be reached at all, so the page still renders.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from shipyard import cache
from shipyard.registry import Model, ModelNotFound
from shipyard.serve import Service, endpoint

NAMESPACE = "home-rows"
#: the longest row a request may ask for (the flow precomputes 20 per profile by default)
MAX_ROW = 20


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


class Ranker(Service):
    """Personalised home rows, read from the precompute cache."""

    def load(self) -> None:
        try:
            model = Model("ranker@prod")
        except ModelNotFound:  # no alias yet (a first deploy by hand): the latest version
            model = Model("ranker")
        self.model = model.load()
        self.version = model.resolve()
        self.popular = self.model.popular(MAX_ROW)
        self.rows = cache.reader(NAMESPACE, lru=10_000)

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
