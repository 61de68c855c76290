"""One measured step of bench/catalogue.py, in a process of its own.

    python bench/catalogue/worker.py TASK SPEC.json

The driver starts every task inside a loopback-only network namespace with
``HF_HUB_OFFLINE=1`` (a hidden download fails at once) and reads the last ``BENCH_JSON``
line of stdout. Tasks:

- ``shipyard``: the catalogue (or its seeded sample) and the seeded query sets of
  examples/catalogue_search; the index built by ``search.build`` (every title embedded,
  timed); fusion tuned on the dev split and every mode scored on test
  (``queries.evaluate``), the facet queries checked against a direct count; each held-out
  query's top ``k`` film ids; the in-process latency of ``Engine.search`` (query embedding
  included). Writes the films and queries for the Haystack task;
- ``haystack``: the same films as Haystack documents (content: the title; the genre flags,
  decade and rating as metadata) with the same model's vectors, in an
  ``InMemoryDocumentStore``; the retrieval issue's hybrid pipeline
  (``SentenceTransformersTextEmbedder`` → ``InMemoryEmbeddingRetriever`` and
  ``InMemoryBM25Retriever`` → ``DocumentJoiner(join_mode="reciprocal_rank_fusion")``), with
  the facet queries' filters as Haystack filters; each held-out query's top ``k`` from the
  pipeline and from each retriever alone, and the latency of each pipeline run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "catalogue_search"
sys.path.insert(0, str(EXAMPLE))
sys.path.append(str(REPO / "bench"))  # for model_steps (after the example: bench/catalogue.py)

from model_steps import model_dir, timed, worker_main  # noqa: E402


def held_out(queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [q for q in queries if q["split"] == "test"]


def subsample(queries: list[dict[str, Any]], per_kind: int, seed: int) -> list[dict[str, Any]]:
    """``per_kind`` held-out queries of each kind (0: all), drawn with ``seed``, in the
    held-out order: the queries both tools answer when Haystack's run is cut down."""
    test = held_out(queries)
    if not per_kind:
        return test
    import random

    rng = random.Random(seed)
    keep: set[str] = set()
    for kind in sorted({q["kind"] for q in test}):
        ids = [q["id"] for q in test if q["kind"] == kind]
        keep.update(rng.sample(ids, min(per_kind, len(ids))))
    return [q for q in test if q["id"] in keep]


# --------------------------------------------------------------------------- shipyard


def shipyard(spec: dict[str, Any]) -> dict[str, Any]:
    import filmdata
    import queries as qmod
    import search

    from shipyard.retrieval import Embedder

    work = Path(spec["workdir"])
    t0 = time.perf_counter()
    films = filmdata.load_catalogue()
    total = len(films)
    if spec["sample"]:
        films = filmdata.sample(films, spec["sample"], spec["seed"])
    queries = qmod.make_queries(films, seed=spec["seed"])
    (work / "films.json").write_text(json.dumps(films))
    (work / "queries.json").write_text(json.dumps(queries))
    t1 = time.perf_counter()
    embedder = Embedder()
    embedder.encode(["warm"])  # the model is loaded before the build clock
    t2 = time.perf_counter()
    previous = None
    if spec.get("reuse"):  # a built catalogue index whose title vectors are reused
        from shipyard.retrieval import HybridIndex

        previous = HybridIndex.load(Path(spec["reuse"]) / "index")
    search.build(films, embedder, work / "index", previous=previous, progress=True)
    t3 = time.perf_counter()
    engine = search.Engine.load(work / "index", embedder=embedder)
    t4 = time.perf_counter()
    result = qmod.evaluate(engine, films, queries)
    t5 = time.perf_counter()
    weights = result["weights"]
    engine.weights = dict(weights)
    modes = {"hybrid": weights, **{m: w for m, w in qmod.MODES.items() if "+" not in m}}
    ranked: dict[str, dict[str, list[str]]] = {m: {} for m in modes}
    test = held_out(queries)
    for q in test:
        filters = search.core_filters(q["filters"])
        rankings, _ = engine.rankings(q["query"], filters)
        for mode, w in modes.items():
            if "votes" in rankings:  # a query with no words: the browse is every mode's answer
                fused = engine.fuse(rankings, spec["k"])
            else:
                fused = engine.fuse(rankings, spec["k"], w)
            ranked[mode][q["id"]] = [engine.index.chunks[r].id for r, _ in fused]
    # the service's search: the tuned weights (a ranker they weigh 0 is not run), and
    # every ranker run (the query embedded) beside
    cpu: list[float] = []
    latency = timed(
        lambda q: engine.search(q["query"], spec["k"], search.core_filters(q["filters"])),
        test,
        spec["latency_queries"],
        cpu,
    )
    every = {name: 1.0 for name in search.RANKERS}
    cpu_all: list[float] = []
    latency_all = timed(
        lambda q: engine.search(
            q["query"], spec["k"], search.core_filters(q["filters"]), weights=every
        ),
        test,
        spec["latency_queries"],
        cpu_all,
    )
    return {
        "films": len(films),
        "total": total,
        "queries": len(queries),
        "prepare_s": t1 - t0,
        "model_s": t2 - t1,
        "build_s": t3 - t2,
        "load_s": t4 - t3,
        "evaluate_s": t5 - t4,
        "weights": weights,
        "facets": result["facets"],
        "ranked": ranked,
        "latency_s": latency,
        "latency_cpu_s": cpu,
        "latency_all_s": latency_all,
        "latency_all_cpu_s": cpu_all,
    }


# --------------------------------------------------------------------------- Haystack


def haystack_filters(filters: dict[str, Any]) -> dict[str, Any] | None:
    """The service's filters (genre, decade, min_rating) as Haystack's filter syntax."""
    conditions = []
    if filters.get("genre"):
        conditions.append({"field": f"meta.g_{filters['genre']}", "operator": "==", "value": True})
    if filters.get("decade") is not None:
        conditions.append({"field": "meta.decade", "operator": "==", "value": filters["decade"]})
    if filters.get("min_rating") is not None:
        conditions.append(
            {"field": "meta.rating", "operator": ">=", "value": float(filters["min_rating"])}
        )
    return {"operator": "AND", "conditions": conditions} if conditions else None


def haystack(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )

    work = Path(spec["workdir"])
    films = json.loads((work / "films.json").read_text())
    queries = json.loads((work / "queries.json").read_text())
    k, depth = spec["k"], spec["depth"]
    t0 = time.perf_counter()
    docs = [
        Document(
            id=f["id"],
            content=f["title"],
            meta={
                "year": f["year"],
                "decade": f["decade"],
                "rating": f["rating"],
                **{f"g_{g}": True for g in f["genres"]},
            },
        )
        for f in films
    ]
    embed_s = None
    if spec["shared_vectors"]:  # the same model's vectors, from shipyard's build
        index = work / "index" / "index"
        ids = [json.loads(line)["id"] for line in (index / "chunks.jsonl").open()]
        vectors = np.load(index / "vectors.npy")
        row = {cid: i for i, cid in enumerate(ids)}
        docs = [replace(doc, embedding=vectors[row[doc.id]].tolist()) for doc in docs]
    else:
        embedder = SentenceTransformersDocumentEmbedder(
            model=model_dir(),
            normalize_embeddings=True,
            progress_bar=False,
            local_files_only=True,
            batch_size=32,
        )
        embedder.warm_up()
        t = time.perf_counter()
        docs = embedder.run(documents=docs)["documents"]
        embed_s = time.perf_counter() - t
    store = InMemoryDocumentStore()
    store.write_documents(docs)
    build_s = time.perf_counter() - t0

    text_embedder = SentenceTransformersTextEmbedder(
        model=model_dir(), normalize_embeddings=True, progress_bar=False, local_files_only=True
    )
    pipe = Pipeline()
    pipe.add_component("text_embedder", text_embedder)
    pipe.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=depth))
    pipe.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=depth))
    pipe.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=k))
    pipe.connect("text_embedder.embedding", "dense.query_embedding")
    pipe.connect("bm25", "joiner")
    pipe.connect("dense", "joiner")
    # a query with no words (a facet query): BM25 refuses an empty query, so the dense
    # retriever with the filters alone answers it
    browse = Pipeline()
    browse.add_component(
        "text_embedder",
        SentenceTransformersTextEmbedder(
            model=model_dir(), normalize_embeddings=True, progress_bar=False, local_files_only=True
        ),
    )
    browse.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=k))
    browse.connect("text_embedder.embedding", "dense.query_embedding")
    pipe.warm_up()
    browse.warm_up()

    def run(q: dict[str, Any]) -> dict[str, list[str]]:
        filters = haystack_filters(q["filters"])
        if not q["query"].strip():
            out = browse.run({"text_embedder": {"text": q["query"]}, "dense": {"filters": filters}})
            ids = [d.id for d in out["dense"]["documents"]]
            return {"hybrid": ids, "dense": ids}  # no keyword answer: not scored
        out = pipe.run(
            {
                "text_embedder": {"text": q["query"]},
                "bm25": {"query": q["query"], "filters": filters},
                "dense": {"filters": filters},
            },
            include_outputs_from={"bm25", "dense"},
        )
        return {
            "hybrid": [d.id for d in out["joiner"]["documents"]],
            "keyword": [d.id for d in out["bm25"]["documents"][:k]],
            "dense": [d.id for d in out["dense"]["documents"][:k]],
        }

    part, parts = spec.get("shard", (0, 1))
    test = subsample(queries, spec.get("per_kind", 0), spec["seed"])[part::parts]
    ranked: dict[str, dict[str, list[str]]] = {"hybrid": {}, "keyword": {}, "dense": {}}
    latency = []
    for n, q in enumerate(test, start=1):
        t = time.perf_counter()
        got = run(q)
        latency.append(time.perf_counter() - t)
        for mode, ids in got.items():
            ranked[mode][q["id"]] = ids
        if n % 20 == 0:
            print(f"  haystack: {n} of {len(test)} held-out queries", flush=True)
    return {
        "build_s": build_s,
        "embed_s": embed_s,
        "ranked": ranked,
        "latency_s": latency,
        "cpu_s": time.process_time(),
    }


TASKS = {"shipyard": shipyard, "haystack": haystack}


if __name__ == "__main__":
    sys.exit(worker_main(TASKS))
