"""The answer to a streamed request (SSE, or any ``/gateway`` route's body), sent chunk by
chunk as the upstream produces it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shipyard.gateway.errors import openai_error_body
from shipyard.gateway.exchange import Exchange, quietly
from shipyard.gateway.transport import UpstreamResponse
from shipyard.gateway.upstream_http import UpstreamError, UpstreamTimeout

log = logging.getLogger("shipyard.gateway")


class Streamed(Response):
    """A response whose body is sent chunk by chunk as the upstream produces it.

    The upstream response, the table lease and the accounting (``account(ex, status)``) are
    closed in ``finally``, also when the caller goes away (its disconnect stops the upstream
    read).
    """

    def __init__(
        self,
        account: Callable[[Exchange, int], None],
        ex: Exchange,
        upstream: UpstreamResponse,
        chunks: AsyncIterator[bytes],
        status: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(None, status, headers=headers)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.account, self.ex, self.upstream, self.chunks = account, ex, upstream, chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        status = self.status_code
        try:
            await send(
                {"type": "http.response.start", "status": status, "headers": self.raw_headers}
            )
            try:
                async for chunk in self.chunks:
                    if gone.is_set():
                        status = 499
                        break
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError as exc:
                status = 504 if isinstance(exc, UpstreamTimeout) else 502
                route = self.ex.route.name if self.ex.route else "?"
                message = (
                    f"the upstream of route {route!r} broke off the answer ({type(exc).__name__})"
                )
                log.warning("%s", message)
                if self.ex.surface == "openai" and self.upstream.status_code == 200:
                    error = openai_error_body(status, message)
                    await send(
                        {
                            "type": "http.response.body",
                            "body": b"data: " + error + b"\n\n",
                            "more_body": True,
                        }
                    )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with quietly():
                    await aclose()
            await self.upstream.aclose()
            self.account(self.ex, status)


__all__ = ["Streamed"]
