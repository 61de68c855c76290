"""The UI serves a task's cards from the blob store under a strict, sandboxing policy, and
the task page links to them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from shipyard.keys import Guard, KeyStore
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.ui import standalone

if TYPE_CHECKING:
    from conftest import CardEnv

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


@pytest.fixture
def client(env: CardEnv) -> Iterator[TestClient]:
    meta = MetaStore.open()
    keys = KeyStore(meta)
    app = standalone(meta, open_blob_store(), Guard(keys))
    try:
        yield TestClient(app, client=("127.0.0.1", 1), base_url="http://127.0.0.1:8002")
    finally:
        keys.close()
        meta.close()


def test_card_route_serves_the_html_with_its_own_policy(env: CardEnv, client: TestClient) -> None:
    task = env.run["report"].task
    response = client.get(f"/ui/runs/{task.pathspec}/cards/charts")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<polyline" in response.text and "<h1>Charts</h1>" in response.text


def test_task_page_lists_its_cards_with_links(env: CardEnv, client: TestClient) -> None:
    task = env.run["report"].task
    page = client.get(f"/ui/runs/{task.pathspec}")
    assert page.status_code == 200
    cards = page.text[page.text.index('id="cards"') :]
    links = re.findall(r'href="([^"]+/cards/[^"]+)"', cards)
    base = f"/ui/runs/{task.pathspec}/cards"
    assert links == [f"{base}/default", f"{base}/charts"]
    assert ">Charts</a>" in cards and "blank card" in cards
    for link in links:
        assert client.get(link).status_code == 200


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("report/{report}/cards/nope", "has no card &#39;nope&#39;"),
        ("report/999999/cards/default", "does not exist"),
        ("start/{report}/cards/default", "does not exist"),
        ("report/{report}/cards/x%3Cy", "has no card &#39;x&lt;y&#39;"),
    ],
)
def test_unknown_cards_are_404_pages_with_the_ui_policy(
    env: CardEnv, client: TestClient, suffix: str, message: str
) -> None:
    report = env.run["report"].task.id
    response = client.get(f"/ui/runs/{env.run.pathspec}/" + suffix.format(report=report))
    assert response.status_code == 404
    assert response.headers["content-security-policy"] != CSP
    assert message in response.text
