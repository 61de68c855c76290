"""The hybrid index: BM25 (bm25s) and dense vectors (usearch HNSW, inner product on unit
vectors) over the same chunks, searched alone or fused by reciprocal rank.

Saved as plain, uncompressed files in one folder, memory-mapped on load (vectors, the HNSW
graph and BM25's sparse matrix are never copied into the process)::

    index.json       format, model fingerprint, counts, corpus hash, settings, weights
    chunks.jsonl     one chunk a line (id, doc, title, heading_path, text, meta, type, key)
    vectors.npy      float32 (n, 384), unit length
    dense.usearch    the HNSW graph (usearch), opened as a view
    bm25/            bm25s' arrays and vocabulary

>>> index = build_index(chunks, Embedder(), previous=old, progress=True)   # doctest: +SKIP
>>> index.save("build/index"); index = HybridIndex.load("build/index")    # doctest: +SKIP
>>> index.search("join two paths", k=5, filters={"path_prefix": "library/"})  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.retrieval.chunks import Chunk
from shipyard.retrieval.errors import IndexFormatError, RetrievalError
from shipyard.retrieval.filters import MetaColumns
from shipyard.retrieval.fusion import RRF_C, rrf
from shipyard.retrieval.keywords import words

FORMAT = 1
MODES = ("hybrid", "bm25", "dense")
RANKERS = ("bm25", "dense")
#: candidates each ranker gives fusion (at least k): deep enough that a near miss in one
#: ranker can still be lifted by the other
DEPTH = 100
#: a filter letting through at most this share of the chunks is searched exactly (a scan of
#: the allowed rows); above it, the HNSW graph is asked for more and the rest filtered out
EXACT_SHARE = 0.3

Ranking = list[tuple[int, float]]  # (row, score), best first


@dataclass(frozen=True)
class Hit:
    """A search result: the chunk's fields and its ``score`` (the fused RRF score in hybrid
    mode, BM25's in ``bm25``, the cosine similarity in ``dense``)."""

    chunk_id: str
    doc: str
    title: str
    heading_path: tuple[str, ...]
    text: str
    score: float
    meta: dict[str, Any] = field(default_factory=dict)
    type: str = ""


@dataclass(frozen=True)
class BuildStats:
    """What a build did: ``embedded`` chunks went through the model, ``reused`` took their
    vectors from the previous index."""

    chunks: int
    embedded: int
    reused: int
    seconds: float


def _weights(weights: Any) -> dict[str, float]:
    if isinstance(weights, Mapping):
        unknown = set(weights) - set(RANKERS)
        if unknown:
            raise RetrievalError(f"unknown rankers in weights: {sorted(unknown)}")
        return {name: float(weights.get(name, 1.0)) for name in RANKERS}
    values = tuple(weights)
    if len(values) != 2:
        raise RetrievalError(f"weights=(w_bm25, w_dense), got {weights!r}")
    return {"bm25": float(values[0]), "dense": float(values[1])}


def _top(scores: np.ndarray, rows: np.ndarray, depth: int) -> Ranking:
    """The ``depth`` best (row, score), by score then row."""
    if len(rows) == 0 or depth <= 0:
        return []
    if len(rows) > depth:
        part = np.argpartition(-scores, depth - 1)[:depth]
        scores, rows = scores[part], rows[part]
    order = np.lexsort((rows, -scores))
    return [(int(rows[i]), float(scores[i])) for i in order]


class HybridIndex:
    """Chunks searchable by keywords (BM25), by meaning (dense) or both (RRF). Made by
    :func:`build_index` or :meth:`load`; the embedder (for query vectors) is created on the
    first dense query unless one is given."""

    def __init__(
        self,
        chunks: list[Chunk],
        vectors: np.ndarray,
        bm25: Any,
        ann: Any,
        info: dict[str, Any],
        *,
        keys: list[str],
        embedder: Any = None,
    ) -> None:
        self.chunks = chunks
        self.vectors = vectors
        self.bm25 = bm25
        self.ann = ann
        self.info = info
        self.keys = keys
        self.embedder = embedder
        self.stats: BuildStats | None = None
        self.columns = MetaColumns(
            [c.doc for c in chunks], [c.type for c in chunks], [c.meta for c in chunks]
        )
        self._rows_by_doc: dict[str, list[int]] | None = None
        self._checked: Any = None  # the embedder whose fingerprint matched

    def __len__(self) -> int:
        return len(self.chunks)

    def __repr__(self) -> str:
        return f"<HybridIndex {len(self)} chunks, corpus {self.corpus_hash[:12]}>"

    @property
    def corpus_hash(self) -> str:
        """Content address of what is indexed (chunk ids, in order, and the settings)."""
        return str(self.info["corpus_hash"])

    @property
    def weights(self) -> tuple[float, float]:
        """The default fusion weights (w_bm25, w_dense): tuned ones once set."""
        w = self.info.get("weights", [1.0, 1.0])
        return (float(w[0]), float(w[1]))

    @weights.setter
    def weights(self, value: Sequence[float]) -> None:
        w = _weights(value)
        self.info["weights"] = [w["bm25"], w["dense"]]

    def rows_by_doc(self) -> dict[str, list[int]]:
        """Document path -> its chunks' rows, in order."""
        if self._rows_by_doc is None:
            found: dict[str, list[int]] = {}
            for row, chunk in enumerate(self.chunks):
                found.setdefault(chunk.doc, []).append(row)
            self._rows_by_doc = found
        return self._rows_by_doc

    # -- search -----------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 5,
        mode: str = "hybrid",
        filters: Mapping[str, Any] | None = None,
        weights: Sequence[float] | Mapping[str, float] | None = None,
        depth: int | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``. With ``filters`` (see
        :mod:`shipyard.retrieval.filters`), the rankers search only the chunks that match,
        so ``k`` results come back whenever ``k`` chunks match (in ``bm25`` mode: whenever
        ``k`` matching chunks share a word with the query)."""
        return [
            self.hit(row, score)
            for row, score in self.ranked(query, k, mode, filters, weights, depth)
        ]

    def ranked(
        self,
        query: str,
        k: int = 5,
        mode: str = "hybrid",
        filters: Mapping[str, Any] | None = None,
        weights: Sequence[float] | Mapping[str, float] | None = None,
        depth: int | None = None,
    ) -> Ranking:
        """:meth:`search`'s results as (row, score) pairs."""
        if mode not in MODES:
            raise RetrievalError(f"mode={mode!r}: use one of {', '.join(MODES)}")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise RetrievalError(f"k={k!r} must be a positive integer")
        if not isinstance(query, str):
            raise RetrievalError(f"the query must be a string, got {type(query).__name__}")
        depth = max(k, depth or DEPTH)
        rankers = RANKERS if mode == "hybrid" else (mode,)
        rankings = self.rank(query, rankers, depth=depth, filters=filters)
        if mode != "hybrid":
            return rankings[mode][:k]
        w = _weights(self.weights if weights is None else weights)
        fused = rrf({n: [row for row, _ in r] for n, r in rankings.items()}, w, limit=k)
        return fused

    def rank(
        self,
        query: str,
        rankers: Sequence[str] = RANKERS,
        *,
        depth: int = DEPTH,
        filters: Mapping[str, Any] | None = None,
    ) -> dict[str, Ranking]:
        """Each ranker's ``depth`` best (row, score) for ``query`` among the chunks the
        filters let through: the inputs of fusion, for callers that fuse in rankers of their
        own (``rrf({**index.rank(q), "fuzzy": mine})``)."""
        mask = self.columns.mask(filters)
        out: dict[str, Ranking] = {}
        for name in rankers:
            if name == "bm25":
                out[name] = self._bm25(query, depth, mask)
            elif name == "dense":
                out[name] = self._dense(query, depth, mask)
            else:
                raise RetrievalError(f"unknown ranker {name!r}: use one of {', '.join(RANKERS)}")
        return out

    def allowed(self, filters: Mapping[str, Any] | None) -> np.ndarray | None:
        """The rows ``filters`` let through (a boolean mask), or None for no filter."""
        return self.columns.mask(filters)

    def facets(self, key: str, filters: Mapping[str, Any] | None = None) -> dict[Any, int]:
        """Counts of each value of metadata field ``key`` over the chunks ``filters`` let
        through (all chunks without filters), most frequent first."""
        return self.columns.counts(key, self.columns.mask(filters))

    def hit(self, row: int, score: float) -> Hit:
        """Row ``row`` as a :class:`Hit` with ``score``."""
        c = self.chunks[row]
        return Hit(c.id, c.doc, c.title, c.heading_path, c.text, score, c.meta, c.type)

    def _bm25(self, query: str, depth: int, mask: np.ndarray | None) -> Ranking:
        vocab = self.bm25.vocab_dict
        ids = [vocab[w] for w in words(query) if w in vocab]
        if not ids:
            return []
        scores = np.asarray(self.bm25.get_scores_from_ids(ids), dtype=np.float32)
        keep = scores > 0
        if mask is not None:
            keep &= mask
        rows = np.flatnonzero(keep)
        return _top(scores[rows], rows, depth)

    def query_vector(self, query: str) -> np.ndarray:
        """``query`` embedded by the index's model (loaded on first use)."""
        if self.embedder is None:
            from shipyard.retrieval.embedder import Embedder

            self.embedder = Embedder()
        if self._checked is not self.embedder:
            fingerprint = self.embedder.fingerprint
            if fingerprint != self.info["fingerprint"]:
                raise RetrievalError(
                    f"the index was embedded by {self.info['fingerprint']}, the query would be "
                    f"by {fingerprint}: load the index with the model it was built with"
                )
            self._checked = self.embedder
        return np.asarray(self.embedder.encode([query])[0], dtype=np.float32)

    def _dense(self, query: str, depth: int, mask: np.ndarray | None) -> Ranking:
        q = self.query_vector(query)
        n = len(self.chunks)
        if mask is None and self.ann is not None:
            return self._ann(q, depth, None)
        rows = np.arange(n) if mask is None else np.flatnonzero(mask)
        if mask is not None and self.ann is not None and len(rows) > EXACT_SHARE * n:
            found = self._ann(q, depth, mask, share=len(rows) / n)
            if len(found) >= min(depth, len(rows)):
                return found
        return _top(np.asarray(self.vectors[rows] @ q, dtype=np.float32), rows, depth)

    def _ann(
        self, q: np.ndarray, depth: int, mask: np.ndarray | None, share: float = 1.0
    ) -> Ranking:
        count = min(len(self.chunks), int(depth / share * 2) + 1 if mask is not None else depth)
        self.ann.expansion_search = max(64, count)
        matches = self.ann.search(q, count, threads=1)
        keys = np.asarray(matches.keys, dtype=np.int64)
        sims = 1.0 - np.asarray(matches.distances, dtype=np.float32)
        if mask is not None:
            keep = mask[keys]
            keys, sims = keys[keep], sims[keep]
        return _top(sims, keys, depth)

    # -- files ------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the index to ``directory`` (created; files of a previous save replaced)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / "chunks.jsonl", "w", encoding="utf-8") as out:
            for chunk, key in zip(self.chunks, self.keys, strict=True):
                record = {
                    "id": chunk.id,
                    "doc": chunk.doc,
                    "title": chunk.title,
                    "heading_path": list(chunk.heading_path),
                    "text": chunk.text,
                    "meta": chunk.meta,
                    "type": chunk.type,
                    "key": key,
                }
                out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        np.save(path / "vectors.npy", np.ascontiguousarray(self.vectors, dtype=np.float32))
        if self.ann is not None:
            self.ann.save(str(path / "dense.usearch"))
        self.bm25.save(str(path / "bm25"), show_progress=False)
        (path / "index.json").write_text(json.dumps(self.info, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, embedder: Any = None, mmap: bool = True
    ) -> HybridIndex:
        """The index saved in ``directory``, memory-mapped (``mmap=False`` reads it in)."""
        path = Path(directory)
        try:
            info = json.loads((path / "index.json").read_text())
        except FileNotFoundError:
            raise IndexFormatError("no index.json: not a saved index", str(path)) from None
        if info.get("format") != FORMAT:
            raise IndexFormatError(
                f"index format {info.get('format')!r}, this version reads {FORMAT}: rebuild it",
                str(path),
            )
        import bm25s

        chunks, keys = [], []
        with open(path / "chunks.jsonl", encoding="utf-8") as lines:
            for line in lines:
                r = json.loads(line)
                chunks.append(
                    Chunk(
                        r["id"],
                        r["doc"],
                        r["title"],
                        tuple(r["heading_path"]),
                        r["text"],
                        r["meta"],
                        r["type"],
                    )  # fmt: skip
                )
                keys.append(r["key"])
        vectors = np.load(path / "vectors.npy", mmap_mode="r" if mmap else None)
        ann = None
        if (path / "dense.usearch").exists():
            from usearch.index import Index

            ann = Index.restore(str(path / "dense.usearch"), view=mmap)
        bm25 = bm25s.BM25.load(str(path / "bm25"), mmap=mmap, show_progress=False)
        if len(chunks) != info["chunks"] or vectors.shape[0] != len(chunks):
            raise IndexFormatError(
                f"index.json says {info['chunks']} chunks, chunks.jsonl has {len(chunks)}, "
                f"vectors.npy {vectors.shape[0]}: the folder is incomplete",
                str(path),
            )
        return cls(chunks, vectors, bm25, ann, info, keys=keys, embedder=embedder)


def build_index(
    chunks: Sequence[Chunk],
    embedder: Any,
    previous: HybridIndex | None = None,
    *,
    progress: Any = False,
    settings: Mapping[str, Any] | None = None,
    embed_text: Callable[[Chunk], str] | None = None,
    keyword_text: Callable[[Chunk], str] | None = None,
) -> HybridIndex:
    """An index of ``chunks``. Chunks whose embedded text is in ``previous`` (built by the
    same model) take their vectors from it; only the others go through ``embedder``
    (``index.stats.embedded`` counts them). ``progress=True`` (or a rich Console) shows a
    progress bar while embedding; ``settings`` (chunking settings...) are kept in
    ``index.info`` and in the corpus hash. What is embedded and what BM25 indexes is each
    chunk's :attr:`~Chunk.embed_text` (headings, then text) unless ``embed_text`` or
    ``keyword_text`` say otherwise (say, a record's title alone for keywords)."""
    import bm25s

    started = time.perf_counter()
    chunks = list(chunks)
    if not chunks:
        raise RetrievalError("no chunks to index (was every document excluded?)")
    ids = [c.id for c in chunks]
    if len(set(ids)) != len(ids):
        raise RetrievalError("chunk ids repeat: chunk each document once")
    embed = embed_text or (lambda c: c.embed_text)
    texts = [embed(c) for c in chunks]
    keys = [hashlib.sha256(t.encode()).hexdigest()[:32] for t in texts]
    fingerprint = embedder.fingerprint
    dim = int(getattr(embedder, "dim", 384))
    vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    todo = list(range(len(chunks)))
    if previous is not None and previous.info.get("fingerprint") == fingerprint:
        old = {key: row for row, key in enumerate(previous.keys)}
        todo = []
        for row, key in enumerate(keys):
            if key in old:
                vectors[row] = previous.vectors[old[key]]
            else:
                todo.append(row)
    if todo:
        vectors[todo] = _embed(embedder, [texts[i] for i in todo], progress)
    keyword = keyword_text or embed
    model = bm25s.BM25()
    model.index([words(keyword(c)) for c in chunks], show_progress=False)
    graph = _graph(vectors)
    settings = dict(settings or {})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(fingerprint.encode())
    for chunk_id in ids:
        digest.update(chunk_id.encode())
    info = {
        "format": FORMAT,
        "model": getattr(embedder, "name", type(embedder).__name__),
        "fingerprint": fingerprint,
        "dim": dim,
        "chunks": len(chunks),
        "documents": len({c.doc for c in chunks}),
        "corpus_hash": digest.hexdigest(),
        "settings": settings,
        "weights": list(previous.weights) if previous is not None else [1.0, 1.0],
        "rrf_c": RRF_C,
    }
    index = HybridIndex(chunks, vectors, model, graph, info, keys=keys, embedder=embedder)
    index.stats = BuildStats(
        len(chunks), len(todo), len(chunks) - len(todo), time.perf_counter() - started
    )
    return index


def _graph(vectors: np.ndarray) -> Any:
    from usearch.index import Index

    graph = Index(ndim=vectors.shape[1], metric="ip", dtype="f32", connectivity=16,
                  expansion_add=128, expansion_search=64)  # fmt: skip
    graph.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=1)
    return graph


def _embed(embedder: Any, texts: list[str], progress: Any) -> np.ndarray:
    if not progress:
        return np.asarray(embedder.encode(texts), dtype=np.float32)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = progress if isinstance(progress, Console) else None
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("embedding chunks", total=len(texts))
        out = embedder.encode(texts, progress=lambda n: bar.advance(task, n))
    return np.asarray(out, dtype=np.float32)
