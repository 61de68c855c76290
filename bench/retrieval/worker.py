"""One measured step of bench/retrieval.py, in a process of its own.

    python bench/retrieval/worker.py TASK SPEC.json

The driver starts every task inside a loopback-only network namespace with
``HF_HUB_OFFLINE=1`` (a hidden download fails at once) and reads the last ``BENCH_JSON``
line of stdout. Tasks:

- ``prepare``: load the documents and chunk them with shipyard's core (the tokenizer of the
  embedding model); pickles the chunks for every other task;
- ``build-shipyard`` / ``build-haystack``: a full index over those chunks (model load, embed,
  BM25, dense), then saved to disk; phase times;
- ``query-shipyard`` / ``query-haystack``: load the saved index, answer every question in
  each mode (top ``k`` chunk ids), time each query in-process (query embedding included);
- ``rebuild-shipyard``: one file of the corpus changed: load, chunk and build again with
  ``previous=`` the saved index, then save; phase times and chunks re-embedded.

Haystack gets the same chunks (id, text, title) and embeds with the same local model through
its SentenceTransformers embedders (the ``sentence-transformers-haystack`` integration, from
bench/.venvs/haystack-st on ``PYTHONPATH``), normalised as shipyard's.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, for model_steps

from model_steps import model_dir, timed, worker_main  # noqa: E402

MODES = ("hybrid", "bm25", "dense")


def load_chunks(spec: dict[str, Any]) -> list[Any]:
    with open(spec["chunks"], "rb") as f:
        return list(pickle.load(f))


def embed_text(chunk: Any) -> str:
    """What shipyard embeds and keyword-indexes for a chunk (its header line, then its text):
    the same string is Haystack's document content."""
    return str(chunk.embed_text)


# --------------------------------------------------------------------------- shipyard


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    from shipyard.retrieval import Embedder, chunk_documents, load_documents

    t0 = time.perf_counter()
    docs = load_documents(Path(spec["docs"]), exclude=spec["exclude"])
    t1 = time.perf_counter()
    embedder = Embedder()
    chunks = chunk_documents(docs, embedder.tokenizer, max_tokens=spec["max_tokens"])
    t2 = time.perf_counter()
    with open(spec["chunks"], "wb") as f:
        pickle.dump(list(chunks), f)
    return {
        "documents": len(docs),
        "chunks": len(chunks),
        "load_s": t1 - t0,
        "chunk_s": t2 - t1,
        "texts": {c.id: [c.doc, c.text, embed_text(c)] for c in chunks},
    }


class TimedEmbedder:
    """The embedder, adding up the seconds the build spends in ``encode``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def encode(self, texts: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.inner.encode(texts, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def sample(chunks: list[Any], n: int) -> list[Any]:
    """``n`` chunks spread evenly over the corpus (the same ones for both tools)."""
    if n <= 0 or n >= len(chunks):
        return list(chunks)
    step = len(chunks) / n
    return [chunks[int(i * step)] for i in range(n)]


def build_shipyard(spec: dict[str, Any]) -> dict[str, Any]:
    chunks = load_chunks(spec)
    t0 = time.perf_counter()
    from shipyard.retrieval import Embedder, build_index

    t1 = time.perf_counter()
    embedder = Embedder()
    embedder.encode(["warm"])  # the model is loaded (lazily or not) before the build clock
    t2 = time.perf_counter()
    timed_embedder = TimedEmbedder(embedder)
    index = build_index(chunks, timed_embedder, progress=False)
    assert index.stats is None or index.stats.embedded == len(chunks)
    t3 = time.perf_counter()
    index.save(Path(spec["index"]))
    t4 = time.perf_counter()
    out = {
        "import_s": t1 - t0,
        "model_s": t2 - t1,
        "build_s": t3 - t2,
        "embed_s": timed_embedder.seconds,
        "index_s": t3 - t2 - timed_embedder.seconds,
        "save_s": t4 - t3,
        "bytes": dir_size(Path(spec["index"])),
    }
    if spec["embed_sample"]:
        texts = [embed_text(c) for c in sample(chunks, spec["embed_sample"])]
        t = time.perf_counter()
        embedder.encode(texts)
        out.update(sample_s=time.perf_counter() - t, sample_n=len(texts))
    return out


def rebuild_shipyard(spec: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    from shipyard.retrieval import (
        Embedder,
        HybridIndex,
        build_index,
        chunk_documents,
        load_documents,
    )

    t1 = time.perf_counter()
    embedder = Embedder()
    embedder.encode(["warm"])
    t2 = time.perf_counter()
    previous = HybridIndex.load(Path(spec["previous"]))
    docs = load_documents(Path(spec["docs"]), exclude=spec["exclude"])
    chunks = chunk_documents(docs, embedder.tokenizer, max_tokens=spec["max_tokens"])
    t3 = time.perf_counter()
    index = build_index(chunks, embedder, previous=previous, progress=False)
    t4 = time.perf_counter()
    index.save(Path(spec["index"]))
    t5 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "model_s": t2 - t1,
        "load_chunk_s": t3 - t2,
        "build_s": t4 - t3,
        "save_s": t5 - t4,
        "chunks": len(chunks),
        "embedded": index.stats.embedded if index.stats else None,
    }


def query_shipyard(spec: dict[str, Any]) -> dict[str, Any]:
    from shipyard.retrieval import HybridIndex, tune_weights

    t0 = time.perf_counter()
    index = HybridIndex.load(Path(spec["index"]))
    load_s = time.perf_counter() - t0
    questions = spec["questions"]
    k = spec["k"]
    weights = None
    if spec["tune"]:  # the dev split of the first (hand-written) set
        weights = tuned_weights(tune_weights(index, spec["tune"], split="dev", k=k))
    ranked: dict[str, dict[str, list[str]]] = {}
    for mode in MODES:
        w = weights if mode == "hybrid" else None
        ranked[mode] = {
            q["id"]: [h.chunk_id for h in index.search(q["question"], k=k, mode=mode, weights=w)]
            for q in questions
        }
    ranked["hybrid-equal"] = {
        q["id"]: [h.chunk_id for h in index.search(q["question"], k=k, mode="hybrid")]
        for q in questions
    }

    def search(text: str) -> None:
        index.search(text, k=k, mode="hybrid", weights=weights)

    return {
        "load_s": load_s,
        "weights": None if weights is None else list(weights),
        "ranked": ranked,
        "latency_s": timed(search, spec["timed"], spec["latency_queries"]),
    }


def tuned_weights(tuned: Any) -> tuple[float, float]:
    """``tune_weights``'s answer as (w_bm25, w_dense), whatever shape it comes in."""
    if isinstance(tuned, dict):
        tuned = tuned.get("weights", tuned)
    if hasattr(tuned, "weights"):
        tuned = tuned.weights
    w = tuple(float(x) for x in tuned)
    if len(w) != 2:
        raise ValueError(f"tune_weights returned {tuned!r}; expected two weights")
    return w[0], w[1]


# --------------------------------------------------------------------------- Haystack


def haystack_documents(chunks: list[Any]) -> list[Any]:
    from haystack import Document

    return [
        Document(
            id=c.id,
            content=embed_text(c),
            meta={"doc": c.doc, "title": c.title},
        )
        for c in chunks
    ]


def build_haystack(spec: dict[str, Any]) -> dict[str, Any]:
    """Haystack's indexing pipeline: embed the documents, write them to the store, save it.
    With ``shared_vectors`` the documents carry shipyard's vectors instead (same model, same
    normalisation) and only a sample is embedded, timed on its own."""
    chunks = load_chunks(spec)
    t0 = time.perf_counter()
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
    )

    t1 = time.perf_counter()
    embedder = SentenceTransformersDocumentEmbedder(
        model=model_dir(),
        normalize_embeddings=True,
        progress_bar=False,
        local_files_only=True,
        batch_size=spec["batch_size"],
    )
    embedder.warm_up()
    embedder.run(documents=haystack_documents(chunks[:1]))
    t2 = time.perf_counter()
    docs = haystack_documents(chunks)
    if spec["shared_vectors"]:
        docs = with_shipyard_vectors(docs, Path(spec["shipyard_index"]))
        t_embedded = time.perf_counter()
        embed_s = None
    else:
        docs = embedder.run(documents=docs)["documents"]
        t_embedded = time.perf_counter()
        embed_s = t_embedded - t2
    store = InMemoryDocumentStore()
    store.write_documents(docs)
    t3 = time.perf_counter()
    store.save_to_disk(spec["index"])
    t4 = time.perf_counter()
    out = {
        "import_s": t1 - t0,
        "model_s": t2 - t1,
        "build_s": t3 - t2 if embed_s is not None else None,
        "embed_s": embed_s,
        "index_s": t3 - t_embedded,
        "save_s": t4 - t3,
        "bytes": os.path.getsize(spec["index"]),
    }
    if spec["embed_sample"]:
        some = haystack_documents(sample(chunks, spec["embed_sample"]))
        t = time.perf_counter()
        embedder.run(documents=some)
        out.update(sample_s=time.perf_counter() - t, sample_n=len(some))
    return out


def with_shipyard_vectors(docs: list[Any], index_dir: Path) -> list[Any]:
    """``docs`` carrying the vectors shipyard's build saved for the same chunk ids."""
    import numpy as np

    ids = [json.loads(line)["id"] for line in (index_dir / "chunks.jsonl").open()]
    vectors = np.load(index_dir / "vectors.npy")
    row = {cid: i for i, cid in enumerate(ids)}
    for doc in docs:
        doc.embedding = vectors[row[doc.id]].tolist()
    return docs


def query_haystack(spec: dict[str, Any]) -> dict[str, Any]:
    from haystack import Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersTextEmbedder,
    )

    t0 = time.perf_counter()
    store = InMemoryDocumentStore.load_from_disk(spec["index"])
    load_s = time.perf_counter() - t0
    k, depth = spec["k"], spec["depth"]
    text_embedder = SentenceTransformersTextEmbedder(
        model=model_dir(), normalize_embeddings=True, progress_bar=False, local_files_only=True
    )
    bm25 = InMemoryBM25Retriever(document_store=store, top_k=depth)
    dense = InMemoryEmbeddingRetriever(document_store=store, top_k=depth)
    pipe = Pipeline()
    pipe.add_component("text_embedder", text_embedder)
    pipe.add_component("bm25", bm25)
    pipe.add_component("dense", dense)
    pipe.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=k))
    pipe.connect("text_embedder.embedding", "dense.query_embedding")
    pipe.connect("bm25", "joiner")
    pipe.connect("dense", "joiner")
    pipe.warm_up()
    questions = spec["questions"]

    def hybrid(text: str) -> list[str]:
        out = pipe.run({"text_embedder": {"text": text}, "bm25": {"query": text}})
        return [d.id for d in out["joiner"]["documents"]]

    ranked: dict[str, dict[str, list[str]]] = {"hybrid": {}, "bm25": {}, "dense": {}}
    weighted = None
    if spec.get("weights"):  # the joiner with shipyard's tuned weights, for a like-for-like row
        weighted = DocumentJoiner(
            join_mode="reciprocal_rank_fusion", weights=list(spec["weights"]), top_k=k
        )
        ranked["hybrid-weighted"] = {}
    for q in questions:
        text = q["question"]
        ranked["hybrid"][q["id"]] = hybrid(text)
        deep_bm25 = bm25.run(query=text, top_k=depth)["documents"]
        vector = text_embedder.run(text=text)["embedding"]
        deep_dense = dense.run(query_embedding=vector, top_k=depth)["documents"]
        ranked["bm25"][q["id"]] = [d.id for d in deep_bm25[:k]]
        ranked["dense"][q["id"]] = [d.id for d in deep_dense[:k]]
        if weighted is not None:
            docs = weighted.run(documents=[deep_bm25, deep_dense])["documents"]
            ranked["hybrid-weighted"][q["id"]] = [d.id for d in docs]
    return {
        "load_s": load_s,
        "ranked": ranked,
        "latency_s": timed(hybrid, spec["timed"], spec["latency_queries"]),
    }


# --------------------------------------------------------------------------- shared


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


TASKS = {
    "prepare": prepare,
    "build-shipyard": build_shipyard,
    "build-haystack": build_haystack,
    "query-shipyard": query_shipyard,
    "query-haystack": query_haystack,
    "rebuild-shipyard": rebuild_shipyard,
}


if __name__ == "__main__":
    sys.exit(worker_main(TASKS))
