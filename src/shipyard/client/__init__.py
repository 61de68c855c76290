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
    "NotInNamespace": "shipyard.client.errors",
    "default_metadata": "shipyard.client.namespaces",
    "default_namespace": "shipyard.client.namespaces",
    "get_metadata": "shipyard.client.namespaces",
    "get_namespace": "shipyard.client.namespaces",
    "metadata": "shipyard.client.namespaces",
    "namespace": "shipyard.client.namespaces",
    "Flow": "shipyard.client.flow",
    "flows": "shipyard.client.flow",
    "list_runs": "shipyard.client.flow",
    "Run": "shipyard.client.run",
    "Step": "shipyard.client.step",
    "StepSummary": "shipyard.client.step",
    "Attempt": "shipyard.client.task",
    "Task": "shipyard.client.task",
    "Node": "shipyard.store.records",
    "RunStatus": "shipyard.store.records",
    "TaskStatus": "shipyard.store.records",
}

if TYPE_CHECKING:
    from shipyard.client.artifacts import DataArtifact as DataArtifact
    from shipyard.client.artifacts import TaskData as TaskData
    from shipyard.client.errors import ClientError as ClientError
    from shipyard.client.errors import CodeSnapshotError as CodeSnapshotError
    from shipyard.client.errors import NotFound as NotFound
    from shipyard.client.errors import NotInNamespace as NotInNamespace
    from shipyard.client.flow import Flow as Flow
    from shipyard.client.flow import flows as flows
    from shipyard.client.flow import list_runs as list_runs
    from shipyard.client.namespaces import default_metadata as default_metadata
    from shipyard.client.namespaces import default_namespace as default_namespace
    from shipyard.client.namespaces import get_metadata as get_metadata
    from shipyard.client.namespaces import get_namespace as get_namespace
    from shipyard.client.namespaces import metadata as metadata
    from shipyard.client.namespaces import namespace as namespace
    from shipyard.client.run import Run as Run
    from shipyard.client.step import Step as Step
    from shipyard.client.step import StepSummary as StepSummary
    from shipyard.client.task import Attempt as Attempt
    from shipyard.client.task import Task as Task
    from shipyard.store.records import Node as Node
    from shipyard.store.records import RunStatus as RunStatus
    from shipyard.store.records import TaskStatus as TaskStatus


__all__ = [
    "Attempt",
    "ClientError",
    "CodeSnapshotError",
    "DataArtifact",
    "Flow",
    "Node",
    "NotFound",
    "NotInNamespace",
    "Run",
    "RunStatus",
    "Step",
    "StepSummary",
    "Task",
    "TaskData",
    "TaskStatus",
    "default_metadata",
    "default_namespace",
    "flows",
    "get_metadata",
    "get_namespace",
    "list_runs",
    "metadata",
    "namespace",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
