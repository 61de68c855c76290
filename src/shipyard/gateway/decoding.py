"""Upstream bodies that arrive compressed although the gateway asked for ``identity``.

The gateway asks every upstream for ``accept-encoding: identity`` (the pool sends it, and
no route may forward a caller's ``accept-encoding``), because a compressed body cannot be
scrubbed of credentials (:mod:`shipyard.gateway.scrubbing`). An upstream that compresses
anyway gets its body decompressed here and passed on decoded, without ``Content-Encoding``:
:func:`decoded` wraps a gzip or deflate answer in :class:`Decoded`, and refuses any other
coding with a :class:`~shipyard.gateway.upstream_http.ProtocolError` (502 for the caller).

Decompression is incremental and bounded: a stream is decoded chunk by chunk, at most
:data:`PIECE` bytes of output at a time, and :meth:`Decoded.read` stops past its limit, so a
small compressed body cannot blow up in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping

from shipyard.gateway.transport import UpstreamResponse, read_body
from shipyard.gateway.upstream_http import ProtocolError

#: the most decompressed bytes produced by one step
PIECE = 64 * 1024
_CODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}
_DROPPED = frozenset({"content-encoding", "content-length"})


def decoded(response: UpstreamResponse, origin: str = "") -> UpstreamResponse:
    """``response`` itself if its body is not encoded, else a :class:`Decoded` view of it.

    Raises :class:`ProtocolError` for a coding other than gzip or deflate (or several).
    """
    value = response.headers.get("content-encoding")
    if value is None:
        return response
    codings = [c.strip().lower() for c in value.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return Decoded(response, None, origin)
    if len(codings) > 1 or codings[0] not in _CODINGS:
        raise ProtocolError(
            f"the upstream answered with Content-Encoding {value!r} although the gateway "
            "asked for identity, and only gzip or deflate can be decoded (to scrub "
            "credentials out of the answer)",
            origin,
        )
    return Decoded(response, _CODINGS[codings[0]], origin)


class Decoded:
    """An :class:`~shipyard.gateway.transport.UpstreamResponse` whose body is ``response``'s
    decompressed (``coding`` ``gzip`` or ``deflate``; None: as it is), headers without
    ``Content-Encoding`` and ``Content-Length``."""

    def __init__(self, response: UpstreamResponse, coding: str | None, origin: str = "") -> None:
        self.response = response
        self.origin = origin
        self.status_code = response.status_code
        self.coding = coding
        self._headers = {k: v for k, v in response.headers.items() if k not in _DROPPED}

    @property
    def headers(self) -> Mapping[str, str]:
        """The upstream's headers but the body's encoding and length."""
        return self._headers

    async def read(self, limit: int | None = None) -> bytes:
        """The whole decoded body; ``ResponseTooLarge`` past ``limit`` decoded bytes."""
        return await read_body(self, limit, self.origin, "decoded answer")

    async def stream(self) -> AsyncIterator[bytes]:
        """The decoded body, piece by piece as the upstream's arrive."""
        if self.coding is None:
            async for chunk in self.response.stream():
                yield chunk
            return
        inflater: zlib._Decompress | None = None
        pending = b""
        async for chunk in self.response.stream():
            if inflater is None:
                pending += chunk
                if len(pending) < 2:
                    continue  # deflate's two first bytes say whether it is wrapped
                inflater = zlib.decompressobj(_window(self.coding, pending))
                chunk, pending = pending, b""
            while not inflater.eof:  # bytes after the end are not part of the body
                try:
                    out = inflater.decompress(chunk, PIECE)
                except zlib.error as exc:
                    raise self._broken(f"cannot be decoded ({exc})") from None
                chunk = inflater.unconsumed_tail
                if out:
                    yield out
                if not chunk and len(out) < PIECE:
                    break  # all in, all out: the next chunk goes on
        if inflater is None and not pending:
            return  # no body at all (a 204, a HEAD's answer)
        if inflater is None or not inflater.eof:
            raise self._broken("ends before its compressed stream does")

    def _broken(self, why: str) -> ProtocolError:
        return ProtocolError(f"the upstream's {self.coding} body {why}", self.origin)

    async def aclose(self) -> None:
        """Release the upstream's answer."""
        await self.response.aclose()


def _window(coding: str, first: bytes) -> int:
    """zlib's ``wbits`` for a body starting with ``first``: gzip; deflate in its zlib
    wrapper (RFC 9110) or, as some servers send it, raw."""
    if coding == "gzip":
        return 16 + zlib.MAX_WBITS
    wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
    return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS


__all__ = ["PIECE", "Decoded", "decoded"]
