"""The UI inside the host: deployments charts from the host's history, and the admin actions
(move an alias, roll back) that go through the admin API — which gains
``POST /api/v1/models/{name}/aliases/{alias}`` — with its key, Host/Origin and JSON checks."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient
from ui_support import close_host, host_over, seed_service, seed_traffic

from shipyard.registry import Registry

if TYPE_CHECKING:
    from ui_support import UIEnv

    from shipyard.serve.host import Host

URL = "http://127.0.0.1:8000"
ORIGIN = {"Origin": URL}


@pytest.fixture(scope="module")
def host(ui_env: UIEnv) -> Iterator[Host]:
    made = host_over(ui_env)
    yield made
    close_host(made)


@pytest.fixture(scope="module")
def keys(host: Host) -> dict[str, str]:
    """Plaintext keys by scope (creating a ``ui`` key closes open loopback access)."""
    _, admin = host.keys.create("ops", ["admin"])
    _, ui = host.keys.create("viewer", ["ui"])
    return {"admin": admin, "ui": ui}


def _client(host: Host, key: str | None = None) -> TestClient:
    client = TestClient(host, client=("127.0.0.1", 1), base_url=URL)
    if key is not None:
        signed = client.post("/ui/signin", data={"key": key, "next": "/ui/models"})
        assert signed.status_code == 200, signed.text
    return client


def _aliases(env: UIEnv) -> dict[str, int]:
    (summary,) = Registry(env.meta).list_models()
    return dict(summary.aliases)


def test_the_admin_api_moves_an_alias(host: Host, keys: dict[str, str], ui_env: UIEnv) -> None:
    client = _client(host)
    path = "/api/v1/models/uimodel/aliases/staging"
    admin = {"Authorization": f"Bearer {keys['admin']}", "X-Shipyard-User": "tester"}

    def post(body: Any = None, **headers: str) -> Any:
        return client.post(path, json=body, headers=headers)

    assert post({"version": 1}).status_code == 401
    assert post({"version": 1}, Authorization=f"Bearer {keys['ui']}").status_code == 403
    form = client.post(path, data={"version": "1"}, headers=admin)
    assert form.status_code == 415
    assert post({"version": 1}, **admin, Origin="http://evil.example").status_code == 403
    assert post({"version": 99}, **admin).status_code == 404
    assert post({"version": "one"}, **admin).status_code == 422
    assert post({}, **admin).status_code == 422
    latest = client.post(
        "/api/v1/models/uimodel/aliases/latest", json={"version": 1}, headers=admin
    )
    assert latest.status_code == 422 and "latest" in latest.json()["error"]["message"]
    unknown = client.post("/api/v1/models/nomodel/aliases/prod", json={"version": 1}, headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found"
    assert "staging" not in _aliases(ui_env)

    first = post({"version": 1}, **admin)
    assert first.status_code == 200
    assert first.json() == {
        "model": "uimodel",
        "alias": "staging",
        "version": 1,
        "previous": None,
        "still_serving": [],  # no deployment pinned uimodel@staging
    }
    moved = post({"version": 2}, **admin).json()
    assert moved["previous"] == 1 and _aliases(ui_env)["staging"] == 2
    entries = [e for e in Registry(ui_env.meta).audit("uimodel") if e.alias == "staging"]
    assert [(e.action, e.from_version, e.to_version, e.user) for e in entries[:2]] == [
        ("alias.move", 1, 2, "tester"),
        ("alias.set", None, 1, "tester"),
    ]


def test_ui_actions_need_an_admin_key_json_and_our_origin(
    host: Host, keys: dict[str, str], ui_env: UIEnv
) -> None:
    path = "/ui/actions/models/uimodel/aliases/prod"
    anonymous = _client(host).post(path, json={"version": 1}, headers=ORIGIN)
    assert anonymous.status_code == 401

    viewer = _client(host, keys["ui"])
    page = viewer.get("/ui/models/uimodel")
    assert 'id="read-only"' in page.text and 'id="move-alias"' not in page.text
    refused = viewer.post(path, json={"version": 1}, headers=ORIGIN)
    assert refused.status_code == 403 and "scope 'admin'" in refused.json()["error"]["message"]

    admin = _client(host, keys["admin"])
    page = admin.get("/ui/models/uimodel")
    assert 'id="admin-badge"' in page.text and 'id="move-alias"' in page.text
    assert admin.post(path, data={"version": "1"}, headers=ORIGIN).status_code == 415
    assert admin.post(path, json={"version": 1}).status_code == 403  # no Origin
    evil = admin.post(path, json={"version": 1}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    rebinding = admin.post(path, json={"version": 1}, headers={"Host": "evil.example", **ORIGIN})
    assert rebinding.status_code == 403
    as_json = {"Content-Type": "application/json", **ORIGIN}
    assert admin.post(path, content=b"[1]", headers=as_json).status_code == 422
    assert admin.post(path, json={"version": 7}, headers=ORIGIN).status_code == 404
    assert "prod" not in _aliases(ui_env)

    done = admin.post(path, json={"version": 1}, headers=ORIGIN)
    assert done.status_code == 200, done.text
    assert done.json()["version"] == 1 and _aliases(ui_env)["prod"] == 1
    (entry, *_) = Registry(ui_env.meta).audit("uimodel")
    assert (entry.action, entry.alias, entry.to_version) == ("alias.set", "prod", 1)
    assert entry.user == "ops (ui)"
    assert "@prod" in admin.get("/ui/models/uimodel").text


def test_ui_rollback_goes_through_the_admin_api(host: Host, keys: dict[str, str]) -> None:
    admin = _client(host, keys["admin"])
    seed_service(host, "solo")
    page = admin.get("/ui/deployments/solo")
    assert page.status_code == 200 and 'id="rollback"' not in page.text  # nothing to go back to
    only = admin.post("/ui/actions/deployments/solo/rollback", json={}, headers=ORIGIN)
    assert only.status_code == 409 and only.json()["error"]["type"] == "no_previous_version"
    missing = admin.post("/ui/actions/deployments/nosuch/rollback", json={}, headers=ORIGIN)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"

    seed_service(host, "twice", versions=2)
    page = admin.get("/ui/deployments/twice")
    assert "Roll back to version 1" in page.text
    viewer = _client(host, keys["ui"])
    assert 'id="rollback"' not in viewer.get("/ui/deployments/twice").text
    refused = viewer.post("/ui/actions/deployments/twice/rollback", json={}, headers=ORIGIN)
    assert refused.status_code == 403


def test_deployments_page_draws_the_last_hour(host: Host, keys: dict[str, str]) -> None:
    seed_service(host, "echo")
    seed_traffic(host, "echo", time.time())
    client = _client(host, keys["ui"])
    page = client.get("/ui/deployments")
    assert page.status_code == 200
    section = re.search(r'<section class="service-charts" id="charts-echo".*?</section>',
                        page.text, re.S)  # fmt: skip
    assert section is not None
    figures = re.findall(r'<figure class="chart" data-metric="(\w+)" data-points="(\d+)"',
                         section.group(0))  # fmt: skip
    assert figures == [("rps", "2"), ("error_rate", "2"), ("p50", "2"), ("p99", "2")]
    assert section.group(0).count('<path class="line"') == 4
    assert "2/s" in section.group(0) and "5 %" in section.group(0)  # 20 calls in 10 s; 1 in 20
    assert 'href="/echo/docs"' in page.text
    assert 'data-poll="/ui/api/deployments"' in page.text
    assert 'id="charts-solo"' in page.text and "no requests in the last hour" in page.text

    data = client.get("/ui/api/deployments").json()
    assert data["live"] is True and data["fingerprint"] != "-"
    assert [p["requests"] for p in data["services"]["echo"]] == [5, 20]
    points = client.get("/ui/api/deployments/echo/history").json()["points"]
    assert points[-1]["error_rate"] == pytest.approx(0.05) and points[-1]["rps"] == 2.0
    assert client.get("/ui/api/deployments/nosuch/history").status_code == 404
    one = client.get("/ui/deployments/echo")
    assert one.text.count('<figure class="chart"') == 4
    assert client.get("/ui/deployments/nosuch").status_code == 404


def test_gateway_page_shows_routes_without_secrets(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, keys: dict[str, str]
) -> None:
    import asyncio

    from shipyard._app import host_app

    config = tmp_path / "gateway.yaml"
    config.write_text(
        "routes:\n"
        "  - name: chat\n"
        "    type: chat\n"
        "    upstream: {provider: openai, base_url: 'https://api.example.com:8443/v1',"
        " model: small-chat, api_key: '${UI_TEST_SECRET}'}\n"
        "    limits: {requests_per_minute: 600}\n"
        "    fallback: [local]\n"
        "  - name: local\n"
        "    type: chat\n"
        "    upstream: {provider: openai, base_url: 'http://127.0.0.1:9/v1', model: tiny}\n"
    )
    monkeypatch.setenv("UI_TEST_SECRET", "sk-very-secret-value")
    made = host_app(gateway_config=config)
    try:
        page = _client(made, keys["ui"]).get("/ui/gateway")
        assert page.status_code == 200
        assert re.findall(r'<tr data-route="([^"]+)">', page.text) == ["chat", "local"]
        assert "https://api.example.com:8443" in page.text and "small-chat" in page.text
        assert "requests per minute 600" in page.text
        for secret in ("sk-very-secret-value", "api.example.com:8443/v1"):
            assert secret not in page.text, secret
    finally:
        assert made.gateway is not None
        asyncio.run(made.gateway.close())
        close_host(made)
