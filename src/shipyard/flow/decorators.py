"""``@step`` and the step decorators, with the hook interface later capabilities plug into.

A step decorator subclasses :class:`StepDecorator` and overrides the hooks it needs; every
hook has a no-op default. Phases:

- ``step_init(graph, node)``            when the graph is validated (raise GraphError)
- ``runtime_options(options)``          the runtime asks how to schedule the step's tasks
- ``task_pre_step(ctx)``                in the task process, before the user's code
- ``task_post_step(ctx)``               after the user's code returned, before artifacts persist
- ``task_exception(ctx, exc) -> bool``  the user's code raised; True = handled
- ``task_finished(ctx, ok)``            after persisting (or failing)

Built-in decorators are listed in ``DECORATORS``; plugins register theirs with
:func:`register`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from shipyard.flow.graph import Graph, Node

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class TaskOptions:
    """How the runtime schedules one step's tasks; decorators adjust it."""

    max_attempts: int = 1
    retry_delay_seconds: float = 0.0
    timeout_seconds: float | None = None
    cpu: int = 1
    memory_mb: int = 0
    catch_var: str | None = None  # @catch: the artifact that receives the failure
    environment: dict[str, str] | None = None


class StepDecorator:
    """Base class of step decorators. ``name`` is how it appears in graphs and errors."""

    name = "decorator"
    defaults: dict[str, Any] = {}

    def __init__(self, **attributes: Any) -> None:
        unknown = set(attributes) - set(self.defaults)
        if unknown:
            raise TypeError(
                f"@{self.name} got unknown argument(s) {sorted(unknown)}; "
                f"it takes {sorted(self.defaults)}"
            )
        self.attributes = {**self.defaults, **attributes}

    def __call__(self, func: F) -> F:
        existing = getattr(func, "decorators", [])
        func.decorators = [self, *existing]  # type: ignore[attr-defined]
        return func

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items())
        return f"@{self.name}({args})"

    # hooks ---------------------------------------------------------------------------
    def step_init(self, graph: Graph, node: Node) -> None:
        """Validate the decorator's use at graph-build time."""

    def runtime_options(self, options: TaskOptions) -> None:
        """Adjust how the runtime schedules this step."""

    def task_pre_step(self, ctx: Any) -> None:
        """In the task process, before the step runs."""

    def task_post_step(self, ctx: Any) -> None:
        """After the step returned, before artifacts are persisted."""

    def task_exception(self, ctx: Any, exc: BaseException) -> bool:
        """The step raised; return True if handled (the task then succeeds)."""
        return False

    def task_finished(self, ctx: Any, ok: bool) -> None:
        """After the task persisted its artifacts (ok) or failed."""


def _number(node: Node, deco: str, arg: str, value: Any, *, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise node.error(f"@{deco}({arg}={value!r}): expected a number >= {minimum:g}")
    return float(value)


class RetryDecorator(StepDecorator):
    """``@retry(times=3, minutes_between_retries=2)``: re-run a failed task."""

    name = "retry"
    defaults = {"times": 3, "minutes_between_retries": 2}

    def step_init(self, graph: Graph, node: Node) -> None:
        _number(node, "retry", "times", self.attributes["times"])
        _number(
            node, "retry", "minutes_between_retries", self.attributes["minutes_between_retries"]
        )

    def runtime_options(self, options: TaskOptions) -> None:
        options.max_attempts = int(self.attributes["times"]) + 1
        options.retry_delay_seconds = float(self.attributes["minutes_between_retries"]) * 60


class CatchDecorator(StepDecorator):
    """``@catch(var="failure")``: when every attempt failed (exception, crash or timeout),
    the task succeeds anyway with ``self.<var>`` holding the failure; ``None`` on success."""

    name = "catch"
    defaults = {"var": None, "print_exception": True}

    def step_init(self, graph: Graph, node: Node) -> None:
        var = self.attributes["var"]
        if var is not None and (not isinstance(var, str) or not var.isidentifier()):
            raise node.error(f"@catch(var={var!r}): var must be an attribute name")
        if node.foreach is not None:
            raise node.error(
                "@catch cannot be used on a step that fans out with foreach: if it failed "
                "there would be nothing to fan out over",
                hint="move the risky code into its own step before or after the foreach",
            )

    def runtime_options(self, options: TaskOptions) -> None:
        options.catch_var = self.attributes["var"] or ""

    def task_post_step(self, ctx: Any) -> None:
        if self.attributes["var"]:
            setattr(ctx.flow, self.attributes["var"], None)


class TimeoutDecorator(StepDecorator):
    """``@timeout(seconds=.., minutes=.., hours=..)``: kill the task's whole process group
    when an attempt runs longer. A timed-out attempt is retried like any failure."""

    name = "timeout"
    defaults = {"seconds": 0, "minutes": 0, "hours": 0}

    def step_init(self, graph: Graph, node: Node) -> None:
        for key in self.defaults:
            _number(node, "timeout", key, self.attributes[key])
        if self.total() <= 0:
            raise node.error("@timeout needs seconds=, minutes= or hours= greater than 0")

    def total(self) -> float:
        a = self.attributes
        return float(a["seconds"]) + 60 * float(a["minutes"]) + 3600 * float(a["hours"])

    def runtime_options(self, options: TaskOptions) -> None:
        options.timeout_seconds = self.total()


class ResourcesDecorator(StepDecorator):
    """``@resources(cpu=2, memory=4096)`` (memory in MB): the local scheduler never runs
    more tasks at once than the cores (``--max-workers``) and memory allow."""

    name = "resources"
    defaults = {"cpu": 1, "memory": 0, "gpu": 0}

    def step_init(self, graph: Graph, node: Node) -> None:
        _number(node, "resources", "cpu", self.attributes["cpu"], minimum=1)
        _number(node, "resources", "memory", self.attributes["memory"])

    def runtime_options(self, options: TaskOptions) -> None:
        options.cpu = int(self.attributes["cpu"])
        options.memory_mb = int(self.attributes["memory"])


class EnvironmentDecorator(StepDecorator):
    """``@environment(vars={"OMP_NUM_THREADS": "1"})``: set variables for the task."""

    name = "environment"
    defaults = {"vars": {}}

    def step_init(self, graph: Graph, node: Node) -> None:
        variables = self.attributes["vars"]
        if not isinstance(variables, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float) for k, v in variables.items()
        ):
            raise node.error("@environment(vars=...) takes a dict of names to string values")

    def task_pre_step(self, ctx: Any) -> None:
        os.environ.update({k: str(v) for k, v in self.attributes["vars"].items()})


DECORATORS: dict[str, type[StepDecorator]] = {
    d.name: d
    for d in (
        RetryDecorator,
        CatchDecorator,
        TimeoutDecorator,
        ResourcesDecorator,
        EnvironmentDecorator,
    )
}


def register(decorator: type[StepDecorator]) -> None:
    """Make a plugin's decorator known (for listing and `--with`-style lookups)."""
    DECORATORS[decorator.name] = decorator


def _factory(cls: type[StepDecorator]) -> Callable[..., Any]:
    @functools.wraps(cls)
    def make(func: Callable[..., Any] | None = None, **attributes: Any) -> Any:
        if func is not None and callable(func):  # used bare: @retry
            return cls()(func)
        return cls(**attributes)

    return make


retry = _factory(RetryDecorator)
catch = _factory(CatchDecorator)
timeout = _factory(TimeoutDecorator)
resources = _factory(ResourcesDecorator)
environment = _factory(EnvironmentDecorator)


def step(func: F) -> F:
    """Mark a method of a FlowSpec as a step."""
    func.is_step = True  # type: ignore[attr-defined]
    if not hasattr(func, "decorators"):
        func.decorators = []  # type: ignore[attr-defined]
    return func


def task_options(node: Node) -> TaskOptions:
    options = TaskOptions()
    for deco in node.decorators:
        deco.runtime_options(options)
    return options


def init_decorators(graph: Graph) -> None:
    """Run every decorator's ``step_init``; refuse the same decorator twice on a step."""
    for node in graph.nodes.values():
        names = [d.name for d in node.decorators]
        for name in set(names):
            if names.count(name) > 1:
                raise node.error(f"@{name} is applied twice")
        for deco in node.decorators:
            deco.step_init(graph, node)
