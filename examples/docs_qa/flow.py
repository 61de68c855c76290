"""Index a folder of documents for the docs-qa service; nightly once scheduled.

    python examples/docs_qa/flow.py run --docs /usr/share/doc/python3.11/html/_sources
    python examples/docs_qa/flow.py run --docs ~/wiki --exclude 'drafts/*' --exclude '*.txt'
    shipyard schedule create examples/docs_qa/flow.py      # the nightly rebuild (@schedule)

    start (read, keep out, chunk) ─► embed (BM25 + dense, only changed chunks) ─► end (score,
    register ``docs-index``)

A document stays out of the index when a ``--exclude`` glob matches its path (relative to
``--docs``; repeatable, or comma-separated) or its front matter says ``index: false`` or
``sensitive: true``. ``embed`` starts from the latest ``docs-index``: a chunk whose content
hash it already holds is not embedded again, so a nightly run over an unchanged corpus is
quick. ``end`` scores the index on the held-out questions whose gold documents are in the
corpus (``--questions``; none over a corpus they do not cover) and registers it with its
corpus hash, chunking settings and scores.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from shipyard import FlowSpec, Parameter, current, schedule, step
from shipyard.cards import Markdown, card

HERE = Path(__file__).resolve().parent
PYTHON_DOCS = "/usr/share/doc/python3.11/html/_sources"
QUESTIONS = HERE / "questions" / "python_docs.yaml"
MODEL = "docs-index"


def _globs(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def corpus_hash(docs: list[Any]) -> str:
    """The sha256 of the documents indexed: their paths and texts, in path order."""
    digest = hashlib.sha256()
    for doc in sorted(docs, key=lambda d: d.path):
        digest.update(doc.path.encode() + b"\0" + hashlib.sha256(doc.text.encode()).digest())
    return digest.hexdigest()


def questions_in(path: Path, docs: set[str], split: str) -> list[dict[str, Any]]:
    """The questions of ``split`` in ``path`` whose gold documents are all in ``docs``."""
    if not path.is_file():
        return []
    import yaml

    questions = (yaml.safe_load(path.read_text()) or {}).get("questions") or []
    return [
        q
        for q in questions
        if q.get("split") == split and q.get("gold") and all(g["doc"] in docs for g in q["gold"])
    ]


@schedule(daily=True)
class DocsIndexFlow(FlowSpec):
    """Build the hybrid (BM25 + dense) index of a folder of documents and register it."""

    docs = Parameter("docs", default=PYTHON_DOCS, help="the folder of documents to index")
    exclude = Parameter(
        "exclude", default="", help="globs of paths (relative to --docs) to keep out"
    )
    max_tokens = Parameter("max_tokens", default=256, help="a chunk's size, in model tokens")
    overlap = Parameter("overlap", default=32, help="tokens shared by neighbouring chunks")
    questions = Parameter(
        "questions", default=str(QUESTIONS), help="a question set to score the index on"
    )

    @step
    def start(self):
        """Read the documents, keep the excluded and sensitive ones out, chunk the rest."""
        from shipyard.retrieval import Embedder, chunk_documents, load_documents

        root = Path(self.docs).expanduser()
        if not root.is_dir():
            raise SystemExit(f"--docs {self.docs!r} is not a folder")
        self.globs = _globs(self.exclude)
        docs = load_documents(root, exclude=self.globs)
        if not docs:
            raise SystemExit(f"no documents to index under {root} (--exclude {self.globs})")
        self.doc_paths = sorted(d.path for d in docs)
        self.corpus_hash = corpus_hash(docs)
        self.chunks = chunk_documents(
            docs, Embedder().tokenizer, max_tokens=self.max_tokens, overlap=self.overlap
        )
        print(f"{len(docs)} documents, {len(self.chunks)} chunks, corpus {self.corpus_hash[:12]}")
        self.next(self.embed)

    @step
    def embed(self):
        """BM25 and dense indexes (chunks the latest docs-index already holds keep their
        vectors); fusion weights tuned on the dev questions the corpus covers."""
        from shipyard import Files
        from shipyard.registry import Model, ModelNotFound
        from shipyard.retrieval import Embedder, HybridIndex, build_index, tune_weights

        try:
            latest = Model(MODEL)
            files = latest.load()
            previous = HybridIndex.load(files.path)
            self.previous = latest.resolve()
        except ModelNotFound:
            previous, self.previous = None, None
        settings = {"max_tokens": self.max_tokens, "overlap": self.overlap}
        index = build_index(
            self.chunks, Embedder(), previous=previous, progress=True, settings=settings
        )
        stats = index.stats
        self.embedded, self.reused = stats.embedded, stats.reused
        print(
            f"{stats.chunks} chunks: {stats.embedded} embedded, {stats.reused} reused from "
            f"{self.previous or 'no previous index'} ({stats.seconds:.1f} s)"
        )
        dev = questions_in(Path(self.questions), set(self.doc_paths), "dev")
        self.tuning = None
        if dev:
            tuning = self.tuning = tune_weights(index, dev, split="dev")
            index.weights = tuning.weights
            print(f"weights (bm25, dense) {tuning.weights}: dev recall@10 {tuning.score:.3f}")
        self.weights = index.weights
        # the same chunks, settings, model and weights as the latest: nothing new to serve
        self.unchanged = previous is not None and (previous.corpus_hash, previous.weights) == (
            index.corpus_hash,
            index.weights,
        )
        self.build_dir = tempfile.mkdtemp(prefix="docs-index-")
        index.save(self.build_dir)
        self.docs_index = Files(self.build_dir)
        self.next(self.end)

    @card(type="blank")
    @step
    def end(self):
        """Score on the held-out questions the corpus covers (hybrid, and each part alone,
        in the card), and register the index."""
        from shipyard.retrieval import HybridIndex, eval_card, evaluate

        test = questions_in(Path(self.questions), set(self.doc_paths), "test")
        self.scores: dict[str, float] = {}
        if test:
            index = HybridIndex.load(self.docs_index.path)
            runs = {
                mode: evaluate(index, test, k=10, mode=mode, split="test")
                for mode in ("hybrid", "bm25", "dense")
            }
            self.scores = runs["hybrid"].metrics()
            print(f"scores on {len(test)} held-out questions: {self.scores}")
            note = f"{len(test)} held-out questions; {len(self.chunks)} chunks of {self.docs}"
            for component in eval_card(
                runs.values(), title="docs-index", tuning=self.tuning, note=note
            ):
                current.card.append(component)
        else:
            current.card.append(
                Markdown(
                    f"## docs-index\n\nNo held-out question of {self.questions} has its gold "
                    f"documents in {self.docs}: the index is registered unscored."
                )
            )
        shutil.rmtree(self.build_dir, ignore_errors=True)  # stored by now; read back from the store
        if self.unchanged:
            print(f"the index is the same as {self.previous}'s: nothing new to register")
            return
        metrics = {
            **self.scores,
            "questions": len(test),
            "documents": len(self.doc_paths),
            "chunks": len(self.chunks),
            "embedded": self.embedded,
            "w_bm25": self.weights[0],
            "w_dense": self.weights[1],
        }
        tags = [
            f"corpus={self.corpus_hash}",
            f"max_tokens={self.max_tokens}",
            f"overlap={self.overlap}",
            f"docs={self.docs}",
            *(f"exclude={g}" for g in self.globs),
        ]
        current.register_model(MODEL, self.docs_index, metrics=metrics, tags=tags)
        print(f"registered {MODEL}; look at it: shipyard models show {MODEL}")


def _join_excludes(argv: list[str]) -> list[str]:
    """``--exclude A --exclude B`` (a flow parameter takes one value) as ``--exclude A,B``."""
    globs: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--exclude":
            globs.append(next(args, ""))
        elif arg.startswith("--exclude="):
            globs.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest + (["--exclude", ",".join(globs)] if globs else [])


if __name__ == "__main__":
    sys.argv[1:] = _join_excludes(sys.argv[1:])
    DocsIndexFlow()
