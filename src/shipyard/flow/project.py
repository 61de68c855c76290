"""``@project(name=...)``: flows that belong together, run on branches (as in Metaflow).

>>> @project(name="movies")                       # doctest: +SKIP
... class PlayListFlow(FlowSpec): ...

A run of a ``@project`` flow is on one branch, chosen on the command line:

=====================================  ======================
``shipyard run flow.py``               ``user.<username>``
``... --branch NAME``                  ``test.NAME``
``... --production``                   ``prod``
``... --production --branch NAME``     ``prod.NAME``
=====================================  ======================

The run is tagged ``project:<name>`` and ``project_branch:<branch>`` (so
``namespace("project_branch:prod")`` finds its runs), its steps see ``current.project_name``,
``current.branch_name``, ``current.is_production``, ``current.is_user_branch`` and
``current.project_flow_name`` (``movies.prod.PlayListFlow``), and the models it registers
record the project and branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from shipyard.flow.exceptions import FlowDefinitionError, ParameterError

T = TypeVar("T", bound=type)

#: lowercase letters, digits and underscores, as Metaflow allows
_NAME = re.compile(r"^[a-z0-9_]{1,128}$")


@dataclass(frozen=True)
class ProjectSpec:
    """What ``@project`` said: the name, and a branch or production fixed in the code."""

    name: str
    branch: str | None = None
    production: bool = False


@dataclass(frozen=True)
class ProjectRun:
    """The project and branch one run is on."""

    name: str
    branch: str
    is_production: bool
    is_user_branch: bool
    flow_name: str

    @property
    def project_flow_name(self) -> str:
        """``<project>.<branch>.<Flow>``: the name a deployment of the flow would go by."""
        return f"{self.name}.{self.branch}.{self.flow_name}"

    @property
    def tags(self) -> list[str]:
        """The run's tags: ``project:<name>``, ``project_branch:<branch>``."""
        return [f"project:{self.name}", f"project_branch:{self.branch}"]


def _check(what: str, value: object, example: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise FlowDefinitionError(
            f"{what} {value!r} is not valid: use 1-128 lowercase letters, digits and "
            f"underscores, e.g. {example!r}"
        )
    return value


def project(*, name: str, branch: str | None = None, production: bool = False) -> _Apply:
    """Put the flow in project ``name``; ``branch``/``production`` fix its branch in the
    code instead of on the command line (``--branch``/``--production``)."""
    _check("@project name", name, "movie_recs")
    if branch is not None:
        _check("@project branch", branch, "staging")
    return _Apply(ProjectSpec(name, branch, bool(production)))


class _Apply:
    def __init__(self, spec: ProjectSpec) -> None:
        self.spec = spec

    def __call__(self, cls: T) -> T:
        from shipyard.flow.spec import FlowSpec

        if not (isinstance(cls, type) and issubclass(cls, FlowSpec)):
            raise FlowDefinitionError(
                f"@project decorates a FlowSpec class, not {cls!r}",
                hint="put @project(name=...) on the line above class MyFlow(FlowSpec):",
            )
        cls._shipyard_project = self.spec  # type: ignore[attr-defined]
        return cls


def project_of(flow_cls: type) -> ProjectSpec | None:
    """The flow's ``@project``, or None."""
    spec = getattr(flow_cls, "_shipyard_project", None)
    return spec if isinstance(spec, ProjectSpec) else None


def resolve(
    flow_cls: type, *, branch: str | None, production: bool, user: str
) -> ProjectRun | None:
    """The project and branch a run of ``flow_cls`` is on (None: the flow has no @project).
    ``branch``/``production`` come from the command line (or ``Runner``)."""
    spec = project_of(flow_cls)
    if spec is None:
        if branch is not None or production:
            option = "--branch" if branch is not None else "--production"
            raise ParameterError(
                f"{option} needs a flow decorated with @project; {flow_cls.__name__} is not",
                hint="add @project(name='...') above the class, or drop the option",
            )
        return None
    if branch is not None and spec.branch is not None and branch != spec.branch:
        raise ParameterError(
            f"--branch {branch!r}: @project on {flow_cls.__name__} already fixes the branch "
            f"{spec.branch!r}; give it in one place only"
        )
    given = spec.branch if branch is None else branch
    if given is not None:
        try:
            _check("--branch", given, "staging")
        except FlowDefinitionError as exc:
            raise ParameterError(exc.message) from None
    prod = production or spec.production
    if given:
        name = f"{'prod' if prod else 'test'}.{given}"
    elif prod:
        name = "prod"
    else:
        name = f"user.{user}"
    return ProjectRun(
        name=spec.name,
        branch=name,
        is_production=prod,
        is_user_branch=given is None and not prod,
        flow_name=flow_cls.__name__,
    )


#: the running flow's project and branch: set in the run's process before its tasks are
#: forked (each task inherits it), None when the flow has no @project
_active: ProjectRun | None = None


def activate(run: ProjectRun | None) -> None:
    """Make ``current``'s project names describe ``run`` (the runtime's process, before it
    forks the tasks)."""
    global _active
    _active = run


def active() -> ProjectRun | None:
    """The running flow's project and branch, or None."""
    return _active


__all__ = ["ProjectRun", "ProjectSpec", "activate", "active", "project", "project_of", "resolve"]
