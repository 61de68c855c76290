"""What a run prints: task output prefixed with ``step/task_id``, status lines, and a
progress bar per foreach on a terminal (plain milestone lines otherwise).

rich is only imported for a terminal: piped output (CI, notebooks, Runner) is plain text.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

_MARKUP = re.compile(r"\[/?[a-z ]*\]")


class LogTail:
    """Follows one attempt's log file, yielding complete lines. The file is opened once,
    when it first exists, and read from where the last read stopped; :meth:`close` it."""

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
        return [line.decode("utf-8", "replace") for line in lines]

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
