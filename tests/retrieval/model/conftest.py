"""One embedder and one index per session: the fixture corpus (tests/retrieval/corpus) and
a generated catalogue of short film records, 1,000 chunks in all, embedded once."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from shipyard.retrieval import (
    Chunk,
    Document,
    Embedder,
    HybridIndex,
    build_index,
    chunk_documents,
    load_documents,
)

CORPUS = Path(__file__).parents[1] / "corpus"
TOTAL = 1000
GENRES = ["Drama", "Comedy", "Thriller", "Romance", "Horror", "Animation", "Documentary"]
WORDS = (
    "silent river golden night broken summer iron glass last city garden storm paper winter "
    "falcon harbour echo velvet"
).split()


def film_records(count: int, westerns: int) -> list[Document]:
    """``count`` one-line film records; exactly ``westerns`` of them are Westerns (1962)."""
    rng = random.Random(18)
    docs = []
    for i in range(count):
        title = f"The {rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {i}"
        if (
            i % (count // westerns) == 0
            and sum(d.meta["genre"] == "Western" for d in docs) < westerns
        ):
            genre, year = "Western", 1962
        else:
            genre, year = rng.choice(GENRES), rng.randrange(1950, 2020)
            year = 1963 if year == 1962 else year
        text = f"{title} is a {genre.lower()} film from {year}, rated {rng.randrange(10, 95) / 10}."
        docs.append(
            Document(f"films/{i:04d}.txt", "txt", title, text, {"genre": genre, "year": year})
        )
    return docs


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def corpus_chunks(embedder: Embedder) -> list[Chunk]:
    return chunk_documents(load_documents(CORPUS), embedder.tokenizer, max_tokens=256)


@pytest.fixture(scope="session")
def all_chunks(embedder: Embedder, corpus_chunks: list[Chunk]) -> list[Chunk]:
    films = film_records(TOTAL - len(corpus_chunks), westerns=5)
    return corpus_chunks + chunk_documents(films, embedder.tokenizer)


@pytest.fixture(scope="session")
def index(embedder: Embedder, all_chunks: list[Chunk]) -> HybridIndex:
    assert len(all_chunks) == TOTAL
    return build_index(all_chunks, embedder, settings={"max_tokens": 256, "overlap": 32})
