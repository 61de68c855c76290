"""No upstream answer carries a configured credential out of the gateway.

Each upstream here echoes the credential the gateway sent it — raw, JSON-escaped or
URL-encoded, in a header or in the body, whole, gzip/deflate-compressed or streamed with the
credential split across chunks — at 200, 404 and 500, on every route type. What the caller
gets must hold no form of any configured credential, and (wherever the upstream's answer is
passed on) the marker that replaced it. Before the gateway scrubbed every answer, what held
was the raw credential in a 4xx body, the answers the gateway replaces with its own (an
OpenAI-surface 5xx) and the headers the OpenAI surface drops: 178 of the 235 cases here
failed.

The in-memory gateway is built once for the module; each test sets the :data:`PLAN` of
what the upstream answers. One test runs the same over real sockets (the pooled client, a
chunked upstream)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from gateway_fakes import ServerThread, asgi, free_port
from starlette.testclient import TestClient

from shipyard.gateway import Gateway, load_config
from shipyard.gateway.testing import MockResponse, MockTransport
from shipyard.gateway.upstream_http import Request
from shipyard.keys import Guard, KeyStore
from shipyard.store.meta import MetaStore

# one per route; `/`, `+` and `=` make the JSON and URL forms differ from the raw one
KEYS = {
    "SCRUB_CHAT": "sk-chat/7Qe+Lx9=A0001",
    "SCRUB_CLAUDE": "sk-ant/4Vb+Nz2=B0002",
    "SCRUB_COMPLETIONS": "sk-cmp/1Rt+Kw5=C0003",
    "SCRUB_EMBED": "sk-emb/8Hs+Pq3=D0004",
    "SCRUB_HTTP": "http/6Jd+Mv7=E0005",
    "SCRUB_SERVICE": "sy_svc/2Fg+Tb4=F0006",
}
CONFIG = """
routes:
  - name: chat
    type: chat
    upstream: {provider: openai, base_url: "UP/v1", model: m, api_key: "${SCRUB_CHAT}"}
    retries: 0
  - name: claude
    type: chat
    upstream: {provider: anthropic, base_url: "UP/v1", model: m, api_key: "${SCRUB_CLAUDE}",
               max_tokens: 16}
    retries: 0
  - name: completions
    type: completions
    upstream: {provider: openai, base_url: "UP/v1", model: m, api_key: "${SCRUB_COMPLETIONS}"}
    retries: 0
  - name: embed
    type: embeddings
    upstream: {provider: openai, base_url: "UP/v1", model: m, api_key: "${SCRUB_EMBED}"}
    retries: 0
  - name: files
    type: http
    upstream: {base_url: "UP/base", api_key: "${SCRUB_HTTP}", auth_header: x-api-key}
    retries: 0
  - name: ranker
    type: service
    upstream: {service: ranker, host_url: "UP", api_key: "${SCRUB_SERVICE}"}
    retries: 0
"""
OPENAI_ROUTES = ("chat", "claude", "completions", "embed")
ROUTES = (*OPENAI_ROUTES, "files", "ranker")
STATUSES = (200, 404, 500)


def _lower_hex(text: str) -> str:
    head, *escaped = text.split("%")
    return "%".join([head, *(part[:2].lower() + part[2:] for part in escaped)])


# how an upstream may write a credential (spelled out here, not taken from the gateway)
FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda k: k,
    "json \\/": lambda k: k.replace("/", "\\/"),
    "json \\u": lambda k: "".join(f"\\u{ord(c):04x}" for c in k),
    "json \\u upper": lambda k: "".join(f"\\u{ord(c):04X}" for c in k),
    "url": lambda k: quote(k, safe=""),
    "url lower": lambda k: _lower_hex(quote(k, safe="")),
}


@dataclass
class Plan:
    """What the upstream answers next: ``status``; the credential it got in ``form``, in the
    ``body`` or in a ``header``; the body compressed with ``coding``, or streamed in
    ``pieces`` chunks that cut the credential (or the compressed body) apart."""

    status: int = 200
    form: str = "raw"
    where: str = "body"
    coding: str | None = None
    pieces: int = 1
    echo_all: bool = False


PLAN = Plan()
SEEN: list[Request] = []


def credential(request: Request) -> str:
    auth = request.headers.get("authorization", "").removeprefix("Bearer ")
    return auth or request.headers.get("x-api-key", "")


def body_for(request: Request, text: str) -> bytes:
    """A body every route type takes at any status, quoting ``text`` in JSON strings."""
    if PLAN.status == 200 and b'"stream":true' in request.body:
        if request.target.endswith("/messages"):  # Anthropic's events
            return (
                b'event: message_start\ndata: {"type":"message_start","message":{"id":"m"}}\n\n'
                b"event: content_block_delta\ndata: "
                b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'
                + text.encode()
                + b'"}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
            )
        return (
            b'data: {"choices":[{"index":0,"delta":{"content":"key '
            + text.encode()
            + b'"}}]}\n\ndata: [DONE]\n\n'
        )
    quoted = text.encode()
    return (
        b'{"type":"error","error":{"type":"invalid_request_error","message":"bad key '
        + quoted
        + b'"},"content":[{"type":"text","text":"key '
        + quoted
        + b'"}],"stop_reason":"end_turn","echo":"'
        + quoted
        + b'"}'
    )


def upstream(request: Request) -> MockResponse:
    SEEN.append(request)
    plan = PLAN
    keys = list(KEYS.values()) if plan.echo_all else [credential(request)]
    text = " ".join(FORMS[plan.form](k) for k in keys)
    headers: dict[str, str] = {"content-type": "application/json"}
    if plan.where == "header":
        headers = {"x-request-id": text, "content-type": f"application/json; note={text}"}
        text = "nothing"
    body = body_for(request, text)
    cut_at = body.find(text.encode())
    if plan.coding == "gzip":
        body, cut_at = gzip.compress(body), 0
    elif plan.coding == "deflate":
        body, cut_at = zlib.compress(body), 0
    elif plan.coding:  # an encoding the gateway cannot decode: the body is not decodable
        body, cut_at = b"\x8b\x00" + body, 0
    if plan.coding:
        headers["content-encoding"] = plan.coding
    span = len(body) if plan.coding else len(FORMS[plan.form](keys[0]))
    cuts = [cut_at + span * i // plan.pieces for i in range(1, plan.pieces)]
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return MockResponse(plan.status, headers=headers, stream=_chunks(parts))


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    home = tmp_path_factory.mktemp("scrub")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SHIPYARD_HOME", str(home / "home"))
        for name, value in KEYS.items():
            env.setenv(name, value)
        path = home / "gateway.yaml"
        path.write_text(CONFIG.replace("UP", "http://up.test"))
        meta = MetaStore.open(f"sqlite:///{home}/meta.db")
        store = KeyStore(meta)
        try:
            gateway = Gateway(
                path,
                guard=Guard(store),
                watch=False,
                transport=lambda origin: MockTransport(upstream, origin=origin),
            )
            _, key = store.create("tests", ["route:*"])
            with TestClient(gateway) as client:
                yield client, key
        finally:
            store.close()
            meta.close()


def ask(gw: tuple[TestClient, str], route: str, *, stream: bool = False) -> httpx.Response:
    """The request that reaches ``route``'s upstream (streamed when ``stream``)."""
    client, key = gw
    auth = {"Authorization": f"Bearer {key}"}
    message = [{"role": "user", "content": "hi"}]
    if route in ("chat", "claude"):
        body: dict[str, Any] = {"model": route, "messages": message, "stream": stream}
        return client.post("/v1/chat/completions", json=body, headers=auth)
    if route == "completions":
        body = {"model": route, "prompt": "hi", "stream": stream}
        return client.post("/v1/completions", json=body, headers=auth)
    if route == "embed":
        return client.post("/v1/embeddings", json={"model": "embed", "input": "hi"}, headers=auth)
    if route == "files":
        return client.get("/gateway/files/doc", headers=auth)
    return client.post("/gateway/ranker/home", json={}, headers=auth)


def answer_of(r: httpx.Response) -> str:
    """Everything the caller got: status, headers, and the body as httpx decodes it (a
    caller's client gunzips a body sent with Content-Encoding: gzip)."""
    head = "".join(f"{k}: {v}\n" for k, v in r.headers.multi_items())
    return f"{r.status_code}\n{head}\n" + r.content.decode("utf-8", "replace")


def leaks(text: str) -> list[str]:
    return [
        f"{name} {how}"
        for name, key in KEYS.items()
        for how, form in FORMS.items()
        if form(key) in text
    ]


def check(r: httpx.Response, route: str, status: int, *, passed_on: bool) -> None:
    text = answer_of(r)
    assert leaks(text) == [], text
    assert "content-encoding" not in r.headers
    if route in OPENAI_ROUTES and status >= 500:
        assert r.status_code == 502  # replaced by the gateway's own error
    else:
        assert r.status_code == status, text
        assert ("[redacted]" in text) is passed_on, text


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("route", ROUTES)
def test_a_key_in_a_body_never_leaves(
    gw: tuple[TestClient, str], route: str, form: str, status: int
) -> None:
    global PLAN
    PLAN = Plan(status=status, form=form)
    check(ask(gw, route), route, status, passed_on=True)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("form", ["raw", "url"])
@pytest.mark.parametrize("route", ROUTES)
def test_a_key_in_a_header_never_leaves(
    gw: tuple[TestClient, str], route: str, form: str, status: int
) -> None:
    global PLAN
    PLAN = Plan(status=status, form=form, where="header")
    # the OpenAI surface passes on an error's content-type only; passthrough its headers
    check(ask(gw, route), route, status, passed_on=status >= 400 or route not in OPENAI_ROUTES)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("route", ROUTES)
def test_a_compressed_body_is_decoded_scrubbed_and_sent_on_decoded(
    gw: tuple[TestClient, str], route: str, coding: str, status: int
) -> None:
    global PLAN
    PLAN = Plan(status=status, coding=coding)
    r = ask(gw, route)
    check(r, route, status, passed_on=True)
    if r.status_code != 502:
        assert r.content.startswith((b"{", b"data:")), r.content[:20]  # plain, not gzip


@pytest.mark.parametrize("route", ["chat", "files", "ranker"])
def test_an_encoding_that_cannot_be_scrubbed_is_refused(
    gw: tuple[TestClient, str], route: str
) -> None:
    global PLAN
    PLAN = Plan(status=200, coding="br")
    r = ask(gw, route)
    assert r.status_code == 502 and leaks(answer_of(r)) == []
    assert "Content-Encoding 'br'" in r.text and "asked for identity" in r.text


STREAMED = [
    ("chat", 200),
    ("claude", 200),
    ("completions", 200),
    ("files", 200),
    ("files", 500),
    ("ranker", 200),
    ("ranker", 500),
]


@pytest.mark.parametrize("pieces", [2, 3])
@pytest.mark.parametrize("form", ["raw", "json \\u", "url"])
@pytest.mark.parametrize(("route", "status"), STREAMED)
def test_a_key_split_across_stream_chunks_never_leaves(
    gw: tuple[TestClient, str], route: str, status: int, form: str, pieces: int
) -> None:
    global PLAN
    PLAN = Plan(status=status, form=form, pieces=pieces)
    r = ask(gw, route, stream=True)
    check(r, route, status, passed_on=True)
    if route in OPENAI_ROUTES:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.text.endswith("data: [DONE]\n\n")


@pytest.mark.parametrize(("route", "status"), STREAMED)
def test_a_gzip_stream_cut_in_three_is_decoded_and_scrubbed(
    gw: tuple[TestClient, str], route: str, status: int
) -> None:
    global PLAN
    PLAN = Plan(status=status, coding="gzip", pieces=3)
    check(ask(gw, route, stream=True), route, status, passed_on=True)


def test_any_configured_key_is_scrubbed_not_only_the_routes_own(
    gw: tuple[TestClient, str],
) -> None:
    global PLAN
    PLAN = Plan(status=200, form="json \\/", echo_all=True)
    r = ask(gw, "files")
    check(r, "files", 200, passed_on=True)
    assert r.json()["echo"] == " ".join(["[redacted]"] * len(KEYS))


def test_the_forms_are_computed_once_per_configuration(
    gw: tuple[TestClient, str],
) -> None:
    gateway = gw[0].app
    assert isinstance(gateway, Gateway)
    before = gateway.scrubber
    global PLAN
    PLAN = Plan()
    ask(gw, "files")
    ask(gw, "chat")
    assert gateway.scrubber is before  # nothing is computed per request
    assert before.hold == max(6 * len(k) for k in KEYS.values()) - 1


def test_a_reload_adds_its_new_keys_and_keeps_the_old_ones(
    tmp_path: Path, keystore: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.replace("UP", "http://up.test"))
    gateway = Gateway(path, guard=Guard(keystore), watch=False)
    first = gateway.scrubber
    gateway.swap(load_config(path))
    assert gateway.scrubber is first  # the same keys: nothing recomputed
    monkeypatch.setenv("SCRUB_CHAT", "sk-rotated/9Zz+0=new")
    gateway.swap(load_config(path))
    rotated = gateway.scrubber.scrub(b"sk-rotated\\/9Zz+0=new sk-chat%2F7Qe%2BLx9%3DA0001")
    assert rotated == b"[redacted] [redacted]"


# -- over real sockets ---------------------------------------------------------------------------
def test_end_to_end_over_real_sockets(
    tmp_path: Path, keystore: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pooled client and a real upstream sending chunked bodies: a 500 echoing the key
    split across three chunks, a gzip body, an SSE stream cutting the key in two."""
    global PLAN
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ServerThread(asgi(upstream), port).start()
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.replace("UP", f"http://127.0.0.1:{port}"))
    gateway = ServerThread(Gateway(path, guard=Guard(keystore), watch=False)).start()
    _, key = keystore.create("tests", ["route:*"])
    auth = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=gateway.url, headers=auth, timeout=30) as client:
            SEEN.clear()
            PLAN = Plan(status=500, pieces=3)
            r = client.get("/gateway/files/doc")
            check(r, "files", 500, passed_on=True)
            assert SEEN[-1].headers["accept-encoding"] == "identity"

            PLAN = Plan(status=200, coding="gzip")
            check(client.get("/gateway/files/doc"), "files", 200, passed_on=True)

            PLAN = Plan(status=200, form="json \\u", pieces=2)
            body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
            with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as s:
                s.read()
            check(s, "chat", 200, passed_on=True)
    finally:
        gateway.stop()
        server.stop()
        PLAN = Plan()
