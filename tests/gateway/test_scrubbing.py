"""``shipyard.gateway.scrubbing`` and ``shipyard.gateway.decoding`` on their own: the forms a
secret is found in, a stream scrubbed across chunk boundaries while holding back at most
(longest form - 1) bytes, and compressed bodies decoded incrementally and within limits.

What the gateway answers with them is tested in ``test_scrubbed_answers.py``."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from shipyard.gateway.decoding import PIECE, decoded
from shipyard.gateway.scrubbing import MARKER, Scrubber, forms
from shipyard.gateway.testing import MockResponse
from shipyard.gateway.upstream_http import ProtocolError, ResponseTooLarge

SECRET = "sk-proj/Ab+c9=x"


def unicode_escaped(text: str, upper: bool = False) -> str:
    hexes = [f"{ord(c):04X}" if upper else f"{ord(c):04x}" for c in text]
    return "".join("\\u" + h for h in hexes)


# spelled out here, not derived from the module under test
WRITTEN = {
    "raw": SECRET,
    "json \\/": "sk-proj\\/Ab+c9=x",
    "json \\u lower": unicode_escaped(SECRET),
    "json \\u upper": unicode_escaped(SECRET, upper=True),
    "url upper": "sk-proj%2FAb%2Bc9%3Dx",
    "url lower": "sk-proj%2fAb%2bc9%3dx",
    "url keeping /": "sk-proj/Ab%2Bc9%3Dx",
    "url keeping / lower": "sk-proj/Ab%2bc9%3dx",
    "url every byte": "".join(f"%{b:02X}" for b in SECRET.encode()),
    "url every byte lower": "".join(f"%{b:02x}" for b in SECRET.encode()),
    "url in json": "sk-proj\\/Ab%2Bc9%3Dx",
}


@pytest.mark.parametrize("form", WRITTEN.values(), ids=list(WRITTEN))
def test_each_form_of_a_secret_is_replaced(form: str) -> None:
    assert form.encode() in forms(SECRET)
    body = b'{"error": {"message": "bad key ' + form.encode() + b'", "again": "'
    body += form.encode() + b'"}}'
    out = Scrubber([SECRET]).scrub(body)
    assert out == b'{"error": {"message": "bad key [redacted]", "again": "[redacted]"}}'


def test_json_escapes_of_quotes_and_backslashes_and_non_ascii() -> None:
    secret = 'k"é\\y'
    scrubber = Scrubber([secret])
    for written in ('k\\"é\\\\y', 'k\\"\\u00e9\\\\y', unicode_escaped(secret)):
        assert scrubber.scrub(f"<{written}>".encode()) == b"<[redacted]>", written
    emoji = "key\U0001f511"  # beyond the BMP: a JSON escape is a surrogate pair
    assert Scrubber([emoji]).scrub(b"<\\u006b\\u0065\\u0079\\ud83d\\udd11>") == b"<[redacted]>"


def test_every_secret_and_nothing_else_is_scrubbed() -> None:
    scrubber = Scrubber(["first-secret-1", "second/secret-2", ""])
    body = b"first-secret-1 second\\/secret-2 first-secret second"
    assert scrubber.scrub(body) == b"[redacted] [redacted] first-secret second"
    assert scrubber.text("Bearer second%2Fsecret-2") == "Bearer [redacted]"
    assert scrubber.headers({"x-id": "first-secret-1", "etag": "w1"}) == {
        "x-id": "[redacted]",
        "etag": "w1",
    }
    nothing = Scrubber()
    assert nothing.forms == () and nothing.hold == 0
    assert nothing.scrub(body) is body


def test_the_hold_is_the_longest_form_minus_one() -> None:
    scrubber = Scrubber([SECRET, "short-1"])
    longest = max(len(f) for f in forms(SECRET))
    assert longest == len(unicode_escaped(SECRET)) == 6 * len(SECRET)
    assert scrubber.hold == longest - 1


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def scrubbed(scrubber: Scrubber, *parts: bytes) -> list[bytes]:
    async def main() -> list[bytes]:
        return [chunk async for chunk in scrubber.stream(chunks_of(*parts))]

    return asyncio.run(main())


@pytest.mark.parametrize("form", WRITTEN.values(), ids=list(WRITTEN))
@pytest.mark.parametrize("pieces", [2, 3, 12])
def test_a_secret_split_across_chunks_is_scrubbed(form: str, pieces: int) -> None:
    body = f'data: {{"content": "key {form} end"}}\n\n'.encode()
    at = body.index(form.encode())
    cuts = [at + len(form) * i // pieces for i in range(1, pieces)]
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert len(parts) == pieces and all(form.encode() not in p for p in parts)
    out = scrubbed(Scrubber([SECRET]), *parts)
    assert b"".join(out) == b'data: {"content": "key [redacted] end"}\n\n'


def test_a_stream_holds_back_only_what_may_begin_a_secret_and_at_most_the_hold() -> None:
    scrubber = Scrubber([SECRET])
    event = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'
    # an event that cannot end in the start of a form goes on whole, at once
    assert scrubbed(scrubber, event, event) == [event, event]
    # the start of a form waits for the next chunk, and only that start
    longest = unicode_escaped(SECRET).encode()
    start = longest[:-1]  # the longest a start can be: hold bytes
    assert len(start) == scrubber.hold
    out = scrubbed(scrubber, b"abc" + start, b"x")
    assert out == [b"abc", start + b"x"]
    out = scrubbed(scrubber, b"abc" + start, longest[-1:] + b"!")
    assert out == [b"abc", MARKER + b"!"]
    out = scrubbed(scrubber, b"abc sk-pr", b"oj/")
    assert out == [b"abc ", b"sk-proj/"]  # the end of the stream lets the rest go


def test_a_stream_is_never_buffered() -> None:
    scrubber = Scrubber([SECRET])
    piece = b"data: no secret here, only its start: sk-proj"
    pulled = 0

    async def upstream() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(200):
            pulled += 1
            yield piece

    lag: list[int] = []  # bytes pulled from the upstream but not yet passed on

    async def main() -> None:
        out = 0
        async for chunk in scrubber.stream(upstream()):
            out += len(chunk)
            lag.append(pulled * len(piece) - out)

    asyncio.run(main())
    assert len(lag) == 201  # something goes on for each chunk, then the held end
    assert lag[:-1] == [len(b"sk-proj")] * 200 and lag[-1] == 0


def test_closing_a_scrubbed_stream_closes_the_upstream() -> None:
    closed = asyncio.Event()

    async def upstream() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"chunk "
        finally:
            closed.set()

    async def main() -> None:
        stream = Scrubber([SECRET]).stream(upstream())
        assert isinstance(stream, AsyncGenerator)
        assert await anext(stream) == b"chunk "
        await stream.aclose()
        assert closed.is_set()

    asyncio.run(main())


# -- decoding ------------------------------------------------------------------------------------
def read(response: MockResponse, limit: int | None = None) -> tuple[dict[str, str], bytes]:
    async def main() -> tuple[dict[str, str], bytes]:
        answer = decoded(response, "http://up.test:80")
        body = await answer.read(limit)
        return dict(answer.headers), body

    return asyncio.run(main())


def split(data: bytes, size: int) -> MockResponse:
    return MockResponse(
        200,
        headers={"content-encoding": "gzip", "content-length": str(len(data)), "x-a": "1"},
        stream=chunks_of(*(data[i : i + size] for i in range(0, len(data), size))),
    )


def test_gzip_split_anywhere_is_decoded_and_the_headers_fixed() -> None:
    body = b'{"text": "' + b"hello " * 5000 + b'"}'
    packed = gzip.compress(body)
    for size in (1, 7, 1000, len(packed)):
        headers, data = read(split(packed, size))
        assert data == body
        assert headers == {"x-a": "1"}  # no content-encoding, no (compressed) content-length


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_wrapped_or_raw_is_decoded(wbits: int) -> None:
    packer = zlib.compressobj(wbits=wbits)
    packed = packer.compress(b"deflated " * 100) + packer.flush()
    response = MockResponse(200, headers={"content-encoding": "deflate"}, content=packed)
    assert read(response)[1] == b"deflated " * 100


def test_identity_passes_and_other_codings_are_refused() -> None:
    plain = MockResponse(200, content=b"as is")
    assert decoded(plain) is plain
    assert read(MockResponse(200, headers={"content-encoding": "identity"}, content=b"x")) == (
        {},
        b"x",
    )
    for coding in ("br", "zstd", "gzip, gzip", "compress"):
        with pytest.raises(ProtocolError, match="asked for identity"):
            decoded(MockResponse(200, headers={"content-encoding": coding}))


def test_broken_or_cut_gzip_is_a_protocol_error() -> None:
    packed = gzip.compress(b"x" * 1000)
    with pytest.raises(ProtocolError, match="ends before"):
        read(split(packed[:-12], 100))
    with pytest.raises(ProtocolError, match="cannot be decoded"):
        read(split(b"\x1f\x8b" + b"\x00" * 30, 100))
    assert read(split(b"", 1))[1] == b""  # no body at all


def test_a_gzip_bomb_stops_at_the_limit_and_streams_in_bounded_pieces() -> None:
    packed = gzip.compress(b"\0" * (8 * PIECE))
    with pytest.raises(ResponseTooLarge, match="decoded answer is larger than 1000"):
        read(split(packed, len(packed)), limit=1000)

    async def pieces() -> list[int]:
        answer = decoded(split(packed, len(packed)))
        return [len(piece) async for piece in answer.stream()]

    sizes = asyncio.run(pieces())
    assert sum(sizes) == 8 * PIECE and max(sizes) <= PIECE
