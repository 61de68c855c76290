"""What a load test sends: the target's address and the requests, each encoded to bytes
once, before the clock starts.

A target is ``SERVICE/ENDPOINT`` (a service on the configured host) or a full URL
(``http://127.0.0.1:8000/ranker/home``). A body comes from ``--json``, ``--body-file`` or
``--bodies FILE.jsonl``: one JSON value a line, sent in turn and cycled. A line may instead
be a wrapper that names its endpoint and a weight, to mix endpoints::

    {"profile_id": "p1"}
    {"endpoint": "score", "weight": 3, "body": {"pairs": [{"user": "u1", "item": "i9"}]}}

A line is a wrapper when it is an object with a ``body`` key and no keys but ``body``,
``endpoint`` and ``weight``. ``endpoint`` is ``ENDPOINT`` (the target's service, or the last
part of a URL's path), ``SERVICE/ENDPOINT``, or a path ``/...``; ``weight`` (default 1) is how
many times the line is sent per pass over the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from shipyard.loadtest.errors import BodyError, TargetError

#: SERVICE/ENDPOINT (the service names of DESIGN.md)
_SERVICE_ENDPOINT = re.compile(r"^([a-z][a-z0-9-]{0,62})/([A-Za-z_][A-Za-z0-9_-]*)$")
_WRAPPER_KEYS = frozenset({"body", "endpoint", "weight"})
#: the most lines one pass over a --bodies file may expand to with weights
MAX_CYCLE = 1_000_000
USER_AGENT = "shipyard-loadtest"


@dataclass(frozen=True)
class Address:
    """Where the requests go: scheme, host, port, and the base path for relative endpoints."""

    scheme: str
    host: str
    port: int
    path: str  # the target's own path, e.g. /ranker/home

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host_header}"

    def resolve(self, endpoint: str | None) -> str:
        """The path of ``endpoint`` relative to this target (see the module docstring)."""
        if not endpoint:
            return self.path
        if endpoint.startswith("/"):
            return endpoint
        if "/" in endpoint:
            return "/" + endpoint
        base = self.path.rsplit("/", 1)[0]
        return f"{base}/{endpoint}"


def parse_target(target: str, host_url: str) -> tuple[Address, bool]:
    """The address of ``target`` and whether it is on the configured host (``host_url``):
    ``SERVICE/ENDPOINT`` there, or a full http(s) URL anywhere."""
    if "://" not in target:
        match = _SERVICE_ENDPOINT.match(target)
        if not match:
            raise TargetError(
                f"target {target!r} is neither SERVICE/ENDPOINT (e.g. ranker/home, a service "
                "on the configured host) nor a full URL (e.g. http://127.0.0.1:8000/ranker/home)"
            )
        base = _url_address(host_url, what="the host URL (--url / SHIPYARD_URL)")
        prefix = base.path.rstrip("/")
        return Address(base.scheme, base.host, base.port, f"{prefix}/{target}"), True
    return _url_address(target, what="target"), False


def _url_address(url: str, *, what: str) -> Address:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"{what} {url!r} is not an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetError(f"{what} {url!r} has a bad port") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Address(parts.scheme, parts.hostname, port, path)


@dataclass(frozen=True)
class Body:
    """One kind of request: where it goes (an endpoint, or None for the target) and its JSON
    body (None: no body), sent ``weight`` times per pass."""

    body: bytes | None
    endpoint: str | None = None
    weight: int = 1


def body_from_json(text: str) -> Body:
    """``--json TEXT``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(f"--json is not valid JSON: {exc.msg} at column {exc.colno}") from None
    return Body(_dump(value))


def body_from_file(path: Path) -> Body:
    """``--body-file FILE``: a JSON document sent as it is."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BodyError(f"cannot read --body-file {path}: {exc.strerror}") from None
    try:
        json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BodyError(f"--body-file {path} is not valid JSON: {exc}") from None
    return Body(data.strip())


def bodies_from_jsonl(path: Path) -> list[Body]:
    """``--bodies FILE.jsonl``: one body or wrapper a line (blank lines skipped)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BodyError(f"cannot read --bodies {path}: {exc}") from None
    bodies: list[Body] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BodyError(f"{where}: not valid JSON: {exc.msg} at column {exc.colno}") from None
        if isinstance(value, dict) and "body" in value and set(value) <= _WRAPPER_KEYS:
            bodies.append(_wrapper(value, where))
        else:
            bodies.append(Body(_dump(value)))
    if not bodies:
        raise BodyError(f"--bodies {path} has no lines: write one JSON body per line")
    if sum(b.weight for b in bodies) > MAX_CYCLE:
        raise BodyError(f"--bodies {path}: the weights add up to more than {MAX_CYCLE:,}")
    return bodies


def _wrapper(value: dict[str, object], where: str) -> Body:
    endpoint = value.get("endpoint")
    weight = value.get("weight", 1)
    if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.strip()):
        raise BodyError(f'{where}: endpoint must be a name such as "score", got {endpoint!r}')
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise BodyError(f"{where}: weight must be a whole number >= 1, got {weight!r}")
    return Body(_dump(value["body"]), endpoint, weight)


def _dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def encode(
    address: Address,
    method: str,
    path: str,
    body: bytes | None,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """One whole HTTP/1.1 request as bytes (keep-alive is HTTP/1.1's default)."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {address.host_header}",
        f"User-Agent: {USER_AGENT}",
    ]
    names = {name.lower() for name, _ in headers}
    if body is not None:
        if "content-type" not in names:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    elif method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        lines.append("Content-Length: 0")
    lines.extend(f"{name}: {value}" for name, value in headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


def request_cycle(
    address: Address,
    bodies: Iterable[Body],
    *,
    method: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> list[bytes]:
    """The requests of one pass, each encoded once, spread by weight (a line of weight 3
    among three of weight 1 goes every other request, not three in a row). ``method``
    defaults to POST with a body and GET without."""
    kinds = list(bodies) or [Body(None)]
    encoded = [
        encode(
            address,
            method or ("POST" if b.body is not None else "GET"),
            address.resolve(b.endpoint),
            b.body,
            headers,
        )
        for b in kinds
    ]
    if all(b.weight == 1 for b in kinds):
        return encoded
    # each line's turns spread evenly over the pass: turn k of a line of weight w at
    # (k + 0.5) / w, all turns sorted (ties keep the file's order)
    turns = sorted(((k + 0.5) / b.weight, i) for i, b in enumerate(kinds) for k in range(b.weight))
    cycle = [encoded[i] for _, i in turns]
    return cycle


def parse_header(text: str) -> tuple[str, str]:
    """``--header 'Name: value'``."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in text for c in "\r\n"):
        raise BodyError(f"--header {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()


__all__ = [
    "MAX_CYCLE",
    "Address",
    "Body",
    "bodies_from_jsonl",
    "body_from_file",
    "body_from_json",
    "encode",
    "parse_header",
    "parse_target",
    "request_cycle",
]
