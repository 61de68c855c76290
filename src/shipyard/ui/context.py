"""What every page handler gets (:class:`UIContext`): the stores, the guard, the templates,
and, inside the host, the host's live state (:class:`LiveHost`) and its gateway.

The UI's errors::

    UIError                 root of everything shipyard.ui raises on purpose
    ├── PageError           a handler's answer as an error page (400) with a message
    │   ├── PageNotFound    an unknown run, step, task, model or deployment (404)
    │   └── CacheUnavailable  the cache backend cannot be reached (503; ui.cache)
    ├── ActionError         an action refused before it reached the admin API (ui.actions)
    └── LogOffsetError      (also a ValueError) an offset past the end of a log (ui.logs)

Any other exception in a page becomes a 500 page with an error id to find in the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from shipyard.keys import Guard, KeyRecord
from shipyard.keys.scopes import ADMIN
from shipyard.serve.history import Point
from shipyard.serve.live import ServiceState
from shipyard.store.blobs import BlobStore
from shipyard.store.meta import MetaStore

if TYPE_CHECKING:
    from shipyard.gateway import Gateway


class LiveHost(Protocol):
    """The live state of the host the UI is mounted in, as snapshots.

    Pages run in worker threads while the host's event loop changes its state: every method
    returns a copy taken safely (:class:`shipyard.serve.host.Host` takes it on the loop),
    never a live object.
    """

    def live_services(self) -> Mapping[str, ServiceState]:
        """Every service live now: version, replicas (ready or not), endpoints."""
        ...

    def live_service(self, service: str) -> ServiceState | None:
        """One live service now, or None if it does not run here."""
        ...

    def traffic(self, service: str, since: float) -> list[Point]:
        """The traffic history of ``service`` since ``since`` (epoch seconds)."""
        ...

    def last_sample(self) -> float | None:
        """When the traffic history last took a sample (None: never)."""
        ...

    @property
    def admin_app(self) -> ASGIApp:
        """An ASGI app serving the admin API under ``/api/v1``, to replay actions to."""
        ...


class UIError(Exception):
    """Root of the UI's exceptions (see the module docstring for the tree)."""


#: the sign-in cookie (HttpOnly, SameSite=Strict, path = the UI's root)
COOKIE = "shipyard_ui_key"
#: the largest integer id SQLite and PostgreSQL BIGINT hold; beyond it an id cannot exist
MAX_ID = 2**63 - 1


class PageError(UIError):
    """A handler's answer as an error page: ``status`` and a message naming what was wrong."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PageNotFound(PageError):
    """An unknown run, step, task, model or deployment (404)."""

    status = 404


@dataclass
class UIContext:
    """The UI's dependencies, shared by every handler."""

    meta: MetaStore
    blobs: BlobStore
    guard: Guard
    templates: Jinja2Templates
    home: Path
    read_only: bool = True  # True: no actions at all (``shipyard ui``, or no host to act on)
    live: LiveHost | None = None  # the host the UI is mounted in, if any
    gateway: Gateway | None = None  # the gateway mounted beside it, if any

    def admin_key(self, request: Request) -> KeyRecord | None:
        """The signed-in key if actions are possible here and it has scope ``admin``, else
        None (then every page is read-only for this request)."""
        if self.read_only or self.live is None:
            return None
        key = request.cookies.get(COOKIE)
        record = self.guard.keys.verify(key) if key else None
        return record if record is not None and record.allows(ADMIN) else None

    def render(
        self, request: Request, template: str, status_code: int = 200, /, **context: Any
    ) -> Response:
        """Render ``templates/<template>`` with the common context (base path, sign-in
        state). Positional-only, so that ``context`` may hold any name."""
        base = str(request.scope.get("root_path", "")).rstrip("/")
        common = {
            "base": base,
            "signed_in": COOKIE in request.cookies,
            "read_only": self.read_only or self.admin_key(request) is None,
            "can_sign_in": not self.read_only and COOKIE not in request.cookies,
            "in_host": self.live is not None,
        }
        return self.templates.TemplateResponse(
            request, template, {**common, **context}, status_code=status_code
        )


def parse_id(text: str, what: str) -> int:
    """``text`` as a run or task id, or :class:`PageNotFound` naming it."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_ID:
        raise PageNotFound(f"{what} {text!r} does not exist: ids are whole numbers")
    return int(text)


__all__ = [
    "COOKIE",
    "MAX_ID",
    "LiveHost",
    "PageError",
    "PageNotFound",
    "UIContext",
    "UIError",
    "parse_id",
]
