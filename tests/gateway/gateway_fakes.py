"""Fake upstreams for the gateway tests, written once as handlers of
:class:`shipyard.gateway.testing.MockTransport`: in memory (most tests), or served on real
loopback ports by uvicorn through :func:`asgi` (the end-to-end tests and the CLI's)."""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from shipyard.gateway.testing import Handler, MockResponse, MockTransport
from shipyard.gateway.upstream_http import ConnectError, Request, Timeouts

if TYPE_CHECKING:
    from shipyard.gateway import Gateway


SECRETS = {
    "CHAT_KEY": "sk-upstream-secret-chat-0001",
    "BACKUP_KEY": "sk-upstream-secret-backup-0002",
    "ANTHROPIC_KEY": "anthropic-secret",
    "HTTP_KEY": "http-upstream-secret-0003",
}
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


class Recorder:
    """What an upstream received: one dict per request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def take(self, request: Request) -> dict[str, Any]:
        raw_path, _, query = request.target.partition("?")
        seen = {
            "method": request.method,
            "path": httpx.URL(raw_path).path,  # decoded, as a server routes it
            "raw_path": raw_path,
            "query": query,
            "headers": dict(request.headers),
            "body": request.body,
        }
        self.requests.append(seen)
        return seen


@dataclass
class Upstreams:
    """The fake upstreams' base URLs and what each received. ``gate`` holds the ``slow``
    model's stream after its first chunk until the test sets it."""

    a: str
    b: str
    anthropic: str
    echo: str
    dead: str  # nothing answers there
    rec_a: Recorder = field(default_factory=Recorder)
    rec_b: Recorder = field(default_factory=Recorder)
    rec_anthropic: Recorder = field(default_factory=Recorder)
    rec_echo: Recorder = field(default_factory=Recorder)
    gate: threading.Event = field(default_factory=threading.Event)

    def clear(self) -> None:
        for rec in (self.rec_a, self.rec_b, self.rec_anthropic, self.rec_echo):
            rec.requests.clear()
        self.gate.clear()

    def handlers(self) -> dict[str, Handler]:
        """Each fake upstream's handler, by base URL."""
        return {
            self.a: openai_upstream(self.rec_a, self.gate, name="a"),
            self.b: openai_upstream(self.rec_b, self.gate, name="b"),
            self.anthropic: anthropic_upstream(self.rec_anthropic),
            self.echo: echo_upstream(self.rec_echo),
        }

    def transport(self) -> Callable[[str], MockTransport]:
        """The gateway's transport factory: a MockTransport per fake upstream's origin; any
        other origin (``dead`` among them) refuses every connection."""
        made = {origin_of(url): MockTransport(h, origin=url) for url, h in self.handlers().items()}

        def make(origin: str) -> MockTransport:
            return made.get(origin) or MockTransport(_refuse, origin=origin)

        return make


def in_memory_upstreams() -> Upstreams:
    return Upstreams(
        "http://a.test", "http://b.test", "http://anthropic.test", "http://echo.test",
        "http://dead.test",
    )  # fmt: skip


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


# -- a gateway to talk to ------------------------------------------------------------------------
class KeptOpen(TestClient):
    """A TestClient that the openai clients built on it cannot close (they close their
    ``http_client``); leaving the ``with`` block ends it."""

    def close(self) -> None:
        pass


@dataclass
class Running:
    """A gateway under test: in memory (``client`` is a TestClient, ``url`` its base URL) or on
    a real port (``server`` is set, ``client`` a plain httpx client)."""

    url: str
    path: Path
    gateway: Gateway
    key: str
    client: httpx.Client
    server: ServerThread | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, path: str, body: Any, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}", **kw.pop("headers", {})}
        return self.client.post(self.url + path, json=body, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(self.url + path, **kw)


def openai_client(gw: Running, key: str | None = None) -> openai.OpenAI:
    """The official client, talking to ``gw`` (through its TestClient when in memory)."""
    return openai.OpenAI(
        base_url=gw.url + "/v1",
        api_key=key or gw.key,
        max_retries=0,
        http_client=gw.client if gw.server is None else None,
    )


# -- the fake upstreams --------------------------------------------------------------------------
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


def openai_upstream(recorder: Recorder, gate: threading.Event, *, name: str = "up") -> Handler:
    """An OpenAI-compatible upstream whose behaviour the upstream model name picks:

    ``echo`` answers; ``slow`` streams its first chunk, then the rest once ``gate`` is set (or stops
    after 10 s);
    ``fail`` answers 500; ``sleep`` never answers; ``deny`` answers 401 echoing the key it
    got; ``moved`` redirects; ``busy`` answers 429; ``bad`` answers 400 with an OpenAI error
    body that quotes the credential it received.
    """

    async def handle(request: Request) -> MockResponse:
        seen = recorder.take(request)
        if seen["path"].endswith("/completions") and not seen["path"].endswith("/chat/completions"):
            return completions(json.loads(seen["body"]), name)
        if seen["path"].endswith("/embeddings"):
            return embeddings(json.loads(seen["body"]))
        body = json.loads(seen["body"])
        model = body.get("model")
        got = request.headers.get("authorization", "")
        if model == "fail":
            return MockResponse(500, json={"error": {"message": "boom"}})
        if model == "busy":
            return MockResponse(429, json={"error": {"message": "slow down"}})
        if model == "sleep":
            await asyncio.Event().wait()  # the gateway's timeout ends it
        if model == "deny":
            return MockResponse(
                401, json={"error": {"message": f"Incorrect API key provided: {got}"}}
            )
        if model == "moved":
            return MockResponse(
                302, headers={"location": "http://169.254.169.254/latest/meta-data"}
            )
        if model == "bad":
            error = {
                "message": f"bad things with {got}",
                "type": "invalid_request_error",
                "param": "messages",
                "code": None,
            }
            return MockResponse(400, json={"error": error})
        text = f"{name}:{body['messages'][-1]['content']}"
        if body.get("stream"):
            return MockResponse(
                200,
                headers={"content-type": "text/event-stream"},
                stream=_events(model, text, body, gate),
            )
        return MockResponse(200, json=_chat_reply(model, text))

    return handle


async def _events(
    model: str, text: str, body: dict[str, Any], gate: threading.Event
) -> AsyncIterator[bytes]:
    yield _chunk(model, {"role": "assistant", "content": ""})
    for i in range(3):
        yield _chunk(model, {"content": f"{text}#{i} "})
        if model == "slow" and i == 0 and not await asyncio.to_thread(gate.wait, 10):
            return  # never released: the caller was not given chunk 0 in time
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


def completions(body: dict[str, Any], name: str) -> MockResponse:
    choice = {"index": 0, "text": f"{name}:{body['prompt']}", "finish_reason": "stop",
              "logprobs": None}  # fmt: skip
    return MockResponse(
        200,
        json={
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": body["model"],
            "choices": [choice],
            "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
        },
    )


def embeddings(body: dict[str, Any]) -> MockResponse:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [
        {"object": "embedding", "index": i, "embedding": [0.5, float(len(t))]}
        for i, t in enumerate(inputs)
    ]
    usage = {"prompt_tokens": 3, "total_tokens": 3}
    return MockResponse(
        200, json={"object": "list", "data": data, "model": body["model"], "usage": usage}
    )


def anthropic_upstream(recorder: Recorder) -> Handler:
    """Anthropic's Messages API: text (and a tool call when tools are sent), or a stream."""

    def handle(request: Request) -> MockResponse:
        seen = recorder.take(request)
        body = json.loads(seen["body"])
        if request.headers.get("x-api-key") != "anthropic-secret":
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            return MockResponse(401, json={"type": "error", "error": error})
        if body.get("stream"):
            return MockResponse(
                200, headers={"content-type": "text/event-stream"}, stream=_messages(body)
            )
        content: list[dict[str, Any]] = [
            {"type": "text", "text": "claude:" + str(body["messages"][-1]["content"][0]["text"])}
        ]
        stop = "end_turn"
        if body.get("tools"):
            tool = {"type": "tool_use", "id": "toolu_1", "name": body["tools"][0]["name"],
                    "input": {"city": "Oslo"}}  # fmt: skip
            content.append(tool)
            stop = "tool_use"
        return MockResponse(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 4},
            },
        )

    return handle


async def _messages(body: dict[str, Any]) -> AsyncIterator[bytes]:
    def ev(kind: str, data: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

    message = {"id": "msg_1", "model": body["model"], "usage": {"input_tokens": 11}}
    yield ev("message_start", {"message": message})
    yield ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    yield ev("ping", {})
    for part in ("clau", "de!"):
        yield ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": part}})
    yield ev("content_block_stop", {"index": 0})
    yield ev("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}})
    yield ev("message_stop", {})


def echo_upstream(recorder: Recorder) -> Handler:
    """Any method and path: answers what it received (and POST /{service}/{endpoint})."""

    def handle(request: Request) -> MockResponse:
        seen = recorder.take(request)
        if seen["path"].endswith("/redirect"):
            return MockResponse(307, headers={"location": "http://127.0.0.1:1/elsewhere"})
        if seen["path"].endswith("/forbidden"):
            detail = f"nope {request.headers.get('x-api-key')}"
            return MockResponse(403, json={"detail": detail})
        answer = {
            "method": seen["method"],
            "path": seen["path"],
            "query": seen["query"],
            "body": seen["body"].decode(),
            "auth": request.headers.get("authorization"),
        }
        return MockResponse(200, headers={"x-request-id": "r1", "set-cookie": "upstream=1"},
                            json=answer)  # fmt: skip

    return handle


def _refuse(request: Request) -> MockResponse:
    raise ConnectError("cannot connect: connection refused (a fake upstream that is down)")


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a base URL, as the gateway keys its transports."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port or 80}"


# -- real sockets ---------------------------------------------------------------------------------
def asgi(handler: Handler) -> Starlette:
    """``handler`` as an ASGI app, to serve on a real port."""

    async def endpoint(request: StarletteRequest) -> Response:
        raw = request.scope.get("raw_path") or request.url.path.encode()
        query = request.url.query
        target = raw.decode("latin-1") + (f"?{query}" if query else "")
        sent = Request(request.method, target, dict(request.headers), await request.body(),
                       Timeouts.of(60))  # fmt: skip
        answer = handler(sent)
        response = await answer if inspect.isawaitable(answer) else answer
        assert isinstance(response, MockResponse)
        return StreamingResponse(
            response.stream(), response.status_code, headers=dict(response.headers)
        )

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=_METHODS)])


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
