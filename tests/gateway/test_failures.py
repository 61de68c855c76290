"""Upstream failures: retries, fallbacks, 502/504, refused credentials, redirects — and no
upstream credential in any body, log line or metric."""

from __future__ import annotations

import logging
from collections.abc import Callable

import openai
import pytest
from gateway_fakes import SECRETS, Running, Upstreams, config_text, openai_client

MSG = [{"role": "user", "content": "q"}]


def extra(ups: Upstreams) -> str:
    return f"""
  - name: flaky
    type: chat
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: fail, api_key: "${{CHAT_KEY}}"}}
    retries: {{attempts: 2, backoff: 0.01}}
    fallback: [down, backup]
  - name: down
    type: chat
    upstream: {{provider: openai, base_url: "{ups.dead}/v1", model: echo}}
    retries: {{attempts: 1, backoff: 0.01}}
  - name: alldown
    type: chat
    upstream: {{provider: openai, base_url: "{ups.dead}/v1", model: echo}}
    retries: {{attempts: 1, backoff: 0.01}}
    fallback: [down]
  - name: sleepy
    type: chat
    timeout: 0.3
    retries: 0
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: sleep}}
  - name: denied
    type: chat
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: deny, api_key: "${{CHAT_KEY}}"}}
  - name: moved
    type: chat
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: moved, api_key: "${{CHAT_KEY}}"}}
  - name: busy
    type: chat
    retries: {{attempts: 1, backoff: 0.01}}
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: busy}}
  - name: bad
    type: chat
    upstream: {{provider: openai, base_url: "{ups.a}/v1", model: bad, api_key: "${{CHAT_KEY}}"}}
"""


@pytest.fixture
def gw(ups: Upstreams, serve_gateway: Callable[..., Running]) -> Running:
    return serve_gateway(config_text(ups, extra(ups)))


def test_retries_then_fallbacks_in_order(gw: Running, ups: Upstreams) -> None:
    r = gw.post("/v1/chat/completions", {"model": "flaky", "messages": MSG})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "b:q"  # answered by `backup`
    fails = [q for q in ups.rec_a.requests if b'"fail"' in q["body"]]
    assert len(fails) == 3  # 1 + 2 retries on the primary, then `down`, then `backup`
    metrics = gw.get("/metrics").text
    assert 'shipyard_gateway_upstream_attempts_total{outcome="500",route="flaky"} 3.0' in metrics
    assert 'outcome="unreachable",route="down"' in metrics


def test_all_down_is_a_502_naming_each_route(gw: Running) -> None:
    r = gw.post("/v1/chat/completions", {"model": "alldown", "messages": MSG})
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert "'alldown'" in message and "fallback 'down'" in message and "unreachable" in message
    with openai_client(gw) as c, pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="alldown", messages=MSG)  # type: ignore[arg-type]


def test_slow_upstream_is_a_504(gw: Running) -> None:
    r = gw.post("/v1/chat/completions", {"model": "sleepy", "messages": MSG})
    assert r.status_code == 504
    assert "no answer within 0.3 s" in r.json()["error"]["message"]


def test_rate_limited_upstream_is_a_429_after_retries(gw: Running, ups: Upstreams) -> None:
    r = gw.post("/v1/chat/completions", {"model": "busy", "messages": MSG})
    assert r.status_code == 429
    assert len([q for q in ups.rec_a.requests if b'"busy"' in q["body"]]) == 2


def test_refused_credentials_and_redirects_become_our_502(gw: Running, ups: Upstreams) -> None:
    denied = gw.post("/v1/chat/completions", {"model": "denied", "messages": MSG})
    assert denied.status_code == 502
    assert "refused the gateway's credentials" in denied.json()["error"]["message"]
    moved = gw.post("/v1/chat/completions", {"model": "moved", "messages": MSG})
    assert moved.status_code == 502 and "location" not in moved.headers
    assert "never follows redirects" in moved.json()["error"]["message"]
    assert all("169.254" not in q["path"] for q in ups.rec_a.requests)


def test_no_upstream_credential_in_bodies_logs_or_metrics(
    gw: Running, ups: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    for model in ("chat", "flaky", "alldown", "denied", "moved", "bad", "claude", "nope"):
        for stream in (False, True):
            r = gw.post("/v1/chat/completions", {"model": model, "messages": MSG, "stream": stream})
            bodies.append(r.text + str(r.headers))
    bad = gw.post("/v1/chat/completions", {"model": "bad", "messages": MSG})
    assert bad.status_code == 400 and "[redacted]" in bad.json()["error"]["message"]
    for path in ("ok", "forbidden", "redirect"):
        r = gw.get(f"/gateway/files/{path}", headers=gw.auth)
        bodies.append(r.text + str(r.headers))
    bodies.append(gw.get("/metrics").text)
    bodies.append(gw.get("/healthz").text)
    bodies.append(caplog.text)
    everything = "\n".join(bodies)
    assert "a:q" in everything  # the grep looked at real answers
    for secret in SECRETS.values():
        assert secret not in everything
    assert gw.key not in caplog.text
