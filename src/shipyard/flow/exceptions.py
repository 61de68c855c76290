"""Errors raised by the flow engine.

FlowError                      root of everything below
├── GraphError                 the DAG is invalid (names the step, file and line)
├── ParameterError             a Parameter / IncludeFile value or definition is wrong
├── FlowDefinitionError        the flow file or class cannot be used (not found, two flows…)
├── TransitionError            a step called self.next() unlike its source says
├── ArtifactError              an artifact cannot be saved / merged / found
├── ResumeError                nothing to resume, or the origin run cannot be resumed
├── StoreRefused               the blob store refused a write (disk full, read-only); fails the task
├── RecorderFailed             the run's metadata could not be written (also a RuntimeError)
├── EnvironmentBuildError      a @pypi environment could not be built (environments.py)
└── RayExecutorError           Ray could not be started or reached (ray_executor.py)
"""

from __future__ import annotations


class FlowError(Exception):
    """Root of the flow engine's errors. ``hint`` says how to fix it, when we know."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class GraphError(FlowError):
    """The flow's DAG is invalid. ``.step``, ``.source_file`` and ``.lineno`` say where."""

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        source_file: str | None = None,
        lineno: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"{source_file}:{lineno}: " if source_file and lineno else ""
        super().__init__(f"{where}{message}", hint=hint)
        self.step = step
        self.source_file = source_file
        self.lineno = lineno


class ParameterError(FlowError):
    """A parameter is defined wrongly or got a bad value."""


class FlowDefinitionError(FlowError):
    """The flow file or class cannot be used as given."""


class TransitionError(FlowError):
    """A step's ``self.next(...)`` at run time does not match the graph."""


class ArtifactError(FlowError):
    """An artifact cannot be saved, merged or found."""


class ResumeError(FlowError):
    """A resume cannot start."""


class RecorderFailed(FlowError, RuntimeError):
    """The recorder process could not write the run's metadata; the message says why."""


class StoreRefused(FlowError):
    """The blob store refused to write a task's artifact or log (its disk is full, its
    directory read-only): the task fails, naming the path and the OS error."""

    def __init__(self, what: str, exc: OSError) -> None:
        super().__init__(
            f"the blob store refused {what}: {exc}",
            hint="free space in the blob store (or make it writable again), then resume the run",
        )
