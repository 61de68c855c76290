"""Read-only access to past and in-progress runs (Metaflow-style).

>>> from shipyard.client import Flow, Run
>>> run = Flow("DigitsFlow").latest_successful_run        # doctest: +SKIP
>>> run["train"].task.data.score                           # doctest: +SKIP
>>> Run("DigitsFlow/3").data.model                         # doctest: +SKIP

Everything reads through the metadata store on each access (statuses are never cached), so
it works while runs are in progress. Errors: see :mod:`shipyard.client.errors`.
"""

from __future__ import annotations

from shipyard.client.artifacts import DataArtifact, TaskData
from shipyard.client.errors import ClientError, CodeSnapshotError, NotFound
from shipyard.client.flow import Flow, flows, list_runs
from shipyard.client.run import Run
from shipyard.client.step import Step, StepSummary
from shipyard.client.task import Attempt, Task
from shipyard.store.records import RunStatus, TaskStatus

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
