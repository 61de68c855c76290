"""``shipyard.connect(url, key)`` against a real host with two services (issue 13, item 7):
the services as attributes, endpoints as methods with real signatures and docstrings that
``help()`` shows, calls that return the decoded JSON, error answers as
:class:`shipyard.HTTPError` with the whole body, the key sent, and clear errors for a host
that cannot be reached or is not a shipyard host."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import shipyard
from shipyard.remote import ConnectionFailed, NotAHost
from support.host_processes import Gate, Host

RANKER = '''
from pydantic import BaseModel, Field

from shipyard.serve import Service, endpoint


class Pair(BaseModel):
    """A user and an item to score."""

    user: str = Field(description="the user's id")
    item: str


class Ranker(Service):
    """Ranks items for users."""

    @endpoint
    def home(self, profile_id: str, limit: int = 10) -> list[str]:
        """The home row of a profile.

        The most relevant items first."""
        return [f"{profile_id}-{i}" for i in range(limit)]

    @endpoint
    def score(self, pairs: list[Pair], boost: float | None = None) -> list[float]:
        """Score each pair."""
        return [len(p.item) + (boost or 0) for p in pairs]

    @endpoint
    def boom(self) -> int:
        raise ValueError("internals the caller never sees")
'''

ROWS = '''
from typing import Literal

from shipyard.serve import Service, endpoint


class Rows(Service):
    @endpoint
    def top(self, k: int = 3, order: Literal["asc", "desc"] = "asc") -> list[int]:
        """The top k rows."""
        rows = list(range(k))
        return rows if order == "asc" else rows[::-1]
'''


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Host, str]]:
    code = tmp_path_factory.mktemp("svc")
    (code / "connect_ranker.py").write_text(RANKER)
    (code / "connect_rows.py").write_text(ROWS)
    gate = Gate()  # unused by these services; the helper's deploy passes its port
    process = Host(tmp_path_factory.mktemp("host"), gate)
    created = subprocess.run(
        [sys.executable, "-m", "shipyard", "keys", "create", "--scope", "invoke:*"],
        env=process.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    process.start()
    try:
        for file, cls, name in [
            ("connect_ranker.py", "Ranker", "ranker"),
            ("connect_rows.py", "Rows", "home-rows"),
        ]:
            deploying = process.deploy(code / file, cls, name, 1)
            output, _ = deploying.communicate(timeout=300)
            assert deploying.returncode == 0, output
        yield process, key
    finally:
        process.stop()
        gate.shut()


@pytest.fixture
def client(host: tuple[Host, str]) -> Iterator[shipyard.remote.Connection]:
    process, key = host
    with shipyard.connect(process.url, key) as connected:
        yield connected


def test_services_are_attributes_and_items(client: Any) -> None:
    assert client.services == ("home-rows", "ranker")
    assert {"home_rows", "ranker"} <= set(dir(client))
    assert client["home-rows"] is client.home_rows
    assert client["ranker"] is client.ranker
    with pytest.raises(
        AttributeError, match=r"no service 'nope' \(its services: home-rows, ranker\)"
    ):
        client.nope  # noqa: B018
    with pytest.raises(KeyError, match="client.refresh()"):
        client["nope"]
    assert shipyard.connect is shipyard.remote.connect


def test_endpoints_have_real_signatures(client: Any) -> None:
    home = client.ranker.home
    assert str(inspect.signature(home)) == "(*, profile_id: str, limit: int = 10) -> list[str]"
    assert home.__name__ == "home" and home.__qualname__ == "Ranker.home"
    score = inspect.signature(client.ranker.score)
    assert list(score.parameters) == ["pairs", "boost"]
    assert score.parameters["pairs"].annotation == list[dict[str, Any]]
    assert score.parameters["pairs"].default is inspect.Parameter.empty  # required
    assert score.parameters["boost"].annotation == float | None
    assert score.return_annotation == list[float]
    top = inspect.signature(client.home_rows.top)
    assert str(top.parameters["order"]) == "order: Literal['asc', 'desc'] = 'asc'"
    assert client.home_rows["top"] == client.home_rows.top


def test_help_shows_the_signature_and_docstring(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    help(client.ranker.score)
    shown = capsys.readouterr().out
    assert "score(*, pairs: list[dict[str, typing.Any]], boost: float | None = None)" in shown
    assert "-> list[float]" in shown
    for line in [
        "Score each pair.",
        f"POST {client.url}/ranker/score",
        "pairs : list[Pair]",
        "boost : float | None, default None",
        "Returns",
        "list[float]",
        "Pair",  # the object the list holds, with its fields
        "user : str",
        "the user's id",
        "shipyard.HTTPError",
    ]:
        assert line in shown, line
    help(client.ranker)
    shown = capsys.readouterr().out
    assert "Ranks items for users." in shown and "home(self, /, *, profile_id: str" in shown
    assert "The most relevant items first." in client.ranker.home.__doc__


def test_a_call_returns_the_decoded_answer(client: Any) -> None:
    assert client.ranker.home(profile_id="p1", limit=2) == ["p1-0", "p1-1"]
    assert client.ranker.home(profile_id="p1") == [f"p1-{i}" for i in range(10)]  # host default
    assert client.ranker.score(pairs=[{"user": "u", "item": "abc"}], boost=0.5) == [3.5]
    assert client.home_rows.top(k=2, order="desc") == [1, 0]
    assert client["home-rows"]["top"]() == [0, 1, 2]


def test_arguments_must_bind_to_the_signature(client: Any) -> None:
    with pytest.raises(TypeError, match=r"ranker.home\(\): missing a required argument"):
        client.ranker.home()
    with pytest.raises(TypeError, match="ranker.home"):
        client.ranker.home("p1")  # keyword only: the host takes an object by name
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        client.ranker.home(profile_id="p1", nope=1)


def test_an_error_answer_raises_http_error_with_the_body(client: Any) -> None:
    with pytest.raises(shipyard.HTTPError) as raised:
        client.ranker.score(pairs=[{"user": "u"}])  # no item: the host refuses it
    error = raised.value
    assert error.status == 422 and error.type == "validation_error"
    assert error.field == "pairs.0.item"
    assert error.body == {
        "error": {
            "type": "validation_error",
            "message": "missing required field 'pairs.0.item'",
            "field": "pairs.0.item",
        }
    }
    assert error.headers["content-type"] == "application/json"
    with pytest.raises(shipyard.HTTPError) as raised:
        client.ranker.boom()
    assert raised.value.status == 500 and raised.value.type == "internal_error"
    assert raised.value.error_id and raised.value.error_id == raised.value.body["error"]["error_id"]
    assert "internals" not in str(raised.value)


def test_the_key_is_sent(host: tuple[Host, str]) -> None:
    process, key = host
    # the host has an invoke key: without one (or with a wrong one) calls are refused
    with shipyard.connect(process.url) as keyless:  # /openapi.json needs no key
        with pytest.raises(shipyard.HTTPError) as raised:
            keyless.ranker.home(profile_id="p1")
        assert raised.value.status == 401 and "needs a key" in raised.value.message
    with shipyard.connect(process.url, "sy_wrong") as wrong:
        with pytest.raises(shipyard.HTTPError, match="not valid"):
            wrong.ranker.home(profile_id="p1")
    with shipyard.connect(process.url + "/", key) as keyed:  # a trailing slash is fine
        assert keyed.ranker.home(profile_id="p1", limit=1) == ["p1-0"]


def test_a_host_that_cannot_be_reached_is_named(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a free port: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ConnectionFailed) as raised:
        shipyard.connect(url)
    assert f"cannot reach the shipyard host at {url}" in str(raised.value)
    assert "shipyard serve" in str(raised.value) and raised.value.url == url + "/openapi.json"
    assert isinstance(raised.value, ConnectionError)
    with pytest.raises(ValueError, match="must start with http"):
        shipyard.connect("127.0.0.1:8000")


def test_a_url_that_is_not_a_host(host: tuple[Host, str]) -> None:
    process, key = host
    with pytest.raises(NotAHost, match=r"/ranker/openapi.json/openapi.json answered 404"):
        shipyard.connect(process.url + "/ranker/openapi.json", key)


def test_an_error_that_is_not_json_keeps_its_text(host: tuple[Host, str]) -> None:
    # a proxy in front of the host answers a call with a text page of its own
    process, key = host
    document = httpx.get(process.url + "/openapi.json", timeout=10).json()

    def proxy(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/openapi.json":
            return httpx.Response(200, json=document)
        assert request.headers["authorization"] == f"Bearer {key}"
        return httpx.Response(502, text="Bad Gateway (nginx)\n")

    with shipyard.connect("http://proxy.example", key, transport=httpx.MockTransport(proxy)) as c:
        with pytest.raises(shipyard.HTTPError) as raised:
            c.ranker.home(profile_id="p1")
    assert raised.value.status == 502 and raised.value.message == "Bad Gateway (nginx)"
    assert raised.value.type == "bad_gateway" and raised.value.body == {}


def test_close_and_refresh(host: tuple[Host, str]) -> None:
    process, key = host
    with shipyard.connect(process.url, key) as client:
        client.refresh()  # read again: the same services, still callable
        assert client.services == ("home-rows", "ranker")
        assert client.home_rows.top(k=1) == [0]
    with pytest.raises(RuntimeError):  # closed: httpx refuses to send
        client.ranker.home(profile_id="p1")


def test_a_stub_for_type_checkers(host: tuple[Host, str], tmp_path: Path) -> None:
    process, key = host
    written = subprocess.run(
        [sys.executable, "-m", "shipyard", "stub", process.url, "--key", key, "-o", "api.pyi"],
        cwd=tmp_path,
        env=process.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert written.returncode == 0, written.stderr
    assert "wrote api.pyi (home-rows, ranker)" in written.stderr
    text = (tmp_path / "api.pyi").read_text()
    ast.parse(text)
    assert "class Ranker(RemoteService):" in text and "class HomeRows(RemoteService):" in text
    assert "    def home(self, *, profile_id: str, limit: int = 10) -> list[str]:" in text
    assert "    home_rows: HomeRows" in text and "    ranker: Ranker" in text
    assert '        """The home row of a profile.' in text
    # a type checker reads it: a wrong argument type is caught before any call
    (tmp_path / "use.py").write_text(
        "from typing import cast\n"
        "import shipyard\n"
        "from api import Services\n"
        "client = cast(Services, shipyard.connect('http://127.0.0.1:8000'))\n"
        "rows: list[str] = client.ranker.home(profile_id='p1', limit=2)\n"
        "client.ranker.home(profile_id=1)\n"
        "client.home_rows.top(order='sideways')\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=skip", "use.py"],
        cwd=tmp_path,
        env={**process.env, "MYPYPATH": str(Path(shipyard.__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, checked.stdout + checked.stderr
    assert 'use.py:6: error: Argument "profile_id"' in errors[0]
    assert 'use.py:7: error: Argument "order"' in errors[1]


def test_stub_of_an_unreachable_host_exits_1(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "shipyard", "stub", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        out.returncode == 1 and "cannot reach the shipyard host at http://127.0.0.1:9" in out.stderr
    )
    assert "Traceback" not in out.stderr
