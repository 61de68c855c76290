"""The lifespan of an app mounted in another: ASGI's ``lifespan`` protocol, driven by hand.

A server sends ``lifespan.startup``/``lifespan.shutdown`` to the app it runs, and Starlette's
``Mount`` passes them on to nothing; so an app that mounts others (the host mounts the
gateway and the UI) runs their lifespans inside its own, in order, each one an ordinary ASGI
app that neither knows nor cares whether it runs alone or mounted:

>>> async with lifespan(gateway):       # doctest: +SKIP
...     ...                             # the gateway's reloader runs; its pools are open
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import ASGIApp, Message

from shipyard.serve.errors import ServeError


class LifespanFailed(ServeError):
    """A mounted app refused to start (``lifespan.startup.failed``) or failed to stop."""


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp, state: dict[str, Any] | None = None) -> AsyncIterator[None]:
    """Start ``app`` (``lifespan.startup``) on entry and stop it (``lifespan.shutdown``) on
    exit. Raises :class:`LifespanFailed` with the app's message if it fails either way; an
    app that ends its lifespan call without a word (it does not speak the protocol) is
    taken as started."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {
        "type": "lifespan",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "state": state if state is not None else {},
    }

    async def send(message: Message) -> None:
        await outbox.put(message)

    async def run() -> None:
        await app(scope, inbox.get, send)

    call = asyncio.create_task(run())
    try:
        await inbox.put({"type": "lifespan.startup"})
        answer = await _answer(call, outbox)
        if answer is not None and answer["type"] == "lifespan.startup.failed":
            raise LifespanFailed(f"{app!r} did not start: {answer.get('message') or 'no reason'}")
        yield
        if answer is None:
            return
        await inbox.put({"type": "lifespan.shutdown"})
        answer = await _answer(call, outbox)
        if answer is not None and answer["type"] == "lifespan.shutdown.failed":
            raise LifespanFailed(f"{app!r} did not stop: {answer.get('message') or 'no reason'}")
        await call
    finally:
        if not call.done():
            call.cancel()
        await asyncio.wait({call})
        if not call.cancelled():
            call.exception()  # told above as LifespanFailed (Starlette re-raises after it)


async def _answer(call: asyncio.Task[None], outbox: asyncio.Queue[Message]) -> Message | None:
    """The app's next message, or None if its lifespan call ended first (re-raising what it
    raised: a failure is not silence)."""
    message = asyncio.ensure_future(outbox.get())
    await asyncio.wait({call, message}, return_when=asyncio.FIRST_COMPLETED)
    if message.done():
        return message.result()
    message.cancel()
    call.result()  # raises the app's own error, if it raised one
    return None


__all__ = ["LifespanFailed", "lifespan"]
