"""Chaos: an upstream that rate-limits, end to end through real sockets.

A real upstream on a loopback port answers every request 429 with ``Retry-After: 30``; a
second one answers. The gateway, under uvicorn with its own pooled client, must pass the wait
on (OpenAI surface, whole and streamed, the official client included, and ``/gateway``
passthrough), never ask the rate-limited upstream again before the wait is over, and send a
route's traffic to its fallback meanwhile. Counted: requests that reached each upstream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from shipyard.gateway import Gateway
from shipyard.keys import Guard, KeyStore
from shipyard.store.meta import MetaStore

LOAD = 40  # requests to the route with a fallback, while its own upstream rests
MSG = [{"role": "user", "content": "q"}]
CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "spare"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}  # fmt: skip


class Served:
    """An ASGI app under uvicorn on a free 127.0.0.1 port, in a thread."""

    def __init__(self, app: ASGIApp) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", loop="asyncio", http="h11"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def _upstream(seen: list[str], answer: Response | None) -> Starlette:
    async def endpoint(request: Request) -> Response:
        seen.append(request.url.path)
        await request.body()
        if answer is not None:
            return answer
        return JSONResponse(
            {"error": {"message": "Rate limit reached", "type": "requests"}},
            429,
            headers={"retry-after": "30"},
        )

    methods = ["GET", "POST"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])


@pytest.fixture
def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str, list[str], list[str]]]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    limited_seen: list[str] = []
    spare_seen: list[str] = []
    limited = Served(_upstream(limited_seen, None))
    spare = Served(_upstream(spare_seen, JSONResponse(CHAT)))
    path = tmp_path / "gateway.yaml"
    path.write_text(f"""
routes:
  - name: chat
    type: chat
    upstream: {{provider: openai, base_url: "{limited.url}/v1", model: m}}
    retries: {{attempts: 2, backoff: 0.01, max_backoff: 1}}
  - name: busy
    type: chat
    upstream: {{provider: openai, base_url: "{limited.url}/v1", model: m}}
    retries: {{attempts: 2, backoff: 0.01, max_backoff: 1}}
    fallback: [spare]
  - name: spare
    type: chat
    upstream: {{provider: openai, base_url: "{spare.url}/v1", model: m}}
  - name: files
    type: http
    upstream: {{base_url: "{limited.url}/files"}}
    retries: {{attempts: 2, backoff: 0.01, max_backoff: 1}}
""")
    meta = MetaStore.open(f"sqlite:///{tmp_path}/meta.db")
    keys = KeyStore(meta)
    _, key = keys.create("tests", ["route:*"])
    gateway = Served(Gateway(path, guard=Guard(keys)))
    try:
        yield gateway.url, key, limited_seen, spare_seen
    finally:
        for server in (gateway, limited, spare):
            server.stop()
        keys.close()
        meta.close()


def test_a_429_is_passed_on_and_the_upstream_is_left_alone_meanwhile(
    setup: tuple[str, str, list[str], list[str]],
) -> None:
    url, key, limited_seen, spare_seen = setup
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        whole = client.post("/v1/chat/completions", json={"model": "chat", "messages": MSG})
        assert whole.status_code == 429
        assert whole.headers["retry-after"] in ("29", "30")
        assert len(limited_seen) == 1  # asked for 30 s, more than max_backoff: no retry

        body = {"model": "chat", "messages": MSG, "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=body) as streamed:
            assert streamed.status_code == 429
            assert 1 <= int(streamed.headers["retry-after"]) <= 30
        assert len(limited_seen) == 1  # the route rests: not asked again

        answered = 0
        for _ in range(LOAD):
            r = client.post("/v1/chat/completions", json={"model": "busy", "messages": MSG})
            answered += (
                r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "spare"
            )
        assert answered == LOAD
        assert len(limited_seen) == 2  # `busy` asked once, then rested
        assert len(spare_seen) == LOAD

        passthrough = client.get("/gateway/files/report")
        assert passthrough.status_code == 429
        assert passthrough.headers["retry-after"] in ("29", "30")
        assert limited_seen[-1] == "/files/report" and len(limited_seen) == 3

        metrics = client.get("/metrics").text
        assert f'shipyard_gateway_upstream_rested_total{{route="busy"}} {LOAD - 1}.0' in metrics

    official = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        official.chat.completions.create(model="chat", messages=MSG)  # type: ignore[arg-type]
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 30
    assert len(limited_seen) == 3
