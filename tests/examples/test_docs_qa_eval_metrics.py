"""examples/docs_qa: the answer metrics against values computed by hand — SQuAD token F1,
citation precision (containment and overlap of a gold quote, wrong document), the median,
cost per 1,000 questions — and the budget choice with its ties."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "docs_qa"


@pytest.fixture(scope="module")
def mods() -> Iterator[tuple[Any, Any]]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("questions"), importlib.import_module("questions.scoring")
    finally:
        for name in [n for n in sys.modules if n == "questions" or n.startswith("questions.")]:
            del sys.modules[name]
        sys.path.remove(str(EXAMPLE))


def test_token_f1_is_squads(mods: tuple[Any, Any]) -> None:
    _, scoring = mods
    # "cat sat on mat" vs "cat sat": 2 common of 4 predicted, 2 gold -> P 1/2, R 1 -> 2/3
    assert scoring.token_f1("The cat sat on the mat.", "a cat sat") == pytest.approx(2 / 3)
    # bags, not sets: {yes: 2, no: 1} & {yes: 1, no: 2} = 2 common -> P = R = 2/3
    assert scoring.token_f1("yes yes no", "yes no no") == pytest.approx(2 / 3)
    assert scoring.token_f1("Paris [1][2]", "paris") == 1.0  # citation marks do not count
    assert scoring.token_f1("Berlin", "Paris") == 0.0
    assert scoring.token_f1("", "Paris") == 0.0
    assert scoring.token_f1("the", "a") == 1.0  # both empty once normalised
    assert scoring.normalize_answer("  The  Mersenne-Twister, an RNG!") == "mersennetwister rng"


def test_citation_precision_containment_overlap_and_wrong_doc(mods: tuple[Any, Any]) -> None:
    qs, scoring = mods
    quote = "The quick brown fox jumps over the lazy dog today"  # 10 words: runs of 8
    gold = [qs.Gold("a.rst.txt", quote)]
    citations = [
        ("a.rst.txt", f"Intro. {quote.upper()}   and more."),  # contains it (case, spaces)
        ("a.rst.txt", "quick brown fox jumps over the lazy dog, cut by the chunker"),  # 8 words
        ("a.rst.txt", "brown fox jumps over the lazy dog"),  # 7 words: too little
        ("b.rst.txt", quote),  # the right words in another document
    ]
    assert scoring.citation_precision(citations, gold) == pytest.approx(2 / 4)
    assert scoring.citation_precision([], gold) is None
    short = [qs.Gold("r.rst.txt", "Mersenne Twister")]  # shorter than 8 words: all of it
    assert (
        scoring.citation_precision([("r.rst.txt", "uses the mersenne\n  twister as")], short) == 1.0
    )
    assert scoring.citation_precision([("r.rst.txt", "uses the Mersenne prime")], short) == 0.0


def test_median_mean_and_cost_per_1000(mods: tuple[Any, Any]) -> None:
    _, scoring = mods
    assert scoring.p50([3.0, 1.0, 2.0]) == 2.0
    assert scoring.p50([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert scoring.p50([]) is None
    assert scoring.mean_or_none([1.0, None, 0.0]) == 0.5
    assert scoring.mean_or_none([None]) is None
    assert scoring.cost_per_1k([0.001, 0.003]) == pytest.approx(2.0)
    assert scoring.cost_per_1k([]) == 0.0


def _summary(option: str, f1: float, cost: float | None, p50: float = 1.0) -> dict[str, Any]:
    return {
        "option": option,
        "questions": 10,
        "answer_f1": f1,
        "cost_per_1k_usd": cost,
        "p50_latency_s": p50,
    }


def test_choose_takes_the_best_f1_within_budget_and_breaks_ties_by_cost() -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        evaluate = importlib.import_module("evaluate")
        options = [
            _summary("extractive", 0.31, 0.0, 0.05),
            _summary("local-chat", 0.42, 0.0, 4.0),
            _summary("big", 0.7001, 2.0),
            _summary("mid", 0.6996, 1.0),  # 0.700 on the card too: a tie, and cheaper
            _summary("unpriced", 0.99, None),
        ]
        choice, why = evaluate.choose(options, 5.0)
        assert choice == "mid"
        assert "ties on F1 with big" in why and "cheaper" in why and "unpriced" in why
        assert evaluate.choose(options, 1.5)[0] == "mid"
        choice, why = evaluate.choose(options, 0.5)
        assert choice == "local-chat" and "ties" not in why
        # equal F1 and cost: the faster p50 wins
        tie = [_summary("slow", 0.5, 0.0, 4.0), _summary("fast", 0.5, 0.0, 0.1)]
        assert evaluate.choose(tie, 0.0)[0] == "fast"
        assert evaluate.choose([_summary("x", 0.5, 3.0)], 1.0) == (
            None,
            "No option fits a budget of $1 per 1,000 questions (x cost more or unknown).",
        )
    finally:
        for name in [
            n
            for n in sys.modules
            if n in ("evaluate", "agent", "questions") or n.startswith("questions.")
        ]:
            del sys.modules[name]
        sys.path.remove(str(EXAMPLE))
