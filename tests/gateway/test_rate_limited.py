"""An upstream's 429: its wait is passed on as ``Retry-After`` (or one is computed), on every
route type, streamed and not, and the gateway never asks it again sooner than it asked."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from gateway_fakes import KeptOpen

from shipyard.gateway import Gateway
from shipyard.gateway.cooldown import DEFAULT_WAIT, MAX_WAIT, asked_wait
from shipyard.gateway.testing import MockResponse, MockTransport
from shipyard.gateway.upstream_http import Request
from shipyard.keys import Guard, KeyStore

LIMITED = "http://limited.test:80"
SPARE = "http://spare.test:80"
MSG = [{"role": "user", "content": "q"}]
CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "spare"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}  # fmt: skip

CONFIG = f"""
routes:
  - name: chat
    type: chat
    upstream: {{provider: openai, base_url: "{LIMITED}/v1", model: m}}
    retries: {{attempts: 2, backoff: 0.01, max_backoff: 2}}
  - name: stubborn
    type: chat
    upstream: {{provider: openai, base_url: "{LIMITED}/v1", model: m}}
    retries: {{attempts: 2, backoff: 0.01, max_backoff: 2}}
    fallback: [spare]
  - name: spare
    type: chat
    upstream: {{provider: openai, base_url: "{SPARE}/v1", model: m}}
  - name: files
    type: http
    upstream: {{base_url: "{LIMITED}/files"}}
    retries: {{attempts: 1, backoff: 0.01, max_backoff: 2}}
  - name: claude
    type: chat
    upstream: {{provider: anthropic, base_url: "{LIMITED}/v1", model: c, max_tokens: 8}}
    retries: 0
"""


class Limited:
    """An upstream that answers every request 429 with ``headers``."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.sent: list[float] = []  # when each request arrived (monotonic)

    def __call__(self, request: Request) -> MockResponse:
        self.sent.append(time.monotonic())
        return MockResponse(429, headers=self.headers, json={"error": {"message": "slow down"}})


Start = Callable[[], tuple[KeptOpen, dict[str, str], Limited, list[Request]]]


@pytest.fixture
def start(tmp_path: Path, keystore: KeyStore) -> Iterator[Start]:
    opened: list[KeptOpen] = []

    def go() -> tuple[KeptOpen, dict[str, str], Limited, list[Request]]:
        limited, spare_seen = Limited(), []

        def spare(request: Request) -> MockResponse:
            spare_seen.append(request)
            return MockResponse(200, json=CHAT)

        transports = {LIMITED: MockTransport(limited), SPARE: MockTransport(spare)}
        path = tmp_path / "gateway.yaml"
        path.write_text(CONFIG)
        gateway = Gateway(
            path,
            guard=Guard(keystore, allowed_hosts=["testserver"]),
            transport=transports.__getitem__,
        )
        client = KeptOpen(gateway).__enter__()
        opened.append(client)
        _, key = keystore.create("tests", ["route:*"])
        return client, {"Authorization": f"Bearer {key}"}, limited, spare_seen

    yield go
    for client in opened:
        client.__exit__(None, None, None)


def _chat(
    client: KeptOpen, auth: Mapping[str, str], model: str, *, stream: bool = False
) -> httpx.Response:
    body = {"model": model, "messages": MSG, "stream": stream}
    return client.post("/v1/chat/completions", json=body, headers=dict(auth))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_upstreams_retry_after_is_passed_on_and_no_retry_comes_sooner(
    start: Start, stream: bool
) -> None:
    client, auth, limited, _ = start()
    limited.headers = {"retry-after": "30"}  # longer than max_backoff: no retry at all
    r = _chat(client, auth, "chat", stream=stream)
    assert r.status_code == 429
    assert r.headers["retry-after"] in ("29", "30")
    assert r.json()["error"]["type"] == "rate_limit_exceeded"
    assert len(limited.sent) == 1
    again = _chat(client, auth, "chat", stream=stream)  # at once: the route rests
    assert again.status_code == 429
    assert 1 <= int(again.headers["retry-after"]) <= 30
    assert len(limited.sent) == 1  # the upstream was not asked again
    assert "not tried" in again.json()["error"]["message"]
    metrics = client.get("/metrics").text
    assert 'shipyard_gateway_upstream_rested_total{route="chat"} 1.0' in metrics


def test_a_retry_waits_at_least_what_the_upstream_asked(start: Start) -> None:
    client, auth, limited, _ = start()
    limited.headers = {"retry-after-ms": "1000"}  # fits max_backoff (2 s): retried after it
    r = _chat(client, auth, "chat")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert len(limited.sent) == 3  # 1 + 2 retries, each at least the asked second later
    gaps = [b - a for a, b in zip(limited.sent, limited.sent[1:], strict=False)]
    assert min(gaps) >= 0.99, gaps  # the route's own backoff (0.01 s) would have been sooner


def test_a_fallback_answers_and_later_requests_skip_the_resting_route(start: Start) -> None:
    client, auth, limited, spare_seen = start()
    limited.headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m0s"}
    for _ in range(3):
        r = _chat(client, auth, "stubborn")
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "spare"
    assert len(limited.sent) == 1 and len(spare_seen) == 3


def test_the_passthrough_and_anthropic_routes_pass_it_on_too(start: Start) -> None:
    client, auth, limited, _ = start()
    limited.headers = {"retry-after": "40"}
    r = client.get("/gateway/files/x", headers=auth)
    assert r.status_code == 429 and r.headers["retry-after"] in ("39", "40")
    assert r.json()["error"]["type"] == "rate_limit_exceeded"
    limited.headers = {}  # no wait given: one is computed (the default)
    r = _chat(client, auth, "claude")
    assert r.status_code == 429 and r.headers["retry-after"] == "1"


def test_the_wait_is_read_from_each_header_the_providers_send() -> None:
    now = 1_000_000.0
    assert asked_wait({"retry-after-ms": "1500", "retry-after": "9"}, now) == 1.5
    assert asked_wait({"retry-after": "7"}, now) == 7
    date = "Mon, 12 Jan 1970 13:46:50 GMT"  # now + 10 s
    assert asked_wait({"retry-after": date}, now) == pytest.approx(10)
    openai = {
        "x-ratelimit-remaining-requests": "12",
        "x-ratelimit-reset-requests": "20ms",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0.5s",
    }
    assert asked_wait(openai, now) == MAX_WAIT  # 360.5 s, capped
    openai["x-ratelimit-reset-tokens"] = "1m2s"
    assert asked_wait(openai, now) == 62  # the exhausted limit, not the other
    del openai["x-ratelimit-remaining-tokens"]
    assert asked_wait(openai, now) == 62  # none says which: the latest
    anthropic = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "1970-01-12T13:47:00Z",  # now + 20 s
        "anthropic-ratelimit-tokens-remaining": "500",
        "anthropic-ratelimit-tokens-reset": "1970-01-12T13:50:00Z",
    }
    assert asked_wait(anthropic, now) == pytest.approx(20)
    assert asked_wait({}, now) == DEFAULT_WAIT
    assert asked_wait({"retry-after": "soon"}, now) == DEFAULT_WAIT
    assert asked_wait({"retry-after": "nan"}, now) == DEFAULT_WAIT
    assert asked_wait({"retry-after": "86400"}, now) == MAX_WAIT
    assert asked_wait({"retry-after": "-5"}, now) == 0
