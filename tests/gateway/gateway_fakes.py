"""Fake upstreams for the gateway tests (small Starlette apps on real loopback ports) and a
uvicorn-in-a-thread server to run them and the gateway itself."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from shipyard.gateway import Gateway


SECRETS = {
    "CHAT_KEY": "sk-upstream-secret-chat-0001",
    "BACKUP_KEY": "sk-upstream-secret-backup-0002",
    "ANTHROPIC_KEY": "anthropic-secret",
    "HTTP_KEY": "http-upstream-secret-0003",
}


@dataclass
class Upstreams:
    a: str
    b: str
    anthropic: str
    echo: str
    dead: str  # a port nothing listens on
    rec_a: Recorder
    rec_b: Recorder
    rec_anthropic: Recorder
    rec_echo: Recorder

    def clear(self) -> None:
        for rec in (self.rec_a, self.rec_b, self.rec_anthropic, self.rec_echo):
            rec.requests.clear()


def config_text(ups: Upstreams, extra: str = "") -> str:
    """A configuration using every fake upstream."""
    return f"""
routes:
  - name: chat
    type: chat
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: echo, api_key: "${{CHAT_KEY}}"}}
    retries: {{attempts: 1, backoff: 0.01}}
  - name: backup
    type: chat
    upstream: {{provider: openai, base_url: "{ups.b}/v1", model: echo, api_key: "${{BACKUP_KEY}}"}}
  - name: slow
    type: chat
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: slow}}
  - name: completions
    type: completions
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: echo}}
  - name: embed
    type: embeddings
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: echo, api_key: "${{CHAT_KEY}}"}}
  - name: claude
    type: chat
    upstream: {{provider: anthropic, base_url: "{ups.anthropic}/v1", model: claude-test,
               api_key: "${{ANTHROPIC_KEY}}", max_tokens: 64}}
  - name: files
    type: http
    upstream: {{base_url: "{ups.echo}/base", api_key: "${{HTTP_KEY}}", auth_header: x-api-key}}
    forward_headers: [x-trace-id]
{extra}"""


@dataclass
class Running:
    url: str
    path: Path
    gateway: Gateway
    key: str
    server: ServerThread

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, path: str, body: Any, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}", **kw.pop("headers", {})}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=30, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """An ASGI app under uvicorn on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


class Recorder:
    """What an upstream received: one dict per request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def take(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        seen = {
            "method": request.method,
            "path": request.url.path,
            "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
            "query": request.url.query,
            "headers": dict(request.headers),
            "body": body,
        }
        self.requests.append(seen)
        return seen


def _chat_reply(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    event = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def openai_upstream(recorder: Recorder, *, name: str = "up", secret: str = "") -> Starlette:
    """An OpenAI-compatible upstream whose behaviour the upstream model name picks:

    ``echo`` answers; ``slow`` streams three chunks 500 ms apart; ``fail`` answers 500;
    ``sleep`` answers after 3 s; ``deny`` answers 401 echoing the key it got; ``moved``
    redirects; ``busy`` answers 429; ``bad`` answers 400 with an OpenAI error body that quotes
    the credential it received.
    """

    async def chat(request: Request) -> Response:
        seen = await recorder.take(request)
        body = json.loads(seen["body"])
        model = body.get("model")
        if model == "fail":
            return JSONResponse({"error": {"message": "boom"}}, 500)
        if model == "busy":
            return JSONResponse({"error": {"message": "slow down"}}, 429)
        if model == "sleep":
            await asyncio.sleep(3)
        if model == "deny":
            got = request.headers.get("authorization", "")
            return JSONResponse({"error": {"message": f"Incorrect API key provided: {got}"}}, 401)
        if model == "moved":
            return RedirectResponse("http://169.254.169.254/latest/meta-data", 302)
        if model == "bad":
            got = request.headers.get("authorization", "")
            return JSONResponse(
                {
                    "error": {
                        "message": f"bad things with {got}",
                        "type": "invalid_request_error",
                        "param": "messages",
                        "code": None,
                    }
                },
                400,
            )
        text = f"{name}:{body['messages'][-1]['content']}"
        if body.get("stream"):

            async def events() -> Any:
                yield _chunk(model, {"role": "assistant", "content": ""})
                for i in range(3):
                    if model == "slow" and i:
                        await asyncio.sleep(0.5)
                    yield _chunk(model, {"content": f"{text}#{i} "})
                yield _chunk(model, {}, "stop")
                opts = body.get("stream_options") or {}
                if opts.get("include_usage"):
                    usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
                    event = {
                        "id": "c",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                    yield b"data: " + json.dumps(event).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse(_chat_reply(model, text))

    async def completions(request: Request) -> Response:
        seen = await recorder.take(request)
        body = json.loads(seen["body"])
        return JSONResponse(
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "text": f"{name}:{body['prompt']}",
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
            }
        )

    async def embeddings(request: Request) -> Response:
        seen = await recorder.take(request)
        body = json.loads(seen["body"])
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.5, float(len(t))]}
            for i, t in enumerate(inputs)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )


def anthropic_upstream(recorder: Recorder) -> Starlette:
    """Anthropic's Messages API: text (and a tool call when tools are sent), or a stream."""

    async def messages(request: Request) -> Response:
        seen = await recorder.take(request)
        body = json.loads(seen["body"])
        if request.headers.get("x-api-key") != "anthropic-secret":
            return JSONResponse(
                {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                },
                401,
            )
        text = "claude:" + str(body["messages"][-1]["content"][0].get("text"))
        if body.get("stream"):

            async def events() -> Any:
                def ev(kind: str, data: dict[str, Any]) -> bytes:
                    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

                yield ev(
                    "message_start",
                    {
                        "message": {
                            "id": "msg_1",
                            "model": body["model"],
                            "usage": {"input_tokens": 11},
                        }
                    },
                )
                yield ev(
                    "content_block_start",
                    {"index": 0, "content_block": {"type": "text", "text": ""}},
                )
                yield ev("ping", {})
                for part in ("clau", "de!"):
                    yield ev(
                        "content_block_delta",
                        {"index": 0, "delta": {"type": "text_delta", "text": part}},
                    )
                yield ev("content_block_stop", {"index": 0})
                yield ev(
                    "message_delta",
                    {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}},
                )
                yield ev("message_stop", {})

            return StreamingResponse(events(), media_type="text/event-stream")
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        stop = "end_turn"
        if body.get("tools"):
            content.append(
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": body["tools"][0]["name"],
                    "input": {"city": "Oslo"},
                }
            )
            stop = "tool_use"
        return JSONResponse(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 4},
            }
        )

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


def echo_upstream(recorder: Recorder) -> Starlette:
    """Any method and path: answers what it received (and POST /{service}/{endpoint})."""

    async def echo(request: Request) -> Response:
        seen = await recorder.take(request)
        if request.url.path.endswith("/redirect"):
            return RedirectResponse("http://127.0.0.1:1/elsewhere", 307)
        if request.url.path.endswith("/forbidden"):
            return JSONResponse({"detail": f"nope {request.headers.get('x-api-key')}"}, 403)
        return JSONResponse(
            {
                "method": seen["method"],
                "path": seen["path"],
                "query": seen["query"],
                "body": seen["body"].decode(),
                "auth": request.headers.get("authorization"),
            },
            headers={"x-request-id": "r1", "set-cookie": "upstream=1"},
        )

    return Starlette(
        routes=[Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]
    )
