"""Who may see the UI: open to loopback clients while no ``ui`` key exists; otherwise a key,
sent once through the sign-in form and then kept in an HttpOnly, SameSite=Strict cookie.

The checks themselves are :meth:`shipyard.keys.Guard.check_ui` (Host/Origin checks on open
access, scope checks on keys). A page that is refused shows the sign-in form (401) or an
error page (403: a wrong Host or Origin, which no key fixes); a JSON endpoint answers
``{"error": ...}`` with the same status.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from shipyard.keys import AuthError, Unauthorized
from shipyard.keys.scopes import UI
from shipyard.ui.context import COOKIE, UIContext

#: the sign-in form's body is one key and one path: anything bigger is not ours
MAX_FORM = 4096


def authorize(ctx: UIContext, request: Request, *, api: bool = False) -> Response | None:
    """None if the request may go on, else the response that refuses it."""
    keys_exist = ctx.guard.keys_exist(UI)  # logs the turn when the last ui key goes
    key = request.cookies.get(COOKIE) or None
    try:
        ctx.guard.check_ui(request, keys_exist, key=key)
        return None
    except AuthError as exc:
        if api:
            return exc.response()
        if isinstance(exc, Unauthorized) or key is not None:
            response = signin_form(ctx, request, exc.message, exc.status, next_url=_here(request))
            if key is not None:  # a revoked or under-scoped key: forget it
                response.delete_cookie(COOKIE, path=_cookie_path(request))
            return response
        return ctx.render(request, "error.html", exc.status, title="Refused", message=exc.message)


def signin_form(
    ctx: UIContext, request: Request, message: str | None, status: int, *, next_url: str
) -> Response:
    """The sign-in page (also answered in place of a page that needs a key)."""
    return ctx.render(
        request, "signin.html", status, title="Sign in", message=message, next_url=next_url
    )


async def signin(ctx: UIContext, request: Request) -> Response:
    """``GET``: the form. ``POST`` (form-encoded ``key``, ``next``): check the key and keep it
    in the cookie, then go to ``next`` (a path inside the UI)."""
    base = _base(request)
    if request.method == "GET":
        wanted = _safe_next(request.query_params.get("next"), base)
        return signin_form(ctx, request, None, 200, next_url=wanted)
    body = await request.body()
    if len(body) > MAX_FORM:
        return signin_form(ctx, request, "the sign-in form is too large", 413, next_url=base)
    fields = parse_qs(body.decode("utf-8", "replace"))
    key = (fields.get("key") or [""])[0].strip()
    wanted = _safe_next((fields.get("next") or [""])[0], base)
    if not key:
        return signin_form(ctx, request, "enter a key with scope 'ui'", 401, next_url=wanted)
    try:
        ctx.guard.check_ui(request, True, key=key)
    except AuthError as exc:
        return signin_form(ctx, request, exc.message, exc.status, next_url=wanted)
    response = RedirectResponse(wanted, status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        path=_cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def signout(ctx: UIContext, request: Request) -> Response:
    """Forget the cookie and go back to the runs page."""
    response = RedirectResponse(_base(request) + "/runs", status_code=303)
    response.delete_cookie(COOKIE, path=_cookie_path(request))
    return response


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _cookie_path(request: Request) -> str:
    return _base(request) or "/"


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _safe_next(value: str | None, base: str) -> str:
    """``value`` if it is a path inside the UI (never another site), else the runs page."""
    if value and value.startswith(base + "/") and not value.startswith("//"):
        if "\\" not in value and "\n" not in value and "\r" not in value:
            return value
    return base + "/runs"


__all__ = ["MAX_FORM", "authorize", "signin", "signin_form", "signout"]
