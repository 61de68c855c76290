"""The retrieval core: documents chunked in the embedding model's tokens, a hybrid index
(BM25 with bm25s, dense vectors with usearch) fused by reciprocal rank, metadata filters, and
evaluation (recall@k, MRR@10, nDCG@10, weights tuned on a dev split, a card).

>>> from shipyard.retrieval import Embedder, build_index, chunk_documents, load_documents
>>> docs = load_documents("docs/", exclude=["whatsnew/*"])                 # doctest: +SKIP
>>> embedder = Embedder()          # local model files only, never a download # doctest: +SKIP
>>> chunks = chunk_documents(docs, embedder.tokenizer, max_tokens=256)     # doctest: +SKIP
>>> index = build_index(chunks, embedder, progress=True)                   # doctest: +SKIP
>>> index.save("build/index")                                              # doctest: +SKIP
>>> HybridIndex.load("build/index").search("join paths", k=5)              # doctest: +SKIP

Importing this package is cheap: each name's module loads on first use, and torch and
transformers only when a model is loaded (BM25-only search never imports them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_exports

if TYPE_CHECKING:
    from shipyard.retrieval.card import eval_card as eval_card
    from shipyard.retrieval.chunks import Chunk as Chunk
    from shipyard.retrieval.chunks import chunk_documents as chunk_documents
    from shipyard.retrieval.documents import Document as Document
    from shipyard.retrieval.documents import load_documents as load_documents
    from shipyard.retrieval.embedder import Embedder as Embedder
    from shipyard.retrieval.errors import DocumentError as DocumentError
    from shipyard.retrieval.errors import FilterError as FilterError
    from shipyard.retrieval.errors import IndexFormatError as IndexFormatError
    from shipyard.retrieval.errors import RetrievalError as RetrievalError
    from shipyard.retrieval.evaluation import Evaluation as Evaluation
    from shipyard.retrieval.evaluation import Tuning as Tuning
    from shipyard.retrieval.evaluation import evaluate as evaluate
    from shipyard.retrieval.evaluation import mrr_at_k as mrr_at_k
    from shipyard.retrieval.evaluation import ndcg_at_k as ndcg_at_k
    from shipyard.retrieval.evaluation import recall_at_k as recall_at_k
    from shipyard.retrieval.evaluation import tune_weights as tune_weights
    from shipyard.retrieval.fusion import rrf as rrf
    from shipyard.retrieval.index import BuildStats as BuildStats
    from shipyard.retrieval.index import Hit as Hit
    from shipyard.retrieval.index import HybridIndex as HybridIndex
    from shipyard.retrieval.index import build_index as build_index
    from shipyard.retrieval.sections import Section as Section

_LAZY = {
    "BuildStats": "shipyard.retrieval.index",
    "Chunk": "shipyard.retrieval.chunks",
    "Document": "shipyard.retrieval.documents",
    "DocumentError": "shipyard.retrieval.errors",
    "Embedder": "shipyard.retrieval.embedder",
    "Evaluation": "shipyard.retrieval.evaluation",
    "FilterError": "shipyard.retrieval.errors",
    "Hit": "shipyard.retrieval.index",
    "HybridIndex": "shipyard.retrieval.index",
    "IndexFormatError": "shipyard.retrieval.errors",
    "RetrievalError": "shipyard.retrieval.errors",
    "Section": "shipyard.retrieval.sections",
    "Tuning": "shipyard.retrieval.evaluation",
    "build_index": "shipyard.retrieval.index",
    "chunk_documents": "shipyard.retrieval.chunks",
    "eval_card": "shipyard.retrieval.card",
    "evaluate": "shipyard.retrieval.evaluation",
    "load_documents": "shipyard.retrieval.documents",
    "mrr_at_k": "shipyard.retrieval.evaluation",
    "ndcg_at_k": "shipyard.retrieval.evaluation",
    "recall_at_k": "shipyard.retrieval.evaluation",
    "rrf": "shipyard.retrieval.fusion",
    "tune_weights": "shipyard.retrieval.evaluation",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
