"""Index the media catalogue for the catalogue service; weekly once scheduled.

    python examples/catalogue_search/flow.py run                  # all 58,788 films (minutes)
    python examples/catalogue_search/flow.py run --sample 2000    # a seeded stratified sample
    shipyard schedule create examples/catalogue_search/flow.py   # the weekly rebuild

    start (the catalogue, the query sets) ─► build (keywords, title embeddings, the fuzzy
    matcher's titles; fusion tuned on dev) ─► end (card, register ``catalogue-index``)

The index is one ``Files`` artifact: the retrieval core's index of the titles, the titles as
the fuzzy matcher compares them, and ``catalogue.json`` with the tuned fusion weights. It is
registered with its held-out scores per query kind (recall@10 and MRR@10) and the facet checks.

Embedding every title is the long part (58,788 titles: about 3 minutes on a quiet 2-core
machine, one torch thread; the step prints how far it is every 10 s). Titles the latest
``catalogue-index`` already holds keep their vectors (``--reuse FOLDER`` takes them from a
built index folder instead), so the weekly rebuild embeds only new or renamed films.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from shipyard import FlowSpec, Parameter, current, schedule, step
from shipyard.cards import card

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

MODEL = "catalogue-index"


def last_index(reuse: str = ""):
    """The core index whose title vectors the build reuses, and what it is: ``reuse`` (a
    built catalogue index's folder) if given, else the latest ``catalogue-index`` (a weekly
    rebuild embeds only new or renamed films), else (None, None)."""
    from shipyard.registry import Model, ModelNotFound
    from shipyard.retrieval import HybridIndex

    if reuse:
        folder = Path(reuse)
        return HybridIndex.load(folder / "index" if (folder / "index").is_dir() else folder), reuse
    try:
        latest = Model(MODEL)
        files = latest.load()
        return HybridIndex.load(Path(files.path) / "index"), latest.resolve()
    except (ModelNotFound, FileNotFoundError):
        return None, None


@schedule(weekly=True)
class CatalogueIndexFlow(FlowSpec):
    """Build the catalogue's search index (keywords, embeddings, fuzzy titles), score it on
    the held-out queries and register it."""

    sample = Parameter("sample", default=0, help="index a seeded stratified sample (0: all)")
    seed = Parameter("seed", default=19, help="the sample's and the queries' seed")
    reuse = Parameter(
        "reuse", default="", help="a built catalogue index folder whose title vectors to reuse "
        "(default: the latest catalogue-index's)",
    )  # fmt: skip

    @step
    def start(self):
        """The catalogue (or its sample) and the evaluation queries over it."""
        import filmdata
        import queries

        films = filmdata.load_catalogue()
        self.total = len(films)
        if self.sample:
            films = filmdata.sample(films, int(self.sample), int(self.seed))
        self.films = films
        self.queries = queries.make_queries(films, seed=int(self.seed))
        print(f"{len(films)} of {self.total} films, {len(self.queries)} evaluation queries")
        self.next(self.build)

    @step
    def build(self):
        """Index the titles; tune the fusion weights on the dev queries, score on test."""
        import json

        import queries
        import search

        from shipyard import Files
        from shipyard.retrieval import Embedder

        self.build_dir = tempfile.mkdtemp(prefix="catalogue-index-")
        previous, self.previous = last_index(str(self.reuse))
        embedder = Embedder()
        search.build(
            self.films, embedder, self.build_dir, previous=previous, progress=True,
            sample=int(self.sample), seed=int(self.seed),
        )  # fmt: skip
        engine = search.Engine.load(self.build_dir, embedder=embedder)
        self.result = queries.evaluate(engine, self.films, self.queries)
        self.weights = self.result["weights"]
        info_path = Path(self.build_dir) / "catalogue.json"
        info = json.loads(info_path.read_text())
        info["weights"] = self.weights
        info_path.write_text(json.dumps(info, indent=2) + "\n")
        print(f"weights tuned on dev: {self.weights}")
        self.catalogue_index = Files(self.build_dir)
        self.next(self.end)

    @card(type="blank")
    @step
    def end(self):
        """The card, and the index registered with its held-out scores."""
        import queries

        shutil.rmtree(self.build_dir, ignore_errors=True)  # stored by now
        note = f"{len(self.films)} of {self.total} films" + (
            f" (a stratified sample, seed {self.seed})" if self.sample else ""
        )
        for component in queries.card(self.result, note):
            current.card.append(component)
        tuned = self.result["test"]["hybrid (tuned)"]
        metrics: dict[str, float] = {"films": float(len(self.films))}
        for kind, s in tuned.items():
            metrics[f"{kind}_recall@10"] = round(s["recall"], 4)
            metrics[f"{kind}_mrr@10"] = round(s["mrr"], 4)
        for name, value in self.result["facets"].items():
            metrics[f"facet_{name}"] = value
        for name, w in self.weights.items():
            metrics[f"w_{name}"] = w
        print(f"held-out scores: {metrics}")
        tags = [f"sample={self.sample}", f"seed={self.seed}"]
        current.register_model(MODEL, self.catalogue_index, metrics=metrics, tags=tags)
        print(f"registered {MODEL}; look at it: shipyard models show {MODEL}")


if __name__ == "__main__":
    CatalogueIndexFlow()
