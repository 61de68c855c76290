"""The services bench/features.py serves. Each compares its variants as endpoints of one
worker process, on the same CPU, because between two worker processes where the kernel
puts each alone moves a request's CPU by several us (bench/features.py, ``pin``):

- ``Minimal``: the feature set's row and a Python linear model (``plain``), the same with
  every request logged (``logged``), and the row by calling the plain functions one by one
  (``by_hand``);
- ``WithModel``: the row and a scikit-learn model's ``predict_proba`` (``plain``), and the
  same logged (``logged``);
- the movie ranker's own ``score_title`` beside its work without the log: ranker.py."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from ranker_set import FEATURES, WEIGHTS, by_hand, lookups_for

from shipyard import Service, endpoint
from shipyard.features import ServingLog


def _knobs() -> dict[str, Any]:
    """The log's defaults unless BENCH_LOG_FLUSH_INTERVAL / BENCH_LOG_QUEUE say otherwise."""
    knobs: dict[str, Any] = {}
    if "BENCH_LOG_FLUSH_INTERVAL" in os.environ:
        knobs["flush_interval"] = float(os.environ["BENCH_LOG_FLUSH_INTERVAL"])
    if "BENCH_LOG_QUEUE" in os.environ:
        knobs["queue_size"] = int(os.environ["BENCH_LOG_QUEUE"])
    return knobs


def _log() -> ServingLog:
    """Every request; segments of 1 MB (BENCH_LOG_MAX_BYTES) published as it goes; the
    feature vector's names once per segment."""
    return ServingLog(
        sample=1.0,
        max_bytes=int(os.environ.get("BENCH_LOG_MAX_BYTES", 1 << 20)),
        max_age=timedelta(minutes=5),
        features=FEATURES,
        **_knobs(),
    )


def _predict(values: list[Any]) -> float:
    return sum(w * float(v) for w, v in zip(WEIGHTS, values, strict=True))


class Minimal(Service):
    """The row and a Python linear model: the least a feature endpoint does."""

    serving_log = _log()

    @endpoint
    def plain(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        return _predict(list(FEATURES.row(facts, lookups_for(profile_id)).values()))

    @endpoint
    def logged(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        lookups = lookups_for(profile_id)
        values = list(FEATURES.row(facts, lookups).values())  # what plain computes
        prediction = _predict(values)
        self.serving_log.log(facts=facts, lookups=lookups, features=values, prediction=prediction)
        return prediction

    @endpoint
    def by_hand(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        return _predict(list(by_hand(facts, lookups_for(profile_id)).values()))


def _fitted() -> Any:
    """A scikit-learn model over the eight features, fitted at load on synthetic rows."""
    import numpy as np
    from ranker_set import facts_for
    from sklearn.linear_model import LogisticRegression

    rows = [
        list(FEATURES.row(facts_for(i), lookups_for(f"p{i % 100}")).values()) for i in range(400)
    ]
    X = np.asarray(rows, dtype=float)
    y = (X[:, 1] + 0.1 * X[:, 3] > np.median(X[:, 1] + 0.1 * X[:, 3])).astype(int)
    return LogisticRegression(max_iter=500).fit(X, y)


class WithModel(Service):
    """The row and a scikit-learn model's probability."""

    serving_log = _log()

    def load(self) -> None:
        self.model = _fitted()

    @endpoint
    def plain(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        row = FEATURES.row(facts, lookups_for(profile_id))
        return float(self.model.predict_proba([list(row.values())])[0, 1])

    @endpoint
    def logged(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        lookups = lookups_for(profile_id)
        values = list(FEATURES.row(facts, lookups).values())
        prediction = float(self.model.predict_proba([values])[0, 1])
        self.serving_log.log(facts=facts, lookups=lookups, features=values, prediction=prediction)
        return prediction
