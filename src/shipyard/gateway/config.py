"""The gateway's configuration: a YAML file of routes, validated strictly.

```yaml
host_url: http://127.0.0.1:8000        # where `service` upstreams live (optional, below)
routes:
  - name: chat                         # [a-z][a-z0-9-]{0,62}; the `model` clients send
    type: chat                         # chat | completions | embeddings | service | http
    upstream: {provider: openai, base_url: "https://api.example.com/v1",
               model: small-chat, api_key: "${CHAT_API_KEY}"}   # or "file:/run/secrets/k"
    timeout: 30                        # seconds per attempt (default 60)
    retries: 2                         # or {attempts: 2, backoff: 0.25, max_backoff: 4}
    fallback: [local-chat]             # routes of the same type, tried in order
    limits: {requests_per_minute: 600, tokens_per_minute: 200000}
    prices: {input_per_1k: 0.15, output_per_1k: 0.6, currency: USD}
  - name: claude
    type: chat
    upstream: {provider: anthropic, model: claude-x, api_key: "${ANTHROPIC_API_KEY}",
               max_tokens: 1024}      # the default when a request sends none
  - name: ranker
    type: service
    upstream: {service: ranker}        # a service on the shipyard host
  - name: local-chat
    type: chat                         # a chat service on the shipyard host: one JSON body
    upstream: {provider: service, service: local-llm, endpoint: chat,   # per call
               api_key: "${LOCAL_LLM_KEY}"}   # an invoke:local-llm key of that host
  - name: search
    type: http
    upstream: {base_url: "http://127.0.0.1:9200", api_key: "${SEARCH_KEY}",
               auth_header: x-api-key}
    forward_headers: [x-trace-id]      # beyond the default allow-list
```

A ``service`` upstream (and a ``chat`` route's ``provider: service``) is served by the
shipyard host at ``host_url`` (in the upstream, else at the top of the file); without one, by
the host the gateway is mounted in (``shipyard serve --gateway-config``), or, for the gateway
alone (``shipyard gateway``), by the host at ``SHIPYARD_URL`` (default
``http://127.0.0.1:8000``, where ``shipyard serve`` listens).

Every error is a :class:`~shipyard.gateway.errors.ConfigError` naming the file, the line and
the reason: unknown fields, a wrong type, a bad URL (not http/https, user:password in it, a
query), an unset environment variable or unreadable secret file, a literal secret, an unknown
route in ``fallback``, a fallback cycle or a fallback of another type. A file with an
``endpoints:`` list is read as MLflow AI Gateway's format (:mod:`shipyard.gateway.mlflow`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from shipyard.gateway.errors import ConfigError
from shipyard.gateway.fields import (
    Fields,
    check_name,
    check_service,
    check_url,
    finish,
    kind_of,
    read_provider,
    read_secret,
)
from shipyard.gateway.limits import check_limits
from shipyard.gateway.mlflow import is_legacy_mlflow, read_mlflow
from shipyard.gateway.model import (
    ANTHROPIC_VERSION,
    DEFAULT_BASE_URLS,
    NEVER_FORWARDED,
    GatewayConfig,
    Prices,
    Provider,
    Retries,
    Route,
    RouteType,
    Upstream,
)
from shipyard.gateway.providers.hosted import ENDPOINT_NAME
from shipyard.gateway.source import Source, parse

_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")


# --- loading ---------------------------------------------------------------------------------
def load_config(
    path: str | os.PathLike[str],
    *,
    host_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> GatewayConfig:
    """Read and validate the file at ``path``.

    ``host_url`` is the shipyard host's own URL when the gateway is mounted in it (the
    default for ``service`` upstreams); ``environ`` defaults to ``os.environ``.
    """
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, None, f"cannot read the gateway configuration: {exc}") from None
    return parse_config(text, file, host_url=host_url, environ=environ)


def parse_config(
    text: str,
    file: str = "<config>",
    *,
    host_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> GatewayConfig:
    """Validate YAML text (see :func:`load_config`)."""
    source = parse(text, file)
    env = os.environ if environ is None else environ
    if (
        isinstance(source.data, dict)
        and "endpoints" in source.data
        or is_legacy_mlflow(source.data)
    ):
        return read_mlflow(source, host_url=host_url, environ=env)
    return _Reader(source, env, host_url).config()


class _Reader:
    """Our own format: ``routes:`` (and an optional ``host_url:``)."""

    def __init__(self, source: Source, environ: Mapping[str, str], host_url: str | None):
        self.source, self.environ, self.host_url = source, environ, host_url

    def config(self) -> GatewayConfig:
        top = Fields(self.source, (), self.source.data, "the gateway configuration")
        if top.has("host_url"):
            self.host_url = check_url(top, "host_url", top.text("host_url") or "")
        routes = top.raw("routes")
        top.done()
        if not isinstance(routes, list) or not routes:
            raise top.error(
                "routes" if routes is not None else None,
                "`routes` must be a non-empty list of routes (or use MLflow's `endpoints:` list)",
            )
        read = [self.route(("routes", i), item) for i, item in enumerate(routes)]
        return finish(self.source, read, "shipyard")

    def route(self, path: tuple[str | int, ...], value: Any) -> Route:
        f = Fields(self.source, path, value, "a route")
        name = check_name(f, f.text("name", required=True) or "")
        f.what = f"route {name!r}"
        kind_text = f.text("type", required=True) or ""
        try:
            kind = RouteType(kind_text)
        except ValueError:
            known = ", ".join(t.value for t in RouteType)
            raise f.error("type", f"unknown route type {kind_text!r} (known: {known})") from None
        upstream = self.upstream(f, kind)
        route = Route(
            name=name,
            type=kind,
            upstream=upstream,
            timeout=f.number("timeout", 60.0, low=0.001, high=3600),
            retries=read_retries(f),
            fallback=read_names(f, "fallback"),
            limits=read_limits(f, f.raw("limits")),
            prices=read_prices(f),
            forward_headers=read_headers(f),
            line=self.source.line(path),
        )
        f.done()
        return route

    def upstream(self, route: Fields, kind: RouteType) -> Upstream:
        value = route.raw("upstream")
        if value is None:
            raise route.error(None, f"{route.what} needs `upstream`")
        f = Fields(self.source, route.at("upstream"), value, f"the upstream of {route.what}")
        api_key = read_secret(f, "api_key", self.environ)
        if kind is RouteType.SERVICE:
            return self.hosted(f, api_key)
        if kind is RouteType.HTTP:
            base = check_url(f, "base_url", f.text("base_url", required=True))
            auth = (f.text("auth_header") or "authorization").lower()
            if not _HEADER.fullmatch(auth):
                raise f.error("auth_header", f"`auth_header` {auth!r} is not a header name")
            f.done()
            return Upstream(Provider.HTTP, base, api_key=api_key, auth_header=auth)
        provider = read_provider(f, kind, hosted=True)
        if provider is Provider.SERVICE:
            return self.hosted(f, api_key, chat=True)
        base = check_url(f, "base_url", f.text("base_url", default=DEFAULT_BASE_URLS[provider]))
        model = f.text("model", required=True)
        max_tokens = None
        version = ANTHROPIC_VERSION
        if provider is Provider.ANTHROPIC:
            if f.has("max_tokens"):
                max_tokens = int(f.number("max_tokens", 0, low=1, high=10_000_000))
            version = f.text("anthropic_version", default=ANTHROPIC_VERSION) or version
        f.done()
        return Upstream(
            provider,
            base,
            model=model,
            api_key=api_key,
            max_tokens=max_tokens,
            anthropic_version=version,
        )

    def hosted(self, f: Fields, api_key: str | None, *, chat: bool = False) -> Upstream:
        """A service on a shipyard host: a ``service`` route's upstream, or a ``chat``
        route's with ``provider: service`` (which also names its ``endpoint``)."""
        service = check_service(f, f.text("service", required=True) or "")
        endpoint = None
        if chat:
            endpoint = f.text("endpoint", default="chat") or ""
            if not ENDPOINT_NAME.fullmatch(endpoint):
                raise f.error(
                    "endpoint",
                    f"`endpoint` {endpoint!r} is not an endpoint name "
                    "(lower-case letters, digits, '_' and '-', starting with a letter)",
                )
        host = check_url(f, "host_url", f.text("host_url")) if f.has("host_url") else None
        host = host or self.host_url
        if host is None:
            raise f.error(
                "service",
                "a `service` upstream needs the shipyard host's URL: "
                "mount the gateway in `shipyard serve --gateway-config`, or set "
                "`host_url:` at the top of the file or in this upstream",
            )
        f.done()
        return Upstream(
            Provider.SERVICE,
            f"{host.rstrip('/')}/{service}",
            api_key=api_key,
            service=service,
            endpoint=endpoint,
        )


def read_retries(f: Fields) -> Retries:
    """A route's ``retries``: a number of extra attempts, or the full mapping."""
    value = f.raw("retries")
    if value is None:
        return Retries()
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 10:
            raise f.error("retries", f"`retries` must be between 0 and 10, got {value}")
        return Retries(attempts=value)
    r = Fields(f.source, f.at("retries"), value, "`retries`")
    attempts = r.number("attempts", 2, low=0, high=10)
    if attempts != int(attempts):
        raise r.error("attempts", f"`attempts` must be a whole number, got {attempts!r}")
    retries = Retries(
        attempts=int(attempts),
        backoff=r.number("backoff", 0.25, low=0, high=60),
        max_backoff=r.number("max_backoff", 4.0, low=0, high=600),
    )
    r.done()
    return retries


def read_names(f: Fields, name: str) -> tuple[str, ...]:
    """A list of names (or one name) in field ``name``."""
    value = f.raw(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise f.error(name, f"`{name}` must be a list of route names")
    return tuple(value)


def read_limits(f: Fields, value: Any) -> Mapping[str, Any]:
    """A route's ``limits`` (:func:`shipyard.gateway.limits.check_limits`), read-only."""
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise f.error("limits", f"`limits` must be a mapping, got {kind_of(value)}")
    bad = check_limits(value)
    if bad is not None:
        raise f.source.error((*f.at("limits"), *bad[0]), bad[1])
    return MappingProxyType(dict(value))


def read_prices(f: Fields) -> Prices | None:
    """A route's ``prices`` per 1,000 tokens, or None."""
    value = f.raw("prices")
    if value is None:
        return None
    p = Fields(f.source, f.at("prices"), value, "`prices`")
    for needed in ("input_per_1k", "output_per_1k"):
        if not p.has(needed):
            raise p.error(None, f"`prices` needs `{needed}` (a price per 1,000 tokens)")
    prices = Prices(
        input_per_1k=p.number("input_per_1k", 0, low=0, high=1e6),
        output_per_1k=p.number("output_per_1k", 0, low=0, high=1e6),
        currency=p.text("currency", default="USD") or "USD",
    )
    p.done()
    return prices


def read_headers(f: Fields) -> tuple[str, ...]:
    """A route's ``forward_headers``, lower-cased; never a credential or routing header."""
    names = read_names(f, "forward_headers")
    for header in names:
        if not _HEADER.fullmatch(header):
            raise f.error("forward_headers", f"{header!r} is not a header name")
        if header.lower() in NEVER_FORWARDED:
            raise f.error(
                "forward_headers",
                f"header {header!r} is never forwarded upstream "
                "(credentials, routing and encoding headers stay at the gateway)",
            )
    return tuple(h.lower() for h in names)


__all__ = ["Fields", "load_config", "parse_config"]
