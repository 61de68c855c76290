"""Chunks: pieces of one section of one document, measured in the embedding model's tokens.

A chunk never crosses a section (so never a top-level one) and carries its heading path; what
is embedded and keyword-indexed is :attr:`Chunk.embed_text` — the heading path on a line, then
the text — and that, with the model's special tokens, never passes ``max_tokens`` (the model
would silently cut it). Sections are cut at paragraphs, then sentences, then token windows;
``overlap`` tokens' worth of the previous chunk's trailing paragraphs or sentences start the
next one. A chunk's ``id`` is a content hash: the same text under the same headings of the
same document keeps its id across builds, which is what lets a rebuild re-embed only what
changed.

>>> chunks = chunk_documents(docs, Embedder().tokenizer, max_tokens=256)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.retrieval.documents import Document
from shipyard.retrieval.errors import RetrievalError

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: ``id`` (content hash), ``doc`` (the document's relative path),
    the document's ``title``, the ``heading_path`` it sits under, its ``text``, the
    document's ``meta`` and ``type``."""

    id: str
    doc: str
    title: str
    heading_path: tuple[str, ...]
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    type: str = ""

    @property
    def header(self) -> str:
        """Title and headings, ``" > "``-joined (the title once, if the path starts with it)."""
        return _header(self.title, self.heading_path)

    @property
    def embed_text(self) -> str:
        """What is embedded and keyword-indexed: the header line, then the text."""
        return f"{self.header}\n{self.text}" if self.header else self.text


def _header(title: str, path: tuple[str, ...]) -> str:
    parts = path if (not title or (path and path[0] == title)) else (title, *path)
    return " > ".join(parts)


class TokenCounter:
    """Counts and cuts text in a Hugging Face tokenizer's tokens (or an Embedder's)."""

    def __init__(self, tokenizer: Any) -> None:
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # an Embedder gives its own
        if not callable(tokenizer):
            raise RetrievalError(
                f"chunk_documents needs a tokenizer (a Hugging Face tokenizer or an Embedder), "
                f"got {type(tokenizer).__name__}"
            )
        self.tokenizer = tokenizer
        special = getattr(tokenizer, "num_special_tokens_to_add", None)
        self.special = int(special(pair=False)) if special else 2

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, special tokens not included."""
        if not texts:
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def total(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text as the model sees it, special tokens included."""
        if not texts:
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=True, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def windows(self, text: str, size: int) -> list[str]:
        """``text`` cut into pieces of at most ``size`` tokens, at token boundaries."""
        size = max(1, size)
        enc = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets = enc["offset_mapping"]
        pieces = []
        for start in range(0, len(offsets), size):
            span = offsets[start : start + size]
            piece = text[span[0][0] : span[-1][1]].strip()
            if piece:
                pieces.append(piece)
        return pieces


@dataclass
class _Unit:
    text: str
    tokens: int
    joiner: str  # what goes before it when it follows another unit in a chunk


def chunk_documents(
    docs: Iterable[Document],
    tokenizer: Any,
    max_tokens: int = 256,
    overlap: int = 32,
) -> list[Chunk]:
    """Every document cut into chunks of at most ``max_tokens`` tokens of ``tokenizer``
    (special tokens and the header line included), in document order."""
    if max_tokens < 32:
        raise RetrievalError(f"max_tokens={max_tokens!r} is too small: at least 32")
    if overlap < 0 or overlap >= max_tokens // 2:
        raise RetrievalError(f"overlap={overlap!r} must be between 0 and max_tokens/2")
    counter = TokenCounter(tokenizer)
    chunks: list[Chunk] = []
    for doc in docs:
        chunks.extend(_chunk_document(doc, counter, max_tokens, overlap))
    return chunks


def _chunk_document(
    doc: Document, counter: TokenCounter, max_tokens: int, overlap: int
) -> list[Chunk]:
    sections = [s for s in doc.outline() if s.text.strip()]
    headers = [_header(doc.title, s.heading_path) for s in sections]
    header_tokens = counter.count(headers)
    pieces: list[tuple[tuple[str, ...], str, str]] = []  # (heading path, header, text)
    for section, header, htokens in zip(sections, headers, header_tokens, strict=True):
        if htokens > max_tokens // 4:  # an absurd heading must not crowd out the text
            header = counter.windows(header, max_tokens // 4)[0]
            htokens = counter.count([header])[0]
        budget = max_tokens - counter.special - htokens
        for text in _pack(_units(section.text, counter, budget), budget, overlap):
            pieces.append((section.heading_path, header, text))
    pieces = _enforce(pieces, counter, max_tokens)
    chunks = []
    seen: dict[str, int] = {}
    for path, header, text in pieces:
        embed = f"{header}\n{text}" if header else text
        key = f"{doc.path}\0{embed}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:  # the same text twice under the same headings: distinct ids
            key += f"\0{seen[key]}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        chunks.append(Chunk(digest, doc.path, doc.title, path, text, dict(doc.meta), doc.type))
    return chunks


def _units(text: str, counter: TokenCounter, budget: int) -> list[_Unit]:
    """Paragraphs; a paragraph over ``budget`` as sentences; a sentence over it as windows."""
    paragraphs = [p.strip("\n") for p in _PARAGRAPH.split(text) if p.strip()]
    units: list[_Unit] = []
    for paragraph, tokens in zip(paragraphs, counter.count(paragraphs), strict=True):
        if tokens <= budget:
            units.append(_Unit(paragraph, tokens, "\n\n"))
            continue
        sentences = [s for s in _SENTENCE.split(paragraph) if s.strip()]
        first = True
        for sentence, stokens in zip(sentences, counter.count(sentences), strict=True):
            parts = [sentence] if stokens <= budget else counter.windows(sentence, budget)
            counts = [stokens] if stokens <= budget else counter.count(parts)
            for part, ptokens in zip(parts, counts, strict=True):
                units.append(_Unit(part, ptokens, "\n\n" if first else " "))
                first = False
    return units


def _pack(units: list[_Unit], budget: int, overlap: int) -> list[str]:
    """Units packed greedily into texts of at most ``budget`` tokens, with overlap."""
    texts: list[str] = []
    current: list[_Unit] = []
    size = 0
    for unit in units:
        if current and size + unit.tokens > budget:
            texts.append(_join(current))
            carried: list[_Unit] = []
            carried_size = 0
            for prev in reversed(current[1:]):  # never the whole chunk again
                if carried_size + prev.tokens > overlap:
                    break
                carried.insert(0, prev)
                carried_size += prev.tokens
            while carried and carried_size + unit.tokens > budget:
                carried_size -= carried.pop(0).tokens
            current, size = carried, carried_size
        current.append(unit)
        size += unit.tokens
    if current:
        texts.append(_join(current))
    return texts


def _join(units: list[_Unit]) -> str:
    return "".join((u.joiner if i else "") + u.text for i, u in enumerate(units)).strip()


def _enforce(
    pieces: list[tuple[tuple[str, ...], str, str]], counter: TokenCounter, max_tokens: int
) -> list[tuple[tuple[str, ...], str, str]]:
    """Each piece measured as the model will see it; one over the limit (a tokenizer whose
    counts do not add up across spaces) is cut again, tighter, until none is."""
    for _ in range(8):
        totals = counter.total([f"{h}\n{t}" if h else t for _, h, t in pieces])
        if all(n <= max_tokens for n in totals):
            return pieces
        fixed = []
        for (path, header, text), total in zip(pieces, totals, strict=True):
            if total <= max_tokens:
                fixed.append((path, header, text))
                continue
            size = max(8, counter.count([text])[0] - (total - max_tokens) - 4)
            fixed.extend((path, header, part) for part in counter.windows(text, size))
        pieces = fixed
    raise RetrievalError(f"could not cut chunks under {max_tokens} tokens")
