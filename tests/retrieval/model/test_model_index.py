"""The index over the session's 1,000 chunks: embeddings as sentence-transformers gives them,
the three search modes, filters down to 0.5% of the chunks, save/load memory-mapped, a
rebuild that re-embeds only what changed, the progress bar, evaluation and tuning."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from shipyard.retrieval import (
    Chunk,
    Embedder,
    HybridIndex,
    RetrievalError,
    build_index,
    chunk_documents,
    eval_card,
    evaluate,
    load_documents,
    tune_weights,
)

CORPUS = Path(__file__).parents[1] / "corpus"

QUESTIONS = [
    {"id": "q1", "split": "dev", "question": "how do I install without internet access",
     "gold": [{"doc": "guide/install.md", "quote": "point pip at the folder with --find-links"}]},
    {"id": "q2", "split": "dev", "question": "what happens to runs the scheduler missed while down",
     "gold": [{"doc": "library/scheduling.rst.txt", "quote": "it starts one catch-up run"}]},
    {"id": "q3", "split": "dev", "question": "how many copies of a service can run",
     "gold": [{"doc": "guide/deploy.html", "quote": "four copies behind the load balancer"}]},
    {"id": "q4", "split": "dev", "question": "which blobs are deleted by gc",
     "gold": [{"doc": "library/storage.rst"}]},
    {"id": "q5", "split": "test", "question": "how long before a network call times out",
     "gold": [{"doc": "guide/config.md", "quote": "times out after 30 seconds"}]},
    {"id": "q6", "split": "test", "question": "what should a client do after a 429",
     "gold": [{"doc": "library/errors.txt", "quote": "seconds in the Retry-After header"}]},
    {"id": "q7", "split": "test", "question": "undo a deployment and go back to the old version",
     "gold": [{"doc": "guide/deploy.html", "quote": "toolkit rollback app"}]},
    {"id": "q8", "split": "test", "question": "cached predictions expiry ttl",
     "gold": [{"doc": "library/caching.md", "quote": "Entries expire after the time to live"}]},
]  # fmt: skip


def test_embeddings_equal_sentence_transformers(embedder: Embedder) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [
        "how do I join two paths?",
        "Deploying services > Rolling back\nrun toolkit rollback",
        "a text far over the model's 256 tokens, truncated alike by both " * 30,
    ]
    reference = SentenceTransformer(str(embedder.path), device="cpu", local_files_only=True)
    expected = reference.encode(texts, normalize_embeddings=True)
    got = embedder.encode(texts)
    assert got.shape == (3, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # one text at a time (a query) takes SingleBert's forward, not the model's: the same
    # vectors to float noise, the truncated one included
    assert embedder._single is not None
    one = np.vstack([embedder.encode([t]) for t in texts])
    assert one.shape == (3, 384) and one.dtype == np.float32
    np.testing.assert_allclose(one, expected, atol=1e-5)
    np.testing.assert_allclose(one, got, atol=1e-6)


def test_a_query_runs_on_packed_weights_and_gets_the_same_vector(embedder: Embedder) -> None:
    import torch

    from shipyard.retrieval.embedder import SingleBert

    embedder.encode(["load the model"])
    single = embedder._single
    assert single is not None
    # this torch has oneDNN: every encoder layer's four products run on packed weights
    # (query, key and value stacked into one)
    assert torch.backends.mkldnn.is_available()
    assert len(single.packed) == 4 * single.layers
    assert single.packed["encoder.layer.0.attention.self"][1].shape == (3 * 384,)
    plain = SingleBert.of(embedder._model)
    assert plain is not None
    plain = SingleBert(plain.w, plain.layers, plain.heads, plain.eps, pack=False)
    assert plain.packed == {}
    texts = ["godfathr", "Star Wars: Episode V - The Empire Strikes Back", "a", "Jaws 2 1978"]
    texts.append("a text far over the model's 256 tokens, truncated alike by both " * 30)
    packed_vectors = np.vstack([embedder.encode([t]) for t in texts])
    with torch.inference_mode():
        plain_vectors = np.vstack(
            [
                plain.embed(embedder._encoding([t], truncation=True, max_length=256,
                                               return_tensors="pt")["input_ids"][0]).numpy()
                for t in texts
            ]
        )  # fmt: skip
    # float noise: the same float32 arithmetic summed in another order
    np.testing.assert_allclose(packed_vectors, plain_vectors, atol=1e-6)
    assert not np.array_equal(packed_vectors, plain_vectors)  # the packed path did run
    # and both equal the batched model's (the padded, masked path) to float noise
    np.testing.assert_allclose(packed_vectors, embedder.encode(texts), atol=1e-6)


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_each_mode_finds_the_passage(index: HybridIndex, mode: str) -> None:
    hits = index.search("scaling replicas of a deployed service", k=3, mode=mode)
    assert hits[0].doc == "guide/deploy.html"
    assert hits[0].heading_path == ("Deploying services", "Scaling replicas")
    assert hits[0].meta == {"year": 2025, "genre": "howto"} and hits[0].type == "html"
    assert hits == sorted(hits, key=lambda h: -h.score) and len(hits) == 3


def test_dense_search_through_hnsw_equals_an_exact_scan(index: HybridIndex) -> None:
    for query in ["a golden river", "storage of artifacts", "comedy from the fifties"]:
        got = [row for row, _ in index.ranked(query, 10, "dense")]
        q = index.query_vector(query)
        exact = list(np.argsort(-(np.asarray(index.vectors) @ q), kind="stable")[:10])
        assert len(set(got) & set(exact)) >= 9


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_a_filter_matching_half_a_percent_still_returns_k(index: HybridIndex, mode: str) -> None:
    westerns = index.allowed({"genre": "Western"})
    assert westerns is not None and int(westerns.sum()) == 5 == len(index) * 0.005
    for query in ["western film", "a drama about a river"]:
        if mode == "bm25" and query != "western film":
            continue  # bm25 returns only chunks sharing a word with the query
        hits = index.search(query, k=5, mode=mode, filters={"genre": "western"})
        assert len(hits) == 5 and {h.meta["genre"] for h in hits} == {"Western"}
        assert len(index.search(query, k=10, mode=mode, filters={"year": 1962})) == 5
    # a broad filter goes through the HNSW graph and is filtered after: still k, all matching
    broad = index.search("a drama about a river", k=20, mode=mode, filters={"year": {"gte": 1960}})
    assert len(broad) == 20 and all(h.meta["year"] >= 1960 for h in broad)
    prefix = index.search(
        "how to configure logging", k=3, mode=mode, filters={"path_prefix": "guide/"}
    )
    assert prefix and all(h.doc.startswith("guide/") for h in prefix)


def test_facets_count_what_the_filters_let_through(index: HybridIndex) -> None:
    assert index.facets("genre", {"year": 1962}) == {"Western": 5}
    everything = index.facets("genre")
    direct: dict[str, int] = {}
    for chunk in index.chunks:
        if "genre" in chunk.meta:
            direct[chunk.meta["genre"]] = direct.get(chunk.meta["genre"], 0) + 1
    assert everything == direct and everything["Western"] == 5
    by_year = index.facets("year", {"genre": "Western", "year": {"gte": 1900}})
    assert by_year == {1962: 5}


def test_keyword_text_chooses_what_bm25_indexes(
    embedder: Embedder, all_chunks: list[Chunk]
) -> None:
    films = all_chunks[-30:]
    titles = build_index(films, embedder, keyword_text=lambda c: c.title)
    assert not titles.search("film", k=3, mode="bm25")  # "film" is in the text, not a title
    title = films[7].title
    assert titles.search(title, k=1, mode="bm25")[0].title == title
    assert titles.search(title, k=1, mode="dense")[0].title == title


def test_save_and_load_memory_maps_and_searches_the_same(
    index: HybridIndex, embedder: Embedder, tmp_path: Path
) -> None:
    index.save(tmp_path / "idx")
    names = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert names == ["bm25", "chunks.jsonl", "dense.usearch", "index.json", "vectors.npy"]
    loaded = HybridIndex.load(tmp_path / "idx", embedder=embedder)
    assert isinstance(loaded.vectors, np.memmap) and loaded.corpus_hash == index.corpus_hash
    for query in ["offline installation with wheels", "western film"]:
        for mode in ("hybrid", "bm25", "dense"):
            assert loaded.search(query, k=5, mode=mode) == index.search(query, k=5, mode=mode)
    code = (
        "import sys; from shipyard.retrieval import HybridIndex; "
        f"index = HybridIndex.load({str(tmp_path / 'idx')!r}); "
        "hits = index.search('western film', k=3, mode='bm25'); "
        "print(len(hits), hits[0].meta['genre'], 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "Western", "False"]  # keyword search needs no torch
    (tmp_path / "idx" / "index.json").write_text('{"format": 99}')
    with pytest.raises(RetrievalError, match="index format 99"):
        HybridIndex.load(tmp_path / "idx")


def test_a_rebuild_embeds_only_the_chunks_that_changed(
    index: HybridIndex,
    embedder: Embedder,
    all_chunks: list[Chunk],
    corpus_chunks: list[Chunk],
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    config = docs / "guide" / "config.md"
    config.write_text(config.read_text().replace("30 seconds", "45 seconds"))
    (docs / "library" / "errors.txt").unlink()
    new_corpus = chunk_documents(load_documents(docs), embedder.tokenizer)
    chunks = new_corpus + all_chunks[len(corpus_chunks) :]
    changed = {c.embed_text for c in chunks} - {c.embed_text for c in all_chunks}
    assert len(changed) == 1
    before = embedder.embedded
    rebuilt = build_index(chunks, embedder, previous=index)
    assert rebuilt.stats is not None
    assert rebuilt.stats.embedded == 1 == embedder.embedded - before
    assert rebuilt.stats.reused == len(chunks) - 1
    assert rebuilt.corpus_hash != index.corpus_hash
    assert rebuilt.search("how long before a network call times out", k=1)[0].text.count(
        "45 seconds"
    )
    assert not rebuilt.search("Retry-After", k=5, mode="bm25")  # the deleted file is gone


def test_a_full_build_shows_a_progress_bar(embedder: Embedder, corpus_chunks: list[Chunk]) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    built = build_index(corpus_chunks[:6], embedder, progress=console)
    assert built.stats is not None and built.stats.embedded == 6
    shown = out.getvalue()
    assert "embedding chunks" in shown and "6/6" in shown


def test_evaluate_tune_and_card(index: HybridIndex) -> None:
    results = {
        m: evaluate(index, QUESTIONS, k=5, mode=m, split="test")
        for m in ("bm25", "dense", "hybrid")
    }
    for result in results.values():
        assert result.n == 4 and result.unmatched == ()
        assert set(result.ranks) == {"q5", "q6", "q7", "q8"}
        hits = [r for r in result.ranks.values() if r is not None and r <= 5]
        assert result.recall == pytest.approx(len(hits) / 4)
        assert result.mrr == pytest.approx(sum(1 / r for r in hits) / 4)
    assert results["hybrid"].recall >= 0.75
    plain = tune_weights(index, QUESTIONS, k=5, significance=1)
    assert len(plain.grid) == 11 and plain.weights in [(g[0], g[1]) for g in plain.grid]
    ends = {(g[0], g[1]): g[2] for g in plain.grid}
    assert plain.score == max(ends.values())  # the plain best: never below either part
    tuning = tune_weights(index, QUESTIONS, k=5)
    # 4 dev questions cannot show a clear gain (a sign test needs 5 wins): equal weights stay
    assert sum(q["split"] == "dev" for q in QUESTIONS) == 4 and tuning.weights == (0.5, 0.5)
    assert tuning.score == ends[(0.5, 0.5)]
    with pytest.raises(RetrievalError, match="significance=0"):
        tune_weights(index, QUESTIONS, significance=0)
    html = "".join(c.render() for c in eval_card(results.values(), tuning=tuning))
    assert f"{results['hybrid'].recall:.3f}" in html and "MRR@10" in html and "nDCG@10" in html
    assert "tuned on the dev split" in html
    with pytest.raises(RetrievalError, match="no questions in split 'nope'"):
        evaluate(index, QUESTIONS, split="nope")


def test_bad_search_arguments_are_named(index: HybridIndex) -> None:
    with pytest.raises(RetrievalError, match="k=0 must be a positive integer"):
        index.search("x", k=0)
    with pytest.raises(RetrievalError, match="mode='sparse': use one of hybrid, bm25, dense"):
        index.search("x", mode="sparse")
    with pytest.raises(RetrievalError, match="the query must be a string, got int"):
        index.search(42)  # type: ignore[arg-type]
    with pytest.raises(RetrievalError, match=r"weights=\(w_bm25, w_dense\)"):
        index.search("x", weights=(1.0, 2.0, 3.0))
