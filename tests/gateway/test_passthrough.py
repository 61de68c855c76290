"""``/gateway/{route}/...``: http passthrough, hosted services, and SSRF attempts.

The SSRF and Host-header tests speak raw HTTP to a gateway on a real port, with real
upstreams behind it (the wire is what they test); the rest run in memory."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest
from gateway_fakes import SECRETS, Running, Upstreams, config_text

from shipyard.gateway import RequestError
from shipyard.gateway.providers.http import safe_path

SERVICE = """
  - name: ranker
    type: service
    upstream: {service: ranker}
"""


@pytest.fixture
def gw(ups: Upstreams, serve_gateway: Callable[..., Running]) -> Running:
    # the echo upstream plays the shipyard host: POST /{service}/{endpoint}
    return serve_gateway(config_text(ups, SERVICE), host_url=ups.echo)


@pytest.fixture
def wire(live_ups: Upstreams, live_gateway: Callable[..., Running]) -> Running:
    return live_gateway(config_text(live_ups))


def test_http_route_passes_method_path_query_and_body(gw: Running, ups: Upstreams) -> None:
    r = gw.client.put(
        f"{gw.url}/gateway/files/a/b.txt?x=1&y=%20z",
        content=b"payload",
        headers={
            **gw.auth,
            "x-trace-id": "t-1",
            "cookie": "c=1",
            "x-forwarded-host": "evil",
            "content-type": "text/plain",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["method"] == "PUT" and r.json()["path"] == "/base/a/b.txt"
    assert r.json()["query"] == "x=1&y=%20z" and r.json()["body"] == "payload"
    assert r.headers["x-request-id"] == "r1" and "set-cookie" not in r.headers
    seen = ups.rec_echo.requests[-1]["headers"]
    assert seen["x-api-key"] == SECRETS["HTTP_KEY"] and seen["x-trace-id"] == "t-1"
    for never in ("authorization", "cookie", "x-forwarded-host"):
        assert never not in seen


def test_service_route_posts_to_the_hosted_service(gw: Running, ups: Upstreams) -> None:
    r = gw.post("/gateway/ranker/home", {"profile_id": "p1"})
    assert r.status_code == 200
    assert r.json()["path"] == "/ranker/home" and r.json()["body"] == '{"profile_id":"p1"}'
    assert gw.get("/gateway/ranker/home", headers=gw.auth).status_code == 405
    nested = gw.post("/gateway/ranker/a/b", {})
    assert nested.status_code == 404


def test_unknown_routes_and_keys(gw: Running) -> None:
    assert gw.get("/gateway/files/x").status_code == 401
    r = gw.get("/gateway/nope/x", headers=gw.auth)
    assert r.status_code == 404 and r.json() == {
        "error": {"type": "not_found", "message": "no gateway route named 'nope'"}
    }
    chat = gw.client.post(f"{gw.url}/gateway/chat/x", headers=gw.auth)
    assert chat.status_code == 404 and "/v1/chat/completions" in chat.json()["error"]["message"]


@pytest.mark.parametrize(
    "path",
    [
        "../secret",
        "a/../../x",
        "a/%2e%2e/x",
        "%2E%2E/x",
        "a%2fb",
        "a%2Fb",
        "a%5cb",
        "a\\b",
        "user@evil.com/x",
        "http://evil.com/x",
        "a//b",
        "./x",
        "%00",
    ],
)
def test_ssrf_paths_are_refused(wire: Running, live_ups: Upstreams, path: str) -> None:
    gw, ups = wire, live_ups
    assert gw.server is not None
    before = len(ups.rec_echo.requests)
    target = f"/gateway/files/{path}".encode()
    with socket.create_connection(("127.0.0.1", gw.server.port), timeout=5) as sock:
        sock.sendall(
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + gw.key.encode()
            + b"\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    # refused, or (when the server itself normalised the path away) never off the base URL
    assert status in (400, 404), answer
    after = ups.rec_echo.requests[before:]
    assert all(q["path"].startswith("/base/") and ".." not in q["path"] for q in after)


#: paths that a server behind the gateway could still read as '..' or a separator (a
#: ';' parameter cut off, as Tomcat and Spring do; a second or third percent-decoding), each
#: with the plain form it must be refused like. Before, all but the three ``%2e`` mixes
#: (already refused as encoded dots) reached the upstream.
TRICKS = {
    "..;/x": "../x",
    "a/..;/x": "../x",
    "..;jsessionid=1/x": "../x",
    ".;/x": "./x",
    "..%3b/x": "../x",
    "..%3B/x": "../x",
    "%252e%252e/x": "../x",
    "a/%252E%252E/x": "../x",
    "%25252e%25252e/x": "../x",
    "%252e%252e;/x": "../x",
    "%2e%2e;/x": "%2e%2e/x",
    ".%2e/x": "%2e%2e/x",
    "%2e./x": "%2e%2e/x",
    "a%252fb": "a%2fb",
    "a%252Fb": "a%2fb",
    "a%255cb": "a%5cb",
    "a%2500": "%00",
}


@pytest.mark.parametrize(("path", "like"), TRICKS.items())
def test_double_encoded_and_semicolon_dots_are_refused_like_plain_ones(
    path: str, like: str
) -> None:
    with pytest.raises(RequestError) as plain:
        safe_path(like)
    with pytest.raises(RequestError) as trick:
        safe_path(path)
    assert (trick.value.status, trick.value.param, trick.value.message) == (
        plain.value.status, plain.value.param, plain.value.message,
    )  # fmt: skip


def test_ordinary_paths_with_semicolons_and_encodings_still_pass() -> None:
    for path in ("a;v=1/b", "100%25.txt", "a..b/c", "...", "x/.hidden", "a%2520b"):
        assert safe_path(path) == path


def raw_get(gw: Running, target: bytes) -> tuple[int, object]:
    """``GET target`` written on the socket as it is (no client normalises it)."""
    assert gw.server is not None
    with socket.create_connection(("127.0.0.1", gw.server.port), timeout=5) as sock:
        sock.sendall(
            b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + gw.key.encode() + b"\r\nConnection: close\r\n\r\n"
        )  # fmt: skip
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_path_tricks_get_the_answer_of_the_plain_form_on_the_wire(
    wire: Running, live_ups: Upstreams
) -> None:
    gw, ups = wire, live_ups
    before = len(ups.rec_echo.requests)
    for path, like in TRICKS.items():
        plain = raw_get(gw, f"/gateway/files/{like}".encode())
        assert plain[0] == 400, plain
        assert raw_get(gw, f"/gateway/files/{path}".encode()) == plain, path
    assert ups.rec_echo.requests[before:] == []  # none reached the upstream


def test_absolute_form_and_host_headers_cannot_change_the_upstream(
    wire: Running, live_ups: Upstreams
) -> None:
    gw, ups = wire, live_ups
    assert gw.server is not None
    before = len(ups.rec_echo.requests)
    with socket.create_connection(("127.0.0.1", gw.server.port), timeout=5) as sock:
        sock.sendall(
            b"GET http://169.254.169.254/gateway/files/ok HTTP/1.1\r\nHost: evil\r\n"
            b"Authorization: Bearer "
            + gw.key.encode()
            + b"\r\nX-Forwarded-Host: evil\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status in (200, 404)  # the server may or may not route an absolute-form target
    for seen in ups.rec_echo.requests[before:]:  # but it can only ever reach the base URL
        assert seen["path"] == "/base/ok" and seen["headers"]["host"] == ups.echo[7:]
    r = gw.get("/gateway/files/ok", headers={**gw.auth, "host": "evil.example"})
    assert r.status_code == 200
    assert ups.rec_echo.requests[-1]["headers"]["host"] == ups.echo[7:]


def test_upstream_redirects_are_not_followed(gw: Running, ups: Upstreams) -> None:
    r = gw.get("/gateway/files/redirect", headers=gw.auth)
    assert r.status_code == 502 and "location" not in r.headers
    assert len([q for q in ups.rec_echo.requests if "elsewhere" in q["path"]]) == 0
