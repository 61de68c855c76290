"""What a run prints: task output prefixed with ``step/task_id``, status lines, and a
progress bar per foreach on a terminal (plain milestone lines otherwise).

rich is only imported for a terminal: piped output (CI, notebooks, Runner) is plain text.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

from shipyard.store import loglines

_MARKUP = re.compile(r"\[/?[a-z ]*\]")


class StampedStream(io.TextIOBase):
    """A task's ``sys.stdout`` or ``sys.stderr``: writes to file descriptor ``fd``, each line
    starting with the time it was written (:mod:`shipyard.store.loglines`), so that the two
    streams can be interleaved later. Line-buffered: a line is written when it ends, or
    when the stream is flushed (the rest of that line then follows without a stamp)."""

    encoding = "utf-8"
    errors = "replace"
    line_buffering = True

    def __init__(self, fd: int, clock: loglines.Clock) -> None:
        super().__init__()
        self._fd = fd
        self._clock = clock
        self._pending: list[str] = []
        self._size = 0
        self._at_line_start = True
        self._buffer: _FlushingRaw | None = None
        self._lock = threading.Lock()  # threads of the step may print at once

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    @property
    def buffer(self) -> io.RawIOBase:
        """Bytes written here go to the file as they are (no stamp), after what is
        pending."""
        if self._buffer is None:
            self._buffer = _FlushingRaw(self)
        return self._buffer

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._pending.append(text)
            self._size += len(text)
            if "\n" in text or self._size > 8192:
                pending = "".join(self._pending)
                cut = pending.rfind("\n") + 1 if self._size <= 8192 else len(pending)
                self._pending = [pending[cut:]] if cut < len(pending) else []
                self._size = len(pending) - cut
                self._emit(pending[:cut])
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                pending = "".join(self._pending)
                self._pending, self._size = [], 0
                self._emit(pending)

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self._at_line_start and text.find("\n") == len(text) - 1:  # one whole line
            self._write(f"{loglines.stamp(self._clock())}{text}")
            return
        parts = []
        lines = text.split("\n")
        rest = lines.pop()  # after the last newline: the start of a line, or nothing
        for line in lines:  # every whole line, empty ones too, gets its time
            if self._at_line_start:
                parts.append(loglines.stamp(self._clock()))
            parts.append(line)
            parts.append("\n")
            self._at_line_start = True
        if rest:
            if self._at_line_start:
                parts.append(loglines.stamp(self._clock()))
            parts.append(rest)
            self._at_line_start = False
        self._write("".join(parts))

    def _write(self, text: str) -> None:
        view = memoryview(text.encode("utf-8", "replace"))
        while view:
            view = view[os.write(self._fd, view) :]


class _FlushingRaw(io.RawIOBase):
    """``sys.stdout.buffer`` of a :class:`StampedStream`."""

    def __init__(self, stream: StampedStream) -> None:
        super().__init__()
        self._stream = stream

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, data: Any) -> int:
        self._stream.flush()
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            written += os.write(self._stream.fileno(), view[written:])
        return written


class LogTail:
    """Follows one attempt's log file, yielding complete lines (without their stamps). The
    file is opened once, when it first exists, and read from where the last read stopped;
    :meth:`close` it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = b""
        self._fd: int | None = None

    def read(self, final: bool = False) -> list[str]:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return self._lines(b"", final)
        chunks = []
        while chunk := os.read(self._fd, 1 << 16):
            chunks.append(chunk)
        return self._lines(b"".join(chunks), final)

    def _lines(self, data: bytes, final: bool) -> list[str]:
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        return [loglines.strip(line.decode("utf-8", "replace")) for line in lines]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class RunOutput:
    """The runtime's terminal. ``quiet`` keeps task output and status lines but no bars.

    Status text may carry simple rich markup (``[green]...[/]``); it is stripped when the
    output is not a terminal."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.terminal = sys.stdout.isatty()
        self.console: Any = None
        if self.terminal:
            from rich.console import Console

            self.console = Console(highlight=False, soft_wrap=True)
        self.progress: Any = None
        self.bars: dict[str, Any] = {}
        self.plain_marks: dict[str, int] = {}

    def line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)
        else:
            print(_MARKUP.sub("", text), flush=True)

    def task_line(self, prefix: str, text: str, *, err: bool = False) -> None:
        if self.console is not None:
            from rich.markup import escape

            style = "red" if err else "dim"
            self.console.print(f"[{style}]{escape(prefix)}[/] {escape(text)}")
        else:
            print(f"{prefix} {text}", flush=True)

    def foreach_started(self, step: str, total: int) -> None:
        """A foreach fanned out to ``step``; ``total`` counts every task of it so far."""
        if step in self.bars and self.progress is not None:
            self.progress.update(self.bars[step], total=total)
            return
        if step in self.plain_marks:
            return
        if self.console is not None and not self.quiet:
            if self.progress is None:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                self.progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=self.console,
                    transient=False,
                )
                self.progress.start()
            self.bars[step] = self.progress.add_task(step, total=total)
        else:
            self.line(f"{step}: {total} tasks")
            self.plain_marks[step] = 0

    def foreach_advanced(self, step: str, done: int, total: int) -> None:
        if self.progress is not None and step in self.bars:
            self.progress.update(self.bars[step], completed=done)
            if done >= total:
                # lines printed above the bar show its last *drawn* state: draw the full bar
                # now, not at the next tick (10 a second), which a short run may never see
                self.progress.refresh()
        elif step in self.plain_marks:
            mark = done * 4 // total  # print at 25%, 50%, 75%, 100%
            if mark > self.plain_marks[step]:
                self.plain_marks[step] = mark
                self.line(f"{step}: {done}/{total} done")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
