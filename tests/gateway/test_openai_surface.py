"""The OpenAI surface, driven by the official `openai` client and by raw HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import openai
import pytest
from gateway_fakes import SECRETS, Running, Upstreams, config_text, openai_client

from shipyard.gateway import Denied, Route
from shipyard.keys import KeyRecord, KeyStore


@pytest.fixture
def gw(ups: Upstreams, serve_gateway: Callable[..., Running]) -> Running:
    return serve_gateway(config_text(ups))


def client(gw: Running, key: str | None = None) -> openai.OpenAI:
    return openai_client(gw, key)


def test_chat_with_the_official_client(gw: Running, ups: Upstreams) -> None:
    with client(gw) as c:
        reply = c.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"response_format": {"type": "text"}, "unknown_thing": [1, 2]},
        )
    assert reply.choices[0].message.content == "a:hi"
    assert reply.usage is not None and reply.usage.prompt_tokens == 7
    seen = ups.rec_a.requests[-1]
    body = json.loads(seen["body"])
    assert body["model"] == "echo"  # rewritten to the upstream model
    assert body["unknown_thing"] == [1, 2] and body["response_format"] == {"type": "text"}
    assert seen["headers"]["authorization"] == f"Bearer {SECRETS['CHAT_KEY']}"
    assert gw.key not in json.dumps(seen["headers"])  # the caller's key never goes upstream


def test_streaming_chat_with_the_official_client(gw: Running) -> None:
    with client(gw) as c:
        stream = c.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "yo"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        parts = [chunk.choices[0].delta.content for chunk in stream if chunk.choices]
    assert "".join(p or "" for p in parts) == "a:yo#0 a:yo#1 a:yo#2 "


def test_embeddings_and_completions_and_models(gw: Running, keystore: KeyStore) -> None:
    with client(gw) as c:
        emb = c.embeddings.create(model="embed", input=["one", "three"])
        assert [d.embedding for d in emb.data] == [[0.5, 3.0], [0.5, 5.0]]
        comp = c.completions.create(model="completions", prompt="p")
        assert comp.choices[0].text == "a:p"
        assert {m.id for m in c.models.list()} == {
            "chat",
            "backup",
            "slow",
            "completions",
            "embed",
            "claude",
        }
    _, only_chat = keystore.create("chat only", ["route:chat"])
    with client(gw, only_chat) as c:
        assert [m.id for m in c.models.list()] == ["chat"]


def test_errors_raise_the_right_openai_exceptions(gw: Running, keystore: KeyStore) -> None:
    messages = [{"role": "user", "content": "x"}]
    with client(gw) as c:
        with pytest.raises(openai.NotFoundError) as missing:
            c.chat.completions.create(model="nope", messages=messages)  # type: ignore[arg-type]
        assert missing.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as wrong_type:
            c.chat.completions.create(model="embed", messages=messages)  # type: ignore[arg-type]
        assert "/v1/embeddings" in wrong_type.value.message
    with client(gw, "sy_000000000000_" + "A" * 43) as c, pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="chat", messages=messages)  # type: ignore[arg-type]
    _, other = keystore.create("other", ["route:backup"])
    with client(gw, other) as c, pytest.raises(openai.PermissionDeniedError):
        c.chat.completions.create(model="chat", messages=messages)  # type: ignore[arg-type]


def test_no_key_even_on_loopback_and_malformed_bodies(gw: Running) -> None:
    r = gw.client.post(gw.url + "/v1/chat/completions", json={"model": "chat", "messages": []})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    bad = gw.client.post(gw.url + "/v1/chat/completions", content=b"{nope", headers=gw.auth)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    no_model = gw.post("/v1/chat/completions", {"messages": []})
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"
    listed = gw.post("/v1/nothing-here", {})
    assert listed.status_code == 404 and set(listed.json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }


def test_stream_is_not_buffered(gw: Running, ups: Upstreams) -> None:
    """The upstream holds chunk 1 until the caller has chunk 0: no buffering in between."""
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "s"}]}
    with gw.client.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=gw.auth) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        first = next(line for line in lines if '"content": "a:s#' in line)
        assert '"a:s#0 "' in first and not ups.gate.is_set()
        ups.gate.set()  # only now can the upstream produce chunks 1 and 2
        rest = [line for line in lines if '"content": "a:s#' in line]
    assert len(rest) == 2 and '"a:s#1 "' in rest[0] and '"a:s#2 "' in rest[1]


def test_admission_denial_is_a_429_with_retry_after(
    ups: Upstreams, serve_gateway: Callable[..., Running]
) -> None:
    class Recording:
        def __init__(self) -> None:
            self.records: list[dict[str, object]] = []
            self.lock = threading.Lock()

        def admit(self, key: KeyRecord, route: Route, *, estimated_tokens: int) -> Denied | None:
            if route.name == "backup":
                return Denied(429, "tokens", "route budget spent", retry_after=2.5)
            return None

        def record(self, key: KeyRecord | None, route: Route, **kw: object) -> None:
            with self.lock:
                self.records.append({"route": route.name, **kw})

    admission = Recording()
    gw = serve_gateway(config_text(ups), admission=admission)
    with client(gw) as c:
        with pytest.raises(openai.RateLimitError) as denied:
            c.chat.completions.create(model="backup", messages=[{"role": "user", "content": "x"}])
        assert denied.value.response.headers["retry-after"] == "2"
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
        stream = c.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        list(stream)
    deadline = time.monotonic() + 5
    while len(admission.records) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    plain, streamed = admission.records[-2:]
    assert plain["status"] == 200 and plain["tokens_in"] == 7 and plain["tokens_out"] == 3
    assert plain["streamed"] is False
    assert streamed["streamed"] is True and streamed["tokens_in"] == 5
    assert streamed["tokens_out"] == 4
