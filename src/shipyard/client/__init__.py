"""Read-only access to past and in-progress runs (Metaflow-style).

>>> from shipyard.client import Flow, Run
>>> run = Flow("DigitsFlow").latest_successful_run        # doctest: +SKIP
>>> run["train"].task.data.score                           # doctest: +SKIP
>>> Run("DigitsFlow/3").data.model                         # doctest: +SKIP

Everything reads through the metadata store on each access (statuses are never cached), so
it works while runs are in progress. Errors: see :mod:`shipyard.client.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_exports

#: name -> module; imported on first use, so that ``import shipyard.client`` does not pull
#: in the metadata store and SQLAlchemy
_EXPORTS = {
    "DataArtifact": "shipyard.client.artifacts",
    "TaskData": "shipyard.client.artifacts",
    "ClientError": "shipyard.client.errors",
    "CodeSnapshotError": "shipyard.client.errors",
    "NotFound": "shipyard.client.errors",
    "Flow": "shipyard.client.flow",
    "flows": "shipyard.client.flow",
    "list_runs": "shipyard.client.flow",
    "Run": "shipyard.client.run",
    "Step": "shipyard.client.step",
    "StepSummary": "shipyard.client.step",
    "Attempt": "shipyard.client.task",
    "Task": "shipyard.client.task",
    "RunStatus": "shipyard.store.records",
    "TaskStatus": "shipyard.store.records",
}

if TYPE_CHECKING:
    from shipyard.client.artifacts import DataArtifact as DataArtifact
    from shipyard.client.artifacts import TaskData as TaskData
    from shipyard.client.errors import ClientError as ClientError
    from shipyard.client.errors import CodeSnapshotError as CodeSnapshotError
    from shipyard.client.errors import NotFound as NotFound
    from shipyard.client.flow import Flow as Flow
    from shipyard.client.flow import flows as flows
    from shipyard.client.flow import list_runs as list_runs
    from shipyard.client.run import Run as Run
    from shipyard.client.step import Step as Step
    from shipyard.client.step import StepSummary as StepSummary
    from shipyard.client.task import Attempt as Attempt
    from shipyard.client.task import Task as Task
    from shipyard.store.records import RunStatus as RunStatus
    from shipyard.store.records import TaskStatus as TaskStatus


__all__ = [
    "Attempt",
    "ClientError",
    "CodeSnapshotError",
    "DataArtifact",
    "Flow",
    "NotFound",
    "Run",
    "RunStatus",
    "Step",
    "StepSummary",
    "Task",
    "TaskData",
    "TaskStatus",
    "flows",
    "list_runs",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
