"""Plain records the registry hands out: a model version, a model's summary, an audit entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipyard.registry.signature import Signature
from shipyard.store.records import ArtifactRecord


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: what it is, where it came from, how to load it.

    ``aliases`` are those pointing at this version when the record was read.
    """

    name: str
    version: int
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    tags: tuple[str, ...]
    flow_name: str
    run_id: int
    step_name: str
    task_id: int
    #: the task's artifact this version was registered from (None: an object passed directly
    #: to ``current.register_model`` that is not one of the task's artifacts)
    artifact_name: str | None
    artifact: ArtifactRecord
    code_key: str | None  # the producing run's code snapshot (classes load from it)
    module: str | None  # the module the flow file was imported as
    libraries: dict[str, str]  # {"python": "3.11.9", "scikit-learn": "1.5.2", ...}
    user: str
    created_at: datetime
    #: the model's input columns, recorded at register time (None: nothing said what they are)
    signature: Signature | None = None
    #: the producing run's ``@project`` and branch (None: its flow had no @project)
    project: str | None = None
    project_branch: str | None = None

    @property
    def spec(self) -> str:
        """The pinned ``name:version`` string."""
        return f"{self.name}:{self.version}"

    @property
    def pathspec(self) -> str:
        """The producing task, ``Flow/run/step/task`` (lineage)."""
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"

    @property
    def lineage(self) -> str:
        """The producing task's pathspec, with ``:artifact`` when it came from one."""
        suffix = f":{self.artifact_name}" if self.artifact_name else ""
        return self.pathspec + suffix

    @property
    def key(self) -> str:
        """The blob key of the serialized model."""
        return self.artifact.key

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (for the API and ``--json`` output)."""
        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "metrics": dict(self.metrics),
            "tags": list(self.tags),
            "lineage": self.lineage,
            "flow_name": self.flow_name,
            "run_id": self.run_id,
            "step_name": self.step_name,
            "task_id": self.task_id,
            "artifact_name": self.artifact_name,
            "key": self.artifact.key,
            "size": self.artifact.size,
            "encoding": self.artifact.encoding,
            "type_name": self.artifact.type_name,
            "preview": self.artifact.preview,
            "libraries": dict(self.libraries),
            "user": self.user,
            "created_at": self.created_at.isoformat(),
            "signature": self.signature.to_json() if self.signature is not None else None,
            "project": self.project,
            "project_branch": self.project_branch,
        }


@dataclass(frozen=True)
class ModelSummary:
    """A model's name, its newest version, and the aliases pointing into it."""

    name: str
    latest: ModelVersion
    versions: int  # how many versions exist
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> version


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log. ``action``: ``register``, ``alias.set``, ``alias.move``,
    ``alias.delete`` (hosting adds ``deploy``...)."""

    id: int
    at: datetime
    user: str
    action: str
    model: str | None
    alias: str | None
    from_version: int | None
    to_version: int | None
    detail: dict[str, Any] | None

    @property
    def summary(self) -> str:
        """What ``detail`` says, in a few words: the service, its version and the models it
        pinned for a deploy or a rollback, the replicas of a scale, a version's lineage."""
        detail = self.detail or {}
        if "service" in detail:
            text = str(detail["service"])
            if detail.get("version") is not None:
                text += f" v{detail['version']}"
            if detail.get("previous") is not None:
                text += f" (was v{detail['previous']})"
            pins = detail.get("pins") or {}
            if isinstance(pins, dict) and pins:
                text += ": " + ", ".join(
                    f"{s} = {p}" if s != p else str(p) for s, p in sorted(pins.items())
                )
            if detail.get("replicas") is not None:
                text += f": {detail['replicas']} replicas"
            if detail.get("reason"):  # a deployment that follows an alias says why it rolled
                text += f" ({detail['reason']})"
            return text
        if detail.get("lineage"):
            return f"from {detail['lineage']}"
        return ""


__all__ = ["AuditEntry", "ModelSummary", "ModelVersion"]
