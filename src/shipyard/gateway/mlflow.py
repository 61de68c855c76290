"""MLflow AI Gateway's configuration format, read into shipyard routes.

A file whose top level has ``endpoints:`` (MLflow 2.9+; the older ``routes:`` list whose
items carry ``route_type:`` is read too) is mapped as follows:

==============================================  ============================================
MLflow                                          shipyard route
==============================================  ============================================
``name``                                        ``name`` (a route name: :mod:`shipyard.names`)
``endpoint_type: llm/v1/chat``                  ``type: chat``
``endpoint_type: llm/v1/completions``           ``type: completions``
``endpoint_type: llm/v1/embeddings``            ``type: embeddings``
``model.provider: openai``                      ``upstream.provider: openai``
``model.provider: anthropic``                   ``upstream.provider: anthropic`` (chat only)
``model.name``                                  ``upstream.model``
``model.config.openai_api_key``                 ``upstream.api_key``
``model.config.openai_api_base``                ``upstream.base_url``
``model.config.anthropic_api_key``              ``upstream.api_key``
``model.config.anthropic_version``              ``upstream.anthropic_version``
``limit: {renewal_period: minute, calls: N}``   ``limits: {requests_per_minute: N}``
==============================================  ============================================

Keys follow MLflow's rules: ``$VAR`` or ``${VAR}`` is an environment variable, a path to an
existing file is read, anything else is the key itself (our own format refuses literal keys).
Other providers (azure, bedrock, gemini, cohere, mlflow-model-serving...), OpenAI organization
and Azure fields, ``limit.renewal_period`` other than ``minute``, and MLflow's traffic-split
``routes:`` are refused with the line, not ignored. MLflow has no retries or fallbacks: routes
read from this format get the defaults (2 retries, no fallback).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from shipyard.gateway.fields import (
    Fields,
    check_name,
    check_url,
    finish,
    read_provider,
    read_secret,
)
from shipyard.gateway.model import (
    ANTHROPIC_VERSION,
    DEFAULT_BASE_URLS,
    GatewayConfig,
    Provider,
    Route,
    RouteType,
    Upstream,
)
from shipyard.gateway.source import Source

ENDPOINT_TYPES = {
    "llm/v1/chat": RouteType.CHAT,
    "llm/v1/completions": RouteType.COMPLETIONS,
    "llm/v1/embeddings": RouteType.EMBEDDINGS,
}
_KEY_FIELD = {Provider.OPENAI: "openai_api_key", Provider.ANTHROPIC: "anthropic_api_key"}


def is_legacy_mlflow(data: Any) -> bool:
    """Whether ``data`` is MLflow's pre-2.9 ``routes:`` list (items with ``route_type``)."""
    routes = data.get("routes") if isinstance(data, dict) else None
    return isinstance(routes, list) and any(
        isinstance(r, dict) and "route_type" in r for r in routes
    )


def read_mlflow(
    source: Source, *, host_url: str | None, environ: Mapping[str, str]
) -> GatewayConfig:
    """Routes from an MLflow AI Gateway file (see the module docstring for the mapping)."""
    top = Fields(source, (), source.data, "the MLflow gateway configuration")
    legacy = "endpoints" not in top.value
    list_key = "routes" if legacy else "endpoints"
    items = top.raw(list_key)
    if not legacy and top.has("routes"):
        raise top.error(
            "routes",
            "MLflow traffic-split `routes:` are not supported: give each "
            "endpoint its own name, or use shipyard's `fallback:` in our format",
        )
    top.done()
    if not isinstance(items, list) or not items:
        raise top.error(list_key, f"`{list_key}` must be a non-empty list")
    routes = [
        _endpoint(source, (list_key, i), item, environ, legacy) for i, item in enumerate(items)
    ]
    return finish(source, routes, "mlflow")


def _endpoint(
    source: Source,
    path: tuple[str | int, ...],
    value: Any,
    environ: Mapping[str, str],
    legacy: bool,
) -> Route:
    f = Fields(source, path, value, "an MLflow endpoint")
    name = check_name(f, f.text("name", required=True) or "")
    f.what = f"endpoint {name!r}"
    type_key = "route_type" if legacy else "endpoint_type"
    kind_text = f.text(type_key, required=True) or ""
    kind = ENDPOINT_TYPES.get(kind_text)
    if kind is None:
        raise f.error(
            type_key, f"unknown {type_key} {kind_text!r} (known: {', '.join(ENDPOINT_TYPES)})"
        )
    model = Fields(source, f.at("model"), f.raw("model"), f"the model of {f.what}")
    provider = read_provider(model, kind, what="MLflow provider")
    model_name = model.text("name", required=True)
    conf = Fields(source, model.at("config"), model.raw("config") or {}, "`model.config`")
    model.done()
    api_key = read_secret(conf, _KEY_FIELD[provider], environ, mlflow=True)
    base = DEFAULT_BASE_URLS[provider]
    version = ANTHROPIC_VERSION
    if provider is Provider.OPENAI:
        if conf.has("openai_api_type") and conf.text("openai_api_type") != "openai":
            raise conf.error(
                "openai_api_type", "only openai_api_type: openai is supported (Azure is not)"
            )
        if conf.has("openai_api_base"):
            base = check_url(conf, "openai_api_base", conf.text("openai_api_base"))
    else:
        version = conf.text("anthropic_version", default=ANTHROPIC_VERSION) or version
    conf.done()
    limits: Mapping[str, Any] = MappingProxyType({})
    if f.has("limit"):
        lim = Fields(source, f.at("limit"), f.raw("limit"), "`limit`")
        period = lim.text("renewal_period", default="minute")
        if period != "minute":
            raise lim.error(
                "renewal_period",
                f"renewal_period {period!r} is not supported "
                "(only `minute`, mapped to requests_per_minute)",
            )
        calls = lim.number("calls", 0, low=1, high=1e9)
        if not lim.has("calls"):
            raise lim.error(None, "`limit` needs `calls`")
        lim.done()
        limits = MappingProxyType({"requests_per_minute": int(calls)})
    f.done()
    upstream = Upstream(
        provider,
        check_url(f, "model", base),
        model=model_name,
        api_key=api_key,
        anthropic_version=version,
    )
    return Route(name=name, type=kind, upstream=upstream, limits=limits, line=source.line(path))


__all__ = ["ENDPOINT_TYPES", "is_legacy_mlflow", "read_mlflow"]
