"""Names of services and gateway routes: one rule, one message, used by every layer.

A service or route name is 1-63 lowercase letters, digits and ``-``, starting with a letter
(DESIGN.md's names table): it is a URL path segment (``/ranker/home``) and part of a key scope
(``invoke:ranker``, ``route:chat``). A service can never take one of the host's own path
names (:data:`RESERVED`).

>>> service_name_problem("ranker") is None
True
>>> service_name_problem("ui").startswith("'ui' can never be a service name")
True
"""

from __future__ import annotations

import re

#: what a service or route name must match, whole
NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,62}")

#: names a service can never have: they are the host's own paths
RESERVED = frozenset(
    {"api", "v1", "gateway", "ui", "metrics", "healthz", "readyz", "static", "docs"}
)

_RULE = (
    "use 1-63 lowercase letters, digits and '-', starting with a letter (e.g. ranker, home-rows)"
)


def name_problem(name: str, what: str = "service") -> str | None:
    """Why ``name`` cannot be a ``what`` ("service" or "route") name, or None if it can.

    Only service names are checked against :data:`RESERVED`: a route is never a host path.
    """
    if not NAME_PATTERN.fullmatch(name):
        return f"{what} name {name!r} is not valid: {_RULE}"
    if what == "service" and name in RESERVED:
        return f"{name!r} can never be a service name (reserved: {', '.join(sorted(RESERVED))})"
    return None


def service_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a service name, or None if it can."""
    return name_problem(name, "service")


def name_from(text: str, fallback: str = "service") -> str:
    """A valid service name made from ``text`` (``RankerService`` -> ``ranker-service``), or
    ``fallback`` if nothing valid is left of it."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", text).lower()
    name = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")[:63].rstrip("-")
    return name if NAME_PATTERN.fullmatch(name) and name not in RESERVED else fallback


__all__ = ["NAME_PATTERN", "RESERVED", "name_from", "name_problem", "service_name_problem"]
