"""Reciprocal-rank fusion (Cormack, Clarke & Büttcher, 2009), weighted, over any number of
rankings. Each item scores ``sum(weight / (c + rank))`` over the rankings it appears in
(ranks from 1). It looks at ranks only, so rankers whose scores live on different scales
(BM25's unbounded sums, cosine similarities, fuzzy ratios) are fused fairly — summing raw or
min-max-normalised scores is what makes hybrid search worse than either part.

Each ranking should be deep (the index asks every ranker for 100 candidates, not ``k``): an
item just past a shallow cut-off counts as absent, so a near miss in one ranker cannot be
rescued by a hit in another, and the fused top ``k`` is worse than it needs to be.

>>> rrf([["a", "b", "c"], ["c", "a"]])
[('a', 0.03252247488101534), ('c', 0.032266458495966696), ('b', 0.016129032258064516)]
>>> [x for x, _ in rrf({"bm25": ["a", "b"], "dense": ["b", "a"]}, {"bm25": 1, "dense": 2})]
['b', 'a']
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from shipyard.retrieval.errors import RetrievalError

T = TypeVar("T", bound=Hashable)

#: the constant of the original paper: it damps the weight of the very first ranks
RRF_C = 60


def rrf(
    rankings: Mapping[str, Sequence[T]] | Sequence[Sequence[T]],
    weights: Mapping[str, float] | Sequence[float] | None = None,
    *,
    c: float = RRF_C,
    limit: int | None = None,
) -> list[tuple[T, float]]:
    """The items of ``rankings`` (each best first) by fused score, best first, with their
    scores. ``rankings`` and ``weights`` are both mappings by ranker name or both sequences
    (weights default to 1). Ties go to the item with the better best rank, then to the one
    seen first. A ranker with weight 0 changes nothing."""
    if isinstance(rankings, Mapping):
        names = list(rankings)
        lists = [rankings[n] for n in names]
        if weights is None:
            ws = [1.0] * len(lists)
        elif isinstance(weights, Mapping):
            unknown = set(weights) - set(names)
            if unknown:
                raise RetrievalError(f"weights for rankers that gave no ranking: {sorted(unknown)}")
            ws = [float(weights.get(n, 1.0)) for n in names]
        else:
            ws = [float(w) for w in weights]
    else:
        lists = list(rankings)
        if isinstance(weights, Mapping):
            raise RetrievalError("weights by name need rankings by name (a mapping)")
        ws = [1.0] * len(lists) if weights is None else [float(w) for w in weights]
    if len(ws) != len(lists):
        raise RetrievalError(f"{len(ws)} weights for {len(lists)} rankings")
    if any(w < 0 for w in ws):
        raise RetrievalError(f"weights must not be negative: {ws}")
    if c <= 0:
        raise RetrievalError(f"c={c!r} must be positive")
    scores: dict[T, float] = {}
    best: dict[T, int] = {}
    for ranking, w in zip(lists, ws, strict=True):
        if w == 0:
            continue
        counted: set[T] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in counted:  # an item twice in one ranking counts at its first rank
                continue
            counted.add(item)
            scores[item] = scores.get(item, 0.0) + w / (c + rank)
            best[item] = min(best.get(item, rank), rank)
    seen = {item: i for i, item in enumerate(scores)}
    fused = sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], seen[kv[0]]))
    return fused[:limit] if limit is not None else fused
