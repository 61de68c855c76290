"""The services bench/features.py serves: one feature endpoint, its row computed by the
FeatureSet (logging off / at 100%) or by calling the plain functions by hand."""

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


def _predict(values: list[Any]) -> float:
    return sum(w * float(v) for w, v in zip(WEIGHTS, values, strict=True))


class Plain(Service):
    """The feature set's row, no log."""

    @endpoint
    def score(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        return _predict(list(FEATURES.row(facts, lookups_for(profile_id)).values()))


class ByHand(Service):
    """The same plain functions called one by one, no FeatureSet."""

    @endpoint
    def score(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        return _predict(list(by_hand(facts, lookups_for(profile_id)).values()))


class Logged(Service):
    """The feature set's row, every request logged."""

    serving_log = ServingLog(
        sample=1.0,
        max_bytes=int(os.environ.get("BENCH_LOG_MAX_BYTES", 1 << 20)),
        max_age=timedelta(minutes=5),
        features=FEATURES,  # the vector's names, once per segment
        # knobs for experiments (a writer that sleeps through a round: its queue holds it)
        **_knobs(),
    )

    @endpoint
    def score(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        lookups = lookups_for(profile_id)
        values = list(FEATURES.row(facts, lookups).values())  # what Plain computes
        prediction = _predict(values)
        self.serving_log.log(facts=facts, lookups=lookups, features=values, prediction=prediction)
        return prediction


def _fitted() -> Any:
    """A scikit-learn model over the eight features, fitted at load on synthetic rows (what
    a ranker's scoring endpoint calls per request)."""
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
    """The feature set's row and a scikit-learn model's probability, no log."""

    def load(self) -> None:
        self.model = _fitted()

    @endpoint
    def score(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        row = FEATURES.row(facts, lookups_for(profile_id))
        return float(self.model.predict_proba([list(row.values())])[0, 1])


class WithModelLogged(Service):
    """The same, every request logged."""

    serving_log = ServingLog(
        sample=1.0,
        max_bytes=int(os.environ.get("BENCH_LOG_MAX_BYTES", 1 << 20)),
        max_age=timedelta(minutes=5),
        features=FEATURES,
        **_knobs(),
    )

    def load(self) -> None:
        self.model = _fitted()

    @endpoint
    def score(self, profile_id: str, title: str, genres: list[str], released: float) -> float:
        facts = {"profile_id": profile_id, "title": title, "genres": genres, "released": released}
        lookups = lookups_for(profile_id)
        values = list(FEATURES.row(facts, lookups).values())
        prediction = float(self.model.predict_proba([values])[0, 1])
        self.serving_log.log(facts=facts, lookups=lookups, features=values, prediction=prediction)
        return prediction
