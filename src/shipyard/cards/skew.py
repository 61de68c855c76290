"""A training/serving skew report (:class:`shipyard.features.skew.SkewReport`) as card
components: what alarmed first, then the row-level table with examples, prediction skew, and
the distributions (a chart of the training and serving shares for every feature whose
distribution moved past its threshold).

>>> current.card.extend(skew_components(report))            # doctest: +SKIP

It lives here, not beside the report: ``shipyard.features`` sits below ``shipyard.cards`` in
the layers (the flow engine imports features to record a model's feature set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.cards.charts import BarChart
from shipyard.cards.components import Component, Markdown, Table

if TYPE_CHECKING:
    from shipyard.features.skew import SkewReport

#: distribution charts shown at most (the flagged ones first)
MAX_CHARTS = 8


def _pct(value: float) -> str:
    return f"{value:.3%}"


__all__ = ["skew_components"]


def skew_components(report: SkewReport) -> list[Component]:
    """The report's card: ``current.card.extend(skew_components(report))``."""
    out: list[Component] = [Markdown("# Training/serving skew")]
    flagged = report.flagged
    if flagged:
        lines = [
            f"- **{f['feature']}** — {f['check']}: {f['value']:.4g} over {f['threshold']:.4g}"
            for f in flagged
        ]
        out.append(Markdown(f"**{len(flagged)} check(s) over threshold**\n\n" + "\n".join(lines)))
    else:
        out.append(Markdown("No feature and no check over its threshold."))
    if report.rows:
        out.append(Markdown("## Row-level: online vs recomputed offline from the logged facts"))
        out.append(
            Table(
                [
                    [
                        r.feature,
                        r.compared,
                        r.mismatched,
                        _pct(r.rate),
                        _pct(r.threshold),
                        "ALARM" if r.flagged else "ok",
                    ]
                    for r in report.rows
                ],
                headers=["feature", "requests", "mismatched", "rate", "threshold", ""],
            )
        )
        missing = report.rows[0].missing
        if missing:
            out.append(Markdown(f"{missing} logged request(s) have no offline recompute."))
        examples: list[list[Any]] = [
            [r.feature, e["request_id"], repr(e["online"]), repr(e["offline"])]
            for r in report.rows
            if r.mismatched
            for e in r.examples
        ]
        if examples:
            out.append(
                Table(
                    examples,
                    headers=["feature", "request", "online", "offline"],
                    title="examples of mismatches",
                )
            )
    p = report.prediction
    if p is not None:
        out.append(Markdown("## Prediction: logged vs the model replayed offline"))
        out.append(
            Table(
                [
                    [
                        p.compared,
                        p.mismatched,
                        _pct(p.rate),
                        _pct(p.threshold),
                        f"{p.max_abs_diff:.4g}",
                        f"{p.mean_abs_diff:.4g}",
                    ]
                ],
                headers=["requests", "mismatched", "rate", "threshold", "max |Δ|", "mean |Δ|"],
            )
        )
    if report.distributions:
        out.append(Markdown("## Distribution: training vs serving"))
        rows = []
        for d in report.distributions:
            measures = ", ".join(
                f"{k} {v:.4f} (≤ {d.thresholds[k]:g})" for k, v in d.measures.items()
            )
            judged = "ok" if d.enough else f"< {d.min_rows} rows: not judged"
            verdict = ", ".join(d.over) or judged
            rows.append([d.feature, d.kind, measures, verdict])
        out.append(Table(rows, headers=["feature", "kind", "measures", "over"]))
        shown = sorted(report.distributions, key=lambda d: not d.flagged)[:MAX_CHARTS]
        for d in shown:
            if not d.flagged:
                break
            per = "bin" if d.kind == "numeric" else "value"
            out.append(
                BarChart(
                    title=f"{d.feature}: share per {per}",
                    x=d.labels,
                    y={"training": d.training_share, "serving": d.serving_share},
                    ylabel="share",
                )
            )
    return out
