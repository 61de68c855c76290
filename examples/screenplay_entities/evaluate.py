"""Entity-level evaluation on the gold set: strict and partial precision, recall and F1 per
label (nervaluate), the trained pipeline beside the rules-and-gazetteer baseline, label
confusions and examples of misses.

    result = compare({"model": Extractor.load(path), "baseline": Extractor(None)}, gold.load())
    result["model"]["labels"]["CHARACTER"]["strict"]["f1"]

    python examples/screenplay_entities/evaluate.py --model out/model-best

*strict*: same label, same start and end. *partial*: same label, the spans overlap (a
partial match counts half, as in SemEval 2013 task 9.1, which nervaluate implements).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from rules import LABELS  # noqa: E402

MODES = ("strict", "partial")
NONE = "(none)"


def _scores(r: Any) -> dict[str, float]:
    return {
        "precision": round(float(r.precision), 4),
        "recall": round(float(r.recall), 4),
        "f1": round(float(r.f1), 4),
        "correct": int(r.correct),
        "partial": int(r.partial),
        "incorrect": int(r.incorrect),
        "missed": int(r.missed),
        "spurious": int(r.spurious),
        "possible": int(r.possible),
        "actual": int(r.actual),
    }


def score(gold: Sequence[Any], predicted: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Scores of ``predicted`` (per gold scene, entity dicts with label/start/end/text)."""
    from nervaluate import Evaluator

    def docs(spans: Sequence[Sequence[tuple[str, int, int]]]) -> list[list[dict[str, Any]]]:
        # nervaluate's ends are inclusive
        return [[{"label": lb, "start": a, "end": b - 1} for lb, a, b in doc] for doc in spans]

    true = [[(s.label, s.start, s.end) for s in g.spans] for g in gold]
    pred = [[(e["label"], e["start"], e["end"]) for e in p] for p in predicted]
    # nervaluate cannot infer its loader from an empty first document
    true_docs = docs(true)
    pred_docs = docs(pred)
    res = Evaluator(true_docs, pred_docs, tags=list(LABELS), loader="dict").evaluate()
    labels: dict[str, dict[str, dict[str, float]]] = {}
    for label in LABELS:
        per = res["entities"].get(label)
        labels[label] = {m: _scores(per[m]) if per else _empty() for m in MODES}
    overall = {m: _scores(res["overall"][m]) for m in MODES}

    confusion: dict[str, Counter[str]] = {lb: Counter() for lb in (*LABELS, NONE)}
    misses: list[dict[str, Any]] = []
    for g, t, p in zip(gold, true, pred, strict=True):
        for lb, a, b in t:
            over = [q for q in p if q[1] < b and a < q[2]]
            exact = [q for q in over if (q[1], q[2]) == (a, b)]
            got = (exact or over or [(NONE, 0, 0)])[0]
            confusion[lb][got[0]] += 1
            if (got[0], got[1], got[2]) != (lb, a, b):
                misses.append(
                    {
                        "scene": g.name,
                        "label": lb,
                        "text": g.text[a:b],
                        "got": got[0]
                        if got[0] == NONE
                        else f"{got[0]} {g.text[got[1] : got[2]]!r}",
                    }
                )
        for lb, a, b in p:
            if not any(x[1] < b and a < x[2] for x in t):
                confusion[NONE][lb] += 1
                misses.append({"scene": g.name, "label": NONE, "text": g.text[a:b], "got": lb})
    return {
        "labels": labels,
        "overall": overall,
        "confusion": {k: dict(v) for k, v in confusion.items()},
        "misses": misses,
    }


def _empty() -> dict[str, float]:
    return {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "correct": 0, "partial": 0, "incorrect": 0,
        "missed": 0, "spurious": 0, "possible": 0, "actual": 0,
    }  # fmt: skip


def compare(extractors: Mapping[str, Any], gold: Sequence[Any]) -> dict[str, Any]:
    """Each extractor's scores on ``gold``, by the extractor's name in the mapping."""
    texts = [g.text for g in gold]
    out: dict[str, Any] = {}
    for name, ex in extractors.items():
        results = ex.extract_many(texts)
        for text, r in zip(texts, results, strict=True):
            for e in r["entities"]:  # the output contract, checked here too
                if text[e["start"] : e["end"]] != e["text"] or e["label"] not in LABELS:
                    raise AssertionError(f"{name} broke the output contract: {e!r}")
        out[name] = score(gold, [r["entities"] for r in results])
    return out


def table(result: Mapping[str, Any]) -> list[list[Any]]:
    """Rows: label, then strict and partial F1 for each extractor."""
    names = list(result)
    rows = []
    for label in (*LABELS, "overall"):
        row: list[Any] = [label]
        for name in names:
            per = result[name]["overall"] if label == "overall" else result[name]["labels"][label]
            row += [f"{per['strict']['f1']:.3f}", f"{per['partial']['f1']:.3f}"]
        n = result[names[0]]
        possible = (n["overall"] if label == "overall" else n["labels"][label])["strict"]
        row.append(possible["possible"])
        rows.append(row)
    return rows


def headers(result: Mapping[str, Any]) -> list[str]:
    return ["label"] + [f"{n} {m}" for n in result for m in MODES] + ["gold"]


def card(result: Mapping[str, Any], note: str = "", misses: int = 25, title: str = "") -> list[Any]:
    """Card components: F1 per label and mode for each extractor, the model's confusions and
    a sample of its misses."""
    from shipyard.cards import Markdown, Table

    first = next(iter(result))
    conf = result[first]["confusion"]
    cols = [*LABELS, NONE]
    components = [
        Markdown(
            f"## Screenplay entities on the {title + ' ' if title else ''}gold set"
            + (f"\n\n{note}" if note else "")
        ),
        Table(
            table(result),
            headers=headers(result),
            title=f"Entity-level F1 (nervaluate){', ' + title if title else ''}",
        ),
        Table(
            [[g] + [conf.get(g, {}).get(c, 0) for c in cols] for g in cols],
            headers=["gold \\ predicted", *cols],
            title=f"Confusions of {first}{', ' + title if title else ''} (rows: gold; "
            "(none): missed or spurious)",
        ),
    ]
    rows = [[m["scene"], m["label"], m["text"], m["got"]] for m in result[first]["misses"]]
    if rows:
        components.append(
            Table(
                rows[:misses],
                headers=["scene", "gold", "text", "predicted"],
                title=f"Misses of {first}{', ' + title if title else ''} ({len(rows)}; the "
                f"first {min(misses, len(rows))})",
            )
        )
    return components


def main() -> None:
    import gold
    from pipeline import Extractor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a trained pipeline's directory (default: baseline only)")
    parser.add_argument("--misses", action="store_true", help="list the model's misses")
    parser.add_argument(
        "--heldout", action="store_true", help="score on gold/heldout/ instead of gold/"
    )
    args = parser.parse_args()
    extractors: dict[str, Any] = {}
    if args.model:
        extractors["model"] = Extractor.load(args.model)
    extractors["baseline"] = Extractor(None)
    result = compare(extractors, gold.load(gold.HELDOUT_DIR if args.heldout else gold.GOLD_DIR))
    print(" | ".join(headers(result)))
    for row in table(result):
        print(" | ".join(str(c) for c in row))
    if args.misses:
        for m in result[next(iter(result))]["misses"]:
            print(f"{m['scene']:28} {m['label']:10} {m['text']!r:40} -> {m['got']}")


if __name__ == "__main__":
    main()
