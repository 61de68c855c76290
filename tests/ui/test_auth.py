"""Who may see the UI: open on loopback while no ``ui`` key exists; otherwise a sign-in
form that keeps the key in an HttpOnly, SameSite=Strict cookie; wrong Host refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shipyard.keys import Guard, KeyStore
from shipyard.store import context as _stores
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.ui import standalone
from shipyard.ui.context import COOKIE

LOOPBACK = ("127.0.0.1", 1234)
REMOTE = ("203.0.113.7", 1234)
BASE_URL = "http://127.0.0.1:8002"


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyStore]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    meta = MetaStore.open()
    store = KeyStore(meta, cache_ttl=0)
    yield store
    store.close()
    meta.close()
    _stores.reset()


def _client(keys: KeyStore, client: tuple[str, int] = LOOPBACK, **kw: object) -> TestClient:
    app = standalone(keys.meta, open_blob_store(), Guard(keys))
    return TestClient(app, client=client, base_url=BASE_URL, **kw)  # type: ignore[arg-type]


def test_open_on_loopback_while_no_ui_key_exists(keys: KeyStore) -> None:
    assert _client(keys).get("/ui/runs").status_code == 200
    assert _client(keys).get("/ui/api/runs").status_code == 200


def test_beyond_loopback_a_key_is_always_needed(keys: KeyStore) -> None:
    response = _client(keys, REMOTE).get("/ui/runs")
    assert response.status_code == 401
    assert (
        'action="/ui/signin"' in response.text and 'name="next" value="/ui/runs"' in response.text
    )
    api = _client(keys, REMOTE).get("/ui/api/runs")
    assert api.status_code == 401 and api.json()["error"]["type"] == "unauthorized"


def test_a_foreign_host_header_is_refused_even_on_loopback(keys: KeyStore) -> None:
    app = standalone(keys.meta, open_blob_store(), Guard(keys))
    client = TestClient(app, client=LOOPBACK, base_url="http://evil.example:8002")
    response = client.get("/ui/runs")
    assert response.status_code == 403 and "DNS rebinding" in response.text
    assert 'name="key"' not in response.text  # no key fixes this: no sign-in form


def test_with_a_ui_key_the_browser_signs_in_with_a_cookie(keys: KeyStore) -> None:
    _, plaintext = keys.create("browser", ["ui"])
    client = _client(keys)
    refused = client.get("/ui/models?x=1")
    assert refused.status_code == 401 and 'value="/ui/models?x=1"' in refused.text
    signed = client.post(
        "/ui/signin",
        content=f"key={plaintext}&next=/ui/models",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/models"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={plaintext};")
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/ui" in lowered
    page = client.get("/ui/models")  # the client keeps the cookie
    assert page.status_code == 200 and "Sign out" in page.text
    out = client.post("/ui/signout", follow_redirects=False)
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
    assert client.get("/ui/models").status_code == 401


@pytest.mark.parametrize(
    ("scopes", "status"), [(["invoke:*"], 403), (["admin"], 303), (["ui"], 303)]
)
def test_sign_in_checks_the_key_scope(keys: KeyStore, scopes: list[str], status: int) -> None:
    keys.create("other", ["ui"])  # a ui key exists: the UI is closed
    _, plaintext = keys.create("candidate", scopes)
    response = _client(keys, REMOTE).post(
        "/ui/signin", data={"key": plaintext, "next": "/ui/runs"}, follow_redirects=False
    )
    assert response.status_code == status
    if status == 403:
        assert "do not allow the UI" in response.text and "set-cookie" not in response.headers
        assert plaintext not in response.text


def test_a_wrong_or_revoked_key_is_refused_and_forgotten(keys: KeyStore) -> None:
    record, plaintext = keys.create("browser", ["ui"])
    client = _client(keys, REMOTE)
    bad = client.post("/ui/signin", data={"key": "sy_000000000000_" + "x" * 43})
    assert bad.status_code == 401 and "not valid" in bad.text
    assert client.post("/ui/signin", data={"key": ""}).status_code == 401
    client.post("/ui/signin", data={"key": plaintext}, follow_redirects=False)
    assert client.get("/ui/runs").status_code == 200
    keys.revoke(record.key_id)
    again = client.get("/ui/runs")
    assert again.status_code == 401 and f'{COOKIE}=""' in again.headers["set-cookie"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/elsewhere"])
def test_sign_in_never_redirects_off_the_ui(keys: KeyStore, target: str) -> None:
    _, plaintext = keys.create("browser", ["ui"])
    response = _client(keys).post(
        "/ui/signin", data={"key": plaintext, "next": target}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/ui/runs"
