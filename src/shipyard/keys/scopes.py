"""Scopes: what a key may do.

=====================  ==========================================================
``admin``              the admin API (deploy, alias moves, keys); implies every other scope
``invoke:<service>``   call one hosted service; ``invoke:*`` every service
``route:<route>``      use one gateway route; ``route:*`` every route
``ui``                 sign in to the UI
``events:publish``     publish events (``POST /api/v1/events``): it can only start
                       schedules that already exist and wait for that event
=====================  ==========================================================

Service and route names follow :mod:`shipyard.names` (``[a-z][a-z0-9-]{0,62}``, DESIGN.md's
names table).
"""

from __future__ import annotations

from collections.abc import Iterable

from shipyard.keys.errors import KeyInputError
from shipyard.names import NAME_PATTERN, RESERVED, name_problem

ADMIN = "admin"
UI = "ui"
INVOKE = "invoke"
ROUTE = "route"
EVENTS_PUBLISH = "events:publish"

#: names a service can never have (they are the host's own paths): :data:`shipyard.names.RESERVED`
RESERVED_SERVICE_NAMES = RESERVED

_EXAMPLES = (
    "admin, ui, events:publish, invoke:<service>, invoke:*, route:<route>, route:* "
    "(e.g. invoke:ranker)"
)


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid service (``kind="invoke"``) or route name, else KeyInputError."""
    problem = name_problem(name, "service" if kind == INVOKE else "route")
    if problem is not None:
        raise KeyInputError(problem)
    return name


def parse_scope(text: str) -> str:
    """Validate one scope string and return it (surrounding spaces removed)."""
    scope = text.strip()
    if scope in (ADMIN, UI, EVENTS_PUBLISH):
        return scope
    kind, sep, target = scope.partition(":")
    if not sep or kind not in (INVOKE, ROUTE):
        raise KeyInputError(f"unknown scope {text!r}: use one of {_EXAMPLES}")
    if target != "*":
        check_name(kind, target)
    return scope


def parse_scopes(texts: Iterable[str]) -> tuple[str, ...]:
    """Validate scopes; sorted, without duplicates. At least one is required."""
    scopes = sorted({parse_scope(text) for text in texts})
    if not scopes:
        raise KeyInputError(f"a key needs at least one scope: {_EXAMPLES}")
    return tuple(scopes)


def allows(scopes: Iterable[str], needed: str) -> bool:
    """Whether a key holding ``scopes`` may do ``needed`` (one exact scope, e.g. ``invoke:ranker``).

    ``admin`` allows everything; ``invoke:*`` / ``route:*`` allow every service / route.
    """
    held = set(scopes)
    if ADMIN in held or needed in held:
        return True
    kind, sep, _ = needed.partition(":")
    return bool(sep) and f"{kind}:*" in held


__all__ = [
    "ADMIN",
    "EVENTS_PUBLISH",
    "INVOKE",
    "NAME_PATTERN",
    "RESERVED_SERVICE_NAMES",
    "ROUTE",
    "UI",
    "allows",
    "check_name",
    "parse_scope",
    "parse_scopes",
]
