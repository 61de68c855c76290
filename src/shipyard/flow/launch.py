"""What to run: a loaded flow plus checked parameter values, as a :class:`RunPlan`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.flow.exceptions import ParameterError, ResumeError
from shipyard.flow.graph import Graph
from shipyard.flow.loader import LoadedFlow
from shipyard.flow.parameters import _MISSING, Parameter, flow_parameters
from shipyard.store.records import RunRecord


@dataclass
class RunPlan:
    """What to run: built by the CLI or Runner."""

    flow_cls: type
    graph: Graph
    module: str
    source_file: Path
    params: dict[str, Any]  # attr -> value, already checked
    param_display: dict[str, Any]  # option name -> JSON-able value, shown with the run
    tags: list[str] = field(default_factory=list)
    max_workers: int = 0
    quiet: bool = False
    origin: RunRecord | None = None
    resume_step: str | None = None
    #: ``--with`` decorators, as given (attached to ``graph`` already; a @pypi task
    #: attaches them again in its own interpreter)
    decospecs: list[str] = field(default_factory=list)
    #: ``--pypi-find-links``: where pip finds @pypi packages (empty: pip's own config)
    pypi_find_links: list[str] = field(default_factory=list)
    #: ``--executor``: ``local`` (forked processes) or ``ray`` (a Ray task per attempt)
    executor: str = "local"
    #: ``--ray-address``: an existing Ray cluster; None starts a local Ray for the run
    ray_address: str | None = None
    #: why the run runs (``--shipyard-trigger``, from the scheduler); None: by hand
    trigger: dict[str, Any] | None = None


def parameter_values(
    flow_cls: type, given: dict[str, Any], parameters: list[Parameter]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(attr -> artifact value, option name -> JSON-able value shown with the run)."""
    values, display = {}, {}
    for p in parameters:
        raw = given.get(p.name)
        values[p.attr] = p.value_for_run(raw if raw is not None else _MISSING)
        shown = raw if raw is not None else (p.default if p.has_default else None)
        try:
            json.dumps(shown)
        except TypeError:
            shown = repr(shown)
        display[p.name] = shown
    return values, display


def make_plan(
    loaded: LoadedFlow,
    given: dict[str, Any],
    *,
    tags: list[str] | tuple[str, ...] = (),
    max_workers: int | None = None,
    quiet: bool = False,
    origin: RunRecord | None = None,
    resume_step: str | None = None,
    decospecs: list[str] | tuple[str, ...] = (),
    pypi_find_links: list[str] | tuple[str, ...] = (),
    executor: str = "local",
    ray_address: str | None = None,
) -> RunPlan:
    """Validate the graph and the parameters; raise a FlowError before anything runs."""
    from shipyard.flow.decorators import attach_decospecs
    from shipyard.flow.environments import find_links, step_environments

    graph = loaded.graph()
    attach_decospecs(graph, decospecs)
    step_environments(graph)  # a @pypi python= that is nowhere is refused now
    params, display = parameter_values(loaded.flow_cls, given, flow_parameters(loaded.flow_cls))
    if resume_step is not None and resume_step not in graph.nodes:
        raise ParameterError(
            f"--step {resume_step!r}: the flow has no such step; it has {graph.order}"
        )
    if executor not in ("local", "ray"):
        raise ParameterError(f"--executor {executor!r}: expected local or ray")
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
        decospecs=list(decospecs),
        pypi_find_links=find_links(tuple(pypi_find_links)),
        executor=executor,
        ray_address=ray_address or None,
    )
