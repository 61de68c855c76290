"""``current``: what the running task is (flow, run, step, task ids, retry count, parameters).

Each name is a typed property; outside a running step every one raises a clear error.
Plugins add names for the step through their task hooks (``ctx.current_names["card"] = ...``
makes ``current.card``): only ``card``, the one users reach for, is declared to type
checkers; any other plugin name is found at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    # types only: the cards package sits above flow, and provides current.card at run time
    from shipyard.cards.collector import CardCollector
    from shipyard.flow.decorators import TaskContext
    from shipyard.flow.project import ProjectRun
    from shipyard.flow.trigger import Trigger


class RegisterModel(Protocol):
    """``current.register_model(name, obj, metrics=..., tags=..., signature=...,
    input_example=..., features=...)``."""

    def __call__(
        self,
        name: str,
        obj: Any,
        *,
        metrics: Mapping[str, float] | None = None,
        tags: Iterable[str] | None = None,
        signature: Any = None,
        input_example: Any = None,
        features: Any = None,
    ) -> None: ...


ParametersLoader = Callable[[], dict[str, Any]]


class _Running:
    # a plain class, not a dataclass: ``shipyard.flow`` imports this module eagerly, and
    # dataclasses (with inspect) would cost the zygote's import a few milliseconds
    __slots__ = ("ctx", "load_parameters", "parameters", "register_model")

    def __init__(
        self, ctx: TaskContext, load_parameters: ParametersLoader, register_model: RegisterModel
    ) -> None:
        self.ctx = ctx
        self.load_parameters = load_parameters
        self.register_model = register_model
        self.parameters: dict[str, Any] | None = None  # loaded on first use


class Current:
    """The running task's identity. Import the singleton: ``from shipyard import current``."""

    def __init__(self) -> None:
        self._running: _Running | None = None

    def _task(self, name: str) -> _Running:
        if self._running is None:
            raise AttributeError(f"current.{name} is only available while a flow step runs")
        return self._running

    @property
    def is_running_flow(self) -> bool:
        """True inside a running step."""
        return self._running is not None

    @property
    def flow_name(self) -> str:
        """The flow's name (its class name)."""
        return self._task("flow_name").ctx.spec.flow_name

    @property
    def run_id(self) -> int:
        """The run's id."""
        return self._task("run_id").ctx.spec.run_id

    @property
    def step_name(self) -> str:
        """The running step's name."""
        return self._task("step_name").ctx.spec.step_name

    @property
    def task_id(self) -> int:
        """The task's id."""
        return self._task("task_id").ctx.spec.task_id

    @property
    def retry_count(self) -> int:
        """The attempt: 0 for the first, 1 for the first retry..."""
        return self._task("retry_count").ctx.spec.attempt

    @property
    def origin_run_id(self) -> int | None:
        """The run this one resumes, or None."""
        return self._task("origin_run_id").ctx.spec.origin_run_id

    @property
    def parameter_names(self) -> list[str]:
        """The flow's parameters, by attribute name."""
        return list(self._task("parameter_names").ctx.spec.param_names)

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's parameter values (loaded on first use)."""
        running = self._task("parameters")
        if running.parameters is None:
            running.parameters = running.load_parameters()
        return running.parameters

    @property
    def pathspec(self) -> str:
        """``Flow/run/step/task``."""
        spec = self._task("pathspec").ctx.spec
        return f"{spec.flow_name}/{spec.run_id}/{spec.step_name}/{spec.task_id}"

    @property
    def username(self) -> str:
        """Who started the run (``SHIPYARD_USER``, or the login name)."""
        self._task("username")
        from shipyard.config import current_user

        return current_user()

    @property
    def namespace(self) -> str | None:
        """The namespace the step's client reads runs in (``user:<you>`` unless the step
        switched with ``namespace(...)``)."""
        self._task("namespace")
        from shipyard.client.namespaces import get_namespace

        return get_namespace()

    @property
    def trigger(self) -> Trigger | None:
        """Why the run runs: ``.type`` (schedule, backfill, event, flow, manual),
        ``.scheduled_for``, ``.event``, ``.payload``, ``.upstream_run``; None when it was
        started by hand (``shipyard run``)."""
        self._task("trigger")
        from shipyard.flow.trigger import active

        return active()

    def _project(self, name: str) -> ProjectRun:
        self._task(name)
        from shipyard.flow.project import active

        run = active()
        if run is None:
            raise AttributeError(
                f"current.{name} is only available in a flow decorated with @project(name=...)"
            )
        return run

    @property
    def project_name(self) -> str:
        """The ``@project`` name (a flow with ``@project`` only)."""
        return self._project("project_name").name

    @property
    def branch_name(self) -> str:
        """The run's branch: ``user.<username>``, ``test.<branch>``, ``prod`` or
        ``prod.<branch>``."""
        return self._project("branch_name").branch

    @property
    def is_production(self) -> bool:
        """True for a run with ``--production`` (or ``@project(production=True)``)."""
        return self._project("is_production").is_production

    @property
    def is_user_branch(self) -> bool:
        """True for a run on the user's own branch (no ``--branch``, no ``--production``)."""
        return self._project("is_user_branch").is_user_branch

    @property
    def project_flow_name(self) -> str:
        """``<project>.<branch>.<Flow>``."""
        return self._project("project_flow_name").project_flow_name

    @property
    def register_model(self) -> RegisterModel:
        """Register ``obj`` (or the artifact a string names) as the next version of the model
        ``name``; committed only if the task succeeds."""
        return self._task("register_model").register_model

    @property
    def card(self) -> CardCollector:
        """Where the step appends components to its cards (a step with ``@card``)."""
        names = self._task("card").ctx.current_names
        if "card" not in names:
            raise AttributeError("current.card is only available in a step decorated with @card")
        return cast("CardCollector", names["card"])

    if not TYPE_CHECKING:  # other plugins' names: found at run time, unknown to mypy

        def __getattr__(self, name: str) -> Any:
            if name.startswith("_"):
                raise AttributeError(name)
            declared = getattr(type(self), name, None)
            if isinstance(declared, property):  # it raised: let its own message stand
                return declared.__get__(self)
            names = self._task(name).ctx.current_names
            if name not in names:
                raise AttributeError(
                    f"current has no attribute {name!r}; the step's plugins set {sorted(names)}"
                )
            return names[name]

    def __repr__(self) -> str:
        if not self.is_running_flow:
            return "<current: not in a running flow>"
        return f"<current {self.pathspec} retry={self.retry_count}>"


current = Current()


def start_task(
    ctx: TaskContext, *, parameters: ParametersLoader, register_model: RegisterModel
) -> None:
    """Make ``current`` describe the task ``ctx`` (called by the task process)."""
    current._running = _Running(ctx, parameters, register_model)


__all__ = ["Current", "ParametersLoader", "RegisterModel", "current", "start_task"]
