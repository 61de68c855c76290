"""The gateway's own HTTP/1.1 client, against real asyncio servers on 127.0.0.1: pooling,
body framings, stale connections, timeouts, limits, redirects, streaming and TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shipyard.gateway.upstream_http import (
    ConnectError,
    Pool,
    ProtocolError,
    Request,
    ResponseTooLarge,
    Timeouts,
    UpstreamTimeout,
)

Reader, Writer = asyncio.StreamReader, asyncio.StreamWriter
Handler = Callable[[Reader, Writer, "Server"], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class Server:
    """A raw HTTP server: ``handler`` runs once per accepted connection."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler, self.ssl_context = handler, ssl_context
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.url = ""

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test ended: the handler's job is done
        finally:
            writer.close()

    async def read(self, reader: asyncio.StreamReader) -> bool:
        """Read one request into :attr:`requests`; False at the end of the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        line, *fields = head.decode("latin-1").split("\r\n")[:-2]
        headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((line, headers, body))
        return True


def serve_each(answer: bytes) -> Handler:
    """Answer every request on a connection with ``answer``."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server
    ) -> None:
        while await s.read(reader):
            writer.write(answer)
            await writer.drain()

    return handler


def get(path: str = "/x", timeout: float = 5.0, **headers: str) -> Request:
    return Request("GET", path, headers, b"", Timeouts.of(timeout))


async def fetch(pool: Pool, request: Request, limit: int | None = None) -> tuple[int, bytes]:
    response = await pool.send(request)
    try:
        return response.status_code, await response.read(limit)
    finally:
        await response.aclose()


def test_sequential_requests_share_one_connection() -> None:
    async def main() -> None:
        async with Server(serve_each(OK)) as server:
            pool = Pool(server.url)
            for _ in range(5):
                assert await fetch(pool, get()) == (200, b"ok")
            post = Request("POST", "/v1/p?q=1", {"x-a": "b"}, b'{"a":1}', Timeouts.of(5))
            assert await fetch(pool, post) == (200, b"ok")
            await pool.close()
            assert server.connections == 1 and len(server.requests) == 6
            line, headers, body = server.requests[-1]
            assert line == "POST /v1/p?q=1 HTTP/1.1" and body == b'{"a":1}'
            assert headers["host"] == server.url.removeprefix("http://")
            assert headers["x-a"] == "b" and headers["accept-encoding"] == "identity"

    asyncio.run(main())


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello world",  # ends with the connection
    ],
    ids=["content-length", "chunked", "close-delimited"],
)
def test_body_framings(answer: bytes) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server
    ) -> None:
        while await s.read(reader):
            writer.write(answer)
            await writer.drain()
            if b"close" in answer:
                return

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url)
            for _ in range(2):
                assert await fetch(pool, get()) == (200, b"hello world")
            assert server.connections == (2 if b"close" in answer else 1)

    asyncio.run(main())


def test_connection_close_is_honoured_even_if_the_socket_stays_open() -> None:
    answer = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"

    async def main() -> None:
        async with Server(serve_each(answer)) as server:
            pool = Pool(server.url)
            for _ in range(3):
                assert await fetch(pool, get()) == (200, b"ok")
            assert server.connections == 3

    asyncio.run(main())


def test_an_idle_connection_closed_by_the_server_is_retried_once_transparently() -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server
    ) -> None:
        await s.read(reader)
        writer.write(OK)
        await writer.drain()
        await s.read(reader)  # the second request on this connection: closed unanswered

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url)
            for _ in range(3):
                assert await fetch(pool, get()) == (200, b"ok")
            # each reuse found the connection dead before any byte: once more on a new one
            assert server.connections == 3 and len(server.requests) == 5

    asyncio.run(main())


def test_a_new_connection_closed_unanswered_is_not_retried() -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server
    ) -> None:
        await s.read(reader)

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url)
            with pytest.raises(ProtocolError, match="without answering"):
                await fetch(pool, get())
            assert server.connections == 1 and len(server.requests) == 1

    asyncio.run(main())


def test_a_silent_server_times_out() -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server
    ) -> None:
        await s.read(reader)
        await asyncio.sleep(5)

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url)
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout, match=r"no answer from .* within 0.2 s"):
                await fetch(pool, get(timeout=0.2))
            assert 0.15 < time.monotonic() - started < 2

    asyncio.run(main())


def test_a_body_over_the_limit_is_refused_and_its_connection_closed() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100_000

    async def main() -> None:
        async with Server(serve_each(big)) as server:
            pool = Pool(server.url)
            with pytest.raises(ResponseTooLarge, match="larger than 1000 bytes"):
                await fetch(pool, get(), limit=1000)
            assert len(await fetch(pool, get(), limit=200_000)) == 2
            assert server.connections == 2

    asyncio.run(main())


def test_redirects_are_returned_not_followed() -> None:
    answer = b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n"

    async def main() -> None:
        async with Server(serve_each(answer)) as server:
            pool = Pool(server.url)
            response = await pool.send(get())
            assert response.status_code == 302
            assert response.headers["location"] == "http://169.254.169.254/"
            await response.aclose()
            assert len(server.requests) == 1

    asyncio.run(main())


def test_each_chunk_is_handed_over_before_the_next_is_sent() -> None:
    got_first = asyncio.Event()

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server
    ) -> None:
        await s.read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7\r\nchunk 1\r\n")
        await writer.drain()
        await asyncio.wait_for(got_first.wait(), 5)  # a buffering client never gets here
        writer.write(b"7\r\nchunk 2\r\n0\r\n\r\n")
        await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url)
            response = await pool.send(get())
            seen = []
            async for chunk in response.stream():
                seen.append(chunk)
                got_first.set()
            await response.aclose()
            assert seen == [b"chunk 1", b"chunk 2"]

    asyncio.run(main())


def test_an_answer_not_read_to_the_end_closes_its_connection() -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server
    ) -> None:
        while await s.read(reader):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
            await writer.drain()
            if len(s.requests) > 1:
                writer.write(b"-done")
                await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            pool = Pool(server.url)
            response = await pool.send(get())
            await response.aclose()  # 4 of 10 bytes arrived: never reused
            with pytest.raises(UpstreamTimeout):
                await fetch(pool, get(timeout=0.2))  # 9 of 10 bytes arrive
            assert server.connections == 2

    asyncio.run(main())


def test_connect_errors_header_injection_and_pool_timeouts() -> None:
    async def main() -> None:
        async with Server(serve_each(OK)) as server:
            dead = server.url
        with pytest.raises(ConnectError, match="cannot connect to"):
            await fetch(Pool(dead), get())
        async with Server(serve_each(OK)) as server:
            pool = Pool(server.url)
            with pytest.raises(ProtocolError, match="line break"):
                await fetch(pool, get(**{"x-a": "b\r\nhost: evil"}))
            one = Pool(server.url, max_connections=1)
            held = await one.send(get())  # its body is not read: the only slot stays busy
            with pytest.raises(UpstreamTimeout, match="no free connection"):
                await one.send(get(timeout=0.1))
            await held.read()
            await held.aclose()
            assert await fetch(one, get()) == (200, b"ok")

    asyncio.run(main())


def test_no_proxy_is_taken_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there

    async def main() -> None:
        async with Server(serve_each(OK)) as server:
            assert await fetch(Pool(server.url), get()) == (200, b"ok")

    asyncio.run(main())


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_is_verified(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        async with Server(serve_each(OK), ssl_context=server_context) as server:
            pool = Pool(server.url, ssl_context=trusting)
            for _ in range(2):
                assert await fetch(pool, get()) == (200, b"ok")
            assert server.connections == 1
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await fetch(Pool(server.url), get())  # certifi's CAs do not know this one

    asyncio.run(main())
