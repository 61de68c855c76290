"""Parsing ``Flow/run_id[/step[/task_id]]`` (and ``...:artifact``) strings."""

from __future__ import annotations

import re
from dataclasses import dataclass

FORM = "Flow/run_id[/step[/task_id]]"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Pathspec:
    """A parsed pathspec; the parts after the first one are optional."""

    flow: str
    run_id: int | None = None
    step: str | None = None
    task_id: int | None = None

    @property
    def depth(self) -> int:
        """1 for a flow, 2 for a run, 3 for a step, 4 for a task."""
        return 1 + sum(p is not None for p in (self.run_id, self.step, self.task_id))

    def __str__(self) -> str:
        parts = [self.flow, self.run_id, self.step, self.task_id]
        return "/".join(str(p) for p in parts if p is not None)


_FORMS = ["Flow", "Flow/run_id", "Flow/run_id/step", "Flow/run_id/step/task_id"]
_EXAMPLES = ["MyFlow", "MyFlow/12", "MyFlow/12/train", "MyFlow/12/train/34"]


def _bad(text: str, why: str, min_depth: int = 1, max_depth: int = 4) -> ValueError:
    if (min_depth, max_depth) == (1, 4):
        form = FORM
    else:
        form = " or ".join(_FORMS[min_depth - 1 : max_depth])
    example = _EXAMPLES[max_depth - 1]
    return ValueError(f"bad pathspec {text!r}: {why}; expected {form}, e.g. {example!r}")


def parse(text: str, *, min_depth: int = 1, max_depth: int = 4) -> Pathspec:
    """Parse ``text``; raise ValueError naming the problem and the expected form.

    >>> parse("MyFlow/12/train")
    Pathspec(flow='MyFlow', run_id=12, step='train', task_id=None)
    """
    if not isinstance(text, str):
        raise TypeError(f"a pathspec is a string like 'MyFlow/12', got {type(text).__name__}")
    parts = text.strip().strip("/").split("/")
    if not parts or parts == [""]:
        raise _bad(text, "it is empty", min_depth, max_depth)
    if len(parts) > 4:
        raise _bad(text, f"it has {len(parts)} parts, at most 4", min_depth, max_depth)
    if not _NAME.match(parts[0]):
        raise _bad(
            text, f"{parts[0]!r} is not a flow name (a Python class name)", min_depth, max_depth
        )
    run_id = task_id = None
    step = None
    if len(parts) > 1:
        if not parts[1].isdigit():
            raise _bad(text, f"run id {parts[1]!r} is not a number", min_depth, max_depth)
        run_id = int(parts[1])
    if len(parts) > 2:
        if not _NAME.match(parts[2]):
            raise _bad(text, f"{parts[2]!r} is not a step name", min_depth, max_depth)
        step = parts[2]
    if len(parts) > 3:
        if not parts[3].isdigit():
            raise _bad(text, f"task id {parts[3]!r} is not a number", min_depth, max_depth)
        task_id = int(parts[3])
    spec = Pathspec(parts[0], run_id, step, task_id)
    if not min_depth <= spec.depth <= max_depth:
        raise _bad(text, f"it has {spec.depth} part(s)", min_depth, max_depth)
    return spec


def parse_artifact(text: str) -> tuple[Pathspec, str]:
    """Parse ``Flow/run/step[/task]:name`` into the pathspec and the artifact name."""
    head, sep, name = text.rpartition(":")
    if not sep or not _NAME.match(name):
        raise ValueError(
            f"bad artifact address {text!r}: expected Flow/run_id/step/task_id:name, "
            "e.g. 'MyFlow/12/train/34:model'"
        )
    return parse(head, min_depth=3), name


__all__ = ["FORM", "Pathspec", "parse", "parse_artifact"]
