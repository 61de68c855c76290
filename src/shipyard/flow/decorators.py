"""``@step`` and the step decorators, with the hook interface later capabilities plug into.

A step decorator subclasses :class:`StepDecorator` and overrides the hooks it needs; every
hook has a no-op default. Phases:

- ``step_init(graph, node)``            when the graph is validated (raise GraphError)
- ``runtime_options(options)``          the runtime asks how to schedule the step's tasks
- ``task_pre_step(ctx)``                in the task process, before the user's code
- ``task_post_step(ctx)``               after the user's code returned, before artifacts persist
- ``task_exception(ctx, exc) -> bool``  the user's code raised; True = handled
- ``task_finished(ctx, ok)``            after persisting (or failing)

``ctx`` is the task's :class:`TaskContext`. A plugin needs no registration: applying its
decorator to a step is enough (``@card`` is one, in ``shipyard.cards``). Defining the class
also files it under its ``name`` in :data:`STEP_DECORATORS`, which is how ``--with NAME``
on the command line finds it (:func:`attach_decospecs`).

>>> class audit(StepDecorator):
...     name = "audit"
...     def task_finished(self, ctx: TaskContext, ok: bool) -> None:
...         ctx.extras.setdefault("audit", []).append(ctx.spec.step_name)
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from shipyard.flow.graph import Graph, Node
    from shipyard.flow.spec import FlowSpec
    from shipyard.flow.task import TaskSpec
    from shipyard.store.blobs import BlobStore
    from shipyard.store.records import ArtifactRecord

F = TypeVar("F", bound=Callable[..., Any])
D = TypeVar("D", bound="StepDecorator")
C = TypeVar("C", bound=type)


@dataclass
class TaskOptions:
    """How the runtime schedules one step's tasks; decorators adjust it."""

    max_attempts: int = 1
    retry_delay_seconds: float = 0.0
    timeout_seconds: float | None = None
    cpu: int = 1
    memory_mb: int = 0
    gpu: int = 0
    #: ``@ray_options(**kwargs)``: passed to Ray's task options as given (``--executor ray``)
    ray_options: dict[str, Any] | None = None
    catch_var: str | None = None  # @catch: the artifact that receives the failure
    environment: dict[str, str] | None = None


@dataclass
class TaskContext:
    """What a decorator's task hooks see, in the task process."""

    flow: FlowSpec  # the step's ``self``
    spec: TaskSpec  # the attempt: flow, run, step, task ids, attempt number, inputs
    node: Node  # the step in the graph
    store: BlobStore  # where the task's blobs go
    #: the task's persisted artifacts, once they are (for task_finished hooks such as @card)
    artifacts: dict[str, ArtifactRecord] | None = None
    #: what the task reports to the runtime besides its artifacts, by plugin (picklable):
    #: ``"models"`` (current.register_model), ``"cards"`` (@card)
    extras: dict[str, Any] = field(default_factory=dict)
    #: names a plugin adds to ``current`` for this task: ``current.card`` (@card)
    current_names: dict[str, Any] = field(default_factory=dict)


#: every step decorator class by name: what ``--with NAME`` may attach
STEP_DECORATORS: dict[str, type[StepDecorator]] = {}


class StepDecorator:
    """Base class of step decorators. ``name`` is how it appears in graphs and errors."""

    name = "decorator"
    defaults: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # the latest definition of a name wins (plugins, tests)
            STEP_DECORATORS[cls.name] = cls

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

    def task_pre_step(self, ctx: TaskContext) -> None:
        """In the task process, before the step runs."""

    def task_post_step(self, ctx: TaskContext) -> None:
        """After the step returned, before artifacts are persisted."""

    def task_exception(self, ctx: TaskContext, exc: BaseException) -> bool:
        """The step raised; return True if handled (the task then succeeds)."""
        return False

    def task_finished(self, ctx: TaskContext, ok: bool) -> None:
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

    def task_post_step(self, ctx: TaskContext) -> None:
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
        options.gpu = int(self.attributes["gpu"])


class RayOptionsDecorator(StepDecorator):
    """``@ray_options(resources={"node_a": 0.01}, max_retries=0, ...)``: with ``--executor
    ray``, anything Ray's task options accept, passed through as given (``num_cpus``,
    ``memory`` and ``num_gpus`` come from ``@resources`` unless given here). Without Ray
    it does nothing."""

    name = "ray_options"

    def __init__(self, **attributes: Any) -> None:
        self.attributes = dict(attributes)  # Ray checks them when the task is submitted

    def runtime_options(self, options: TaskOptions) -> None:
        options.ray_options = dict(self.attributes)


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

    def task_pre_step(self, ctx: TaskContext) -> None:
        os.environ.update({k: str(v) for k, v in self.attributes["vars"].items()})


class PypiDecorator(StepDecorator):
    """``@pypi(packages={"pandas": "2.1.0"}, python=None)``: run the step in its own
    virtual environment with exactly these packages; see ``shipyard.flow.environments``.
    A version is pinned (``"2.1.0"`` means ``==2.1.0``), a specifier (``">=2,<3"``) or
    ``""`` (any). ``python``: the version to use, default the running one."""

    name = "pypi"
    defaults = {"packages": {}, "python": None, "disabled": False}

    def step_init(self, graph: Graph, node: Node) -> None:
        check_pypi_attributes(self, lambda message: node.error(message))


class FlowDecorator:
    """Base class of flow decorators, written above ``class MyFlow(FlowSpec)``."""

    name = "flow_decorator"
    defaults: dict[str, Any] = {}

    def __init__(self, **attributes: Any) -> None:
        unknown = set(attributes) - set(self.defaults)
        if unknown:
            raise TypeError(
                f"@{self.name} got unknown argument(s) {sorted(unknown)}; "
                f"it takes {sorted(self.defaults)}"
            )
        self.attributes = {**self.defaults, **attributes}

    def __call__(self, cls: C) -> C:
        if not isinstance(cls, type):
            raise TypeError(f"@{self.name} decorates a flow class, not {cls!r}")
        own = [d for d in flow_decorators(cls) if d.name != self.name]
        cls._flow_decorators = [self, *own]  # type: ignore[attr-defined]
        return cls

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items())
        return f"@{self.name}({args})"


def flow_decorators(cls: type) -> list[FlowDecorator]:
    """The flow decorators on ``cls`` (or inherited from a base flow)."""
    return list(getattr(cls, "_flow_decorators", []))


class PypiBaseDecorator(FlowDecorator):
    """``@pypi_base(packages={...}, python=None)``: the @pypi every step of the flow gets;
    a step's own ``@pypi`` adds to its packages (and wins where both name one)."""

    name = "pypi_base"
    defaults = {"packages": {}, "python": None, "disabled": False}


class CondaDecorator(StepDecorator):
    """``@conda``: exists so that Metaflow flows import, and is refused by the graph check
    (no conda channel is reachable here): use ``@pypi``."""

    name = "conda"
    defaults = {"packages": {}, "libraries": {}, "python": None, "disabled": None}


class CondaBaseDecorator(FlowDecorator):
    """``@conda_base``: refused by the graph check, like ``@conda``: use ``@pypi_base``."""

    name = "conda_base"
    defaults = {"packages": {}, "libraries": {}, "python": None, "disabled": None}


_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,-]+\])?$")


def check_pypi_attributes(
    deco: StepDecorator | FlowDecorator, error: Callable[[str], Exception]
) -> None:
    """Refuse what pip could not make sense of, before anything runs."""
    packages, python = deco.attributes["packages"], deco.attributes["python"]
    if not isinstance(packages, dict):
        raise error(f"@{deco.name}(packages=...) takes a dict of names to versions")
    for name, version in packages.items():
        if not isinstance(name, str) or not _PACKAGE_NAME.match(name):
            raise error(f"@{deco.name}: {name!r} is not a package name")
        if not isinstance(version, str):
            raise error(
                f"@{deco.name}: the version of {name!r} must be a string "
                f'("1.2.0", ">=1.2" or "" for any), not {version!r}'
            )
    if python is not None and (
        not isinstance(python, str) or not re.fullmatch(r"3\.\d+(\.\d+)?", python)
    ):
        raise error(f'@{deco.name}(python={python!r}): expected a version like "3.11"')


def register(decorator: type[D]) -> type[D]:
    """Nothing to do: a step decorator works by being applied to a step, and defining its
    class files it in :data:`STEP_DECORATORS` (for ``--with``). Kept (returning the class)
    so that plugins written for the first release still import."""
    return decorator


def _apply(cls: type[D], func: F | None, attributes: dict[str, Any]) -> F | D:
    if func is not None and callable(func):  # used bare: @retry
        return cls()(func)
    return cls(**attributes)


@overload
def retry(func: F) -> F: ...
@overload
def retry(*, times: int = ..., minutes_between_retries: float = ...) -> RetryDecorator: ...
def retry(func: F | None = None, **attributes: Any) -> F | RetryDecorator:
    """``@retry`` or ``@retry(times=3, minutes_between_retries=2)``: re-run a failed task."""
    return _apply(RetryDecorator, func, attributes)


@overload
def catch(func: F) -> F: ...
@overload
def catch(*, var: str | None = ..., print_exception: bool = ...) -> CatchDecorator: ...
def catch(func: F | None = None, **attributes: Any) -> F | CatchDecorator:
    """``@catch`` or ``@catch(var="failure")``: a step that failed every attempt succeeds
    anyway, with ``self.<var>`` holding the failure."""
    return _apply(CatchDecorator, func, attributes)


@overload
def timeout(func: F) -> F: ...
@overload
def timeout(
    *, seconds: float = ..., minutes: float = ..., hours: float = ...
) -> TimeoutDecorator: ...
def timeout(func: F | None = None, **attributes: Any) -> F | TimeoutDecorator:
    """``@timeout(seconds=.., minutes=.., hours=..)``: kill an attempt that runs longer."""
    return _apply(TimeoutDecorator, func, attributes)


@overload
def resources(func: F) -> F: ...
@overload
def resources(*, cpu: int = ..., memory: int = ..., gpu: int = ...) -> ResourcesDecorator: ...
def resources(func: F | None = None, **attributes: Any) -> F | ResourcesDecorator:
    """``@resources(cpu=2, memory=4096)`` (memory in MB): what one task of the step needs."""
    return _apply(ResourcesDecorator, func, attributes)


def ray_options(**attributes: Any) -> RayOptionsDecorator:
    """``@ray_options(**kwargs)``: Ray task options for the step (``--executor ray``)."""
    return RayOptionsDecorator(**attributes)


@overload
def environment(func: F) -> F: ...
@overload
def environment(*, vars: Mapping[str, str | int | float] = ...) -> EnvironmentDecorator: ...
def environment(func: F | None = None, **attributes: Any) -> F | EnvironmentDecorator:
    """``@environment(vars={"OMP_NUM_THREADS": "1"})``: set variables for the task."""
    return _apply(EnvironmentDecorator, func, attributes)


@overload
def pypi(func: F) -> F: ...
@overload
def pypi(
    *,
    packages: Mapping[str, str] = ...,
    python: str | None = ...,
    disabled: bool = ...,
) -> PypiDecorator: ...
def pypi(func: F | None = None, **attributes: Any) -> F | PypiDecorator:
    """``@pypi(packages={"pandas": "2.1.0"}, python=None)``: run the step in a virtual
    environment holding these packages, built once and reused (README: Per-step
    environments)."""
    return _apply(PypiDecorator, func, attributes)


def pypi_base(
    cls: C | None = None,
    *,
    packages: Mapping[str, str] | None = None,
    python: str | None = None,
    disabled: bool = False,
) -> Any:
    """``@pypi_base(packages={...}, python=None)`` above the flow class: every step's
    @pypi; a step's own ``@pypi`` adds packages and wins where both name one."""
    deco = PypiBaseDecorator(packages=dict(packages or {}), python=python, disabled=disabled)
    return deco(cls) if cls is not None else deco


def conda(func: F | None = None, **attributes: Any) -> Any:
    """``@conda``: accepted so that Metaflow flows import; the graph check refuses it."""
    if func is not None and callable(func):
        return CondaDecorator()(func)
    return CondaDecorator(**attributes)


def conda_base(cls: C | None = None, **attributes: Any) -> Any:
    """``@conda_base``: accepted so that Metaflow flows import; the graph check refuses it."""
    deco = CondaBaseDecorator(**attributes)
    return deco(cls) if cls is not None else deco


def step(func: F) -> F:
    """Mark a method of a FlowSpec as a step."""
    func.is_step = True  # type: ignore[attr-defined]
    if not hasattr(func, "decorators"):
        func.decorators = []  # type: ignore[attr-defined]
    return func


def task_options(node: Node) -> TaskOptions:
    """How the runtime schedules ``node``'s tasks: the defaults, as its decorators adjust them."""
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


# -- --with on the command line --------------------------------------------------------------
def _literal(text: str) -> Any:
    """A ``--with`` value: a Python literal where it is one (``2``, ``0.5``, ``True``,
    ``{"a": "1"}``), ``true``/``false``/``none`` as JSON spells them, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_decospec(spec: str) -> tuple[type[StepDecorator], dict[str, Any]]:
    """``NAME[:attr=value[,attr=value]]`` as ``--with`` takes it: the decorator class and its
    arguments. Raises ParameterError naming the known decorators or attributes."""
    from shipyard.flow.exceptions import ParameterError
    from shipyard.flow.graph import conda_refusal

    name, _, rest = spec.partition(":")
    name = name.strip().lstrip("@")
    if name in ("conda", "conda_base"):
        raise ParameterError(f"--with {spec!r}: {conda_refusal(name)}")
    cls = STEP_DECORATORS.get(name)
    if cls is None:
        known = sorted(n for n in STEP_DECORATORS if n != "conda")
        raise ParameterError(
            f"--with {spec!r}: there is no step decorator {name!r}"
            f"{_did_you_mean(name, known)}; known: {', '.join(known)}"
        )
    attributes: dict[str, Any] = {}
    if rest.strip():
        # split at the commas that start the next attr=: a dict value may hold commas
        for part in re.split(r",(?=\s*[A-Za-z_]\w*\s*=)", rest):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ParameterError(
                    f"--with {spec!r}: {part!r} is not attr=value; "
                    f"write --with {name}:attr=value,attr=value"
                )
            if key not in cls.defaults:
                takes = sorted(cls.defaults)
                raise ParameterError(
                    f"--with {spec!r}: @{name} has no attribute {key!r}"
                    f"{_did_you_mean(key, takes)}; it takes {', '.join(takes) or 'none'}"
                )
            attributes[key] = _literal(value.strip())
    return cls, attributes


def attach_decospecs(graph: Graph, specs: Iterable[str]) -> None:
    """Attach each ``--with`` decorator to every step of ``graph`` and check it there. As
    in Metaflow, a step that has the decorator already keeps its own (and its arguments)."""
    from shipyard.flow.exceptions import GraphError, ParameterError

    for spec in specs:
        cls, attributes = parse_decospec(spec)
        for node in graph:
            if any(d.name == cls.name for d in node.decorators):
                continue
            deco = cls(**attributes)
            try:
                deco.step_init(graph, node)
            except GraphError as exc:
                raise ParameterError(f"--with {spec!r}: {exc.message}") from None
            node.decorators.append(deco)
