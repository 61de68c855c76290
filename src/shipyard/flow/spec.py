"""``FlowSpec``: the class a flow subclasses, and what ``self`` can do inside a step."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from shipyard.flow.artifacts import ArtifactLoader
from shipyard.flow.exceptions import ArtifactError, TransitionError


class FlowSpec:
    """Subclass it, write ``@step`` methods, and end the file with::

        if __name__ == "__main__":
            MyFlow()

    so that ``python flow.py run`` works. Inside a step, assign artifacts on ``self``
    (``self.model = ...``); attributes starting with ``_`` are scratch space, not persisted.
    """

    def __init__(self, use_cli: bool = True) -> None:
        if use_cli:
            # the flow file is the program, as in Metaflow: hand over to its command line
            # (the one import of this package upward, sanctioned in pyproject.toml)
            from shipyard._entry import flow_file_main

            flow_file_main(type(self))

    # -- set up by the task runner ------------------------------------------------------
    def _init_task(
        self,
        *,
        step_name: str,
        data: ArtifactLoader,
        foreach_item: ArtifactLoader | None = None,
        index: int | None = None,
    ) -> None:
        d = self.__dict__
        d["_step_name"] = step_name
        d["_data"] = data
        d["_foreach_item"] = foreach_item
        d["_index"] = index
        d["_transition"] = None

    def _artifact(self, name: str) -> Any:
        data: ArtifactLoader | None = self.__dict__.get("_data")
        if data is None or name not in data:
            step = self.__dict__.get("_step_name", "?")
            known = sorted(data) if data is not None else []
            raise AttributeError(f"step {step!r} has no artifact {name!r}; it has {known}")
        return data.load(name)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: an inherited artifact, loaded lazily
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._artifact(name)
        self.__dict__[name] = value
        return value

    # -- foreach --------------------------------------------------------------------------
    @property
    def input(self) -> Any:
        """The item of the foreach this task was given."""
        item: ArtifactLoader | None = self.__dict__.get("_foreach_item")
        if item is None:
            raise AttributeError(
                f"self.input is only set in the first step of a foreach "
                f"(step {self.__dict__.get('_step_name')!r} is not one)"
            )
        return item.load("input")

    @property
    def index(self) -> int | None:
        """The position of this task's item in the foreach, or None outside one."""
        return self.__dict__.get("_index")

    # -- transitions ------------------------------------------------------------------------
    def next(self, *steps: Any, foreach: str | None = None) -> None:
        """Say which step(s) run next: ``self.next(self.a)``, ``self.next(self.a, self.b)``
        or ``self.next(self.train, foreach="grid")``."""
        if self.__dict__.get("_transition") is not None:
            raise TransitionError(
                f"step {self.__dict__.get('_step_name')!r} called self.next() twice"
            )
        names = []
        for target in steps:
            name = getattr(target, "__name__", None)
            if name is None or not getattr(target, "is_step", False):
                raise TransitionError(f"self.next() got {target!r}, which is not a step")
            names.append(name)
        self.__dict__["_transition"] = (names, foreach)

    # -- joins --------------------------------------------------------------------------------
    def merge_artifacts(
        self,
        inputs: Inputs,
        exclude: Sequence[str] = (),
        include: Sequence[str] = (),
    ) -> None:
        """Carry over the inputs' artifacts: a name with the same value in every input that
        has it is kept; a name whose values differ must be assigned in the join first or be
        listed in ``exclude``. Values are compared by content hash, never loaded."""
        if not isinstance(inputs, Inputs):
            raise ArtifactError("merge_artifacts() takes the join's `inputs`")
        data: ArtifactLoader = self.__dict__["_data"]
        candidates: dict[str, set[str]] = {}
        records = {}
        for inp in inputs:
            for name, record in inp._data.items():
                if name.startswith("_") or name in exclude:
                    continue
                if include and name not in include:
                    continue
                candidates.setdefault(name, set()).add(record.key)
                records[name] = record
        missing = [n for n in include if n not in candidates]
        if missing:
            raise ArtifactError(f"merge_artifacts(include=...): no input has {missing}")
        conflicts = sorted(
            n for n, keys in candidates.items() if len(keys) > 1 and n not in self.__dict__
        )
        if conflicts:
            raise ArtifactError(
                f"step {self.__dict__.get('_step_name')!r}: inputs disagree on {conflicts}",
                hint="assign them in the join first, or merge_artifacts(inputs, exclude=[...])",
            )
        for name, record in records.items():
            if name not in self.__dict__ and (name not in data or data[name].key != record.key):
                data.add(record)


class InputView:
    """One input of a join: its artifacts, read lazily by attribute."""

    def __init__(self, step_name: str, data: ArtifactLoader, index: int | None) -> None:
        self._step = step_name
        self._data = data
        self._index = index

    @property
    def index(self) -> int | None:
        return self._index

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._data:
            raise AttributeError(
                f"input from step {self._step!r} has no artifact {name!r}; "
                f"it has {sorted(self._data)}"
            )
        return self._data.load(name)

    def __repr__(self) -> str:
        return f"<input from {self._step}{'' if self._index is None else f'[{self._index}]'}>"


class Inputs:
    """The inputs of a join: iterate, index (``inputs[0]``) or name a branch (``inputs.a``)."""

    def __init__(self, views: Iterable[InputView]) -> None:
        self._views = list(views)

    def __iter__(self) -> Iterator[InputView]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def __getitem__(self, index: int) -> InputView:
        return self._views[index]

    def __getattr__(self, name: str) -> InputView:
        if name.startswith("_"):
            raise AttributeError(name)
        for view in self._views:
            if view._step == name:
                return view
        raise AttributeError(
            f"no input comes from step {name!r}; inputs come from "
            f"{sorted({v._step for v in self._views})}"
        )
