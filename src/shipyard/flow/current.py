"""``current``: what the running task is (flow, run, step, task ids, retry count, parameters).

Decorators add their own names to it (``current.card``, ``current.register_model``) through
``current._update``; outside a task every attribute access raises a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Current:
    """The running task's identity. Import the singleton: ``from shipyard import current``."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def _update(self, **values: Any) -> None:
        self._values.update(values)

    def _clear(self) -> None:
        self._values.clear()

    @property
    def is_running_flow(self) -> bool:
        return "run_id" in self._values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        values = self.__dict__.get("_values", {})
        if name not in values:
            if not values:
                raise AttributeError(f"current.{name} is only available while a flow step runs")
            raise AttributeError(f"current has no attribute {name!r}; it has {sorted(values)}")
        value = values[name]
        if name == "parameters" and callable(value):
            value = values[name] = value()
        return value

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"

    def __repr__(self) -> str:
        if not self.is_running_flow:
            return "<current: not in a running flow>"
        return f"<current {self.pathspec} retry={self.retry_count}>"


current = Current()

ParametersLoader = Callable[[], dict[str, Any]]
