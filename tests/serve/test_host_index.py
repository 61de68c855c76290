"""The host's own index (issue 13, item 6): ``GET /`` lists the services (JSON, or a page for a
browser) and ``GET /openapi.json`` is one document of them all, with each service's
components renamed ``<service>.<name>`` — two services here both define ``Pair`` — and every
``$ref`` rewritten to match. A real ``shipyard serve`` with real workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hosts import HostProcess

from shipyard.serve.index import prefers_html, rewrite_refs

RANKER = '''
from pydantic import BaseModel

from shipyard.serve import Service, endpoint


class Pair(BaseModel):
    user: str
    item: str


class Ranker(Service):
    """Ranks <items> & users."""

    @endpoint
    def score(self, pairs: list[Pair]) -> list[float]:
        return [1.0 for _ in pairs]

    @endpoint
    def home(self, profile_id: str) -> list[str]:
        return [profile_id]
'''

ROWS = '''
from pydantic import BaseModel

from shipyard.serve import Service, endpoint


class Pair(BaseModel):
    row: int
    label: str = "x"


class Rows(Service):
    """Home rows."""

    @endpoint
    def top(self, pair: Pair, more: list[Pair] = []) -> Pair:
        return pair
'''

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    code = tmp_path_factory.mktemp("svc")
    (code / "index_ranker.py").write_text(RANKER)
    (code / "index_rows.py").write_text(ROWS)
    process = HostProcess(tmp_path_factory.mktemp("host")).start()
    try:
        process.deploy(f"{code / 'index_ranker.py'}:Ranker", "ranker")
        process.deploy(f"{code / 'index_rows.py'}:Rows", "home-rows")
        yield process
    finally:
        process.stop()


def get(host: HostProcess, path: str, **headers: str) -> httpx.Response:
    return httpx.get(host.url + path, headers=headers, timeout=10)


def test_the_index_lists_the_services(host: HostProcess) -> None:
    answer = get(host, "/")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["openapi"] == "/openapi.json"
    assert body["services"] == [
        {
            "name": "home-rows",
            "version": 1,
            "description": "Home rows.",
            "replicas": {"ready": 1, "total": 1},
            "endpoints": ["top"],
            "docs": "/home-rows/docs",
            "openapi": "/home-rows/openapi.json",
        },
        {
            "name": "ranker",
            "version": 1,
            "description": "Ranks <items> & users.",
            "replicas": {"ready": 1, "total": 1},
            "endpoints": ["home", "score"],
            "docs": "/ranker/docs",
            "openapi": "/ranker/openapi.json",
        },
    ]
    for service in body["services"]:  # the links answer
        assert get(host, service["docs"]).status_code == 200
        assert get(host, service["openapi"]).json()["info"]["title"] == service["name"]


def test_a_browser_gets_a_page(host: HostProcess) -> None:
    answer = get(host, "/", Accept=BROWSER)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert page.count("<tr data-service=") == 2
    assert '<a href="/ranker/docs">ranker</a>' in page and 'href="/home-rows/openapi.json"' in page
    assert "Ranks &lt;items&gt; &amp; users." in page and "<items>" not in page
    assert "<script" not in page  # nothing to run on this one
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert 'href="/ui/"' in page  # `shipyard serve` mounts the UI
    # curl and httpx send */*: JSON, as for no Accept at all
    assert get(host, "/", Accept="*/*").json()["services"][0]["name"] == "home-rows"


def test_one_openapi_document_of_every_service(host: HostProcess) -> None:
    doc = get(host, "/openapi.json").json()
    assert doc["openapi"] == "3.1.0" and doc["info"]["version"] == "home-rows=1,ranker=1"
    assert sorted(doc["paths"]) == ["/home-rows/top", "/ranker/home", "/ranker/score"]
    schemas = doc["components"]["schemas"]
    # both services' Pair, each under its service's name
    assert sorted(schemas["ranker.Pair"]["properties"]) == ["item", "user"]
    assert sorted(schemas["home-rows.Pair"]["properties"]) == ["label", "row"]
    assert all(name.split(".", 1)[0] in ("ranker", "home-rows") for name in schemas)
    # every $ref points at a component of its own service that exists
    refs = list(_refs(doc))
    assert len(refs) >= 12
    for where, ref in refs:
        name = ref.removeprefix("#/components/schemas/")
        assert name in schemas, (where, ref)
        owner = where.split("/")[1] if where.startswith("/") else where.split(".", 1)[0]
        assert name.startswith(owner + "."), (where, ref)
    top = doc["paths"]["/home-rows/top"]["post"]
    body = top["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/home-rows.TopRequest"}
    more = schemas["home-rows.TopRequest"]["properties"]["more"]
    assert more["items"] == {"$ref": "#/components/schemas/home-rows.Pair"}
    assert more["default"] == []
    operations = [op for item in doc["paths"].values() for op in item.values()]
    assert sorted(op["operationId"] for op in operations) == [
        "home-rows.top",
        "ranker.home",
        "ranker.score",
    ]
    assert {op["operationId"]: op["tags"] for op in operations}["ranker.score"] == ["ranker"]
    assert doc["tags"] == [
        {"name": "home-rows", "description": "Home rows."},
        {"name": "ranker", "description": "Ranks <items> & users."},
    ]


def test_another_hosts_name_is_refused(host: HostProcess) -> None:
    # a DNS-rebinding page reads none of it, as for /{service}/openapi.json
    for path in ("/", "/openapi.json"):
        answer = get(host, path, Host="evil.example")
        assert answer.status_code == 403, path
        assert "evil.example" in answer.json()["error"]["message"]


def test_only_get_is_answered(host: HostProcess) -> None:
    assert httpx.post(host.url + "/", json={}, timeout=10).status_code == 405
    assert httpx.post(host.url + "/openapi.json", json={}, timeout=10).status_code == 405


# --- the pieces ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0.4, application/json;q=0.9", False),
        ("text/html;q=0.9, */*;q=0.1", True),
    ],
)
def test_html_only_when_preferred(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


def test_rewriting_leaves_data_and_field_names_alone() -> None:
    schema = {
        "type": "object",
        "properties": {
            "$ref": {"type": "string"},  # a field named $ref
            "default": {"$ref": "#/components/schemas/Pair"},  # a field named default
            "note": {"type": "object", "default": {"$ref": "#/components/schemas/Pair"}},
        },
        "discriminator": {"propertyName": "kind", "mapping": {"a": "#/components/schemas/A"}},
    }
    out = rewrite_refs(schema, lambda ref: ref.replace("schemas/", "schemas/svc."))
    assert out["properties"]["$ref"] == {"type": "string"}
    assert out["properties"]["default"] == {"$ref": "#/components/schemas/svc.Pair"}
    assert out["properties"]["note"]["default"] == {"$ref": "#/components/schemas/Pair"}  # data
    assert out["discriminator"]["mapping"] == {"a": "#/components/schemas/svc.A"}


def _refs(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(where, ref) of every $ref in an OpenAPI document; ``where`` starts with the path of
    an operation or the name of a component."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield where, value
            elif key in ("paths", "schemas") and not where:
                for name, sub in value.items():
                    yield from _refs(sub, name)
            elif key not in ("default", "examples"):
                yield from _refs(value, where)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item, where)
