"""An asyncio event loop on virtual time, for code whose behaviour depends on how long it
waits (the batcher's closing policy): ``run(main())`` runs ``main`` on it.

When nothing is ready to run, the loop does not sleep until its next timer: it jumps its clock
there. Timers still fire in order, a test of a 10 s wait takes microseconds, and durations
read from ``loop.time()`` are exact, so a test can assert them without any wall-clock bound.
I/O still works (the selector is polled without blocking), but nothing outside the loop sees
the virtual clock: the code under test must read ``loop.time()``.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` only moves to reach the next timer."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        # the loop asks to block until its next timer (timeout) or forever (None, when it
        # has no timer: a deadlock, which pytest-timeout reports); jump to the timer instead
        events = super().select(0)
        if not events and timeout:
            self._loop.now += timeout
        return events


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a :class:`VirtualTimeLoop`."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)


def now() -> float:
    """The running loop's clock (virtual on a :class:`VirtualTimeLoop`)."""
    return asyncio.get_running_loop().time()
