"""The movie ranker's ``score_title`` (examples/movie_ranker/service.py) as bench/features.py
serves it: the example's own endpoint - its facts, as-of aggregates, ``FEATURES.row``, the
scorer's ``predict`` and the serving log - beside ``score_title_unlogged``, the same work
(``Ranker.score_facts``) and answer without the log, in one worker. ``load`` fits the scorer
the way ``scorer_flow.py`` does (on the last 5,000 MovieLens ratings) instead of loading
it from the registry, and builds the aggregates from the same MovieLens copy."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

from shipyard import endpoint

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "movie_ranker"
sys.path.insert(0, str(EXAMPLE))  # its features.py, scorer_flow.py


def _example_service():  # type: ignore[no-untyped-def]
    """examples/movie_ranker/service.py, imported under its own name (this directory has a
    service.py of its own)."""
    spec = importlib.util.spec_from_file_location("movie_ranker_service", EXAMPLE / "service.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_service = _example_service()


class Ranker(_service.Ranker):  # type: ignore[name-defined,misc]
    """The example's service, its scorer fitted at load."""

    def load(self) -> None:
        from scorer_flow import training_set

        from features import Aggregates, Scorer, movielens_events

        events = movielens_events()
        self.aggregates = Aggregates(events)
        features, labels = training_set(events.tail(5_000), self.aggregates)
        self.scorer = Scorer().fit(features, labels)
        self.scorer_version = "ranker-scorer (fitted at load)"

    @endpoint
    def score_title_unlogged(
        self,
        profile_id: str,
        item_id: str,
        genres: str | None = None,
        year: _service.Year = None,  # type: ignore[name-defined]
        at: _service.At = None,  # type: ignore[name-defined]
    ) -> _service.Scored:  # type: ignore[name-defined]
        _facts, _lookups, row, _vector, score = self.score_facts(
            profile_id, item_id, genres, year, at
        )
        return _service.Scored(
            request_id=uuid.uuid4().hex, score=score, features=row, model=self.scorer_version
        )


def bodies(count: int = 256) -> list[dict[str, object]]:
    """Requests for ``score_title``: MovieLens (profile, title) pairs, their genres and year."""
    from features import movielens_events

    events = movielens_events()
    step = max(1, len(events) // count)
    out = []
    for _, e in events.iloc[::step].head(count).iterrows():
        body: dict[str, object] = {"profile_id": str(e["profile_id"]), "item_id": str(e["item_id"])}
        if isinstance(e["genres"], str):
            body["genres"] = e["genres"]
        if e["year"] == e["year"]:  # not NaN
            body["year"] = int(e["year"])
        out.append(body)
    return out
