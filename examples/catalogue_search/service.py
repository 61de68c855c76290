"""Catalogue search as a service: titles found by what people remember of them — a
misspelled title, part of one, a genre and a decade with a good rating.

    shipyard deploy examples/catalogue_search/service.py:Catalogue --name catalogue
    curl -H 'content-type: application/json' localhost:8000/catalogue/search \\
         -d '{"query": "godfathr", "k": 5, "filters": {"decade": 1970, "min_rating": 7}}'

``POST /catalogue/search {"query": str, "k": int = 10, "filters": {"genre": str, "decade":
int, "min_rating": float}}`` → ``{"results": [{"title", "year", "genres", "score"}],
"facets": {"genre": {...}, "decade": {...}}}``. Every filter is optional; an empty query with
filters browses the films they let through, most voted first. Facet counts are over every film
that matched the query (a title word, or a typo-tolerant title match) and the filters, not only
the ``k`` returned; decades are keys as strings (JSON's keys are).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shipyard import HTTPError
from shipyard.registry import Model
from shipyard.serve import Service, endpoint

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from filmdata import GENRES  # noqa: E402
from search import Engine, core_filters  # noqa: E402

MODEL = "catalogue-index"
MAX_QUERY = 200
MAX_K = 100


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    genre: str | None = Field(default=None, description=f"one of {', '.join(GENRES)}")
    decade: int | None = Field(default=None, description="a decade's first year: 1990")
    min_rating: float | None = Field(default=None, ge=0, le=10, description="IMDb, 1-10")


class Film(BaseModel):
    title: str
    year: int
    genres: list[str]
    score: float = Field(description="the fused reciprocal-rank score (higher is better)")


class SearchAnswer(BaseModel):
    results: list[Film]
    facets: dict[str, dict[str, int]]


def checked_filters(filters: Filters | None) -> dict[str, Any]:
    """The filters as the engine takes them; a 422 naming the field for a bad one."""
    if filters is None:
        return {}
    out = filters.model_dump(exclude_none=True)
    if "genre" in out:
        known = {g.casefold(): g for g in GENRES}
        genre = known.get(out["genre"].strip().casefold())
        if genre is None:
            raise HTTPError(
                422,
                f"filters.genre {out['genre']!r} is not a genre: use one of {', '.join(GENRES)}",
                field="filters.genre",
            )
        out["genre"] = genre
    if "decade" in out and out["decade"] % 10:
        raise HTTPError(
            422,
            f"filters.decade {out['decade']} is not a decade: give its first year "
            f"({out['decade'] // 10 * 10})",
            field="filters.decade",
        )
    return core_filters(out)


class Catalogue(Service):
    """Search the films of the latest ``catalogue-index``."""

    def load(self) -> None:
        model = Model(MODEL)  # the latest, or the version `deploy --model` pinned
        self.version = model.resolve()
        self.engine = Engine.load(model.load().path)
        self.engine.search("warm up", k=1)  # the query encoder's first call is slow
        # one search at a time: the query encoder runs on one BLAS thread
        self.searching = threading.Lock()

    @endpoint
    def search(
        self,
        query: Annotated[str, Field(max_length=MAX_QUERY)],
        k: Annotated[int, Field(ge=1, le=MAX_K)] = 10,
        filters: Filters | None = None,
    ) -> SearchAnswer:
        """The k films that best match the query among those the filters let through, and
        genre and decade counts over every film that matched."""
        where = checked_filters(filters)
        if not query.strip() and not where:
            raise HTTPError(
                422, "`query` is empty and there are no filters: say what to look for",
                field="query",
            )  # fmt: skip
        with self.searching:
            found = self.engine.search(query, k, where)
        facets = {
            name: {str(value): n for value, n in counts.items()}
            for name, counts in found["facets"].items()
        }
        return SearchAnswer(results=[Film(**r) for r in found["results"]], facets=facets)
