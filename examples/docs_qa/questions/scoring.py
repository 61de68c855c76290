"""Scoring answers: token F1 against the gold answer, citation precision against the gold
quotes, the median latency, and cost per 1,000 questions.

>>> token_f1("The // operator.", "the // operator (floor division)")    # doctest: +SKIP

- **Answer token F1** is SQuAD's: both texts lower-cased, punctuation and the articles
  a/an/the removed, whitespace collapsed, then F1 of the bag of tokens. Citation marks
  (``[1]``) are dropped from the answer first. Note that punctuation-only tokens vanish, so
  ``//`` scores nothing; the gold answers say it in words too.
- **Citation precision** of one answer: the share of its citations that hold a gold
  passage — from a gold ``doc``, and containing or overlapping its ``quote``: they share a
  run of ``min(8, len(quote))`` consecutive words, case-folded and without punctuation (a
  chunk boundary may cut a quote). Averaged over the answers that cite anything; an option
  whose answers never cite has no citation precision (None), not 0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

from . import Gold

__all__ = [
    "OVERLAP_WORDS",
    "citation_correct",
    "citation_precision",
    "cost_per_1k",
    "mean_or_none",
    "normalize_answer",
    "p50",
    "strip_citations",
    "token_f1",
]

#: consecutive words a citation must share with a gold quote (or the whole quote if shorter)
OVERLAP_WORDS = 8

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_CITATION_MARK = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def strip_citations(text: str) -> str:
    return _CITATION_MARK.sub("", text)


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD's token F1 of ``prediction`` against ``gold`` (citation marks ignored)."""
    predicted = normalize_answer(strip_citations(prediction)).split()
    wanted = normalize_answer(gold).split()
    if not predicted or not wanted:
        return float(predicted == wanted)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    """Case-folded words, punctuation dropped (a chunk may end mid-sentence: "dog," is "dog")."""
    return _WORD.findall(text.casefold())


def citation_correct(doc: str, text: str, gold: Iterable[Gold]) -> bool:
    """Whether a cited passage (``doc``, ``text``) holds one of the gold passages."""
    words = _words(text)
    for g in gold:
        if g.doc != doc:
            continue
        quote = _words(g.quote)
        n = min(OVERLAP_WORDS, len(quote))
        runs = {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
        if any(tuple(quote[i : i + n]) in runs for i in range(len(quote) - n + 1)):
            return True
    return False


def citation_precision(citations: Sequence[tuple[str, str]], gold: Iterable[Gold]) -> float | None:
    """The share of ``citations`` (``(doc, text)`` pairs) that hold a gold passage; None
    for an answer without citations."""
    if not citations:
        return None
    gold = list(gold)
    return sum(citation_correct(doc, text, gold) for doc, text in citations) / len(citations)


def mean_or_none(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def p50(values: Sequence[float]) -> float | None:
    """The median (the mean of the middle two for an even count); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def cost_per_1k(costs: Sequence[float]) -> float:
    """What 1,000 questions cost at the mean cost of these (0 for none)."""
    return 1000 * sum(costs) / len(costs) if costs else 0.0
