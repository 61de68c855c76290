"""Catalogue search: the retrieval core's keyword (BM25 over titles) and semantic (title
embeddings) rankers with a typo-tolerant title matcher (rapidfuzz), fused by the core's
reciprocal-rank fusion, filtered by genre, decade and minimum rating, with facet counts.

Built by :func:`build` into one folder (stored as one ``Files`` artifact)::

    index/          the retrieval core's HybridIndex (one chunk per film)
    titles.json     the titles as the fuzzy matcher compares them, one per index row
    catalogue.json  what was indexed: film count, sample, seed, fusion weights

>>> engine = Engine.load("build/catalogue")                                    # doctest: +SKIP
>>> engine.search("godfathr", k=5, filters={"genre": "Drama", "decade": 1970})  # doctest: +SKIP

**What matches.** A film matches a query when its title holds every keyword of the query
within typos (one typo from 5 letters, two from 9, the last keyword also as a prefix:
Meilisearch's bounds), or the whole title is within typos of it (rapidfuzz's normalised
Indel similarity, ``ratio``, at least :data:`~matcher.TITLE_MATCH`); an empty query matches
every film. The fuzzy *ranker* scores ``WRatio`` (the best of the whole, partial and
word-order ratios: right for ordering, too loose for saying what matched — ``and the``
alone would) over the titles those bounds pick (:mod:`matcher`: a few milliseconds over the
whole catalogue). The semantic ranker ranks every film, so it only orders results: a
filtered query returns ``k`` results whenever ``k`` films pass the filters. Facet counts
are over the films that match the query and the filters (Meilisearch's
``facetDistribution``), counted with ``np.bincount`` over integer codes (:class:`FacetCodes`).

**What a search runs.** Only the rankers its weights fuse: in reciprocal-rank fusion a
ranker of weight 0 changes nothing, so :meth:`Engine.search` does not run it (tuning
never gives one 0: :data:`queries.GRID`, so a tuned search embeds every query). What
matches (the facets) does not depend on the weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matcher import TitleMatcher, fuzzy_text

RANKERS = ("bm25", "dense", "fuzzy")
#: the fused weights until tuned: every ranker counts the same
DEFAULT_WEIGHTS = {"bm25": 1.0, "dense": 1.0, "fuzzy": 1.0}
#: candidates each ranker hands fusion
DEPTH = 100
FACETS = ("genre", "decade")


def film_chunk(film: Mapping[str, Any]) -> Any:
    """A film as one chunk of the retrieval core: its title is the text, its fields the
    metadata the filters and facets read (``genre`` is the list of its genres)."""
    from shipyard.retrieval import Chunk

    meta = {
        "year": film["year"],
        "decade": film["decade"],
        "genre": list(film["genres"]),
        "rating": film["rating"],
        "votes": film["votes"],
        "length": film["length"],
        "budget": film["budget"],
        "mpaa": film["mpaa"],
        "movielens_id": film["movielens_id"],
    }
    return Chunk(film["id"], film["id"], film["title"], (), film["title"], meta, "film")


def build(
    films: Sequence[Mapping[str, Any]],
    embedder: Any,
    out: str | Path,
    *,
    previous: Any = None,
    progress: bool = False,
    **info: Any,
) -> Path:
    """Index ``films`` into the folder ``out``: keywords from the title and year, an embedding
    of the title, the fuzzy matcher's titles. Titles ``previous`` (a core ``HybridIndex`` by
    the same model: the last build's) holds keep their vectors; with ``progress``, a line
    every few seconds says how far the embedding is. ``info`` is kept in ``catalogue.json``."""
    from shipyard.retrieval import build_index

    out = Path(out)
    chunks = [film_chunk(f) for f in films]
    index = build_index(
        chunks,
        Progress(embedder) if progress else embedder,
        previous=previous,
        embed_text=lambda c: c.title,
        keyword_text=lambda c: f"{c.title} {c.meta['year']}",
        settings={"kind": "catalogue"},
    )
    if progress and index.stats is not None:
        s = index.stats
        print(f"indexed {s.chunks:,} films: {s.embedded:,} titles embedded, {s.reused:,} "
              f"vectors reused ({s.seconds:.0f} s)", flush=True)  # fmt: skip
    index.save(out / "index")
    (out / "titles.json").write_text(json.dumps([fuzzy_text(c.title) for c in chunks]))
    meta = {"films": len(chunks), "weights": DEFAULT_WEIGHTS, **info}
    (out / "catalogue.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


class Progress:
    """An embedder that prints how far a long ``encode`` is, a line every ``every`` seconds
    (plain lines: a flow step's output is a log, not a terminal)."""

    def __init__(self, inner: Any, every: float = 10.0) -> None:
        self.inner = inner
        self.every = every

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str], progress: Any = None) -> Any:
        import time

        total, done = len(texts), 0
        started = last = time.monotonic()
        print(f"embedding {total:,} titles", flush=True)

        def tick(n: int) -> None:
            nonlocal done, last
            done += n
            now = time.monotonic()
            if now - last >= self.every or done == total:
                last = now
                rate = done / max(now - started, 1e-9)
                left = (total - done) / rate if rate else 0.0
                print(f"  embedded {done:,} of {total:,} titles ({rate:.0f}/s, "
                      f"{left:.0f} s left)", flush=True)  # fmt: skip
            if progress is not None:
                progress(n)

        return self.inner.encode(texts, progress=tick)


class Engine:
    """A built catalogue index, loaded: rank, fuse, filter, count facets."""

    def __init__(self, index: Any, titles: list[str], info: dict[str, Any]) -> None:
        if len(titles) != len(index):
            raise ValueError(f"titles.json has {len(titles)} titles, the index {len(index)}")
        self.index = index
        self.titles = titles
        self.info = info
        self.weights: dict[str, float] = dict(info.get("weights") or DEFAULT_WEIGHTS)
        self.votes = np.asarray([c.meta["votes"] for c in index.chunks], dtype=np.int64)
        self.matcher = TitleMatcher(titles, self.votes)
        self.facets = {key: FacetCodes(index.chunks, key) for key in FACETS}
        # the filters' columns built now, not by the first filtered query: over the whole
        # catalogue that query took 2.8 s of CPU (a replica's first facet request)
        for key in FACETS:
            index.columns.postings(key)
        index.columns.numbers("rating")

    @classmethod
    def load(cls, folder: str | Path, *, embedder: Any = None) -> Engine:
        from shipyard.retrieval import HybridIndex

        folder = Path(folder)
        index = HybridIndex.load(folder / "index", embedder=embedder)
        titles = json.loads((folder / "titles.json").read_text())
        info = json.loads((folder / "catalogue.json").read_text())
        return cls(index, titles, info)

    def __len__(self) -> int:
        return len(self.index)

    # -- rankers ------------------------------------------------------------------------

    def fuzzy_scores(self, query: str, mask: np.ndarray | None) -> np.ndarray:
        """The fuzzy ranker's ``WRatio`` scores (0 outside ``mask`` and for titles it did not
        score: see :mod:`matcher`)."""
        return self.matcher.match(query, mask)[0]

    def matches(self, query: str) -> np.ndarray:
        """The films that match ``query``: every keyword within typos, or the whole title."""
        return self.matcher.match(query)[1]

    def _best(self, scores: np.ndarray, depth: int) -> list[tuple[int, float]]:
        """The ``depth`` best rows with a score above 0: by score, then votes, then row."""
        rows = np.flatnonzero(scores > 0)
        order = np.lexsort((rows, -self.votes[rows], -scores[rows]))[:depth]
        return [(int(rows[i]), float(scores[rows[i]])) for i in order]

    def rankings(
        self,
        query: str,
        filters: Mapping[str, Any] | None = None,
        depth: int = DEPTH,
        rankers: Sequence[str] = RANKERS,
    ) -> tuple[dict[str, list[tuple[int, float]]], np.ndarray]:
        """Each of ``rankers``' ``depth`` best (row, score) for ``query`` among the films the
        filters let through, and the boolean mask of the films that match (see the module
        doc: what matches does not depend on ``rankers``)."""
        mask = self.index.allowed(filters)
        if not query.strip():
            # a browse: the films the filters let through, most voted first
            allowed = np.ones(len(self), dtype=bool) if mask is None else mask
            scores = np.where(allowed, self.votes.astype(np.float32) + 1.0, 0.0)
            return {"votes": self._best(scores, depth)}, allowed
        core = [name for name in ("bm25", "dense") if name in rankers]
        out = self.index.rank(query, core, depth=depth, filters=filters) if core else {}
        fuzzy, matched = self.matcher.match(query, mask, score="fuzzy" in rankers)
        if "fuzzy" in rankers:
            out["fuzzy"] = self._best(fuzzy, depth)
        return out, matched

    # -- search -------------------------------------------------------------------------

    def fuse(
        self,
        rankings: Mapping[str, list[tuple[int, float]]],
        k: int,
        weights: Mapping[str, float] | None = None,
    ) -> list[tuple[int, float]]:
        """The fused top ``k`` (row, RRF score) of ``rankings``."""
        from shipyard.retrieval import rrf

        if "votes" in rankings:  # a browse has one ranking: its order, with RRF's scores
            return rrf({"votes": [r for r, _ in rankings["votes"]]}, limit=k)
        w = dict(self.weights if weights is None else weights)
        missing = [n for n in RANKERS if w.get(n, 0.0) and n not in rankings]
        if missing:
            raise ValueError(f"weights fuse {missing}, but no ranking of them was computed")
        lists = {name: [row for row, _ in rankings.get(name, [])] for name in RANKERS}
        return rrf(lists, {n: w.get(n, 0.0) for n in RANKERS}, limit=k)

    def film(self, row: int, score: float) -> dict[str, Any]:
        chunk = self.index.chunks[row]
        return {
            "id": chunk.id,
            "title": chunk.title,
            "year": int(chunk.meta["year"]),
            "genres": list(chunk.meta["genre"]),
            "score": float(score),
        }

    def search(
        self,
        query: str,
        k: int = 10,
        filters: Mapping[str, Any] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """``{"results": [film...], "facets": {"genre": {...}, "decade": {...}}}``: the ``k``
        best films (fused) among those the filters let through, and facet counts over the
        films that match the query and the filters."""
        w = dict(self.weights if weights is None else weights)
        # a ranker fused with weight 0 changes nothing (RRF): it is not run, and a query
        # is embedded only when the dense ranker counts
        rankers = [name for name in RANKERS if w.get(name, 0.0) > 0]
        rankings, matched = self.rankings(query, filters, depth=max(DEPTH, k), rankers=rankers)
        fused = self.fuse(rankings, k, w)
        rows = np.flatnonzero(matched)
        facets = {key: codes.counts(rows) for key, codes in self.facets.items()}
        return {"results": [self.film(r, s) for r, s in fused], "facets": facets}


class FacetCodes:
    """A facet field's values as integer codes, for counting with ``np.bincount``: each
    value (as first seen; values equal as the core's filters compare them are one) gets a
    code, and ``pairs`` holds a (row, code) pair for each value of each row (a film with
    three genres has three)."""

    def __init__(self, chunks: Sequence[Any], key: str) -> None:
        from shipyard.retrieval.filters import normal

        code_of: dict[Any, int] = {}
        self.values: list[Any] = []
        rows, codes = [], []
        for row, chunk in enumerate(chunks):
            value = chunk.meta.get(key)
            for v in value if isinstance(value, list | tuple | set) else [value]:
                if v is None:
                    continue
                code = code_of.setdefault(normal(v), len(code_of))
                if code == len(self.values):
                    self.values.append(v)
                rows.append(row)
                codes.append(code)
        self.n = len(chunks)
        order = np.argsort(np.asarray(rows, dtype=np.int64), kind="stable")
        self.codes = np.asarray(codes, dtype=np.int64)[order]
        # the pairs of row r are codes[start[r]:start[r + 1]]
        self.start = np.searchsorted(np.asarray(rows, dtype=np.int64)[order], np.arange(self.n + 1))
        self.single = bool(np.all(np.diff(self.start) <= 1))

    def counts(self, rows: np.ndarray) -> dict[Any, int]:
        """Each value -> how many of ``rows`` have it, most frequent first (ties: the value
        seen first), values counted 0 left out: the core's ``MetaColumns.counts``."""
        if self.single and len(self.codes) == self.n:  # one value a row: codes by row
            picked = self.codes[rows]
        else:
            lo, hi = self.start[rows], self.start[rows + 1]
            size = hi - lo
            first = np.repeat(lo - np.cumsum(size) + size, size)  # each pair's row's start
            picked = self.codes[first + np.arange(size.sum())]
        found = np.bincount(picked, minlength=len(self.values))
        order = np.argsort(-found, kind="stable")
        return {self.values[i]: int(found[i]) for i in order if found[i]}


def core_filters(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The service's filters (``genre``, ``decade``, ``min_rating``) as the core's."""
    out: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if value is None:
            continue
        if key == "min_rating":
            out["rating"] = {"gte": float(value)}
        else:
            out[key] = value
    return out
