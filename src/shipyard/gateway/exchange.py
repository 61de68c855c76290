"""One request's bookkeeping (:class:`Exchange`) and the refusals that end it early
(:class:`~shipyard.gateway.errors.Refused`, rendered in the surface's error shape by
:func:`refusal`)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from starlette.responses import Response

from shipyard.gateway.errors import Refused, gateway_error, openai_error
from shipyard.gateway.model import Route
from shipyard.gateway.providers import Usage
from shipyard.gateway.routes import RouteTable
from shipyard.keys import AuthError, KeyRecord

log = logging.getLogger("shipyard.gateway")


@dataclass
class Exchange:
    """One request's bookkeeping, from arrival to the last byte."""

    surface: str  # "openai" or "gateway"
    started: float = field(default_factory=time.perf_counter)
    key: KeyRecord | None = None
    route: Route | None = None  # the route that answered (or the one asked for)
    table: RouteTable | None = None
    usage: Usage = field(default_factory=Usage)
    streamed: bool = False
    attempts: int = 0


class quietly:
    """Suppress (and debug-log) errors while cleaning up after a failed attempt."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            log.debug("ignored while cleaning up: %r", exc)
            return True
        return False


def refusal(surface: str, exc: Refused) -> Response:
    """``exc`` as a response in the error shape of ``surface`` (``openai`` or ``gateway``)."""
    if surface == "openai":
        kind = exc.kind if exc.kind and exc.status not in (502, 504) else None
        return openai_error(
            exc.status, exc.message, type=kind, param=exc.param, code=exc.code, headers=exc.headers
        )
    extra = {"field": exc.param} if exc.param else {}
    kind = exc.kind or {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }.get(exc.status, "error")
    return gateway_error(exc.status, kind, exc.message, headers=exc.headers, **extra)


def auth_refusal(exc: AuthError) -> Refused:
    """A failed key check as a refusal (401 or 403)."""
    code = "invalid_api_key" if exc.status == 401 else "permission_denied"
    return Refused(exc.status, exc.message, kind=exc.type, code=code, headers=exc.headers or None)


__all__ = ["Exchange", "Refused", "auth_refusal", "quietly", "refusal"]
