"""Turn a loaded flow plus raw parameter values into a checked :class:`RunPlan`."""

from __future__ import annotations

from typing import Any

from shipyard.flow.exceptions import ParameterError, ResumeError
from shipyard.flow.loader import LoadedFlow
from shipyard.flow.parameters import flow_parameters
from shipyard.flow.runtime import RunPlan, parameter_values
from shipyard.store.records import RunRecord


def make_plan(
    loaded: LoadedFlow,
    given: dict[str, Any],
    *,
    tags: list[str] | tuple[str, ...] = (),
    max_workers: int | None = None,
    quiet: bool = False,
    origin: RunRecord | None = None,
    resume_step: str | None = None,
) -> RunPlan:
    """Validate the graph and the parameters; raise a FlowError before anything runs."""
    graph = loaded.graph()
    params, display = parameter_values(loaded.flow_cls, given, flow_parameters(loaded.flow_cls))
    if resume_step is not None and resume_step not in graph.nodes:
        raise ParameterError(
            f"--step {resume_step!r}: the flow has no such step; it has {graph.order}"
        )
    if origin is not None and origin.flow_name != graph.flow_name:
        raise ResumeError(f"{origin.pathspec} is not a run of {graph.flow_name}")
    return RunPlan(
        flow_cls=loaded.flow_cls,
        graph=graph,
        module=loaded.module_name,
        source_file=loaded.source_file,
        params=params,
        param_display=display,
        tags=list(tags),
        max_workers=max_workers or 0,
        quiet=quiet,
        origin=origin,
        resume_step=resume_step,
    )
