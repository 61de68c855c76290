"""Hot reload: the configuration file is watched (watchfiles, debounced) and SIGHUP reloads
it too. :meth:`Gateway.reload` parses the file off the event loop, builds a new route table
and swaps it in one assignment; requests in flight finish on the table they started on. An
invalid file is refused with ``file:line: reason`` in the log, and the old routes keep
serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("shipyard.gateway")


class Reloader:
    """Watches the configuration file at ``path`` and listens for SIGHUP; either calls
    ``reload(reason)`` (:meth:`Gateway.reload`: True if the new file was applied).

    >>> reloader = Reloader(gateway.path, gateway.reload, debounce_ms=200)   # doctest: +SKIP
    >>> await reloader.start()                                              # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        reload: Callable[[str], Awaitable[bool]],
        *,
        debounce_ms: int = 200,
    ) -> None:
        self.path = Path(path).resolve()
        self.reload = reload
        self.debounce_ms = debounce_ms
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Future[object]] = set()
        self._sighup = False

    async def start(self, *, watch: bool = True) -> None:
        """Start watching (``watch``) and handle SIGHUP when running in the main thread."""
        self._stop = asyncio.Event()
        if watch:
            self._spawn(self._watch())
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self.trigger, "SIGHUP")
            self._sighup = True
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            log.debug("SIGHUP reload is not available here (not the main thread)")

    def trigger(self, reason: str) -> None:
        """Reload soon (from a signal handler or any code on the loop)."""
        self._spawn(self.reload(reason))

    async def stop(self) -> None:
        """Stop watching and handling SIGHUP; a reload under way is cancelled."""
        self._stop.set()
        if self._sighup:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Awaitable[object]) -> None:
        task: asyncio.Future[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        from watchfiles import awatch

        target = str(self.path)
        async for changes in awatch(
            self.path.parent,
            watch_filter=lambda _, path: path == target,
            debounce=self.debounce_ms,
            step=min(50, self.debounce_ms),
            stop_event=self._stop,
            recursive=False,
        ):
            if changes:
                await self.reload(f"{self.path.name} changed")


__all__ = ["Reloader"]
