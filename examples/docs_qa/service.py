"""The documents assistant as a service: search the index, or ask a question answered with
citations by a language model behind the gateway.

    shipyard deploy examples/docs_qa/service.py:DocsQA --name docs-qa         # latest docs-index
    shipyard deploy examples/docs_qa/service.py:DocsQA --name docs-qa --model docs-index:3 \\
        --env DOCS_QA_ROUTE=chat --secret DOCS_QA_GATEWAY_KEY=env:DOCS_QA_KEY
    curl -H 'content-type: application/json' localhost:8000/docs-qa/search \\
         -d '{"query": "copy a file with its permissions", "k": 3}'
    curl -H 'content-type: application/json' localhost:8000/docs-qa/ask \\
         -d '{"question": "How do I copy a file with its permissions?"}'

``/ask`` calls the gateway route ``DOCS_QA_ROUTE`` (``chat``) at ``DOCS_QA_GATEWAY`` (the host
itself, ``http://127.0.0.1:8000``, serving the gateway with ``--gateway-config``) with the key
given by ``--secret DOCS_QA_GATEWAY_KEY=...``. Without that key, or when the route does not
exist, every answer is extractive and says so; when the route fails (429, 5xx, down) the
answer falls back to an extractive one.
"""

from __future__ import annotations

import os
import threading
from typing import Annotated, Any

from agent import answer, gateway_chat
from pydantic import BaseModel, Field

from shipyard import HTTPError
from shipyard.registry import Model
from shipyard.serve import Service, endpoint

MODEL = "docs-index"
#: the longest query or question taken, in characters
MAX_TEXT = 2000
MAX_K = 50


class SearchHit(BaseModel):
    doc: str = Field(description="the document's path, relative to the indexed folder")
    title: str
    text: str
    score: float


class CitationOut(BaseModel):
    doc: str
    text: str


class AskAnswer(BaseModel):
    answer: str
    citations: list[CitationOut]
    steps: int = Field(description="language-model turns taken (0: an extractive answer)")
    model: str = Field(description="the model that answered, or 'extractive'")


def _text(value: str, field: str) -> str:
    if not value.strip():
        raise HTTPError(422, f"`{field}` is empty: send the words to look for", field=field)
    return value


class DocsQA(Service):
    """Search the documents of the latest ``docs-index``, and answer questions over them."""

    def load(self) -> None:
        import httpx

        from shipyard.retrieval import HybridIndex

        self.searching = threading.Lock()
        model = Model(MODEL)  # the latest, or the version `deploy --model` pinned
        self.version = model.resolve()
        self.index = HybridIndex.load(model.load().path)
        self.index.search("warm up", k=1)  # the query encoder's first call is slow
        key = os.environ.get("DOCS_QA_GATEWAY_KEY", "")
        self.route = os.environ.get("DOCS_QA_ROUTE", "chat")
        self.chat: Any = None
        if key:
            client = httpx.Client(
                base_url=os.environ.get("DOCS_QA_GATEWAY", "http://127.0.0.1:8000"),
                # per model turn: 5 turns at most stay within the endpoint's timeout
                timeout=float(os.environ.get("DOCS_QA_TIMEOUT", "25")),
            )
            self.chat = gateway_chat(client, self.route, key)

    def _search(self, query: str, k: int = 5) -> list[Any]:
        # one search at a time: /ask's threads and /search share the query encoder, which
        # runs on one BLAS thread, where two encodings at once are no faster than one after
        # the other (the encoder itself is thread-safe: Embedder.encode takes its own lock)
        with self.searching:
            return list(self.index.search(query, k=k))

    @endpoint
    def search(
        self,
        query: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)],
        k: Annotated[int, Field(ge=1, le=MAX_K)] = 5,
    ) -> list[SearchHit]:
        """The k passages that best match the query (BM25 and dense, fused)."""
        hits = self._search(_text(query, "query"), k)
        return [
            SearchHit(doc=h.doc, title=h.title, text=h.text, score=float(h.score)) for h in hits
        ]

    @endpoint(concurrency=8, timeout=150)
    def ask(self, question: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]) -> AskAnswer:
        """An answer with citations: a language model searches the documents (at most 4
        turns) and answers from what it found; without one, the best sentences found."""
        result = answer(_text(question, "question"), self._search, self.chat)
        return AskAnswer.model_validate(result.to_dict())
