"""Guard decisions on real Starlette requests (built from ASGI scopes) and on RequestInfo:
admin (key, scope, Host, Origin, JSON), invoke (open loopback vs keys), route, ui."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from shipyard.keys import (
    AuthError,
    Forbidden,
    Guard,
    KeyStore,
    RequestInfo,
    Unauthorized,
    UnsupportedMediaType,
    is_loopback,
)
from shipyard.keys.guard import INVOKE_CACHE_SECONDS, split_host
from shipyard.store.meta import MetaStore

LOCAL = ("127.0.0.1", 50123)
REMOTE = ("10.1.2.3", 50123)  # only a peer address in a scope dict: nothing is sent anywhere


def request(
    method: str = "GET",
    headers: dict[str, str] | None = None,
    client: tuple[str, int] | None = LOCAL,
    scheme: str = "http",
) -> Request:
    all_headers = {"host": "127.0.0.1:8000", **(headers or {})}
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in all_headers.items()]
    scope = {
        "type": "http",
        "method": method,
        "scheme": scheme,
        "path": "/api/v1/deployments",
        "raw_path": b"/api/v1/deployments",
        "query_string": b"",
        "headers": raw,
        "client": client,
        "server": ("127.0.0.1", 8000),
    }
    return Request(scope)


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **extra}


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite only: the decisions do not depend on the database (test_key_store covers both)."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHIPYARD_DB_URL", raising=False)
    return f"sqlite:///{tmp_path}/meta.db"


@pytest.fixture
def guard(keys: KeyStore) -> Iterator[Guard]:
    yield Guard(keys, bind_host="0.0.0.0", allowed_hosts=["shipyard.internal"])


@pytest.fixture
def made(keys: KeyStore) -> dict[str, str]:
    """One key per kind of scope."""
    return {
        scopes[0]: keys.create(scopes[0], scopes)[1]
        for scopes in (
            ["admin"],
            ["invoke:ranker"],
            ["invoke:*"],
            ["route:chat"],
            ["route:*"],
            ["ui"],
        )
    }


def refused(kind: type[AuthError], status: int, type_: str, call: object, *args: object) -> str:
    with pytest.raises(kind) as caught:
        call(*args)  # type: ignore[operator]
    exc = caught.value
    assert (exc.status, exc.body["error"]["type"]) == (status, type_)
    assert set(exc.body["error"]) == {"type", "message"}
    json.dumps(exc.body)  # a JSON body as it stands
    return exc.message


# --- admin ----------------------------------------------------------------------------------
def test_admin_with_an_admin_key(guard: Guard, made: dict[str, str]) -> None:
    record = guard.check_admin(request("GET", bearer(made["admin"])))
    assert record.scopes == ("admin",)
    post = request("POST", bearer(made["admin"], **{"content-type": "application/json"}))
    assert guard.check_admin(post).key_id == record.key_id
    charset = {"content-type": "Application/JSON; charset=utf-8"}
    assert guard.check_admin(request("DELETE", bearer(made["admin"], **charset))) is not None


def test_admin_needs_a_key_even_on_loopback(guard: Guard, made: dict[str, str]) -> None:
    message = refused(Unauthorized, 401, "unauthorized", guard.check_admin, request("GET"))
    assert "admin.token" in message
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", made["admin"]):
        req = request("GET", {"authorization": header})
        message = refused(Unauthorized, 401, "unauthorized", guard.check_admin, req)
        assert "Bearer <" in message


def test_admin_refuses_unknown_and_revoked_keys_without_echoing_them(
    guard: Guard, keys: KeyStore, made: dict[str, str]
) -> None:
    unknown = "sy_0123456789ab_" + "x" * 43
    exc = pytest.raises(Unauthorized, guard.check_admin, request("GET", bearer(unknown))).value
    assert exc.status == 401 and exc.headers["WWW-Authenticate"].startswith("Bearer")
    assert unknown not in json.dumps(exc.body) and "x" * 43 not in str(exc)
    keys.revoke(made["admin"].split("_", 2)[1])
    exc = pytest.raises(
        Unauthorized, guard.check_admin, request("GET", bearer(made["admin"]))
    ).value
    assert made["admin"] not in json.dumps(exc.body) and "revoked" in exc.message


def test_admin_with_another_scope_is_forbidden(guard: Guard, made: dict[str, str]) -> None:
    for scope in ("invoke:*", "route:*", "ui"):
        req = request("GET", bearer(made[scope]))
        message = refused(Forbidden, 403, "forbidden", guard.check_admin, req)
        assert "'admin'" in message and made[scope] not in message
        assert made[scope].split("_", 2)[2] not in message


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/jsonx"],
)  # fmt: skip
def test_admin_writes_must_be_json(
    guard: Guard, made: dict[str, str], method: str, content_type: str | None
) -> None:
    headers = bearer(made["admin"])
    if content_type is not None:
        headers["content-type"] = content_type
    message = refused(
        UnsupportedMediaType,
        415,
        "unsupported_media_type",
        guard.check_admin,
        request(method, headers),
    )
    assert "application/json" in message


@pytest.mark.parametrize(
    "host", ["localhost:8000", "127.0.0.1", "[::1]:8000", "0.0.0.0:8000", "Shipyard.Internal"]
)
def test_admin_accepts_the_servers_own_names(guard: Guard, made: dict[str, str], host: str) -> None:
    assert guard.check_admin(request("GET", bearer(made["admin"], host=host))) is not None


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "[::2]:80", ":80", ""]
)
def test_admin_refuses_other_hosts_dns_rebinding(
    guard: Guard, made: dict[str, str], host: str
) -> None:
    req = request("GET", bearer(made["admin"], host=host))
    message = refused(Forbidden, 403, "forbidden", guard.check_admin, req)
    assert "Host" in message


def test_admin_refuses_a_missing_host_header(guard: Guard, made: dict[str, str]) -> None:
    info = RequestInfo("GET", bearer(made["admin"]), "127.0.0.1")
    refused(Forbidden, 403, "forbidden", guard.check_admin, info)


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("localhost:8000", "http://LOCALHOST:8000"),
        ("[::1]:8000", "http://[::1]:8000"),
        ("shipyard.internal", "http://shipyard.internal"),
        ("shipyard.internal", "https://shipyard.internal"),  # TLS ended by a proxy
        ("shipyard.internal:443", "https://shipyard.internal"),
    ],
)
def test_admin_accepts_a_same_origin(
    guard: Guard, made: dict[str, str], host: str, origin: str
) -> None:
    req = request("POST", bearer(made["admin"], host=host, origin=origin,
                                 **{"content-type": "application/json"}))  # fmt: skip
    assert guard.check_admin(req) is not None


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "http://127.0.0.1:3000", "http://localhost:8000", "null",
     "http://127.0.0.1", "not a url", "http://127.0.0.1:99999"],
)  # fmt: skip
def test_admin_refuses_a_cross_origin_web_page(
    guard: Guard, made: dict[str, str], origin: str
) -> None:
    headers = bearer(made["admin"], origin=origin, **{"content-type": "application/json"})
    message = refused(Forbidden, 403, "forbidden", guard.check_admin, request("POST", headers))
    assert "Origin" in message


# --- invoke ---------------------------------------------------------------------------------
def test_invoke_is_open_on_loopback_while_no_invoke_key_exists(guard: Guard) -> None:
    assert guard.check_invoke(request("POST"), "ranker", keys_exist=False) is None
    for peer in ("::1", "127.8.9.10", "::ffff:127.0.0.1"):
        assert guard.check_invoke(request("POST", client=(peer, 1)), "ranker", False) is None


def test_invoke_open_access_still_checks_host_and_origin(guard: Guard) -> None:
    rebinding = request("POST", {"host": "evil.example"})
    refused(Forbidden, 403, "forbidden", guard.check_invoke, rebinding, "ranker", False)
    page = request("POST", {"origin": "http://evil.example"})
    refused(Forbidden, 403, "forbidden", guard.check_invoke, page, "ranker", False)


@pytest.mark.parametrize("client", [REMOTE, ("192.168.1.5", 1), ("testclient", 50000), None])
def test_invoke_beyond_loopback_always_needs_a_key(
    guard: Guard, made: dict[str, str], client: tuple[str, int] | None
) -> None:
    message = refused(
        Unauthorized, 401, "unauthorized", guard.check_invoke, request("POST", client=client),
        "ranker", False,
    )  # fmt: skip
    assert "beyond loopback" in message and "invoke:ranker" in message
    ok = guard.check_invoke(request("POST", bearer(made["invoke:ranker"]), client), "ranker", False)
    assert ok is not None and ok.scopes == ("invoke:ranker",)


def test_invoke_needs_a_key_once_invoke_keys_exist(guard: Guard, made: dict[str, str]) -> None:
    message = refused(
        Unauthorized, 401, "unauthorized", guard.check_invoke, request("POST"), "ranker", True
    )
    assert "shipyard keys create --scope invoke:ranker" in message
    for scope in ("invoke:ranker", "invoke:*", "admin"):
        record = guard.check_invoke(request("POST", bearer(made[scope])), "ranker", True)
        assert record is not None and scope in record.scopes
    assert guard.check_invoke(request("POST", bearer(made["invoke:*"])), "other", True)


def test_invoke_with_the_wrong_scope_is_forbidden(guard: Guard, made: dict[str, str]) -> None:
    for scope, service in (("invoke:ranker", "other"), ("route:*", "ranker"), ("ui", "ranker")):
        req = request("POST", bearer(made[scope]))
        message = refused(Forbidden, 403, "forbidden", guard.check_invoke, req, service, True)
        assert f"invoke:{service}" in message


def test_a_sent_key_is_checked_even_when_access_is_open(guard: Guard) -> None:
    bad = request("POST", bearer("sy_0123456789ab_" + "y" * 43))
    refused(Unauthorized, 401, "unauthorized", guard.check_invoke, bad, "ranker", False)


# --- route and ui ---------------------------------------------------------------------------
def test_routes_always_need_a_key_even_on_loopback(guard: Guard, made: dict[str, str]) -> None:
    refused(Unauthorized, 401, "unauthorized", guard.check_route, request("POST"), "chat")
    for scope in ("route:chat", "route:*", "admin"):
        assert guard.check_route(request("POST", bearer(made[scope])), "chat") is not None
    for scope, route in (("route:chat", "embed"), ("invoke:*", "chat"), ("ui", "chat")):
        req = request("POST", bearer(made[scope]))
        message = refused(Forbidden, 403, "forbidden", guard.check_route, req, route)
        assert f"route:{route}" in message


def test_ui_open_on_loopback_until_ui_keys_exist(guard: Guard, made: dict[str, str]) -> None:
    assert guard.check_ui(request("GET"), keys_exist=False) is None
    refused(Unauthorized, 401, "unauthorized", guard.check_ui, request("GET", client=REMOTE), False)
    refused(Unauthorized, 401, "unauthorized", guard.check_ui, request("GET"), True)
    record = guard.check_ui(request("GET"), True, key=made["ui"])  # the sign-in cookie
    assert record is not None and record.scopes == ("ui",)
    assert guard.check_ui(request("GET", bearer(made["admin"])), True) is not None
    refused(Forbidden, 403, "forbidden", guard.check_ui, request("GET"), True, made["invoke:*"])
    refused(Unauthorized, 401, "unauthorized", guard.check_ui, request("GET"), True, "")


# --- the plain form and helpers ------------------------------------------------------------
def test_plain_request_info_works_like_a_starlette_request(
    guard: Guard, made: dict[str, str]
) -> None:
    headers = {"Host": "localhost:8000", "Authorization": f"Bearer {made['admin']}",
               "Content-Type": "application/json"}  # fmt: skip
    assert guard.check_admin(RequestInfo("post", headers, "127.0.0.1")) is not None
    as_text = RequestInfo("post", {**headers, "Content-Type": "text/plain"}, "127.0.0.1")
    refused(UnsupportedMediaType, 415, "unsupported_media_type", guard.check_admin, as_text)
    assert guard.check_invoke(RequestInfo("POST", {"HOST": "[::1]"}, "::1"), "x", False) is None


def test_is_loopback_and_split_host() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.2")
    for peer in (None, "", "10.0.0.1", "::ffff:10.0.0.1", "testclient", "localhost"):
        assert not is_loopback(peer)
    assert split_host("Example.COM:8000") == ("example.com", 8000)
    assert split_host("[::1]") == ("::1", None)
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("host.") == ("host", None)
    for bad in ("[::1", "[::1]x", "host:port", ":80", ""):
        assert split_host(bad) is None


# --- the host's request path: a cached invoke check ---------------------------------------
def test_the_invoke_check_of_the_request_path_is_remembered_for_a_second(
    meta: MetaStore, clock: Any
) -> None:
    keys = KeyStore(meta, cache_ttl=0, clock=clock)  # only the guard's own cache is left
    guard = Guard(keys, clock=clock)
    anonymous = request("POST").scope
    try:
        assert guard.invoke_refusal(anonymous, "ranker") is None  # no invoke key: open
        _, key = keys.create("client", ["invoke:ranker"])
        clock.advance(INVOKE_CACHE_SECONDS / 2)
        assert guard.invoke_refusal(anonymous, "ranker") is None  # remembered
        keyed = request("POST", bearer(key)).scope  # another caller: its own answer
        assert guard.invoke_refusal(keyed, "ranker") is None
        bogus = guard.invoke_refusal(request("POST", bearer("sy_nope_nope")).scope, "ranker")
        assert isinstance(bogus, Unauthorized) and bogus.status == 401
        other = guard.invoke_refusal(keyed, "other")  # the service is part of the question
        assert isinstance(other, Forbidden) and "invoke:other" in other.message
        clock.advance(INVOKE_CACHE_SECONDS)
        refusal = guard.invoke_refusal(anonymous, "ranker")  # forgotten: keys exist now
        assert isinstance(refusal, Unauthorized) and "invoke:ranker" in refusal.message
        # an empty Authorization header is a header sent, as check_invoke reads it
        blank = request("POST", {"authorization": ""}).scope
        assert isinstance(guard.invoke_refusal(blank, "ranker"), Unauthorized)
    finally:
        keys.close()


def test_a_guard_for_the_settings_answers_to_their_allowed_hosts(
    keys: KeyStore, made: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.config import ConfigError, settings

    home = tmp_path / "settings-home"
    home.mkdir()
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    (home / "config.yaml").write_text("allowed_hosts: [shipyard.example.com]\n")
    conf = settings()
    assert conf.allowed_hosts == ("shipyard.example.com",) and "allowed_hosts" not in conf.extra
    guard = Guard.for_settings(keys, conf, bind_host="10.0.0.5")
    for host in ("shipyard.example.com", "10.0.0.5:8000", "localhost"):
        assert guard.check_admin(request("GET", bearer(made["admin"], host=host))) is not None
    other = request("GET", bearer(made["admin"], host="other.example.com"))
    refused(Forbidden, 403, "forbidden", guard.check_admin, other)
    (home / "config.yaml").write_text("allowed_hosts: shipyard.example.com\n")
    with pytest.raises(ConfigError, match="allowed_hosts must be a list of host names"):
        settings()
