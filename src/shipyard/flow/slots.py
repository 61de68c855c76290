"""How many tasks may run at once: worker slots (``--max-workers``, one per core by default)
and the machine's memory, as each step's ``@resources`` asks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from shipyard.flow.decorators import TaskOptions


class _Waiting(Protocol):
    step: str
    not_before: float


class _Holding(Protocol):
    cpu: int
    memory: int


T = TypeVar("T", bound=_Waiting)


class Slots:
    """Picks the ready tasks that fit; steps asking for more than there is are clamped to
    all of it (``note`` says so once, at the start)."""

    def __init__(
        self, max_workers: int, options: dict[str, TaskOptions], note: Callable[[str], None]
    ) -> None:
        self.max_workers = max_workers
        self.memory_total = total_memory_mb()
        self.options = options
        for step, opts in options.items():
            if opts.cpu > max_workers:
                note(
                    f"[yellow]note:[/] step {step!r} asks for cpu={opts.cpu}; this run has "
                    f"{max_workers} worker slot(s), so it runs with {max_workers}"
                )
                opts.cpu = max_workers
            if opts.memory_mb > self.memory_total:
                note(
                    f"[yellow]note:[/] step {step!r} asks for memory={opts.memory_mb} MB; this "
                    f"machine has {self.memory_total} MB"
                )
                opts.memory_mb = self.memory_total

    def pick(
        self, ready: Iterable[T], running: Iterable[_Holding], now: float
    ) -> list[tuple[T, TaskOptions]]:
        """The tasks of ``ready`` (in order, each with its options) that can start now,
        beside ``running``: due (``not_before``), and within the free cores and memory."""
        held = list(running)
        cpu_free = self.max_workers - sum(r.cpu for r in held)
        mem_free = self.memory_total - sum(r.memory for r in held)
        picked = []
        for task in ready:
            if cpu_free <= 0:
                break
            opts = self.options[task.step]
            if task.not_before > now or opts.cpu > cpu_free or opts.memory_mb > mem_free:
                continue
            cpu_free -= opts.cpu
            mem_free -= opts.memory_mb
            picked.append((task, opts))
        return picked


def total_memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20))
    except (ValueError, OSError):
        return 1 << 20
