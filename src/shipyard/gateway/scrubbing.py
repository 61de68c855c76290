"""Scrubbing the configured upstream credentials out of everything an upstream answers.

An upstream may echo the credential the gateway sent it: in an error message, a debug
header, a URL it quotes. Every byte of an upstream's answer that reaches a caller — status
line aside: headers, whole bodies and streams, at any status — goes through a
:class:`Scrubber`, which replaces each form of each secret with :data:`MARKER`.

The forms of a secret (:func:`forms`) are the ways an upstream is likely to write it:

- as it is (UTF-8);
- JSON-escaped: ``"`` and ``\\`` escaped (as ``json.dumps`` writes it, non-ASCII kept or
  ``\\uXXXX``-escaped), each also with ``/`` written ``\\/``; and every character as a
  ``\\uXXXX`` escape, lower-case hex or upper-case hex;
- URL-encoded: percent-encoded as ``urllib.parse.quote`` does (with ``/`` kept, and with
  ``/`` encoded), and every byte percent-encoded; each in upper-case hex and in lower-case
  hex (and with ``/`` written ``\\/``, as when a URL sits in a JSON string).

Streams are scrubbed across chunk boundaries without being buffered: each chunk goes on at
once except its last bytes that could be the start of a form, at most :attr:`Scrubber.hold`
(the length of the longest form minus one) bytes, which wait for the next chunk.

The forms are computed once per configuration load (the gateway builds a new
:class:`Scrubber` then), not per request; a request costs one ``in`` test per form.

>>> scrubber = Scrubber(["sk-abc/123"])
>>> scrubber.scrub(b'{"error": "bad key sk-abc\\\\/123"}')
b'{"error": "bad key [redacted]"}'
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from urllib.parse import quote

#: what each form of a secret is replaced with
MARKER = b"[redacted]"
_HEX = re.compile(r"%[0-9A-F]{2}")


def forms(secret: str) -> frozenset[bytes]:
    """Every byte string ``secret`` is scrubbed as (see the module docstring)."""
    if not secret:
        return frozenset()
    out = {
        secret,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        _unicode_escaped(secret),
        _unicode_escaped(secret).upper().replace("\\U", "\\u"),
    }
    encoded = {
        quote(secret, safe="/"),
        quote(secret, safe=""),
        "".join(f"%{byte:02X}" for byte in secret.encode()),
    }
    out |= encoded | {_HEX.sub(lambda m: m.group().lower(), text) for text in encoded}
    out |= {text.replace("/", "\\/") for text in out if "/" in text}
    return frozenset(text.encode() for text in out)


def _unicode_escaped(text: str) -> str:
    """Every character as a JSON ``\\uXXXX`` escape (a surrogate pair beyond the BMP)."""
    units = text.encode("utf-16-be")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


class Scrubber:
    """Replaces every form of every secret in ``secrets`` with :data:`MARKER`.

    Built once per configuration; :meth:`scrub` takes a whole body, :meth:`text` a header
    value, :meth:`stream` a body arriving chunk by chunk.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        every: set[bytes] = set()
        for secret in secrets:
            every |= forms(secret)
        #: longest first, so that no shorter form cuts a longer one in two
        self.forms: tuple[bytes, ...] = tuple(sorted(every, key=lambda f: (-len(f), f)))
        #: the most bytes a stream holds back: the longest form's length minus one
        self.hold = max((len(f) for f in self.forms), default=1) - 1
        starts: dict[bytes, list[bytes]] = {}
        for form in self.forms:
            starts.setdefault(form[:1], []).append(form)
        #: the forms by their first byte, to find where a form may begin at a chunk's end
        self._starts = tuple((first, tuple(group)) for first, group in starts.items())

    def scrub(self, data: bytes) -> bytes:
        """``data`` with every form replaced."""
        for form in self.forms:
            if form in data:
                data = data.replace(form, MARKER)
        return data

    def text(self, value: str) -> str:
        """A header value (latin-1 text) with every form replaced."""
        if not self.forms:
            return value
        codec = "latin-1" if value.isascii() or max(value) <= "\xff" else "utf-8"
        raw = value.encode(codec)  # latin-1: the header's bytes as they came off the wire
        clean = self.scrub(raw)
        return value if clean is raw else clean.decode(codec)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` with every value scrubbed."""
        return {name: self.text(value) for name, value in headers.items()}

    def stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks`` scrubbed; each goes on at once but for at most :attr:`hold` bytes."""
        return self._held(chunks) if self.forms else chunks

    async def _held(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        tail = b""
        try:
            async for chunk in chunks:
                data = self.scrub(tail + chunk if tail else chunk)
                cut = self.cut(data)
                tail = data[cut:]
                if cut:
                    yield data[:cut] if tail else data
            if tail:
                yield tail
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    def cut(self, data: bytes) -> int:
        """Where the bytes that may begin a form start, among ``data``'s last :attr:`hold`
        (``len(data)`` if none may): what is after the cut waits for the next chunk."""
        size = len(data)
        start = max(0, size - self.hold)
        best = size
        for first, group in self._starts:
            at = data.find(first, start, best)
            while at != -1:
                rest = data[at:]
                if any(form.startswith(rest) for form in group):
                    best = at
                    break
                at = data.find(first, at + 1, best)
        return best


__all__ = ["MARKER", "Scrubber", "forms"]
