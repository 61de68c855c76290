"""Hybrid search keeps its promise on held-out questions: recall@10 of the RRF fusion, with
weights tuned on the dev split, is at least that of the better of its two parts, BM25 alone
and dense alone (issue 18; bench/retrieval.py measures the same at full size).

The corpus is a slice of Python's documentation (Debian's python3.11-doc, ``tutorial/``); the
questions are the hand-written ones of examples/docs_qa/questions/python_docs.yaml whose gold
documents lie in it. Like everything under tests/retrieval/model it runs inside the
loopback-only network namespace test_retrieval_offline.py makes, with the session's embedder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from shipyard.retrieval import (
    Embedder,
    build_index,
    chunk_documents,
    evaluate,
    load_documents,
    tune_weights,
)

ROOT = Path(__file__).resolve().parents[3]
DOCS = Path("/usr/share/doc/python3.11/html/_sources")
QUESTIONS = ROOT / "examples" / "docs_qa" / "questions" / "python_docs.yaml"
SLICE = "tutorial"
K = 10


def slice_questions() -> list[dict[str, Any]]:
    """The hand-written questions whose every gold document is in the slice."""
    assert QUESTIONS.is_file(), f"{QUESTIONS} is missing (the docs-qa question set)"
    data = yaml.safe_load(QUESTIONS.read_text())
    return [
        {k: q[k] for k in ("id", "question", "split", "gold")}
        for q in data["questions"]
        if all(g["doc"].startswith(f"{SLICE}/") for g in q["gold"])
    ]


def test_hybrid_recall_at_10_holds_against_either_part_on_held_out_questions(
    embedder: Embedder, tmp_path: Path
) -> None:
    assert (DOCS / SLICE).is_dir(), f"{DOCS / SLICE} is missing: install python3.11-doc"
    questions = slice_questions()
    test = [q for q in questions if q["split"] == "test"]
    dev = [q for q in questions if q["split"] == "dev"]
    assert len(test) >= 5 and len(dev) >= 3, (
        f"{QUESTIONS.name} has {len(test)} held-out and {len(dev)} dev questions with their "
        f"gold in {SLICE}/: too few to compare"
    )
    shutil.copytree(DOCS / SLICE, tmp_path / SLICE)  # paths relative to the docs root
    chunks = chunk_documents(load_documents(tmp_path), embedder.tokenizer, max_tokens=256)
    index = build_index(chunks, embedder)

    tuned = tune_weights(index, questions, split="dev", k=K)
    hybrid = evaluate(index, questions, k=K, mode="hybrid", weights=tuned.weights, split="test")
    bm25 = evaluate(index, questions, k=K, mode="bm25", split="test")
    dense = evaluate(index, questions, k=K, mode="dense", split="test")

    assert hybrid.n == len(test)
    # every gold quote is in some chunk: a miss is the ranking's, not the chunker's
    assert hybrid.unmatched == ()
    best = max(bm25.recall, dense.recall)
    assert hybrid.recall >= best, (
        f"hybrid recall@{K} {hybrid.recall:.3f} (weights {tuned.weights}, tuned on "
        f"{len(dev)} dev questions) is below the better part's {best:.3f} (BM25 "
        f"{bm25.recall:.3f}, dense {dense.recall:.3f}) on {len(test)} held-out questions over "
        f"{len(chunks)} chunks"
    )
