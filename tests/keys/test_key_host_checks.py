"""Guard.check_host: the admin API's Host and Origin checks alone, for keyless reads of a
server's own data (the host's /metrics, a service's OpenAPI and docs) — and the address a
connection arrived on counts as a name of the server when it is an IP literal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request

from shipyard.keys import Forbidden, Guard, KeyStore, RequestInfo


def request(
    headers: dict[str, str],
    server: tuple[str, int] | None = ("127.0.0.1", 8000),
    client: tuple[str, int] = ("10.1.2.50", 50123),  # the checks do not look at the peer
) -> Request:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": "/metrics",
            "raw_path": b"/metrics",
            "query_string": b"",
            "headers": raw,
            "client": client,
            "server": server,
        }
    )


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite only: no key is looked up."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHIPYARD_DB_URL", raising=False)
    return f"sqlite:///{tmp_path}/meta.db"


@pytest.fixture
def guard(keys: KeyStore) -> Iterator[Guard]:
    yield Guard(keys, bind_host="0.0.0.0", allowed_hosts=["prometheus.internal."])


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:8000", "localhost", "[::1]:8000", "Prometheus.Internal", "prometheus.internal."],
)
def test_the_servers_names_are_allowed_without_a_key(guard: Guard, host: str) -> None:
    assert guard.check_host(request({"host": host})) is None
    assert guard.check_host(RequestInfo("GET", {"Host": host}, None)) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "evil.example"},
        {"host": "127.0.0.1.evil.example:8000"},
        {"host": "10.1.2.4:8000"},
        {},
        {"host": "127.0.0.1:8000", "origin": "http://evil.example"},
        {"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:3000"},
    ],
)
def test_others_are_refused_as_the_admin_api_refuses_them(
    guard: Guard, headers: dict[str, str]
) -> None:
    with pytest.raises(Forbidden) as read:
        guard.check_host(request(headers))
    with pytest.raises(Forbidden) as admin:  # the same words, before any key is looked at
        guard.check_admin(request({**headers, "authorization": "Bearer sy_nothing"}))
    assert (read.value.status, read.value.body) == (403, admin.value.body)


@pytest.mark.parametrize(
    ("server", "host", "allowed"),
    [
        (("10.1.2.3", 8000), "10.1.2.3:8000", True),  # a scraper that names the host's IP
        (("10.1.2.3", 8000), "10.1.2.3", True),
        (("::ffff:10.1.2.3", 8000), "10.1.2.3:8000", True),  # a dual-stack socket
        (("fd00::3", 8000), "[fd00::3]:8000", True),
        (("10.1.2.3", 8000), "10.1.2.4:8000", False),
        (("testserver", 80), "testserver", False),  # a name is never taken from the socket
        (("/run/shipyard.sock", 0), "/run/shipyard.sock", False),
        (None, "10.1.2.3", False),
    ],
)
def test_the_address_a_connection_arrived_on_is_a_name_of_the_server(
    guard: Guard, server: tuple[str, int] | None, host: str, allowed: bool
) -> None:
    """An IP literal in the Host header cannot be a DNS rebinding: the browser's origin would
    be this server itself."""
    info = RequestInfo("GET", {"host": host}, None, "http", server[0] if server else None)
    for each in (request({"host": host}, server=server), info):
        if allowed:
            assert guard.check_host(each) is None
        else:
            pytest.raises(Forbidden, guard.check_host, each)
