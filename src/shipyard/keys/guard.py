"""Request checks that the host, the gateway and the UI make before doing anything else.

Every check takes a Starlette connection (``Request`` or ``WebSocket``) or a plain
:class:`RequestInfo` ``(method, headers, client_host, scheme)``, and either returns the
:class:`~shipyard.keys.records.KeyRecord` that allowed the request (None when open loopback
access allowed it) or raises an :class:`~shipyard.keys.errors.AuthError` whose ``status``,
``body`` and ``headers`` are the response to send::

    guard = Guard.for_settings(keys, settings(), bind_host=host)
    try:
        guard.check_admin(request)
    except AuthError as exc:
        return JSONResponse(exc.body, exc.status, headers=exc.headers)

The rules (DESIGN.md, "Security defaults"):

- **admin** (:meth:`Guard.check_admin`): always a key with scope ``admin``, even on loopback
  (401 without or with an unknown key, 403 with another scope); the Host header must name this
  server (loopback names, the bind address, ``allowed_hosts``) and an ``Origin``, if sent, must
  be that same host and port, else 403: so neither DNS rebinding nor a web page can deploy
  code; POST/PUT/PATCH/DELETE must be ``application/json``, else 415.
- **invoke** (:meth:`Guard.check_invoke`) and **ui** (:meth:`Guard.check_ui`): open without a
  key only to a loopback client while no key of that scope exists (``keys_exist``, from
  :meth:`KeyStore.has_keys_with_scope_prefix`), and then with the same Host/Origin checks as
  admin; otherwise a key with ``invoke:<service>`` / ``invoke:*`` (or ``ui``); ``admin`` keys
  allow everything. A key that is sent is always checked, even when access would be open.
- **route** (:meth:`Guard.check_route`): always a key with ``route:<route>`` or ``route:*``.
- **this server** (:meth:`Guard.check_host`): the Host and Origin checks of admin alone, for
  keyless reads of the server's own data (the host's ``/metrics``, a service's OpenAPI and docs
  page): a DNS-rebinding page in a browser cannot read them.

"A name of this server" is a loopback name, the bind address, a name in ``allowed_hosts``, or
the IP address the connection arrived on (ASGI ``server``; a scraper or load balancer that
addresses a host bound to ``0.0.0.0`` by one of its IPs). An IP literal in the Host header
cannot be a rebinding: the browser's origin would be this server itself.

The host's request path asks :meth:`Guard.invoke_refusal` instead of :meth:`Guard.check_invoke`:
the same rule, its answer remembered for a second per caller.

**Keys running out.** :meth:`Guard.keys_exist` is how the servers ask whether keys of a scope
exist; when the answer turns from yes to no (the last ``invoke`` or ``ui`` key revoked or
expired), access opens to loopback clients again, and it logs a WARNING, once per such turn,
saying so and how to close it (:func:`reopened_warning`).

"Loopback" is the TCP peer's address. Behind a reverse proxy on the same machine every
client is loopback: create keys before putting a proxy in front. The checks are synchronous:
a cached key costs no I/O; an uncached one costs one indexed SELECT per ``cache_ttl``.
No error message contains the presented key.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shipyard.keys.errors import AuthError, Forbidden, Unauthorized, UnsupportedMediaType
from shipyard.keys.records import KeyRecord
from shipyard.keys.scopes import ADMIN, INVOKE, ROUTE, UI
from shipyard.keys.store import KeyStore

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from shipyard.config import Settings

log = logging.getLogger("shipyard.keys")

#: names every host answers to, besides its bind address and configured extras
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
#: admin methods whose body must be JSON
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
#: how long :meth:`Guard.invoke_refusal` remembers an answer, in seconds
INVOKE_CACHE_SECONDS = 1.0
_INVOKE_CACHE_SIZE = 4096
#: the request headers an invoke check reads
_INVOKE_HEADERS = (b"host", b"origin", b"authorization")


@dataclass(frozen=True)
class RequestInfo:
    """What the checks need from a request, for callers without a Starlette object.

    ``headers`` keys are matched case-insensitively; ``client_host`` is the peer's address
    (None if unknown: never loopback); ``scheme`` is ``http`` or ``https``; ``server_host`` is
    the local address the connection arrived on (ASGI ``server``), if known.
    """

    method: str
    headers: Mapping[str, str]
    client_host: str | None
    scheme: str = "http"
    server_host: str | None = None


def _info(request: HTTPConnection | RequestInfo) -> RequestInfo:
    if isinstance(request, RequestInfo):
        headers = {k.lower(): v for k, v in request.headers.items()}
        return RequestInfo(
            request.method.upper(),
            headers,
            request.client_host,
            request.scheme,
            request.server_host,
        )
    scope = request.scope
    client = scope.get("client")
    server = scope.get("server")
    return RequestInfo(
        str(scope.get("method", "GET")).upper(),
        request.headers,  # Starlette's Headers: case-insensitive already
        str(client[0]) if client else None,
        str(scope.get("scheme", "http")),
        str(server[0]) if server and server[0] else None,
    )


def _ip_literal(value: str | None) -> str | None:
    """``value`` as a normalised IP address (an IPv4-mapped IPv6 address as its IPv4), or None
    if it is not one (a name, a Unix socket path)."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def is_loopback(client_host: str | None) -> bool:
    """Whether the peer address is on loopback (127.0.0.0/8, ::1, ::ffff:127.x)."""
    if not client_host:
        return False
    try:
        address = ipaddress.ip_address(client_host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def split_host(value: str) -> tuple[str, int | None] | None:
    """``"Example.com:8000"`` -> ``("example.com", 8000)``; ``"[::1]"`` -> ``("::1", None)``;
    None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:  # no port, or a bare IPv6 address
        host, port_text = value, ""
    if port_text and not port_text.isdigit():
        return None
    host = host.rstrip(".")
    return (host, int(port_text) if port_text else None) if host else None


class Guard:
    """The access checks of one server (see the module docstring for the rules).

    ``bind_host`` is the address the server listens on; ``allowed_hosts`` are further names
    clients may use in the Host header (e.g. a DNS name in front of the host).
    """

    def __init__(
        self,
        keys: KeyStore,
        *,
        bind_host: str = "127.0.0.1",
        allowed_hosts: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        names = (*LOOPBACK_NAMES, bind_host, *allowed_hosts)
        self.allowed_hosts = frozenset(n.strip().lower().strip("[]").rstrip(".") for n in names)
        self._clock = clock
        self._invoke_cache: dict[tuple[Any, ...], tuple[float, AuthError | None]] = {}
        self._keys_seen: dict[str, bool] = {}  # keys_exist's last answer per scope prefix
        self._seen_lock = threading.Lock()

    @classmethod
    def for_settings(cls, keys: KeyStore, settings: Settings, *, bind_host: str) -> Guard:
        """The guard of a server bound to ``bind_host``, which also answers to the
        ``allowed_hosts`` of ``settings`` (``SHIPYARD_HOME/config.yaml``)."""
        return cls(keys, bind_host=bind_host, allowed_hosts=settings.allowed_hosts)

    def invoke_refusal(self, scope: Mapping[str, Any], service: str) -> AuthError | None:
        """:meth:`check_invoke` for an ASGI ``scope`` on the host's request path: None if the
        call of ``service`` may go on, else the refusal to answer with (not raised).

        The answer depends only on the client's address, the Host, Origin and Authorization
        headers and whether invoke keys exist, so it is remembered for
        :data:`INVOKE_CACHE_SECONDS` per such tuple: a call pays a dict lookup, not a guard
        evaluation. (The key store caches verifications for 5 s, so a revocation takes
        effect as soon as it did without this cache.)"""
        wanted: dict[bytes, bytes | None] = dict.fromkeys(_INVOKE_HEADERS)
        for name, value in scope["headers"]:
            if name in wanted and wanted[name] is None:  # the first one, as Starlette reads
                wanted[name] = value
        client = scope.get("client")
        now = self._clock()
        ident = (service, client[0] if client else "", *wanted.values())
        cached = self._invoke_cache.get(ident)
        if cached is not None and cached[0] > now:
            return cached[1]
        info = RequestInfo(
            str(scope.get("method", "POST")),
            {k.decode("latin-1"): v.decode("latin-1") for k, v in wanted.items() if v is not None},
            str(client[0]) if client else None,
            str(scope.get("scheme", "http")),
        )
        keys_exist = self.keys_exist(f"{INVOKE}:")
        try:
            self.check_invoke(info, service, keys_exist)
            answer: AuthError | None = None
        except AuthError as exc:
            answer = exc.with_traceback(None)
        if len(self._invoke_cache) >= _INVOKE_CACHE_SIZE:
            self._invoke_cache.clear()
        self._invoke_cache[ident] = (now + INVOKE_CACHE_SECONDS, answer)
        return answer

    def keys_exist(self, prefix: str) -> bool:
        """Whether an active key with a scope starting with ``prefix`` (``"invoke:"``,
        ``"ui"``) exists: :meth:`KeyStore.has_keys_with_scope_prefix`, cached there.

        When the answer turns from yes to no, keyless loopback access to what ``prefix``
        guards opens again: a WARNING (:func:`reopened_warning`) is logged then, once per turn;
        the turn back is logged at INFO. The first answer logs nothing (the host says at start
        whether calls are open)."""
        found = self.keys.has_keys_with_scope_prefix(prefix)
        if self._keys_seen.get(prefix) != found:  # the first answer, or a turn: lock only then
            with self._seen_lock:
                before = self._keys_seen.get(prefix)
                self._keys_seen[prefix] = found
            if before is True and not found:
                log.warning(reopened_warning(prefix))
            elif before is False and found:
                log.info("%s keys exist again: %s need a key", prefix.rstrip(":"), _what(prefix))
        return found

    # --- the checks -------------------------------------------------------------------
    def check_host(self, request: HTTPConnection | RequestInfo) -> None:
        """Allow a keyless read of this server's own data (the host's ``/metrics``, a
        service's OpenAPI and docs page), or raise 403: the Host header must name this server
        and an ``Origin``, if sent, must be this server, exactly as for the admin API."""
        info = _info(request)
        self._check_host(info)
        self._check_origin(info)

    def check_admin(self, request: HTTPConnection | RequestInfo) -> KeyRecord:
        """Allow an admin API request, or raise 401/403/415."""
        info = _info(request)
        self._check_host(info)
        self._check_origin(info)
        record = self._authenticate(info, ADMIN, "the admin API")
        if info.method in WRITE_METHODS:
            content_type = info.headers.get("content-type") or ""
            if content_type.split(";", 1)[0].strip().lower() != "application/json":
                got = repr(content_type) if content_type else "none"
                raise UnsupportedMediaType(
                    f"admin {info.method} requests must be sent with "
                    f"`Content-Type: application/json` (got {got})"
                )
        return record

    def check_scope(
        self, request: HTTPConnection | RequestInfo, needed: str, what: str
    ) -> KeyRecord:
        """Allow a request that always needs a key with scope ``needed`` (or ``admin``), such
        as ``events:publish`` for ``POST /api/v1/events``: the Host/Origin checks of admin,
        401 without a valid key, 403 naming ``needed`` with another scope, 415 for a write
        that is not JSON."""
        info = _info(request)
        self._check_host(info)
        self._check_origin(info)
        record = self._authenticate(info, needed, what)
        if info.method in WRITE_METHODS:
            content_type = info.headers.get("content-type") or ""
            if content_type.split(";", 1)[0].strip().lower() != "application/json":
                got = repr(content_type) if content_type else "none"
                raise UnsupportedMediaType(
                    f"{what}: {info.method} requests must be sent with "
                    f"`Content-Type: application/json` (got {got})"
                )
        return record

    def check_invoke(
        self, request: HTTPConnection | RequestInfo, service: str, keys_exist: bool
    ) -> KeyRecord | None:
        """Allow a call of ``service``: None (open loopback access) or the key's record."""
        return self._open_or_key(
            _info(request), f"{INVOKE}:{service}", f"service {service!r}", keys_exist, None
        )

    def check_route(self, request: HTTPConnection | RequestInfo, route: str) -> KeyRecord:
        """Allow a gateway route: always a key with ``route:<route>`` or ``route:*``."""
        return self._authenticate(_info(request), f"{ROUTE}:{route}", f"gateway route {route!r}")

    def check_ui(
        self, request: HTTPConnection | RequestInfo, keys_exist: bool, key: str | None = None
    ) -> KeyRecord | None:
        """Allow a UI request: None (open loopback access) or the key's record. ``key`` is the
        one from the UI's sign-in cookie, if any (else the Authorization header is used)."""
        return self._open_or_key(_info(request), UI, "the UI", keys_exist, key)

    # --- pieces -----------------------------------------------------------------------
    def _open_or_key(
        self, info: RequestInfo, needed: str, what: str, keys_exist: bool, key: str | None
    ) -> KeyRecord | None:
        if key is not None or "authorization" in info.headers:
            return self._authenticate(info, needed, what, key)
        if keys_exist:
            raise Unauthorized(f"{what} needs a key with scope {needed!r}: {_how_to(needed)}")
        if not is_loopback(info.client_host):
            raise Unauthorized(
                f"{what} needs a key with scope {needed!r} for calls from beyond loopback: "
                f"{_how_to(needed)}"
            )
        self._check_host(info)
        self._check_origin(info)
        return None

    def _authenticate(
        self, info: RequestInfo, needed: str, what: str, key: str | None = None
    ) -> KeyRecord:
        if key is None:
            key = _bearer(info, needed)
        record = self.keys.verify(key) if key else None
        if record is None:
            raise Unauthorized(
                "the key sent is not valid: it is unknown, revoked or expired "
                "(`shipyard keys list` shows the keys)"
            )
        if not record.allows(needed):
            held = ", ".join(record.scopes)
            raise Forbidden(
                f"key {record.label} ({record.name or 'unnamed'}) has scopes [{held}], which "
                f"do not allow {what}: use a key with scope {needed!r}"
            )
        return record

    def _check_host(self, info: RequestInfo) -> None:
        value = info.headers.get("host")
        parsed = split_host(value) if value else None
        if parsed is None:
            raise Forbidden("the request has no valid Host header")
        if parsed[0] not in self.allowed_hosts and not self._arrived_at(parsed[0], info):
            names = ", ".join(sorted(self.allowed_hosts))
            raise Forbidden(
                f"Host {parsed[0]!r} is not a name of this server ({names}); a request for "
                "another name may be DNS rebinding. If you reach shipyard under that name, "
                "add it to `allowed_hosts` in SHIPYARD_HOME/config.yaml"
            )

    @staticmethod
    def _arrived_at(host: str, info: RequestInfo) -> bool:
        """Whether ``host`` is the IP address the connection arrived on (see the module
        docstring: an IP literal naming this server cannot be a rebinding)."""
        server = _ip_literal(info.server_host)
        return server is not None and _ip_literal(host) == server

    def _check_origin(self, info: RequestInfo) -> None:
        origin = info.headers.get("origin")
        if origin is None:
            return
        host = split_host(info.headers.get("host") or "")
        try:
            parts = urlsplit(origin.strip())
            origin_port = parts.port
        except ValueError:
            parts, origin_port = None, None
        if host is None or parts is None or not parts.hostname:
            raise Forbidden(
                f"Origin {origin!r} is not this server: cross-site requests are refused"
            )
        default = _DEFAULT_PORTS.get(parts.scheme.lower())
        origin_at = (parts.hostname.lower().rstrip("."), origin_port or default)
        if origin_at != (host[0], host[1] or default):
            raise Forbidden(
                f"Origin {origin!r} is not this server: a web page on another site may not "
                "call this API"
            )


#: what keyless loopback access opens when no key of a scope prefix is left, and the fix
_REOPENS = {
    f"{INVOKE}:": ("service calls", "shipyard keys create --scope 'invoke:*'"),
    UI: ("the UI's pages", "shipyard keys create --scope ui"),
}


def _what(prefix: str) -> str:
    return _REOPENS.get(prefix, (f"requests needing a {prefix!r} key", ""))[0]


def reopened_warning(prefix: str) -> str:
    """What to say when the last key of ``prefix`` (``"invoke:"``, ``"ui"``) is gone: what
    is open again without a key, to whom, and how to close it."""
    fix = _REOPENS[prefix][1] if prefix in _REOPENS else f"shipyard keys create --scope {prefix}"
    return (
        f"no active {prefix.rstrip(':')!r} key is left (the last one was revoked or expired): "
        f"{_what(prefix)} are open again without a key to every loopback client — any local "
        "user or process, and anything behind a proxy on this machine. Create a key to close "
        f"them: {fix}"
    )


def _how_to(needed: str) -> str:
    if needed == ADMIN:
        return (
            "send `Authorization: Bearer <admin token>` (the shipyard command reads it from "
            "SHIPYARD_HOME/admin.token)"
        )
    return (
        "send `Authorization: Bearer <key>` (create one with "
        f"`shipyard keys create --scope {needed}`)"
    )


def _bearer(info: RequestInfo, needed: str) -> str:
    header = info.headers.get("authorization")
    if not header:
        raise Unauthorized(f"no key was sent: {_how_to(needed)}")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized(f"the Authorization header must read `Bearer <key>`: {_how_to(needed)}")
    return value.strip()


__all__ = [
    "INVOKE_CACHE_SECONDS",
    "LOOPBACK_NAMES",
    "WRITE_METHODS",
    "Guard",
    "RequestInfo",
    "is_loopback",
    "reopened_warning",
    "split_host",
]
