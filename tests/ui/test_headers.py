"""The UI's security headers come from one middleware: on every answer (pages, JSON, error
pages, sign-in, redirects), never overriding a header a response sets itself (a card's
stricter policy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from shipyard.keys import Guard, KeyStore
from shipyard.store import context as _stores
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.ui import standalone
from shipyard.ui.headers import SECURITY_HEADERS, SecurityHeaders


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    meta = MetaStore.open()
    keys = KeyStore(meta)
    app = standalone(meta, open_blob_store(), Guard(keys))
    yield TestClient(app, client=("127.0.0.1", 1), base_url="http://127.0.0.1:8002")
    keys.close()
    meta.close()
    _stores.reset()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ui/runs", 200),  # a page
        ("GET", "/ui/api/runs", 200),  # its JSON
        ("GET", "/ui/runs/NoFlow/1", 404),  # a handler's error page
        ("GET", "/ui/no/such/page", 404),  # no route at all
        ("GET", "/ui/signin", 200),  # the sign-in form
        ("POST", "/ui/signout", 303),  # a redirect
        ("POST", "/ui/actions/deployments/x/rollback", 403),  # an action, refused: read-only
    ],
)
def test_every_answer_carries_the_security_headers(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path, follow_redirects=False)
    assert response.status_code == status, response.text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, (path, name)


def test_a_header_the_response_sets_is_kept() -> None:
    async def card(request: Request) -> PlainTextResponse:
        return PlainTextResponse("card", headers={"Content-Security-Policy": "sandbox"})

    app = SecurityHeaders(Starlette(routes=[Route("/card", card)]))
    response = TestClient(app).get("/card")
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers.get_list("content-security-policy") == ["sandbox"]
