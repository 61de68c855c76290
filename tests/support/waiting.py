"""Waiting for something another process or thread does: poll with a deadline, never a bare
sleep (a loaded CI machine makes any fixed pause too short)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Call ``condition`` until it returns something truthy and return that; fail naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.01)
    return value
