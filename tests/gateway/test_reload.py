"""Hot reload: the file is rewritten under load with no failed request, a stream in flight
finishes on the old table, pools survive, and an invalid file is refused.

The test under load is the gateway's end-to-end test: real sockets on both sides, the
pooled upstream client, the file watcher. Every wait polls for a state, with a deadline."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import httpx
import pytest
from gateway_fakes import Running, Upstreams, config_text, origin_of

from shipyard.gateway.upstream_http import Pool
from support.waiting import wait_for


def swap_chat(text: str, ups: Upstreams, to: str) -> str:
    return text.replace(
        f'base_url: "{ups.a}/v1", model: echo, api_key: "${{CHAT_KEY}}"}}\n    retries',
        f'base_url: "{to}/v1", model: echo, api_key: "${{CHAT_KEY}}"}}\n    retries',
        1,
    )


def test_reload_under_load_drops_nothing(
    live_ups: Upstreams, live_gateway: Callable[..., Running]
) -> None:
    ups = live_ups
    original = config_text(ups)
    gw = live_gateway(original, watch=True)
    pool_a = gw.gateway.table.transports[origin_of(ups.a)]
    assert isinstance(pool_a, Pool)  # the default transport
    failures: list[str] = []
    answers: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers=gw.auth, timeout=10) as c:
            i = 0
            while not stop.is_set():
                i += 1
                body = {
                    "model": "chat",
                    "messages": [{"role": "user", "content": "x"}],
                    "stream": i % 3 == 0,
                }
                try:
                    r = c.post(gw.url + "/v1/chat/completions", json=body)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        answers.append(r.text)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    chunks: list[str] = []

    def slow_stream() -> None:
        # the upstream holds this stream after its first chunk until every reload is done
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "s"}]}
        with httpx.stream(
            "POST", gw.url + "/v1/chat/completions", json=body, headers=gw.auth, timeout=20
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    chunks.append(line)

    def chat_upstream() -> str | None:
        chat = gw.gateway.table.routes.get("chat")  # a half-written file may lack it
        return chat.upstream.base_url if chat is not None else None

    threads = [threading.Thread(target=load) for _ in range(3)]
    streamer = threading.Thread(target=slow_stream)
    for t in (*threads, streamer):
        t.start()
    try:
        wait_for(
            lambda: len(answers) >= 10 and len(chunks) >= 2, "load and a stream in flight"
        )  # load, a stream in flight
        swapped = swap_chat(original, ups, ups.b)
        assert swapped != original
        for n in range(6):
            text, target = (swapped, ups.b) if n % 2 == 0 else (original, ups.a)
            if n % 3 == 0:
                gw.path.write_text(text)  # not atomic: the watcher may see a half-written file
            else:
                tmp = gw.path.with_suffix(".tmp")
                tmp.write_text(text)
                os.replace(tmp, gw.path)
            wait_for(lambda target=target: chat_upstream() == target + "/v1", f"chat -> {target}")
        gw.path.write_text(swapped)
        wait_for(lambda: chat_upstream() == ups.b + "/v1", "chat -> b")
        seen = len(answers)
        wait_for(
            lambda: any("b:x" in a for a in answers[seen:]), "an answer from b"
        )  # served by the last table
        assert len(chunks) == 2  # the stream is still held upstream, through every reload
    finally:
        ups.gate.set()
        stop.set()
        for t in (*threads, streamer):
            t.join(30)
    assert failures == []
    assert len(answers) > 30
    assert any("a:x" in a for a in answers) and any("b:x" in a for a in answers)
    assert len(chunks) == 6 and chunks[-1] == "data: [DONE]"  # the stream outlived reloads
    # the origin of `slow` never left the config: its pool (and connections) were kept
    assert gw.gateway.table.transports[pool_a.origin] is pool_a and not pool_a.closed
    metrics = gw.get("/metrics").text
    assert 'shipyard_gateway_reloads_total{outcome="applied"}' in metrics


def test_an_invalid_file_is_refused_and_the_old_routes_keep_serving(
    ups: Upstreams, serve_gateway: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    # in memory: the watcher runs on the TestClient's event loop
    caplog.set_level(logging.INFO, logger="shipyard.gateway")
    original = config_text(ups)
    gw = serve_gateway(original, watch=True)
    broken = original.replace(
        "    retries: {attempts: 1, backoff: 0.01}\n",
        "    retries: {attempts: 1, backoff: 0.01}\n    fallback: [ghost]\n",
    )
    line = broken.splitlines().index("    fallback: [ghost]") + 1
    gw.path.write_text(broken)
    wait_for(lambda: gw.gateway.last_error is not None, "the reload to be refused")
    assert gw.gateway.last_error.startswith(f"{gw.path}:{line}: ")  # type: ignore[union-attr]
    assert "unknown route 'ghost'" in (gw.gateway.last_error or "")
    assert f"{gw.path}:{line}" in caplog.text and "NOT reloaded" in caplog.text
    r = gw.post(
        "/v1/chat/completions",
        {"model": "chat", "messages": [{"role": "user", "content": "still"}]},
    )
    assert r.status_code == 200 and "a:still" in r.text
    # a file that drops an origin closes its transport once nothing uses it
    anthropic = gw.gateway.table.transports[origin_of(ups.anthropic)]
    gw.path.write_text(original.split("  - name: claude")[0])
    wait_for(lambda: "claude" not in gw.gateway.table.routes, "claude to go")
    wait_for(lambda: getattr(anthropic, "closed", False), "its transport to close")
    assert gw.post("/v1/chat/completions", {"model": "claude", "messages": []}).status_code == 404
