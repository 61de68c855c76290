"""Retrieval evaluation as BEIR does it: recall@k, MRR@10 and nDCG@10 over a question set,
and fusion weights tuned on its dev split (reported on the held-out one).

A question is ``{"id", "question", "split": "dev" | "test", "gold": [{"doc", "quote"}]}``
(optionally ``"filters"``). A chunk is relevant to a gold passage when it comes from the
gold document and contains the quote, both with case, punctuation and spacing ignored; a gold
entry without a quote is matched by any chunk of its document. Each gold passage counts once
however many chunks hold it (overlapping chunks do not inflate a score).

>>> recall_at_k(["a", None, "b"], {"a", "c"}, 3)
0.5
>>> mrr_at_k([None, "c"], {"a", "c"}, 10)
0.5
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.retrieval.errors import RetrievalError
from shipyard.retrieval.fusion import rrf
from shipyard.retrieval.index import DEPTH, MODES, HybridIndex, _weights


def recall_at_k(ranked: Sequence[Hashable | None], relevant: Collection[Hashable], k: int) -> float:
    """Share of ``relevant`` found in the first ``k`` of ``ranked`` (0 with nothing relevant)."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(set(relevant))


def mrr_at_k(
    ranked: Sequence[Hashable | None], relevant: Collection[Hashable], k: int = 10
) -> float:
    """1 / the rank of the first relevant item within ``k``, else 0."""
    for rank, item in enumerate(ranked[:k], start=1):
        if item is not None and item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(
    ranked: Sequence[Hashable | None], relevant: Collection[Hashable], k: int = 10
) -> float:
    """Binary-gain nDCG: each relevant item earns ``1/log2(rank+1)`` at its first rank; the
    ideal ranks all of ``relevant`` first."""
    wanted = set(relevant)
    if not wanted:
        return 0.0
    seen: set[Hashable] = set()
    dcg = 0.0
    for rank, item in enumerate(ranked[:k], start=1):
        if item is not None and item in wanted and item not in seen:
            seen.add(item)
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
    return dcg / ideal


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


@dataclass(frozen=True)
class Evaluation:
    """Scores of one mode (and weights) over a question set. ``ranks`` gives each question's
    first relevant rank (1-based, None if not in the first ``max(k, 10)``); ``unmatched`` the
    questions whose gold passage no chunk holds (scored 0: chunking or question to fix)."""

    mode: str
    k: int
    weights: tuple[float, float] | None
    split: str | None
    n: int
    recall: float
    mrr: float
    ndcg: float
    ranks: dict[str, int | None] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """``{"recall@10": ..., "mrr@10": ..., "ndcg@10": ...}`` (keys after ``prefix``)."""
        return {
            f"{prefix}recall@{self.k}": self.recall,
            f"{prefix}mrr@10": self.mrr,
            f"{prefix}ndcg@10": self.ndcg,
        }


class _Judge:
    """Which gold passage (if any) each chunk of an index holds, per question."""

    def __init__(self, index: HybridIndex) -> None:
        self.index = index
        self._text: dict[int, str] = {}

    def text(self, row: int) -> str:
        if row not in self._text:
            self._text[row] = _normal(self.index.chunks[row].embed_text)
        return self._text[row]

    def gold_rows(self, question: Mapping[str, Any]) -> list[set[int]]:
        """For each gold entry, the rows that hold it."""
        gold = question.get("gold")
        if not isinstance(gold, list) or not gold:
            raise RetrievalError(f"question {question.get('id')!r} has no gold list")
        by_doc = self.index.rows_by_doc()
        out = []
        for entry in gold:
            rows = by_doc.get(entry.get("doc", ""), [])
            quote = _normal(entry.get("quote") or "")
            out.append({r for r in rows if not quote or quote in self.text(r)})
        return out


def _labels(ranked: Sequence[int], gold: list[set[int]]) -> list[int | None]:
    """Each ranked row as the gold entry it holds (the first not yet credited), else None."""
    credited: set[int] = set()
    labels: list[int | None] = []
    for row in ranked:
        holds = [g for g, rows in enumerate(gold) if row in rows]
        fresh = [g for g in holds if g not in credited]
        label = fresh[0] if fresh else (holds[0] if holds else None)
        if label is not None:
            credited.add(label)
        labels.append(label)
    return labels


def _select(questions: Iterable[Mapping[str, Any]], split: str | None) -> list[Mapping[str, Any]]:
    chosen = [q for q in questions if split is None or q.get("split") == split]
    if not chosen:
        raise RetrievalError(f"no questions in split {split!r}")
    return chosen


def _score(
    ranked_rows: list[list[int]], golds: list[list[set[int]]], k: int
) -> tuple[float, float, float, list[int | None]]:
    recalls, mrrs, ndcgs, firsts = [], [], [], []
    for ranked, gold in zip(ranked_rows, golds, strict=True):
        labels = _labels(ranked, gold)
        everything = list(range(len(gold)))  # a gold passage no chunk holds counts as missed
        recalls.append(recall_at_k(labels, everything, k))
        mrrs.append(mrr_at_k(labels, everything, 10))
        ndcgs.append(ndcg_at_k(labels, everything, 10))
        first = next((i for i, label in enumerate(labels, start=1) if label is not None), None)
        firsts.append(first)
    n = len(ranked_rows)
    return sum(recalls) / n, sum(mrrs) / n, sum(ndcgs) / n, firsts


def evaluate(
    index: HybridIndex,
    questions: Iterable[Mapping[str, Any]],
    k: int = 10,
    mode: str = "hybrid",
    weights: Sequence[float] | None = None,
    *,
    split: str | None = None,
    depth: int | None = None,
) -> Evaluation:
    """recall@k, MRR@10 and nDCG@10 of ``index`` searched in ``mode`` over ``questions``
    (those of ``split`` if given)."""
    if mode not in MODES:
        raise RetrievalError(f"mode={mode!r}: use one of {', '.join(MODES)}")
    chosen = _select(questions, split)
    judge = _Judge(index)
    golds = [judge.gold_rows(q) for q in chosen]
    deep = max(k, 10)
    ranked = [
        [
            row
            for row, _ in index.ranked(q["question"], deep, mode, q.get("filters"), weights, depth)
        ]
        for q in chosen
    ]
    recall, mrr, ndcg, firsts = _score(ranked, golds, k)
    used = None
    if mode == "hybrid":
        w = _weights(index.weights if weights is None else weights)
        used = (w["bm25"], w["dense"])
    return Evaluation(
        mode, k, used, split, len(chosen), recall, mrr, ndcg,
        {str(q.get("id", i)): f for i, (q, f) in enumerate(zip(chosen, firsts, strict=True))},
        tuple(str(q.get("id", i)) for i, (q, g) in enumerate(zip(chosen, golds, strict=True))
              if not any(g)),
    )  # fmt: skip


@dataclass(frozen=True)
class Tuning:
    """The weights :func:`tune_weights` chose, the metric they reached on the dev split, and
    every grid point's scores ``(w_bm25, w_dense, recall, mrr, ndcg)``."""

    weights: tuple[float, float]
    metric: str
    score: float
    grid: tuple[tuple[float, float, float, float, float], ...]


#: w_bm25 from 0 to 1 in tenths, w_dense = 1 - w_bm25: the ends are each ranker alone
GRID = tuple((round(w / 10, 1), round(1 - w / 10, 1)) for w in range(11))


def _per_question(ranked: list[int], gold: list[set[int]], k: int, metric: str) -> float:
    labels = _labels(ranked, gold)
    everything = list(range(len(gold)))
    if metric == "recall":
        return recall_at_k(labels, everything, k)
    if metric == "mrr":
        return mrr_at_k(labels, everything, 10)
    return ndcg_at_k(labels, everything, 10)


def _sign_test(wins: int, losses: int) -> float:
    """One-sided sign test: the chance of at least ``wins`` of ``wins + losses`` fair coin
    flips (questions where two weightings differ) coming up heads."""
    n = wins + losses
    return sum(math.comb(n, i) for i in range(wins, n + 1)) / 2**n if n else 1.0


#: equal weights: where :func:`tune_weights` starts, and stays unless the dev split says
#: clearly otherwise
EVEN = (0.5, 0.5)


def tune_weights(
    index: HybridIndex,
    questions: Iterable[Mapping[str, Any]],
    *,
    split: str | None = "dev",
    k: int = 10,
    metric: str = "recall",
    grid: Sequence[tuple[float, float]] = GRID,
    depth: int = DEPTH,
    significance: float = 0.05,
) -> Tuning:
    """The fusion weights for ``metric`` ("recall", "mrr" or "ndcg") over the ``split``
    questions. Each ranker runs once per question; only fusion is redone per grid point.

    A dev split is small, and the grid point that wins on it is often a few questions' luck:
    measured on the Python docs, (0.9, 0.1) beat equal weights by 2 dev questions of 13, then
    lost to them held out and fell below dense alone. So equal weights are kept unless a
    grid point beats them clearly — a one-sided sign test over the questions where the two
    differ, at ``significance`` (5 wins and no loss pass at 0.05; 2 and 0 do not) — and the
    best such point (the higher score, then MRR, then the more even weights) is chosen.
    ``significance=1`` takes the plain best score. The grid must hold (0.5, 0.5)."""
    if metric not in ("recall", "mrr", "ndcg"):
        raise RetrievalError(f"metric={metric!r}: use recall, mrr or ndcg")
    if not 0 < significance <= 1:
        raise RetrievalError(f"significance={significance!r}: use a p-value in (0, 1]")
    points = [(float(wb), float(wd)) for wb, wd in grid]
    if EVEN not in points:
        raise RetrievalError(f"the grid must hold the equal weights {EVEN}")
    chosen = _select(questions, split)
    judge = _Judge(index)
    golds = [judge.gold_rows(q) for q in chosen]
    deep = max(depth, k, 10)
    rankings = [
        {n: [row for row, _ in r] for n, r in index.rank(q["question"], depth=deep,
                                                         filters=q.get("filters")).items()}
        for q in chosen
    ]  # fmt: skip
    table = []
    each: dict[tuple[float, float], list[float]] = {}
    for wb, wd in points:
        fused = [
            [row for row, _ in rrf(r, {"bm25": wb, "dense": wd}, limit=max(k, 10))]
            for r in rankings
        ]
        recall, mrr, ndcg, _ = _score(fused, golds, k)
        table.append((wb, wd, recall, mrr, ndcg))
        each[(wb, wd)] = [_per_question(f, g, k, metric) for f, g in zip(fused, golds, strict=True)]
    column = {"recall": 2, "mrr": 3, "ndcg": 4}[metric]
    even = each[EVEN]

    def clear(row: tuple[float, float, float, float, float]) -> bool:
        mine = each[(row[0], row[1])]
        wins = sum(a > b + 1e-12 for a, b in zip(mine, even, strict=True))
        losses = sum(b > a + 1e-12 for a, b in zip(mine, even, strict=True))
        return wins > losses and _sign_test(wins, losses) <= significance + 1e-12

    candidates = [row for row in table if (row[0], row[1]) == EVEN or clear(row)]
    best = max(
        candidates,
        key=lambda row: (round(row[column], 9), round(row[3], 9), -abs(row[0] - row[1])),
    )
    return Tuning((best[0], best[1]), metric, best[column], tuple(table))
