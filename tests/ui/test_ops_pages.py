"""The operations pages over HTTP in the UI alone (``shipyard ui``): gateway usage from the
database, cache namespaces from the LMDB cache, the runs page's time filter, the charts'
JSON, and actions refused (this UI is always read-only). Unknown ids are 404s, never 500s."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from shipyard.store.schema import runs

if TYPE_CHECKING:
    from ui_support import UIEnv


def test_gateway_page_without_a_gateway_shows_recorded_usage(ui_env: UIEnv) -> None:
    from shipyard.gateway.usage import UsageRecorder

    client = ui_env.client()
    empty = client.get("/ui/gateway")
    assert empty.status_code == 200
    assert 'id="no-gateway"' in empty.text and 'id="no-usage"' in empty.text

    now = datetime.now(UTC)
    usage = UsageRecorder(ui_env.meta.engine, start=False, wall=lambda: now)
    for status in (200, 200, 502):
        usage.add("chat", 7, "sy_abc123", status=status, latency_ms=120.0, tokens_in=10,
                  tokens_out=30, streamed=False, cost=0.01)  # fmt: skip
    old = now - timedelta(hours=5)
    usage._wall = lambda: old
    usage.add("chat", 7, "sy_abc123", status=200, latency_ms=50.0, tokens_in=1, tokens_out=1,
              streamed=False, cost=0.0)  # fmt: skip
    usage.close()

    hour = client.get("/ui/gateway")
    row = re.search(r'<tr data-route="chat" data-key="sy_abc123">(.*?)</tr>', hour.text, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    assert cells[:6] == ["3", "1", "0", "0", "30", "90"]  # requests, errors, ..., tokens
    day = client.get("/ui/gateway?period=day")
    row = re.search(r'<tr data-route="chat" data-key="sy_abc123">(.*?)</tr>', day.text, re.S)
    assert row is not None and re.findall(r'<td class="num">([^<]*)</td>', row.group(1))[0] == "4"
    bad = client.get("/ui/gateway?period=year")
    assert bad.status_code == 400 and "period &#39;year&#39;" in bad.text


def test_cache_pages_list_namespaces_and_versions(ui_env: UIEnv) -> None:
    from shipyard import cache

    client = ui_env.client()
    assert 'id="no-namespaces"' in client.get("/ui/cache").text
    assert not (ui_env.home / "cache").exists()  # looking does not create the cache

    url = f"lmdb://{ui_env.home / 'cache'}"
    for n in (2, 3):
        with cache.writer("home-rows", meta={"run": "UiFlow/1"}, url=url) as w:
            w.put_many({f"p{i}": "x" * 2000 for i in range(n)})
    cache.configure("home-rows", max_age=1, url=url)
    with cache.writer("fresh", url=url) as w:
        w.put_many({"k": 1})

    page = client.get("/ui/cache")
    assert page.status_code == 200
    assert re.findall(r'data-namespace="([^"]+)"', page.text) == ["fresh", "home-rows"]
    home = re.search(r'<tr data-namespace="home-rows">(.*?)</tr>', page.text, re.S)
    assert home is not None and "stale" not in home.group(1)  # just published

    detail = client.get("/ui/cache/home-rows")
    assert detail.status_code == 200
    versions = cache.open_backend(url).versions("home-rows")
    shown = re.findall(r'<tr data-version="([^"]+)"', detail.text)
    assert shown == [v.version for v in reversed(versions)]
    # the size the writer measured: 3 values of ~2,000 bytes, and 2 for the older version
    assert 'class="status st-succeeded">live' in detail.text
    assert re.findall(r"(\d\.\d) KiB", detail.text) == ["5.9", "3.9"]
    assert "run: UiFlow/1" in detail.text

    for missing in ("/ui/cache/nope", "/ui/cache/BAD%20NAME", "/ui/cache/_settings.home-rows"):
        response = client.get(missing)
        assert response.status_code == 404, missing
        assert 'id="error-message"' in response.text


def test_runs_since_filter(ui_env: UIEnv) -> None:
    client = ui_env.client()
    old_id = ui_env.meta.create_run(
        "OldFlow", user="ann", params={}, tags=["old"], graph={}, code_key=None
    )
    with ui_env.meta.engine.begin() as conn:
        stamp = datetime.now(UTC) - timedelta(days=3)
        conn.execute(sa.update(runs).where(runs.c.run_id == old_id).values(created_at=stamp))

    def shown(query: str) -> list[str]:
        response = client.get("/ui/runs" + query)
        assert response.status_code == 200, response.text
        return re.findall(r'data-run="([^"]+)"', response.text)

    assert f"OldFlow/{old_id}" in shown("")
    assert f"OldFlow/{old_id}" in shown("?since=7d")
    recent = shown("?since=24h")
    assert f"OldFlow/{old_id}" not in recent
    assert {r.pathspec for r in ui_env.runs} <= set(recent)
    assert shown("?since=1h&tag=old") == []
    assert shown("?since=7d&tag=old&status=running") == [f"OldFlow/{old_id}"]
    assert shown("?since=7d&tag=old&status=succeeded") == []
    assert 'value="24h" selected' in client.get("/ui/runs?since=24h").text
    data = client.get("/ui/api/runs?since=1h&flow=OldFlow").json()
    assert data["runs"] == []
    bad = client.get("/ui/runs?since=2d")
    assert bad.status_code == 400 and "since &#39;2d&#39;" in bad.text


def test_charts_json_and_history_outside_the_host(ui_env: UIEnv) -> None:
    client = ui_env.client()
    data = client.get("/ui/api/deployments").json()
    assert data == {"live": False, "fingerprint": "-", "services": {}}
    missing = client.get("/ui/api/deployments/nope/history")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    page = client.get("/ui/deployments")
    assert "data-poll" not in page.text and "Traffic, last hour" not in page.text


@pytest.mark.parametrize(
    "path", ["/ui/actions/models/uimodel/aliases/prod", "/ui/actions/deployments/x/rollback"]
)
def test_the_ui_alone_is_read_only(ui_env: UIEnv, path: str) -> None:
    client = ui_env.client()
    response = client.post(path, json={"version": 1}, headers={"Origin": "http://127.0.0.1:8002"})
    assert response.status_code == 403 and response.json()["error"]["type"] == "read_only"
    assert client.get(path).status_code == 405
    page = client.get("/ui/models/uimodel")
    assert 'id="read-only"' in page.text and 'id="move-alias"' not in page.text
    assert 'id="signin-link"' not in page.text  # signing in would not enable anything here
