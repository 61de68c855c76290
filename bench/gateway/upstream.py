"""A fake OpenAI-compatible upstream for bench/gateway.py: answers at once, from memory.

``POST /v1/chat/completions`` answers a fixed chat completion with a ``usage`` field; with
``"stream": true`` in the body it answers the same as server-sent events (three content
chunks, a usage chunk, ``data: [DONE]``), in one write. Run with uvicorn::

    uvicorn upstream:app --app-dir bench/gateway --port 9000 --loop uvloop --http httptools
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CREATED = 1_700_000_000
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the fake upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    },
    separators=(",", ":"),
).encode()


def _chunk(delta: dict[str, str], finish: str | None = None, usage: bool = False) -> bytes:
    event: dict[str, object] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        event["usage"] = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


STREAM = b"".join(
    [
        _chunk({"role": "assistant", "content": "Hello"}),
        _chunk({"content": " from the"}),
        _chunk({"content": " fake upstream."}),
        _chunk({}, "stop", usage=True),
        b"data: [DONE]\n\n",
    ]
)


async def chat(request: Request) -> Response:
    body = await request.body()
    if b'"stream":true' in body.replace(b" ", b""):
        return Response(STREAM, media_type="text/event-stream")
    return Response(COMPLETION, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b"ok")


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)
