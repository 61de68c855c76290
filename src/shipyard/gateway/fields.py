"""The fields of one YAML mapping (:class:`Fields`) and the checks both configuration readers
share: our own format (:mod:`shipyard.gateway.config`) and MLflow's
(:mod:`shipyard.gateway.mlflow`). Every check raises a
:class:`~shipyard.gateway.errors.ConfigError` naming the file, the line and the reason."""

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
from shipyard.gateway.model import GatewayConfig, Provider, Route, RouteType
from shipyard.gateway.source import Source
from shipyard.names import name_problem

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Fields:
    """The fields of one YAML mapping, taken one by one; :meth:`done` refuses the rest."""

    def __init__(self, source: Source, path: tuple[str | int, ...], value: Any, what: str):
        if not isinstance(value, dict):
            raise source.error(path, f"{what} must be a mapping, got {kind_of(value)}")
        self.source, self.path, self.value, self.what = source, path, value, what
        self.taken: set[str] = set()

    def at(self, name: str) -> tuple[str | int, ...]:
        """The path of field ``name`` in the document (for its line)."""
        return (*self.path, name)

    def error(self, name: str | None, reason: str) -> ConfigError:
        """A ConfigError at field ``name`` (None: at the mapping itself)."""
        return self.source.error(self.at(name) if name else self.path, reason)

    def has(self, name: str) -> bool:
        """Whether the mapping has field ``name`` (without taking it)."""
        return name in self.value

    def raw(self, name: str) -> Any:
        """Take field ``name`` as it is (None if absent)."""
        self.taken.add(name)
        return self.value.get(name)

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        """Take field ``name`` as text (numbers become their text)."""
        value = self.raw(name)
        if value is None:
            if required:
                raise self.error(None, f"{self.what} needs `{name}`")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(name, f"`{name}` must be a string, got {kind_of(value)}")
        return str(value)

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        """Take field ``name`` as a number between ``low`` and ``high``."""
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.error(name, f"`{name}` must be a number, got {value!r}")
        if not low <= value <= high:
            raise self.error(name, f"`{name}` must be between {low:g} and {high:g}, got {value!r}")
        return float(value)

    def done(self) -> None:
        """Refuse any field that was not taken (a typo must not be ignored)."""
        for name in self.value:
            if name not in self.taken:
                known = ", ".join(sorted(self.taken))
                raise self.error(
                    str(name), f"unknown field {name!r} in {self.what} (known: {known})"
                )


def check_name(f: Fields, name: str) -> str:
    """``name`` if it is a valid route name (:func:`shipyard.names.name_problem`): it is the
    ``model`` clients send and the key scope ``route:<name>``."""
    problem = name_problem(name, "route")
    if problem is not None:
        raise f.error("name", problem)
    return name


def check_service(f: Fields, name: str) -> str:
    """``name`` if a hosted service can have it (the rule, and not a host path such as ``ui``)."""
    problem = name_problem(name, "service")
    if problem is not None:
        raise f.error("service", problem)
    return name


def read_provider(
    f: Fields, kind: RouteType, *, what: str = "provider", hosted: bool = False
) -> Provider:
    """The LLM provider in ``f``'s ``provider`` field, for a route of type ``kind``.

    ``what`` names it in the message (``MLflow provider`` for MLflow's format); ``hosted``
    also allows ``service`` (a chat service hosted by shipyard) on ``chat`` routes.
    """
    text = f.text("provider", required=True) or ""
    known = [Provider.OPENAI, Provider.ANTHROPIC] + ([Provider.SERVICE] if hosted else [])
    if text not in known:
        more = ", service — a chat service hosted by shipyard —" if hosted else ""
        raise f.error(
            "provider",
            f"unknown {what} {text!r} for a {kind} route "
            f"(known: openai — any OpenAI-compatible server —, anthropic{more})",
        )
    provider = Provider(text)
    if provider is not Provider.OPENAI and kind is not RouteType.CHAT:
        raise f.error("provider", f"the {provider} provider serves `chat` routes, not {kind}")
    return provider


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


def kind_of(value: Any) -> str:
    """A short description of a YAML value for a message: its type and its start."""
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]


__all__ = [
    "Fields",
    "check_name",
    "check_service",
    "check_url",
    "finish",
    "kind_of",
    "read_provider",
    "read_secret",
]
