"""examples/docs_qa/questions: the hand-written question set against the real corpus (Debian's
python3.11-doc): schema, unique ids, at least 60 questions, the fixed dev/test split, every
gold quote found verbatim (whitespace- and case-normalised, markup-free) in its document, the
documentation's parts covered; the generated known-item set is separate and reproducible;
a broken file is refused naming the question and the field."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.servers import missing_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "docs_qa"
#: the reStructuredText sources of Debian's python3.11-doc (scripts/services.sh installs them)
CORPUS = Path(
    os.environ.get("SHIPYARD_TEST_PYTHON_DOCS", "/usr/share/doc/python3.11/html/_sources")
)


def _corpus() -> Path:
    if not (CORPUS / "library" / "functools.rst.txt").is_file():
        missing_server("Python's documentation", f"no python3.11-doc sources at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="module")
def qs() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("questions")
    finally:
        for name in [n for n in sys.modules if n == "questions" or n.startswith("questions.")]:
            del sys.modules[name]
        sys.path.remove(str(EXAMPLE))


@pytest.fixture(scope="module")
def corpus() -> Path:
    return _corpus()


def test_hand_written_set_has_60_questions_unique_ids_and_a_fixed_40_60_split(qs: Any) -> None:
    loaded = qs.load_questions(qs.HAND_WRITTEN)
    assert loaded.kind == "hand-written"
    questions = loaded.questions
    assert len(questions) >= 60
    ids = [q.id for q in questions]
    assert len(set(ids)) == len(ids)
    dev, test = loaded.split("dev"), loaded.split("test")
    assert len(dev) + len(test) == len(questions)
    assert 0.35 <= len(dev) / len(questions) <= 0.45, (len(dev), len(test))
    for q in questions:
        assert q.question.strip().endswith("?"), q.id
        assert q.answer.strip() and q.gold


def test_every_gold_quote_is_in_its_corpus_document(qs: Any, corpus: Path) -> None:
    loaded = qs.load_questions(qs.HAND_WRITTEN)
    texts: dict[str, str] = {}
    missing = []
    for q in loaded.questions:
        for gold in q.gold:
            assert not qs.has_markup(gold.quote), f"{q.id}: markup in {gold.quote!r}"
            assert len(gold.quote.split()) >= 3, f"{q.id}: quote too short to be distinctive"
            path = corpus / gold.doc
            assert path.is_file(), f"{q.id}: no document {gold.doc!r} in the corpus"
            text = texts.setdefault(gold.doc, path.read_text(encoding="utf-8"))
            if not qs.contains_quote(text, gold.quote):
                missing.append((q.id, gold.doc, gold.quote))
    assert not missing


def test_the_questions_cover_library_tutorial_reference_howtos_and_faqs(qs: Any) -> None:
    loaded = qs.load_questions(qs.HAND_WRITTEN)
    parts = {g.doc.split("/")[0] for q in loaded.questions for g in q.gold}
    assert {"library", "tutorial", "reference", "howto", "faq"} <= parts
    # the question is not the heading: it rarely shares a long run of words with the quote
    shared = [
        q.id for q in loaded.questions if qs.normalise(q.gold[0].quote) in qs.normalise(q.question)
    ]
    assert not shared


def test_known_items_are_separate_generated_and_reproducible(qs: Any, corpus: Path) -> None:
    known = qs.load_questions(qs.KNOWN_ITEMS)
    hand = qs.load_questions(qs.HAND_WRITTEN)
    assert known.kind == "generated" and hand.kind == "hand-written"
    assert len(known.questions) == 200
    assert not {q.id for q in known.questions} & {q.id for q in hand.questions}
    assert all(q.id.startswith("ki-") for q in known.questions)
    for q in known.questions[:50]:
        (gold,) = q.gold
        assert qs.contains_quote((corpus / gold.doc).read_text(encoding="utf-8"), gold.quote), q.id
        assert not gold.doc.startswith("whatsnew/")
    generator = importlib.import_module("questions.known_items")
    again = generator.sample(generator.generate(corpus), 200)
    assert [json.dumps(item) for item in again] == qs.KNOWN_ITEMS.read_text().splitlines()


def test_first_sentence_of_a_section_and_headings(qs: Any) -> None:
    generator = importlib.import_module("questions.known_items")
    text = (
        "=====\n Title\n=====\n\nIntro.\n\nUsage\n-----\n\n"
        "This module does one small thing, and does it well. And more.\n\n"
        "Roles\n-----\n\nUse :func:`x` for it, always and everywhere.\n"
    )
    sections = list(generator.sections(text))
    assert [h for h, _ in sections] == ["Title", "Usage", "Roles"]
    assert (
        generator.first_sentence(sections[1][1])
        == "This module does one small thing, and does it well."
    )
    assert generator.first_sentence(sections[2][1]) is None  # markup: not quotable as-is


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {
                "id": "a",
                "question": "q?",
                "split": "train",
                "gold": [{"doc": "x", "quote": "y"}],
                "answer": "z",
            },
            "split must be 'dev' or 'test'",
        ),
        (
            {"id": "a", "question": "q?", "split": "dev", "gold": [], "answer": "z"},
            "'gold' must be a non-empty list",
        ),
        (
            {
                "id": "a",
                "question": "q?",
                "split": "dev",
                "gold": [{"doc": "../x", "quote": "y"}],
                "answer": "z",
            },
            "must be relative",
        ),
        (
            {
                "id": "a",
                "question": "",
                "split": "dev",
                "gold": [{"doc": "x", "quote": "y"}],
                "answer": "z",
            },
            "'question' must be a non-empty string",
        ),
    ],
)
def test_a_bad_question_is_refused_naming_it(
    qs: Any, tmp_path: Path, row: dict[str, Any], message: str
) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(qs.QuestionSetError, match=message) as caught:
        qs.load_questions(path)
    assert "'a'" in str(caught.value) and str(path) in str(caught.value)


def test_duplicate_ids_are_refused(qs: Any, tmp_path: Path) -> None:
    row = {
        "id": "same",
        "question": "q?",
        "split": "dev",
        "gold": [{"doc": "x", "quote": "y"}],
        "answer": "z",
    }
    path = tmp_path / "q.jsonl"
    path.write_text((json.dumps(row) + "\n") * 2)
    with pytest.raises(qs.QuestionSetError, match="'same' is used twice"):
        qs.load_questions(path)
