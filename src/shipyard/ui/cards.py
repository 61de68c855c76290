"""A task's card, served as its own document from the blob store.

A card is HTML rendered from user data, so it is served under a policy that forbids scripts,
plugins, forms and any fetch (images only as ``data:``, styles only inline) and sandboxed as
an opaque origin: even a bug in the renderer's escaping could not act as the UI.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from shipyard.store.blobs import BlobNotFound
from shipyard.ui.context import PageNotFound, UIContext
from shipyard.ui.task import get_task

#: sent with a card instead of the UI pages' policy (the UI's middleware adds only the
#: headers a response does not set itself)
CARD_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def card_page(ctx: UIContext, request: Request) -> Response:
    task = get_task(ctx, request)
    card_id = request.path_params["card_id"]
    cards = [c for c in task.result.get("cards") or [] if isinstance(c, dict)]
    found = next((c for c in cards if c.get("id") == card_id), None)
    if found is None:
        have = ", ".join(repr(c.get("id")) for c in cards) or "none"
        raise PageNotFound(f"task {task.pathspec} has no card {card_id!r} (its cards: {have})")
    try:
        html = bytes(ctx.blobs.get(str(found["key"])))
    except (BlobNotFound, ValueError):  # gone (gc?), or not a blob key
        raise PageNotFound(
            f"card {card_id!r} of task {task.pathspec} is missing from the blob store"
        ) from None
    return HTMLResponse(html, headers=CARD_HEADERS)


__all__ = ["CARD_HEADERS", "card_page"]
