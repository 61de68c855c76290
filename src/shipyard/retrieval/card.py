"""Retrieval scores in a card: a table of recall@k, MRR@10 and nDCG@10 per mode and split,
the tuned weights with their grid, and a bar chart.

>>> for component in eval_card([bm25, dense, hybrid], tuning=tuning):   # doctest: +SKIP
...     current.card.append(component)
"""

from __future__ import annotations

from collections.abc import Iterable

from shipyard.cards import BarChart, Component, Markdown, Table
from shipyard.retrieval.evaluation import Evaluation, Tuning


def _label(e: Evaluation) -> str:
    weights = f" {e.weights[0]:g}/{e.weights[1]:g}" if e.weights else ""
    return f"{e.mode}{weights}" + (f" ({e.split})" if e.split else "")


def eval_card(
    evaluations: Iterable[Evaluation],
    *,
    title: str = "Retrieval",
    tuning: Tuning | None = None,
    note: str | None = None,
) -> list[Component]:
    """Card components showing ``evaluations`` (and ``tuning``), to append to a card."""
    rows = list(evaluations)
    out: list[Component] = [Markdown(f"## {title}" + (f"\n\n{note}" if note else ""))]
    if rows:
        k = rows[0].k
        table = [
            [
                e.mode,
                f"{e.weights[0]:g} / {e.weights[1]:g}" if e.weights else "",
                e.split or "all",
                e.n,
                f"{e.recall:.3f}",
                f"{e.mrr:.3f}",
                f"{e.ndcg:.3f}",
                len(e.unmatched),
            ]
            for e in rows
        ]
        headers = ["mode", "weights bm25 / dense", "split", "questions", f"recall@{k}",
                   "MRR@10", "nDCG@10", "gold in no chunk"]  # fmt: skip
        out.append(Table(table, headers=headers, title="Scores"))
        out.append(
            BarChart(
                x=[_label(e) for e in rows],
                y={
                    f"recall@{k}": [e.recall for e in rows],
                    "MRR@10": [e.mrr for e in rows],
                    "nDCG@10": [e.ndcg for e in rows],
                },  # fmt: skip
                title="Retrieval scores",
            )
        )
    if tuning is not None:
        out.append(
            Markdown(
                f"Fusion weights tuned on the dev split for {tuning.metric}: "
                f"**bm25 {tuning.weights[0]:g}, dense {tuning.weights[1]:g}** "
                f"({tuning.metric} {tuning.score:.3f}); weight 0 is the other ranker alone."
            )
        )
        grid = [[wb, wd, f"{r:.3f}", f"{m:.3f}", f"{n:.3f}"] for wb, wd, r, m, n in tuning.grid]
        out.append(Table(grid, headers=["w_bm25", "w_dense", "recall", "MRR@10", "nDCG@10"],
                         title="Dev split, per weight"))  # fmt: skip
    return out
