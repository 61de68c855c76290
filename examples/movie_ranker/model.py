"""The ranker: implicit-feedback matrix factorisation (ALS, Hu, Koren & Volinsky 2008) in
numpy, a popularity baseline, and offline evaluation (NDCG@k and recall@k on held-out items).

>>> als = ImplicitALS(factors=32).fit(train)                        # doctest: +SKIP
>>> evaluate(als.scores, train, test)                              # {"ndcg@10": ..., ...}
>>> ranker = Ranker.build(als, ratings, seen=full)                  # what the registry keeps
>>> ranker.recommend("u00042", 20)                                  # titles or item ids

Every (user, item) pair has a preference p = 1 if the user interacted, else 0, with
confidence c = 1 + alpha for interactions and 1 otherwise; ALS alternates exact
least-squares solves for user and item factors minimising sum c (p - x.y)^2 + reg (|x|^2 +
|y|^2). Each side is solved for many rows at once (padded batches through ``np.linalg.solve``),
so a fit of 2,000 x 1,000 with 64 factors takes about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

Scorer = Callable[[np.ndarray], np.ndarray]  # user indexes -> (len, n_items) scores
Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # row indexes, (b, L) columns, (b, L) mask


# ---------------------------------------------------------------------------- ALS


@dataclass
class ImplicitALS:
    """Implicit-feedback ALS; ``fit`` a users x items 0/1 matrix, then ``scores(users)``."""

    factors: int = 32
    regularization: float = 50.0
    alpha: float = 5.0
    iterations: int = 10
    seed: int = 0
    user_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    item_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def fit(self, interactions: sp.csr_matrix) -> ImplicitALS:
        """Learn factors from a users x items matrix whose nonzeros are interactions."""
        if self.factors < 1 or self.iterations < 1:
            raise ValueError(
                f"ALS needs factors >= 1 and iterations >= 1, got {self.factors}, {self.iterations}"
            )
        rng = np.random.default_rng(self.seed)
        n_users, n_items = interactions.shape
        by_user = sp.csr_matrix(interactions, dtype=np.float32)
        by_item = by_user.T.tocsr()
        user_batches, item_batches = _batches(by_user), _batches(by_item)
        scale = 0.1 / np.sqrt(self.factors)
        self.user_factors = (rng.standard_normal((n_users, self.factors)) * scale).astype(
            np.float32
        )
        self.item_factors = (rng.standard_normal((n_items, self.factors)) * scale).astype(
            np.float32
        )
        for _ in range(self.iterations):
            self.user_factors = self._solve(user_batches, n_users, self.item_factors)
            self.item_factors = self._solve(item_batches, n_items, self.user_factors)
        return self

    def _solve(self, batches: list[Batch], n_rows: int, fixed: np.ndarray) -> np.ndarray:
        """For every row r: (F'F + alpha F_r'F_r + reg I) x = (1 + alpha) F_r' 1."""
        k = fixed.shape[1]
        base = fixed.T @ fixed + self.regularization * np.eye(k, dtype=np.float32)
        out = np.zeros((n_rows, k), dtype=np.float32)
        for batch, columns, mask in batches:
            gathered = fixed[columns]  # (b, L, k)
            weighted = gathered * mask[:, :, None]
            gram = np.matmul(gathered.transpose(0, 2, 1), weighted)  # (b, k, k)
            rhs = (1.0 + self.alpha) * weighted.sum(axis=1)  # (b, k)
            a = base[None, :, :] + self.alpha * gram
            out[batch] = np.linalg.solve(a, rhs[:, :, None])[:, :, 0]
        return out

    def scores(self, users: np.ndarray) -> np.ndarray:
        """Predicted preferences of ``users`` (indexes) for every item."""
        return np.asarray(self.user_factors[users] @ self.item_factors.T)


def _batches(rows: sp.csr_matrix, budget: int = 1 << 17) -> list[Batch]:
    """Rows with at least one nonzero, grouped by length so padding stays small, each batch
    padding to at most ``budget`` cells: (row indexes, column indexes (b, L), mask (b, L))."""
    lengths = np.diff(rows.indptr)
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    out: list[Batch] = []
    start = 0
    while start < len(order):
        stop = start + 1  # ascending lengths: the batch's last row is its longest
        while stop < len(order) and (stop + 1 - start) * lengths[order[stop]] <= budget:
            stop += 1
        batch = order[start:stop]
        width = int(lengths[batch[-1]])
        offsets = np.arange(width)
        mask = offsets[None, :] < lengths[batch][:, None]
        positions = np.where(mask, rows.indptr[batch][:, None] + offsets, 0)
        out.append((batch, rows.indices[positions], mask.astype(np.float32)))
        start = stop
    return out


# ---------------------------------------------------------------------------- baseline


def popularity(interactions: sp.csr_matrix) -> np.ndarray:
    """How many users interacted with each item (the baseline's score)."""
    return np.asarray((interactions > 0).sum(axis=0)).ravel().astype(np.float32)


def popularity_scorer(interactions: sp.csr_matrix) -> Scorer:
    counts = popularity(interactions)
    return lambda users: np.broadcast_to(counts, (len(users), len(counts)))


# ---------------------------------------------------------------------------- ranking


def top_k(scores: np.ndarray, seen: sp.csr_matrix, users: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best items per user (best first), never one the user has already seen."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    block = seen[users]
    rows = np.repeat(np.arange(len(users)), np.diff(block.indptr))
    scores[rows, block.indices] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    # a user who has seen almost everything: drop the masked items rather than return them
    valid = np.isfinite(np.take_along_axis(scores, best, axis=1))
    return np.where(valid, best, -1)


def evaluate(
    scorer: Scorer, train: sp.csr_matrix, test: sp.csr_matrix, k: int = 10, batch: int = 1024
) -> dict[str, float]:
    """Mean NDCG@k and recall@k over users with held-out items, ranking every item the user
    did not interact with in ``train``. Recall is hits / min(k, held-out items)."""
    users = np.flatnonzero(np.diff(test.indptr))
    if len(users) == 0:
        raise ValueError("the test split holds no interactions: nothing to evaluate")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, recall = [], []
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        best = top_k(scorer(chunk), train, chunk, k)
        truth = test[chunk]
        hits = np.zeros(best.shape, dtype=bool)
        for i in range(len(chunk)):
            held = truth.indices[truth.indptr[i] : truth.indptr[i + 1]]
            hits[i] = np.isin(best[i], held)
        n_held = np.minimum(np.diff(truth.indptr), k)
        ideal = np.cumsum(discounts)[n_held - 1]
        ndcg.append((hits * discounts).sum(axis=1) / ideal)
        recall.append(hits.sum(axis=1) / n_held)
    return {
        f"ndcg@{k}": float(np.concatenate(ndcg).mean()),
        f"recall@{k}": float(np.concatenate(recall).mean()),
    }


# ---------------------------------------------------------------------------- served model


@dataclass
class Ranker:
    """What the flow registers: factors, ids, titles, who saw what, and popularity."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    labels: np.ndarray  # what a home row shows per item: its title, else its id
    user_factors: np.ndarray
    item_factors: np.ndarray
    popularity: np.ndarray
    seen: sp.csr_matrix
    factors: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        als: ImplicitALS,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        titles: np.ndarray | None,
        seen: sp.csr_matrix,
        metrics: dict[str, float] | None = None,
    ) -> Ranker:
        return cls(
            user_ids=np.asarray(user_ids).astype(str),
            item_ids=np.asarray(item_ids).astype(str),
            labels=np.asarray(titles if titles is not None else item_ids).astype(str),
            user_factors=als.user_factors,
            item_factors=als.item_factors,
            popularity=popularity(seen),
            seen=seen,
            factors=als.factors,
            metrics=dict(metrics or {}),
        )

    def __post_init__(self) -> None:
        self._user_index = {u: i for i, u in enumerate(self.user_ids.tolist())}
        self._item_index = {u: i for i, u in enumerate(self.item_ids.tolist())}

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def user_index(self, user_id: str) -> int | None:
        return self._user_index.get(user_id)

    def item_index(self, item_id: str) -> int | None:
        return self._item_index.get(item_id)

    def top_indexes(self, users: np.ndarray, k: int) -> np.ndarray:
        """The best ``k`` unseen items (indexes, best first; -1 pads) for user indexes."""
        scores = self.user_factors[users] @ self.item_factors.T
        return top_k(scores, self.seen, users, k)

    def rows(self, users: np.ndarray, k: int = 20) -> dict[str, list[str]]:
        """``user_id -> [label, ...]``: the home rows of ``users`` (indexes)."""
        best = self.top_indexes(users, k)
        return {
            str(self.user_ids[u]): [str(self.labels[i]) for i in row if i >= 0]
            for u, row in zip(users.tolist(), best, strict=True)
        }

    def recommend(self, user_id: str, k: int = 10) -> list[str]:
        """One user's home row; an unknown user gets the popular row."""
        index = self.user_index(user_id)
        if index is None:
            return self.popular(k)
        return self.rows(np.array([index]), k)[str(user_id)]

    def popular(self, k: int = 10) -> list[str]:
        """The most popular items' labels (the row for anyone we know nothing about)."""
        order = np.argsort(-self.popularity, kind="stable")[:k]
        return [str(self.labels[i]) for i in order]

    def scorer(self, user_ids: np.ndarray, item_ids: np.ndarray) -> Scorer:
        """Scores over *another* data set's users and items, matched by id (how the quality
        gate scores the model in prod on today's data): ``user indexes -> (len, len(item_ids))``.
        An item this model does not know is never ranked (-inf); a user it does not know gets
        its popularity order."""
        users = np.array([self._user_index.get(str(u), -1) for u in user_ids])
        items = np.array([self._item_index.get(str(i), -1) for i in item_ids])
        known = items >= 0
        popular = np.full(len(items), -np.inf, dtype=np.float32)
        popular[known] = self.popularity[items[known]]

        def scores(rows: np.ndarray) -> np.ndarray:
            out = np.full((len(rows), len(items)), -np.inf, dtype=np.float32)
            mine = users[rows]
            out[:, known] = (
                self.user_factors[np.maximum(mine, 0)] @ self.item_factors[items[known]].T
            )
            out[mine < 0] = popular
            return out

        return scores

    def score(self, pairs: list[tuple[str, str]]) -> list[float | None]:
        """Predicted preference per (user_id, item_id); None where either is unknown."""
        out: list[float | None] = []
        for user_id, item_id in pairs:
            u, i = self.user_index(user_id), self.item_index(item_id)
            if u is None or i is None:
                out.append(None)
            else:
                out.append(float(self.user_factors[u] @ self.item_factors[i]))
        return out
