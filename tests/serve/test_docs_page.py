"""The ``/{service}/docs`` page (issue 13, item 6): schemas with their ``$ref``s resolved (a
recursive one named and not followed), an example for each request that the endpoint
accepts, a "Try it" form prefilled with it that sends the key as the guard wants it, and
the service's own words escaped.

The examples are checked twice: in process for many kinds of parameters
(:class:`~shipyard.serve.testing.ServiceClient` validates as a worker does), and through a
real host, by posting what the page's form holds; a headless Chromium clicks "Send".
"""

from __future__ import annotations

import html
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from hosts import HostProcess

from shipyard.serve.docs import docs_page
from shipyard.serve.examples import NoExample, SchemaReader
from shipyard.serve.testing import ServiceClient
from support.servers import server_url

SERVICE = '''
from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shipyard.serve import Service, endpoint


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Pair(BaseModel):
    """A user and an item."""

    user: str = Field(description="who <b>asks</b>")
    item: str
    weight: Annotated[float, Field(gt=0, le=5)] = 1.0


class Node(BaseModel):
    value: int
    children: list[Node] = []


class Chain(BaseModel):
    name: str
    next: Chain | None


class Docs(Service):
    """Ranks things. <script>alert("docstring")</script> & more."""

    @endpoint
    def home(self, profile_id: str, limit: int = 10) -> list[str]:
        """The home row of a profile.

        Longer words <img src=x onerror=alert(1)>."""
        return [profile_id] * limit

    @endpoint
    def score(
        self,
        pairs: list[Pair],
        when: datetime.datetime,
        color: Color,
        mode: Literal["fast", "slow"],
        tag: uuid.UUID,
        extra: dict[str, float],
        opt: int | None = None,
        pair: tuple[int, str] = (1, "x"),
        anything: Any = None,
        step: Annotated[int, Field(ge=3, multiple_of=3)] = 3,
        code: Annotated[str, Field(min_length=4, pattern="^[a-z]+$")] = "abcd",
        ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5,
    ) -> dict[str, Pair]:
        return {p.user: p for p in pairs}

    @endpoint
    def tree(self, root: Node, chain: Chain) -> Node:
        return root

    @endpoint
    def strict(
        self,
        level: Annotated[int, Field(gt=10, le=20)],
        share: Annotated[float, Field(ge=0.25, lt=0.5)],
        word: Annotated[str, Field(min_length=12)],
        items: Annotated[list[int], Field(min_length=3)],
        pairs_by_name: dict[str, Pair],
        maybe: Pair | None,
        by_number: dict[int, str],
        by_letter: dict[Literal["b", "c"], int],
        amount: decimal.Decimal,
        wait: datetime.timedelta,
        ids: frozenset[int],
    ) -> int:
        return level

    @endpoint(batch=True, max_batch_size=8)
    def double(self, xs: list[float]) -> list[float]:
        return [2 * x for x in xs]
'''


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # pydantic resolves the recursive models through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("svc") / "docs_page_service.py"
    path.write_text(SERVICE)
    return path


@pytest.fixture(scope="module")
def local(code: Path) -> Iterator[ServiceClient]:
    module = _load(code)
    try:
        with ServiceClient(module.Docs, name="docs-demo") as client:
            yield client
    finally:
        sys.modules.pop(code.stem, None)


def _request_schema(openapi: dict[str, Any], endpoint: str) -> Any:
    operation = openapi["paths"][f"/docs-demo/{endpoint}"]["post"]
    return operation["requestBody"]["content"]["application/json"]["schema"]


# --- examples, in process -------------------------------------------------------------------
def test_every_endpoints_example_is_accepted(local: ServiceClient) -> None:
    openapi = local.openapi()
    reader = SchemaReader(openapi["components"]["schemas"])
    endpoints = [path.rsplit("/", 1)[1] for path in openapi["paths"]]
    assert sorted(endpoints) == ["double", "home", "score", "strict", "tree"]
    for endpoint in endpoints:
        example = reader.example(_request_schema(openapi, endpoint))
        status, body = local.post(endpoint, example)
        assert status == 200, (endpoint, example, body)


def test_examples_follow_the_schema(local: ServiceClient) -> None:
    openapi = local.openapi()
    reader = SchemaReader(openapi["components"]["schemas"])
    home = reader.example(_request_schema(openapi, "home"))
    assert home == {"profile_id": "string", "limit": 10}  # the default is shown
    tree = reader.example(_request_schema(openapi, "tree"))
    # a recursive list is left empty, a recursive optional field null: never followed
    assert tree == {"root": {"value": 0, "children": []}, "chain": {"name": "string", "next": None}}
    strict = reader.example(_request_schema(openapi, "strict"))
    assert strict["level"] == 11 and 0.25 <= strict["share"] < 0.5
    assert len(strict["word"]) == 12 and len(strict["items"]) == 3
    assert strict["maybe"] == {"user": "string", "item": "string", "weight": 1.0}
    assert strict["by_number"] == {"1": "string"} and strict["by_letter"] == {"b": 0}


def test_given_examples_come_first_and_a_cycle_without_a_way_out_has_none() -> None:
    reader = SchemaReader(
        {
            "Loop": {
                "type": "object",
                "required": ["again"],
                "properties": {"again": {"$ref": "#/components/schemas/Loop"}},
            }
        }
    )
    assert reader.example({"type": "integer", "examples": [42, 7]}) == 42
    assert reader.example({"type": "string", "example": "hello"}) == "hello"
    assert reader.example({"enum": ["b", "a"]}) == "b"
    with pytest.raises(NoExample, match="Loop contains itself"):
        reader.example({"$ref": "#/components/schemas/Loop"})
    page = docs_page(
        "loop",
        {
            "paths": {
                "/loop/go": {
                    "post": {
                        "requestBody": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Loop"}
                                }
                            }
                        }
                    }
                }
            },
            "components": {"schemas": reader.components},
        },
        "n0nce",
    )
    assert "no example: the schema cannot be met without recursion" in page
    assert page.count('class="cycle"') == 1  # Loop's field is named, not expanded again


# --- the page -------------------------------------------------------------------------------
def test_refs_are_resolved_into_nested_tables(local: ServiceClient) -> None:
    page = docs_page("docs-demo", local.openapi(), "n0nce")
    score = _section(page, "score")
    # the request's fields, and Pair's own fields in a table nested in the pairs row
    assert re.search(r'<tr data-field="pairs">.*?<tr data-field="user">', score, re.S)
    assert 'data-field="weight"' in score and "&gt; 0, ≤ 5" in score
    assert "Color" in score and "one of: &quot;red&quot;, &quot;blue&quot;" in score
    assert "$ref" not in page  # every reference is shown as what it points at
    tree = _section(page, "tree")
    # Node's children are Nodes, and Chain's next a Chain: each named once, not followed
    assert tree.count('class="cycle"') == 3  # Node in the request, Chain, Node in the response
    assert "recursive: its fields are shown above" in tree
    assert "batched, up to 8 items" in _section(page, "double")


def test_the_try_it_form_is_prefilled_with_the_example(local: ServiceClient) -> None:
    page = docs_page("docs-demo", local.openapi(), "n0nce")
    for endpoint in ("home", "score", "tree", "strict", "double"):
        body = _prefill(_section(page, endpoint))
        status, answer = local.post(endpoint, body)
        assert status == 200, (endpoint, body, answer)
    assert _example_response(_section(page, "home")) == '[\n  "string"\n]'


def test_the_services_words_are_escaped(local: ServiceClient) -> None:
    page = docs_page("docs-demo", local.openapi(), "n0nce")
    assert "&lt;script&gt;alert(&quot;docstring&quot;)&lt;/script&gt; &amp; more" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "who &lt;b&gt;asks&lt;/b&gt;" in page
    assert "<img" not in page and "<b>" not in page
    assert page.count("<script") == 1 and '<script nonce="n0nce">' in page  # only our own
    # a name or nonce with quotes cannot leave its attribute either
    hostile = docs_page('x"><svg onload=alert(1)>', {"paths": {}}, 'a"b')
    assert "<svg" not in hostile and 'nonce="a&quot;b"' in hostile


def test_the_key_goes_in_the_authorization_header_from_session_storage() -> None:
    page = docs_page("docs-demo", {"paths": {}}, "n0nce")
    script = page[page.index("<script") :]
    assert 'headers["authorization"] = "Bearer " + key.value.trim()' in script
    assert 'sessionStorage.setItem("shipyard.key", key.value)' in script
    assert "localStorage" not in script and "location.search" not in script
    assert 'type="password"' in page and 'autocomplete="off"' in page


# --- through a real host --------------------------------------------------------------------
@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, code: Path) -> Iterator[tuple[HostProcess, str]]:
    process = HostProcess(tmp_path_factory.mktemp("host"))
    out = process.cli("keys", "create", "--scope", "invoke:docs-demo", remote=False)
    key = out.stdout.strip().splitlines()[-1]
    process.start()
    try:
        process.deploy(f"{code}:Docs", "docs-demo")
        yield process, key
    finally:
        process.stop()


def test_the_hosts_page_examples_are_accepted_with_the_key(host: tuple[HostProcess, str]) -> None:
    process, key = host
    answer = httpx.get(process.url + "/docs-demo/docs", timeout=10)
    assert answer.status_code == 200
    nonce = re.search(r"'nonce-([^']+)'", answer.headers["content-security-policy"])
    assert nonce is not None and f'<script nonce="{nonce[1]}">' in answer.text
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    bearer = {"Authorization": f"Bearer {key}"}
    for endpoint in ("home", "score", "tree", "strict", "double"):
        body = _prefill(_section(answer.text, endpoint))
        sent = httpx.post(
            f"{process.url}/docs-demo/{endpoint}", content=body, headers=bearer, timeout=30
        )
        assert sent.status_code == 200, (endpoint, body, sent.text)
    refused = httpx.post(process.url + "/docs-demo/home", content=b"{}", timeout=10)
    assert refused.status_code == 401  # the host has an invoke key: the page must send it


def test_try_it_in_a_browser(host: tuple[HostProcess, str]) -> None:
    executable = server_url("SHIPYARD_TEST_CHROMIUM")
    from playwright.sync_api import sync_playwright

    process, key = host
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(process.url + "/docs-demo/docs")
            send = page.locator('form.try[data-endpoint="home"] button.send')
            status = page.locator('form.try[data-endpoint="home"] .answer-status')
            send.click()  # no key yet: the host refuses
            page.wait_for_function("s => s.dataset.status", arg=status.element_handle())
            assert status.get_attribute("data-status") == "401"
            page.fill("#key", key)
            send.click()
            page.wait_for_selector('form.try[data-endpoint="home"] .answer-status.ok')
            assert status.get_attribute("data-status") == "200"
            output = page.inner_text('form.try[data-endpoint="home"] output')
            assert output.count('"string"') == 10  # limit 10, the example's default
            assert page.evaluate("sessionStorage.getItem('shipyard.key')") == key
            assert key not in page.url
            page.reload()  # the key stays for the tab
            assert page.input_value("#key") == key
            # the one complaint is Chromium's about the first answer, a 401: no script error
            assert all("status of 401" in problem for problem in problems), problems
        finally:
            browser.close()


# --- helpers --------------------------------------------------------------------------------
def _section(page: str, endpoint: str) -> str:
    start = page.index(f'<section class="endpoint" id="endpoint-{endpoint}"')
    return page[start : page.index("</section>", start)]


def _prefill(section: str) -> str:
    found = re.search(r"<textarea[^>]*>(.*?)</textarea>", section, re.S)
    assert found is not None
    return html.unescape(found[1])


def _example_response(section: str) -> str:
    found = re.search(r'<pre class="response-example">(.*?)</pre>', section, re.S)
    assert found is not None
    return html.unescape(found[1])
