"""``current``: typed properties inside a running step, a clear error outside one, and the
names plugins add (``current.card``)."""

from __future__ import annotations

import pytest

from shipyard import current
from shipyard.testing import run_flow


def test_outside_a_step_current_says_so() -> None:
    assert not current.is_running_flow
    assert repr(current) == "<current: not in a running flow>"
    for name in ("flow_name", "run_id", "pathspec", "parameters", "card", "anything"):
        with pytest.raises(AttributeError, match=f"current.{name} is only available while"):
            getattr(current, name)


def test_inside_a_step_current_describes_the_task_and_names_what_is_missing() -> None:
    run = run_flow(
        """
from shipyard import FlowSpec, Parameter, current, step

def error(name):
    try:
        getattr(current, name)
    except AttributeError as exc:
        return str(exc)

class CurrentFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.seen = [current.flow_name, current.run_id, current.step_name, current.task_id,
                     current.retry_count, current.origin_run_id, current.parameter_names,
                     current.parameters, current.pathspec, repr(current)]
        self.errors = [error("card"), error("nope")]
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    task = run["start"].task
    seen = task.data.seen
    assert seen[:8] == ["CurrentFlow", run.id, "start", task.id, 0, None, ["alpha"], {"alpha": 0.5}]
    assert seen[8] == task.pathspec and seen[9] == f"<current {task.pathspec} retry=0>"
    assert task.data.errors == [
        "current.card is only available in a step decorated with @card",
        "current has no attribute 'nope'; the step's plugins set []",
    ]


def test_shipyard_flow_exports_the_current_singleton_not_its_module() -> None:
    import shipyard.flow
    import shipyard.flow.current  # the submodule of the same name, imported
    from shipyard.flow import Current

    assert isinstance(shipyard.flow.current, Current) and shipyard.flow.current is current
