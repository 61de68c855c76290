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

import bisect
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
        backend = getattr(tokenizer, "backend_tokenizer", None)
        #: WordPiece after BERT's pre-tokenizer: no token spans whitespace or punctuation, so
        #: the tokens of spans joined by whitespace are the sum of theirs (counts add up)
        self.additive = (
            backend is not None
            and type(backend.model).__name__ == "WordPiece"
            and type(backend.pre_tokenizer).__name__ == "BertPreTokenizer"
        )

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

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Each text's tokens as (start, end) character offsets, special tokens not included."""
        if not texts:
            return []
        enc = self.tokenizer(
            list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [[(int(a), int(b)) for a, b in spans] for spans in enc["offset_mapping"]]

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
    cut: bool = False  # a token window cut out of a longer sentence


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
    offsets = counter.offsets([s.text for s in sections])  # each section tokenized once
    pieces: list[_Piece] = []
    for section, header, htokens, spans in zip(
        sections, headers, header_tokens, offsets, strict=True
    ):
        if htokens > max_tokens // 4:  # an absurd heading must not crowd out the text
            header = counter.windows(header, max_tokens // 4)[0]
            htokens = counter.count([header])[0]
        budget = max_tokens - counter.special - htokens
        for text, tokens, cut in _pack(_units(section.text, spans, budget), budget, overlap):
            estimate = counter.special + htokens + tokens
            pieces.append(_Piece(section.heading_path, header, text, estimate, cut))
    pieces = _enforce(pieces, counter, max_tokens)
    chunks = []
    seen: dict[str, int] = {}
    for piece in pieces:
        embed = f"{piece.header}\n{piece.text}" if piece.header else piece.text
        key = f"{doc.path}\0{embed}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:  # the same text twice under the same headings: distinct ids
            key += f"\0{seen[key]}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        chunks.append(
            Chunk(digest, doc.path, doc.title, piece.path, piece.text, dict(doc.meta), doc.type)
        )
    return chunks


@dataclass
class _Piece:
    path: tuple[str, ...]
    header: str
    text: str
    estimate: int  # tokens as the model will see it, from the section's tokenization
    cut: bool  # holds a token window (cut inside a word: re-tokenized, it may count more)


def _spans(pattern: re.Pattern[str], text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The spans of ``text[start:end]`` between matches of ``pattern``, blank ones left out."""
    out, at = [], start
    for match in pattern.finditer(text, start, end):
        out.append((at, match.start()))
        at = match.end()
    out.append((at, end))
    return [(a, b) for a, b in out if text[a:b].strip()]


def _units(text: str, offsets: list[tuple[int, int]], budget: int) -> list[_Unit]:
    """Paragraphs; a paragraph over ``budget`` as sentences; a sentence over it as token
    windows. Counts come from the section's one tokenization (``offsets``): the tokens that
    start inside a span."""
    starts = [a for a, _ in offsets]

    def tokens(a: int, b: int) -> tuple[int, int]:
        return bisect.bisect_left(starts, a), bisect.bisect_left(starts, b)

    units: list[_Unit] = []
    for pa, pb in _spans(_PARAGRAPH, text, 0, len(text)):
        first, last = tokens(pa, pb)
        if last - first <= budget:
            units.append(_Unit(text[pa:pb].strip("\n"), last - first, "\n\n"))
            continue
        joiner = "\n\n"
        for sa, sb in _spans(_SENTENCE, text, pa, pb):
            first, last = tokens(sa, sb)
            if last - first <= budget:
                units.append(_Unit(text[sa:sb].strip(), last - first, joiner))
            else:
                for w in range(first, last, budget):
                    end = min(w + budget, last)
                    piece = text[offsets[w][0] : offsets[end - 1][1]].strip()
                    units.append(_Unit(piece, end - w, joiner, cut=True))
                    joiner = " "
            joiner = " "
    return [u for u in units if u.text]


def _pack(units: list[_Unit], budget: int, overlap: int) -> list[tuple[str, int, bool]]:
    """Units packed greedily into texts of at most ``budget`` tokens, with overlap:
    (text, tokens, holds a cut unit)."""
    texts: list[tuple[str, int, bool]] = []
    current: list[_Unit] = []
    size = 0
    for unit in units:
        if current and size + unit.tokens > budget:
            texts.append(_join(current, size))
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
        texts.append(_join(current, size))
    return texts


def _join(units: list[_Unit], size: int) -> tuple[str, int, bool]:
    text = "".join((u.joiner if i else "") + u.text for i, u in enumerate(units)).strip()
    return text, size, any(u.cut for u in units)


#: a chunk estimated this close to the limit is re-tokenized whole to check it, unless the
#: tokenizer's counts add up (WordPiece); one holding a token window always is
SLACK = 32


def _enforce(pieces: list[_Piece], counter: TokenCounter, max_tokens: int) -> list[_Piece]:
    """Pieces measured as the model will see them (those that could be over the limit); one
    over it is cut again, tighter, until none is."""
    for _ in range(8):
        near = max_tokens if counter.additive else max_tokens - SLACK
        suspects = [i for i, p in enumerate(pieces) if p.cut or p.estimate > near]
        embeds = [f"{pieces[i].header}\n{pieces[i].text}" if pieces[i].header else pieces[i].text
                  for i in suspects]  # fmt: skip
        over = {}
        for i, total in zip(suspects, counter.total(embeds), strict=True):
            pieces[i].estimate, pieces[i].cut = total, False
            if total > max_tokens:
                over[i] = total
        if not over:
            return pieces
        fixed: list[_Piece] = []
        for i, piece in enumerate(pieces):
            if i not in over:
                fixed.append(piece)
                continue
            size = max(8, counter.count([piece.text])[0] - (over[i] - max_tokens) - 4)
            for part in counter.windows(piece.text, size):
                fixed.append(_Piece(piece.path, piece.header, part, max_tokens, True))
        pieces = fixed
    raise RetrievalError(f"could not cut chunks under {max_tokens} tokens")
