"""A ``chat`` route whose upstream is a chat service on a real shipyard host
(``provider: service``): the adapter for hosted services, which answer one JSON body a call.

The host (``shipyard serve`` in a subprocess) runs a tiny ``Chatter`` service — no language
model — whose answer depends on the last message: an OpenAI chat completion, the short
``{"content"}`` shape, an error of a given status, a sleep past the route's timeout, or a
body that is no chat completion. Service calls on the host need an ``invoke:chatter`` key:
the gateway's comes from ``${CHATTER_KEY}``, never from the file. The gateway runs in memory
behind a TestClient, with its real connection pool to the host."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_fakes import free_port
from starlette.testclient import TestClient

from serve.hosts import HostProcess
from shipyard.gateway import ConfigError, Gateway, parse_config
from shipyard.gateway.model import Provider
from shipyard.keys import Guard, KeyStore
from shipyard.store.meta import MetaStore

SERVICE = """
import asyncio
from typing import Any

from shipyard import HTTPError
from shipyard.serve import Service, endpoint

CALLS = {"chat": 0}


class Chatter(Service):
    @endpoint(timeout=20)
    async def chat(
        self,
        messages: list[dict[str, Any]],
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> dict[str, Any]:
        CALLS["chat"] += 1
        last = str(messages[-1].get("content"))
        if last.startswith("status "):
            raise HTTPError(int(last.split()[1]), f"asked for {last}", field="messages")
        if last == "sleep":
            await asyncio.sleep(5)
        if last == "plain":
            return {"content": "just text", "usage": {"prompt_tokens": 2, "completion_tokens": 3}}
        if last == "broken":
            return {"nothing": 1}
        return {
            "id": "chatcmpl-chatter",
            "object": "chat.completion",
            "created": 1,
            "model": "chatter-1",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": f"echo: {last} (tools: {len(tools or [])}, "
                        f"max_tokens: {max_tokens})",
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
        }

    @endpoint
    def backup(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"content": "from the backup endpoint"}

    @endpoint
    def calls(self) -> int:
        return CALLS["chat"]
"""

CONFIG = """
host_url: HOST
routes:
  - name: hosted
    type: chat
    upstream: {provider: service, service: chatter, api_key: "${CHATTER_KEY}"}
    retries: {attempts: 1, backoff: 0.01, max_backoff: 0.05}
    timeout: 1.5
  - name: with-backup
    type: chat
    upstream: {provider: service, service: chatter, endpoint: chat, api_key: "${CHATTER_KEY}"}
    retries: 0
    fallback: [backup]
  - name: backup
    type: chat
    upstream: {provider: service, service: chatter, endpoint: backup, api_key: "${CHATTER_KEY}"}
  - name: wrong-key
    type: chat
    upstream: {provider: service, service: chatter, api_key: "${WRONG_KEY}"}
    retries: 0
  - name: no-key
    type: chat
    upstream: {provider: service, service: chatter}
    retries: 0
  - name: down
    type: chat
    upstream: {provider: service, service: chatter, host_url: "DOWN"}
    retries: 0
"""
WRONG = "sy_not-a-key-of-this-host-0123456789"


@dataclass
class Setup:
    host: HostProcess
    client: TestClient
    key: str  # the caller's key for the gateway
    invoke: str  # the gateway's key for the host

    def post(self, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {self.key}"}
        )

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url="http://testserver/v1",
            api_key=self.key,
            max_retries=0,
            http_client=self.client,
        )

    def calls(self) -> int:
        r = httpx.post(
            f"{self.host.url}/chatter/calls",
            json={},
            headers={"Authorization": f"Bearer {self.invoke}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return int(r.json())


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("hosted")
    host = HostProcess(root / "home")
    host.home.mkdir(parents=True)
    out = host.cli("keys", "create", "--scope", "invoke:chatter", remote=False)
    invoke = out.stdout.strip().splitlines()[-1]
    host.start()
    try:
        (root / "chatter").mkdir()
        (root / "chatter" / "chatter_service.py").write_text(SERVICE)
        host.deploy(f"{root / 'chatter' / 'chatter_service.py'}:Chatter", "chatter")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("CHATTER_KEY", invoke)
            env.setenv("WRONG_KEY", WRONG)
            path = root / "gateway.yaml"
            text = CONFIG.replace("HOST", host.url)
            path.write_text(text.replace("DOWN", f"http://127.0.0.1:{free_port()}"))
            meta = MetaStore.open(f"sqlite:///{root}/gateway-meta.db")
            store = KeyStore(meta)
            try:
                gateway = Gateway(path, guard=Guard(store), watch=False)
                _, key = store.create("tests", ["route:*"])
                with TestClient(gateway) as client:
                    yield Setup(host, client, key, invoke)
            finally:
                store.close()
                meta.close()
    finally:
        host.stop()


TOOLS = [{"type": "function", "function": {"name": "search_docs", "parameters": {}}}]


def test_a_chat_route_reaches_the_hosted_service_in_openai_shape(setup: Setup) -> None:
    answer = setup.openai().chat.completions.create(
        model="hosted",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=9,
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert answer.choices[0].message.content == "echo: hi (tools: 1, max_tokens: 9)"
    assert answer.choices[0].finish_reason == "stop" and answer.model == "chatter-1"
    assert answer.usage is not None and answer.usage.total_tokens == 12
    assert answer.object == "chat.completion"


def test_the_short_shape_is_wrapped_into_a_chat_completion(setup: Setup) -> None:
    r = setup.post({"model": "hosted", "messages": [{"role": "user", "content": "plain"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "chatter"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "just text"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert body["usage"]["completion_tokens"] == 3 and body["id"].startswith("chatcmpl-")


def _events(r: httpx.Response) -> list[Any]:
    assert r.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in r.text.split("\n\n") if b.strip()]
    assert all(b.startswith("data: ") for b in blocks), r.text
    return [b[6:] if b[6:] == "[DONE]" else json.loads(b[6:]) for b in blocks]


def test_a_stream_is_one_chunk_with_the_whole_answer_then_done(setup: Setup) -> None:
    messages = [{"role": "user", "content": "stream me"}]
    r = setup.post({"model": "hosted", "messages": messages, "stream": True})
    assert r.status_code == 200, r.text
    chunk, done = _events(r)
    assert done == "[DONE]"
    assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == "chatter-1"
    assert chunk["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "echo: stream me (tools: 0, max_tokens: None)",
    }
    assert chunk["choices"][0]["finish_reason"] == "stop"
    with_usage = setup.post(
        {
            "model": "hosted",
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    events = _events(with_usage)
    assert len(events) == 3 and events[1]["usage"]["total_tokens"] == 12 and events[2] == "[DONE]"
    # the official client reads it as any stream
    stream = setup.openai().chat.completions.create(
        model="hosted", messages=[{"role": "user", "content": "plain"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "just text"


def test_the_host_errors_keep_their_status_in_openai_shape(setup: Setup) -> None:
    r = setup.post({"model": "hosted", "messages": [{"role": "user", "content": "status 422"}]})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "asked for status 422"
    assert r.json()["error"]["param"] == "messages"
    assert r.json()["error"]["type"] == "invalid_request_error"
    # a field the service does not take is its 422, naming the field
    unknown = setup.post(
        {"model": "hosted", "messages": [{"role": "user", "content": "x"}], "logit_bias": {}}
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["param"] == "logit_bias"


@pytest.mark.parametrize("status", [500, 503])
def test_a_failing_service_is_retried_then_answered_502(setup: Setup, status: int) -> None:
    before = setup.calls()
    for stream in (False, True):
        r = setup.post(
            {
                "model": "hosted",
                "messages": [{"role": "user", "content": f"status {status}"}],
                "stream": stream,
            }
        )
        assert r.status_code == 502, r.text
        assert r.json()["error"]["type"] == "upstream_error"
        assert f"answered HTTP {status} (2 attempts)" in r.json()["error"]["message"]
    assert setup.calls() - before == 4  # one retry each


def test_a_failing_route_falls_back(setup: Setup) -> None:
    r = setup.post(
        {"model": "with-backup", "messages": [{"role": "user", "content": "status 500"}]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "from the backup endpoint"


def test_a_slow_service_times_out_with_504(setup: Setup) -> None:
    r = setup.post({"model": "hosted", "messages": [{"role": "user", "content": "sleep"}]})
    assert r.status_code == 504, r.text
    assert "no answer within 1.5 s (2 attempts)" in r.json()["error"]["message"]


def test_an_unreachable_host_is_502(setup: Setup) -> None:
    r = setup.post({"model": "down", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 502 and "unreachable" in r.json()["error"]["message"]


def test_a_body_that_is_no_chat_completion_is_502(setup: Setup) -> None:
    message = [{"role": "user", "content": "broken"}]
    r = setup.post({"model": "hosted", "messages": message})
    assert r.status_code == 502 and "not what its provider sends" in r.text
    streamed = setup.post({"model": "hosted", "messages": message, "stream": True})
    (error,) = _events(streamed)
    assert "not a chat completion" in error["error"]["message"]


def test_the_host_key_comes_from_the_environment_and_never_leaks(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert setup.post(
        {"model": "hosted", "messages": [{"role": "user", "content": "hi"}]}
    ).status_code == (200)
    for route in ("wrong-key", "no-key"):
        r = setup.post({"model": route, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 502, r.text
        assert "refused the gateway's credentials" in r.json()["error"]["message"]
        assert WRONG not in r.text and setup.invoke not in r.text
    assert setup.invoke not in caplog.text and WRONG not in caplog.text
    assert "refused the gateway's credentials (HTTP 401)" in caplog.text


# -- the configuration --------------------------------------------------------------------------
def test_the_route_reads_service_endpoint_and_key() -> None:
    text = """
routes:
  - name: local
    type: chat
    upstream: {provider: service, service: local-llm, endpoint: chat, api_key: "${K}",
               host_url: "http://10.0.0.5:8000"}
"""
    upstream = parse_config(text, environ={"K": "sy_x"}).routes["local"].upstream
    assert upstream.provider is Provider.SERVICE and upstream.service == "local-llm"
    assert upstream.base_url == "http://10.0.0.5:8000/local-llm"
    assert upstream.endpoint == "chat" and upstream.api_key == "sy_x"
    assert "sy_x" not in repr(upstream)


@pytest.mark.parametrize(
    ("upstream", "reason"),
    [
        ("{provider: service, service: m, api_key: sy_literal}", "not the secret itself"),
        ("{provider: service, service: m, endpoint: 'a/b'}", "is not an endpoint name"),
        ("{provider: service, service: m, model: x}", "unknown field 'model'"),
        ("{provider: service}", "needs `service`"),
        ("{provider: service, service: m, api_key: '${UNSET_KEY}'}", "UNSET_KEY"),
    ],
)
def test_bad_hosted_upstreams_are_refused_with_the_line(upstream: str, reason: str) -> None:
    text = (
        "host_url: http://127.0.0.1:8000\nroutes:\n  - name: c\n    type: chat\n"
        f"    upstream: {upstream}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, environ={})
    assert reason in str(err.value) and err.value.line == 5


def test_only_chat_routes_take_a_hosted_service() -> None:
    text = """
host_url: http://127.0.0.1:8000
routes:
  - name: e
    type: embeddings
    upstream: {provider: service, service: m}
"""
    with pytest.raises(ConfigError, match="the service provider serves `chat` routes"):
        parse_config(text)


def test_the_docs_route_example_parses(tmp_path: Path) -> None:
    from shipyard.gateway import load_config

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("# gateway-local.yaml")
    block = readme[start : readme.index("```", start)]
    path = tmp_path / "gateway-local.yaml"
    path.write_text(block)
    config = load_config(path, environ={"LOCAL_LLM_KEY": "sy_k"}, host_url="http://h:8000")
    route = config.routes["local-chat"]
    assert (
        route.upstream.endpoint == "chat" and route.upstream.base_url == "http://h:8000/local-llm"
    )
