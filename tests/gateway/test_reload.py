"""Hot reload: the file is rewritten under load with no failed request, a stream in flight
finishes on the old table, pools survive, and an invalid file is refused."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from gateway_fakes import Running, Upstreams, config_text


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def swap_chat(text: str, ups: Upstreams, to: str) -> str:
    return text.replace(
        f'base_url: "{ups.a}/v1", model: echo, api_key: "${{CHAT_KEY}}"}}\n    retries',
        f'base_url: "{to}/v1", model: echo, api_key: "${{CHAT_KEY}}"}}\n    retries',
        1,
    )


def test_reload_under_load_drops_nothing(
    ups: Upstreams, serve_gateway: Callable[..., Running]
) -> None:
    original = config_text(ups)
    gw = serve_gateway(original, watch=True)
    pool_a = gw.gateway.table.transports[f"http://127.0.0.1:{ups.a.rsplit(':', 1)[1]}"]
    failures: list[str] = []
    answers: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers=gw.auth, timeout=10) as c:
            for i in range(400):
                if stop.is_set():
                    return
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
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "s"}]}
        with httpx.stream(
            "POST", gw.url + "/v1/chat/completions", json=body, headers=gw.auth, timeout=10
        ) as r:
            chunks.extend(line for line in r.iter_lines() if line.startswith("data:"))

    threads = [threading.Thread(target=load) for _ in range(3)]
    streamer = threading.Thread(target=slow_stream)
    for t in (*threads, streamer):
        t.start()
    time.sleep(0.2)
    swapped = swap_chat(original, ups, ups.b)
    assert swapped != original
    for n in range(6):
        text = swapped if n % 2 == 0 else original
        if n % 3 == 0:
            gw.path.write_text(text)  # not atomic: the watcher may see a half-written file
        else:
            tmp = gw.path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, gw.path)
        time.sleep(0.25)
    gw.path.write_text(swapped)
    wait_for(lambda: gw.gateway.table.routes["chat"].upstream.base_url == ups.b + "/v1")
    time.sleep(0.2)
    stop.set()
    for t in (*threads, streamer):
        t.join(30)
    assert failures == []
    assert len(answers) > 30
    assert any("a:x" in a for a in answers) and any("b:x" in a for a in answers)
    assert len(chunks) == 6 and chunks[-1] == "data: [DONE]"  # the stream outlived reloads
    # the origin of `slow` never left the config: its pool (and connections) were kept
    assert gw.gateway.table.transports[pool_a.origin] is pool_a and not pool_a.closed
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'shipyard_gateway_reloads_total{outcome="applied"}' in metrics


def test_an_invalid_file_is_refused_and_the_old_routes_keep_serving(
    ups: Upstreams, serve_gateway: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shipyard.gateway")
    original = config_text(ups)
    gw = serve_gateway(original, watch=True)
    broken = original.replace(
        "    retries: {attempts: 1, backoff: 0.01}\n",
        "    retries: {attempts: 1, backoff: 0.01}\n    fallback: [ghost]\n",
    )
    line = broken.splitlines().index("    fallback: [ghost]") + 1
    gw.path.write_text(broken)
    wait_for(lambda: gw.gateway.last_error is not None)
    assert gw.gateway.last_error.startswith(f"{gw.path}:{line}: ")  # type: ignore[union-attr]
    assert "unknown route 'ghost'" in (gw.gateway.last_error or "")
    assert f"{gw.path}:{line}" in caplog.text and "NOT reloaded" in caplog.text
    r = gw.post(
        "/v1/chat/completions",
        {"model": "chat", "messages": [{"role": "user", "content": "still"}]},
    )
    assert r.status_code == 200 and "a:still" in r.text
    # a file that drops a pool closes it once nothing uses it
    old_pools = dict(gw.gateway.table.transports)
    gw.path.write_text(original.split("  - name: claude")[0])
    wait_for(lambda: "claude" not in gw.gateway.table.routes)
    anthropic = [p for o, p in old_pools.items() if o.endswith(ups.anthropic.rsplit(":", 1)[1])]
    wait_for(lambda: anthropic[0].closed)
    assert gw.post("/v1/chat/completions", {"model": "claude", "messages": []}).status_code == 404
