"""The format of a task's captured output: each line written through ``sys.stdout`` or
``sys.stderr`` starts with a stamp, the time it was written, so that the two streams can be
shown interleaved in the order they were written (``shipyard logs``).

A stamp is ``\\x1e`` + the time in nanoseconds since the epoch, in hex + ``\\x1f``: two
control characters that ordinary output never contains. The task's clock is shared by its
two streams and strictly increasing, so no two lines of one attempt share a stamp. Output
written straight to the file descriptors (a subprocess, C code, a segfault's stack from
``faulthandler``) carries no stamp: such a line is taken to be written with the stamped line
before it in its stream. Logs recorded before stamps existed carry none: they are shown
standard output first, then standard error.

Every reader strips the stamps (:func:`strip`, :func:`parse`): they never reach a user.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NamedTuple

START = "\x1e"
END = "\x1f"
_STAMP = re.compile(r"^\x1e[0-9a-f]{1,16}\x1f", re.MULTILINE)
#: a stamp cut by the end of a chunk, and the rest of one at the start of the next
_CUT_TAIL = re.compile(r"\x1e[0-9a-f]{0,16}\Z")
_CUT_HEAD = re.compile(r"\A[0-9a-f]{0,16}\x1f")


class Clock:
    """Nanoseconds since the epoch, strictly increasing across calls (shared by a task's
    stdout and stderr, so that their lines are ordered even within one nanosecond)."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        now = time.time_ns()
        self.last = now if now > self.last else self.last + 1
        return self.last


def stamp(ns: int) -> str:
    return f"{START}{ns:x}{END}"


def strip(text: str, *, chunk: bool = False) -> str:
    """``text`` without stamps. ``chunk``: a piece read from an offset, which may start or
    end inside a stamp (the pieces of a cut stamp are removed too)."""
    if START not in text and END not in text:
        return text
    text = _STAMP.sub("", text)
    if chunk:
        text = _CUT_HEAD.sub("", _CUT_TAIL.sub("", text))
    return text


class LogLine(NamedTuple):
    """One line of a task's output: ``stream`` ("stdout" or "stderr"), ``ns`` (when it was
    written, nanoseconds since the epoch; None for a line of a log without stamps) and
    ``text`` (no newline)."""

    stream: str
    ns: int | None
    text: str

    @property
    def time(self) -> datetime | None:
        """When the line was written (UTC), if its log says."""
        return None if self.ns is None else datetime.fromtimestamp(self.ns / 1e9, tz=UTC)


def parse(text: str, stream: str) -> list[LogLine]:
    """The lines of one stream's log, each with the time it was written (an unstamped line:
    its stamped predecessor's time, or None before the first stamp)."""
    lines: list[LogLine] = []
    ns: int | None = None
    rows = text.split("\n")  # not splitlines(): it splits at \x1e too
    if rows and not rows[-1]:
        rows.pop()
    for line in rows:
        if line.startswith(START):
            end = line.find(END, 1, 18)
            if end > 0:
                try:
                    ns = int(line[1:end], 16)
                    line = line[end + 1 :]
                except ValueError:
                    pass
        lines.append(LogLine(stream, ns, line))
    return lines


def interleave(stdout: str, stderr: str) -> Iterator[LogLine]:
    """Both streams' lines in the order they were written (stdout first where a log does not
    say: logs recorded before stamps existed)."""
    return heapq.merge(
        parse(stdout, "stdout"),
        parse(stderr, "stderr"),
        key=lambda line: -1 if line.ns is None else line.ns,
    )


__all__ = ["END", "START", "Clock", "LogLine", "interleave", "parse", "stamp", "strip"]
