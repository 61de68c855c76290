"""Chunks measured in the model's own tokenizer: none over 256 tokens as the model sees it
(special tokens and the heading line included), none crossing a section."""

from __future__ import annotations

import os
import socket

import pytest

from shipyard.retrieval import Chunk, Document, Embedder, RetrievalError, chunk_documents


def _long_document() -> Document:
    sentences = " ".join(
        f"Sentence number {i} explains one more detail of the parser." for i in range(120)
    )
    run_on = " ".join(f"word{i}" for i in range(900))  # a paragraph with no sentence end
    giant = "x" * 5000  # one "word" far over the limit
    text = (
        f"# Parsing\n\nShort intro.\n\n## Details\n\n{sentences}\n\n{run_on}\n\n"
        f"## Blobs\n\n{giant}\n\n# Appendix\n\nThe end."
    )
    return Document("long.md", "md", "Parsing", text)


def test_no_chunk_is_over_the_models_256_tokens(
    embedder: Embedder, all_chunks: list[Chunk]
) -> None:
    long_chunks = chunk_documents([_long_document()], embedder.tokenizer, max_tokens=256)
    assert len(long_chunks) > 10
    lengths = [len(embedder.tokenizer(c.embed_text)["input_ids"]) for c in all_chunks + long_chunks]
    assert max(lengths) <= 256
    assert max(lengths) >= 240  # the budget is used, not wasted
    texts = " ".join(c.text for c in long_chunks)
    assert "Sentence number 119 explains" in texts and "word899" in texts and "The end." in texts


def test_a_chunk_never_crosses_a_section_and_carries_its_heading_path(
    embedder: Embedder,
) -> None:
    doc = _long_document()
    chunks = chunk_documents([doc], embedder.tokenizer, max_tokens=128, overlap=16)
    sections = {s.heading_path: s.text for s in doc.outline()}
    assert set(sections) == {
        ("Parsing",),
        ("Parsing", "Details"),
        ("Parsing", "Blobs"),
        ("Appendix",),
    }
    for chunk in chunks:
        assert chunk.heading_path in sections
        for piece in chunk.text.split("\n\n"):
            assert piece.replace(" ", "") in sections[chunk.heading_path].replace(" ", "")
        assert chunk.header.endswith(" > ".join(chunk.heading_path))
        assert chunk.embed_text == f"{chunk.header}\n{chunk.text}"
    appendix = [c for c in chunks if c.heading_path == ("Appendix",)]
    assert [c.embed_text for c in appendix] == ["Parsing > Appendix\nThe end."]


def test_overlap_repeats_the_previous_chunks_last_sentences(embedder: Embedder) -> None:
    text = "# T\n\n" + " ".join(f"Fact {i} is stated here once." for i in range(80))
    chunks = chunk_documents([Document("o.md", "md", "T", text)], embedder.tokenizer, 64, 16)
    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:], strict=False):
        previous = before.text.split(". ")
        shared = [s.rstrip(".") for s in after.text.split(". ") if s.rstrip(".") in before.text]
        assert shared and before.text.rstrip(".").endswith(". ".join(shared))
        overlap = len(
            embedder.tokenizer(". ".join(shared) + ".", add_special_tokens=False)["input_ids"]
        )
        assert overlap <= 16 and len(shared) < len(previous)


def test_chunk_ids_are_content_hashes(embedder: Embedder) -> None:
    doc = Document("a.md", "md", "A", "# A\n\nalpha\n\n# B\n\nbeta")
    first = chunk_documents([doc], embedder.tokenizer)
    again = chunk_documents([doc], embedder.tokenizer)
    moved = chunk_documents([Document("b.md", "md", "A", doc.text)], embedder.tokenizer)
    edited = chunk_documents(
        [Document("a.md", "md", "A", "# A\n\nalpha\n\n# B\n\nbeta!")], embedder.tokenizer
    )
    assert [c.id for c in first] == [c.id for c in again]
    assert not {c.id for c in first} & {c.id for c in moved}  # ids are unique per document
    assert first[0].id == edited[0].id and first[1].id != edited[1].id
    with pytest.raises(RetrievalError, match="overlap"):
        chunk_documents([doc], embedder.tokenizer, max_tokens=64, overlap=40)


def test_the_model_loads_with_no_network_and_offline_flags_set(embedder: Embedder) -> None:
    with pytest.raises(OSError):  # this namespace reaches nothing but 127.0.0.1
        socket.create_connection(("198.51.100.1", 443), timeout=2)
    embedder.encode(["warm"])
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert embedder.path.name == "model" and (embedder.path / "model.safetensors").is_file()


def test_concurrent_encodes_and_token_counts_share_one_embedder(embedder: Embedder) -> None:
    """encode() has a tokenizer of its own: a fast tokenizer keeps truncation as state, so
    counting tokens with .tokenizer (no truncation) in another thread could switch it off
    under a concurrent encode (reproduced with 300 mixed calls on 8 threads: 1,402 tokens
    reached the model's 512 positions)."""
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"service {i} deploys replicas behind a load balancer. " * 40 for i in range(40)]
    serial = embedder.encode(texts[1::2])

    def work(i: int) -> object:
        if i % 2:
            return embedder.encode([texts[i]])[0]
        return embedder.tokenizer(texts[i], add_special_tokens=False)

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(work, range(len(texts))))[1::2]
    for got, want in zip(found, serial, strict=True):
        assert abs(got - want).max() < 1e-5  # type: ignore[operator]
