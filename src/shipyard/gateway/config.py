"""The gateway's configuration: a YAML file of routes, validated strictly.

```yaml
host_url: http://127.0.0.1:8000        # where `service` upstreams live (optional)
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
  - name: search
    type: http
    upstream: {base_url: "http://127.0.0.1:9200", api_key: "${SEARCH_KEY}",
               auth_header: x-api-key}
    forward_headers: [x-trace-id]      # beyond the default allow-list
```

Every error is a :class:`~shipyard.gateway.errors.ConfigError` naming the file, the line and
the reason: unknown fields, a wrong type, a bad URL (not http/https, user:password in it, a
query), an unset environment variable or unreadable secret file, a literal secret, an unknown
route in ``fallback``, a fallback cycle or a fallback of another type. A file with an
``endpoints:`` list is read as MLflow AI Gateway's format (:mod:`shipyard.gateway.mlflow`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from shipyard.gateway.errors import ConfigError
from shipyard.gateway.hooks import check_limits
from shipyard.gateway.model import (
    ANTHROPIC_VERSION as ANTHROPIC_VERSION,
)
from shipyard.gateway.model import (
    DEFAULT_BASE_URLS as DEFAULT_BASE_URLS,
)
from shipyard.gateway.model import (
    NEVER_FORWARDED as NEVER_FORWARDED,
)
from shipyard.gateway.model import (
    GatewayConfig as GatewayConfig,
)
from shipyard.gateway.model import (
    Prices as Prices,
)
from shipyard.gateway.model import (
    Provider as Provider,
)
from shipyard.gateway.model import (
    Retries as Retries,
)
from shipyard.gateway.model import (
    Route as Route,
)
from shipyard.gateway.model import (  # the types, re-exported: they are the config's
    RouteType as RouteType,
)
from shipyard.gateway.model import (
    Upstream as Upstream,
)
from shipyard.gateway.source import Source, parse
from shipyard.keys.scopes import NAME_PATTERN

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
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
    from shipyard.gateway.mlflow import is_legacy_mlflow, read_mlflow

    if (
        isinstance(source.data, dict)
        and "endpoints" in source.data
        or is_legacy_mlflow(source.data)
    ):
        return read_mlflow(source, host_url=host_url, environ=env)
    return _Reader(source, env, host_url).config()


class Fields:
    """The fields of one YAML mapping, taken one by one; :meth:`done` refuses the rest."""

    def __init__(self, source: Source, path: tuple[str | int, ...], value: Any, what: str):
        if not isinstance(value, dict):
            raise source.error(path, f"{what} must be a mapping, got {_kind(value)}")
        self.source, self.path, self.value, self.what = source, path, value, what
        self.taken: set[str] = set()

    def at(self, name: str) -> tuple[str | int, ...]:
        return (*self.path, name)

    def error(self, name: str | None, reason: str) -> ConfigError:
        return self.source.error(self.at(name) if name else self.path, reason)

    def has(self, name: str) -> bool:
        return name in self.value

    def raw(self, name: str) -> Any:
        self.taken.add(name)
        return self.value.get(name)

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise self.error(None, f"{self.what} needs `{name}`")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(name, f"`{name}` must be a string, got {_kind(value)}")
        return str(value)

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.error(name, f"`{name}` must be a number, got {value!r}")
        if not low <= value <= high:
            raise self.error(name, f"`{name}` must be between {low:g} and {high:g}, got {value!r}")
        return float(value)

    def done(self) -> None:
        for name in self.value:
            if name not in self.taken:
                known = ", ".join(sorted(self.taken))
                raise self.error(
                    str(name), f"unknown field {name!r} in {self.what} (known: {known})"
                )


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
            service = f.text("service", required=True) or ""
            if not NAME_PATTERN.fullmatch(service):
                raise f.error("service", f"service name {service!r} must match [a-z][a-z0-9-]*")
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
                Provider.SERVICE, f"{host.rstrip('/')}/{service}", api_key=api_key, service=service
            )
        if kind is RouteType.HTTP:
            base = check_url(f, "base_url", f.text("base_url", required=True))
            auth = (f.text("auth_header") or "authorization").lower()
            if not _HEADER.fullmatch(auth):
                raise f.error("auth_header", f"`auth_header` {auth!r} is not a header name")
            f.done()
            return Upstream(Provider.HTTP, base, api_key=api_key, auth_header=auth)
        provider_text = f.text("provider", required=True) or ""
        if provider_text not in (Provider.OPENAI, Provider.ANTHROPIC):
            raise f.error(
                "provider",
                f"unknown provider {provider_text!r} for a {kind} route "
                "(known: openai — any OpenAI-compatible server —, anthropic)",
            )
        provider = Provider(provider_text)
        if provider is Provider.ANTHROPIC and kind is not RouteType.CHAT:
            raise f.error("provider", f"the anthropic provider serves `chat` routes, not {kind}")
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


# --- pieces shared with the MLflow reader ---------------------------------------------------
def check_name(f: Fields, name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise f.error(
            "name",
            f"route name {name!r} must be 1-63 lowercase letters, digits and "
            "'-', starting with a letter (it is also the key scope route:<name>)",
        )
    return name


def check_url(f: Fields, name: str, url: str | None) -> str:
    """``url`` if it is a plain http(s) base URL, else a ConfigError at ``name``."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise f.error(name, f"`{name}` {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise f.error(name, f"`{name}` {url!r} must be an http:// or https:// URL with a host")
    if parts.username or parts.password or "@" in parts.netloc:
        raise f.error(
            name,
            f"`{name}` must not hold credentials (user:password@); "
            "use `api_key` with ${ENV_VAR} or file:/path",
        )
    if parts.query or parts.fragment:
        raise f.error(name, f"`{name}` {url!r} must not have a query or a fragment")
    if any(seg in ("..", ".") for seg in parts.path.split("/")) or "%" in parts.path:
        raise f.error(name, f"`{name}` {url!r} must not contain '.', '..' or %-escapes")
    return url.rstrip("/")


def read_secret(
    f: Fields, name: str, environ: Mapping[str, str], *, mlflow: bool = False
) -> str | None:
    """Resolve ``${ENV_VAR}`` or ``file:/path`` (MLflow also: ``$VAR``, a path, a literal)."""
    value = f.text(name)
    if value is None:
        return None
    ref = _ENV_REF.fullmatch(value)
    if ref is None and mlflow and value.startswith("$"):
        ref = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", value)
    if ref is not None:
        secret = environ.get(ref.group(1))
        if not secret:
            raise f.error(
                name,
                f"environment variable {ref.group(1)} (for `{name}`) is not set "
                "or empty: export it before starting the gateway",
            )
        return secret
    file = value[5:] if value.startswith("file:") else (value if mlflow else None)
    if file is not None and (not mlflow or value.startswith("file:") or os.path.isfile(file)):
        try:
            secret = Path(file).expanduser().read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise f.error(
                name,
                f"cannot read the secret file {file!r} for `{name}`: "
                f"{getattr(exc, 'strerror', None) or exc}",
            ) from None
        if not secret:
            raise f.error(name, f"the secret file {file!r} for `{name}` is empty")
        return secret
    if mlflow:
        return value
    raise f.error(
        name,
        f'`{name}` must be a reference, "${{ENV_VAR}}" or "file:/path", not '
        "the secret itself: the configuration file is reviewed and shared",
    )


def read_retries(f: Fields) -> Retries:
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
    value = f.raw(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise f.error(name, f"`{name}` must be a list of route names")
    return tuple(value)


def read_limits(f: Fields, value: Any) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise f.error("limits", f"`limits` must be a mapping, got {_kind(value)}")
    bad = check_limits(value)
    if bad is not None:
        raise f.source.error((*f.at("limits"), *bad[0]), bad[1])
    return MappingProxyType(dict(value))


def read_prices(f: Fields) -> Prices | None:
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
    names = read_names(f, "forward_headers")
    for header in names:
        if not _HEADER.fullmatch(header):
            raise f.error("forward_headers", f"{header!r} is not a header name")
        if header.lower() in NEVER_FORWARDED:
            raise f.error(
                "forward_headers",
                f"header {header!r} is never forwarded upstream "
                "(credentials and routing headers stay at the gateway)",
            )
    return tuple(h.lower() for h in names)


def finish(source: Source, routes: list[Route], fmt: str) -> GatewayConfig:
    """Check names, fallbacks (known, same type, no cycle) and build the config."""
    by_name: dict[str, Route] = {}
    for i, route in enumerate(routes):
        if route.name in by_name:
            raise source.error(
                (*_route_path(fmt, i), "name"), f"route name {route.name!r} is used twice"
            )
        by_name[route.name] = route
    for i, route in enumerate(routes):
        at = (*_route_path(fmt, i), "fallback")
        for j, other in enumerate(route.fallback):
            target = by_name.get(other)
            if target is None:
                known = ", ".join(by_name)
                raise source.error(
                    (*at, j),
                    f"route {route.name!r} falls back to unknown route {other!r} (routes: {known})",
                )
            if target.type != route.type:
                raise source.error(
                    (*at, j),
                    f"route {route.name!r} ({route.type}) cannot fall "
                    f"back to {other!r} ({target.type}): types must match",
                )
    for i, route in enumerate(routes):
        cycle = _cycle(by_name, route.name, [])
        if cycle is not None:
            raise source.error(
                (*_route_path(fmt, i), "fallback"), "fallback cycle: " + " -> ".join(cycle)
            )
    return GatewayConfig(MappingProxyType(by_name), source.file, fmt)


def _route_path(fmt: str, i: int) -> tuple[str | int, ...]:
    return ("endpoints", i) if fmt == "mlflow" else ("routes", i)


def _cycle(routes: Mapping[str, Route], name: str, stack: list[str]) -> list[str] | None:
    if name in stack:
        return [*stack[stack.index(name) :], name]
    for other in routes[name].fallback:
        found = _cycle(routes, other, [*stack, name])
        if found is not None:
            return found
    return None


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]


__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URLS",
    "NEVER_FORWARDED",
    "Fields",
    "GatewayConfig",
    "Prices",
    "Provider",
    "Retries",
    "Route",
    "RouteType",
    "Upstream",
    "load_config",
    "parse_config",
]
