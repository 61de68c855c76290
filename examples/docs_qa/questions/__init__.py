"""The docs-qa question sets: loading and checking them, and matching gold quotes.

>>> questions = load_questions(HAND_WRITTEN)                      # doctest: +SKIP
>>> [q.id for q in questions if q.split == "test"][:2]            # doctest: +SKIP

Two sets, never mixed in a report:

- ``python_docs.yaml``: questions written by hand for the project over Python 3.11's
  documentation (Debian's ``python3.11-doc``), ``kind: hand-written``;
- ``known_items.jsonl``: known-item questions generated from section headings and the first
  sentence under them (:mod:`questions.known_items`), ``kind: generated``.

A question is ``{"id", "question", "split": "dev" | "test", "gold": [{"doc", "quote"}],
"answer"}``; ``doc`` is relative to the corpus root the index was built from (the RST sources,
``/usr/share/doc/python3.11/html/_sources``, by default) and ``quote`` is a verbatim span of
it, matched with whitespace and case normalised (:func:`normalise`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
HAND_WRITTEN = HERE / "python_docs.yaml"
KNOWN_ITEMS = HERE / "known_items.jsonl"
#: where Debian's python3.11-doc puts the reStructuredText sources the paths are relative to
DEFAULT_CORPUS = Path("/usr/share/doc/python3.11/html/_sources")
SPLITS = ("dev", "test")

__all__ = [
    "DEFAULT_CORPUS",
    "HAND_WRITTEN",
    "KNOWN_ITEMS",
    "SPLITS",
    "Gold",
    "Question",
    "QuestionSetError",
    "QuestionSet",
    "contains_quote",
    "has_markup",
    "load_questions",
    "normalise",
]


class QuestionSetError(ValueError):
    """A question file that cannot be used; the message names the file, the question and
    the field."""


@dataclass(frozen=True)
class Gold:
    doc: str
    quote: str


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    split: str
    gold: tuple[Gold, ...]
    answer: str

    def to_dict(self) -> dict[str, Any]:
        """The shape ``shipyard.retrieval.evaluate`` takes."""
        return {
            "id": self.id,
            "question": self.question,
            "split": self.split,
            "gold": [{"doc": g.doc, "quote": g.quote} for g in self.gold],
            "answer": self.answer,
        }


@dataclass(frozen=True)
class QuestionSet:
    kind: str  # "hand-written" or "generated"
    path: Path
    questions: tuple[Question, ...]

    def split(self, name: str) -> list[Question]:
        if name not in (*SPLITS, "all"):
            raise QuestionSetError(f"unknown split {name!r}: use dev, test or all")
        return [q for q in self.questions if name == "all" or q.split == name]


def normalise(text: str) -> str:
    """Case-folded, whitespace collapsed: how quotes are matched against documents."""
    return " ".join(text.casefold().split())


def contains_quote(text: str, quote: str) -> bool:
    return normalise(quote) in normalise(text)


def load_questions(path: str | Path) -> QuestionSet:
    """Read a question file (``.yaml`` with a ``questions:`` list, or ``.jsonl``), checking
    every field; ids must be unique."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise QuestionSetError(f"cannot read the question file {str(path)!r}: {exc}") from None
    kind = "generated"
    if path.suffix == ".jsonl":
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise QuestionSetError(f"{path}:{lineno}: not JSON: {exc}") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise QuestionSetError(f"{path}: not YAML: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
            raise QuestionSetError(f"{path}: expected a mapping with a 'questions:' list")
        rows = data["questions"]
        kind = str(data.get("kind", "hand-written"))
    questions = tuple(_question(row, f"{path} question {i + 1}") for i, row in enumerate(rows))
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise QuestionSetError(f"{path}: question id {q.id!r} is used twice")
        seen.add(q.id)
    return QuestionSet(kind, path, questions)


def _text(row: dict[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise QuestionSetError(f"{where}: {name!r} must be a non-empty string, got {value!r}")
    return value


def _question(row: Any, where: str) -> Question:
    if not isinstance(row, dict):
        raise QuestionSetError(f"{where}: expected a mapping, got {row!r}")
    where = f"{where} ({row.get('id')!r})"
    split = _text(row, "split", where)
    if split not in SPLITS:
        raise QuestionSetError(f"{where}: split must be 'dev' or 'test', got {split!r}")
    gold = row.get("gold")
    if not isinstance(gold, list) or not gold:
        raise QuestionSetError(f"{where}: 'gold' must be a non-empty list of {{doc, quote}}")
    passages = []
    for g in gold:
        if not isinstance(g, dict):
            raise QuestionSetError(f"{where}: a gold passage must be {{doc, quote}}, got {g!r}")
        doc, quote = _text(g, "doc", where), _text(g, "quote", where)
        if doc.startswith("/") or ".." in Path(doc).parts:
            raise QuestionSetError(f"{where}: gold doc {doc!r} must be relative to the corpus")
        passages.append(Gold(doc, quote))
    return Question(
        id=_text(row, "id", where),
        question=_text(row, "question", where),
        split=split,
        gold=tuple(passages),
        answer=_text(row, "answer", where),
    )


_INLINE_MARKUP = re.compile(r"`|\*|:[a-z]+:")


def has_markup(quote: str) -> bool:
    """Whether a quote holds RST inline markup (backquotes, emphasis, roles): a quote must
    not, so it matches the raw source, the rendered HTML and a chunk of either alike."""
    return bool(_INLINE_MARKUP.search(quote))
