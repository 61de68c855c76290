"""What every page handler gets: the stores, the guard, the templates; and the two errors
a handler raises to answer with an error page instead of a 500."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from shipyard.keys import Guard, KeyRecord
from shipyard.keys.scopes import ADMIN
from shipyard.store.blobs import BlobStore
from shipyard.store.meta import MetaStore

if TYPE_CHECKING:
    from shipyard.serve.host import Host

#: the sign-in cookie (HttpOnly, SameSite=Strict, path = the UI's root)
COOKIE = "shipyard_ui_key"
#: the largest integer id SQLite and PostgreSQL BIGINT hold; beyond it an id cannot exist
MAX_ID = 2**63 - 1


class PageError(Exception):
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
    host: Host | None = None

    def admin_key(self, request: Request) -> KeyRecord | None:
        """The signed-in key if actions are possible here and it has scope ``admin``, else
        None (then every page is read-only for this request)."""
        if self.read_only or self.host is None:
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
            "in_host": self.host is not None,
        }
        return self.templates.TemplateResponse(
            request, template, {**common, **context}, status_code=status_code
        )


def parse_id(text: str, what: str) -> int:
    """``text`` as a run or task id, or :class:`PageNotFound` naming it."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_ID:
        raise PageNotFound(f"{what} {text!r} does not exist: ids are whole numbers")
    return int(text)


__all__ = ["COOKIE", "MAX_ID", "PageError", "PageNotFound", "UIContext", "parse_id"]
