"""The floor for a Python proxy: Starlette and one shared ``httpx.AsyncClient`` (keep-alive
pool), forwarding the body as it is and streaming the answer back. No key, no limits, no
accounting. ``BENCH_UPSTREAM`` is the upstream's base URL (``http://127.0.0.1:9000``)::

    BENCH_UPSTREAM=http://127.0.0.1:9000 uvicorn minimal_proxy:app --app-dir bench/gateway
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9000")
client = httpx.AsyncClient(
    base_url=UPSTREAM,
    limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
    timeout=30,
)


async def chat(request: Request) -> Response:
    upstream = await client.send(
        client.build_request(
            "POST",
            "/v1/chat/completions",
            content=await request.body(),
            headers={"content-type": "application/json"},
        ),
        stream=True,
    )
    if upstream.headers.get("content-type", "").startswith("text/event-stream"):
        return StreamingResponse(
            upstream.aiter_raw(),
            upstream.status_code,
            media_type="text/event-stream",
            background=BackgroundTask(upstream.aclose),
        )
    body = await upstream.aread()
    await upstream.aclose()
    return Response(body, upstream.status_code, media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await client.aclose()


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan)
