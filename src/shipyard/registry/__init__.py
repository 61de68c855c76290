"""The model registry: named, versioned models with aliases and lineage back to their run.

>>> from shipyard.registry import Model, Registry
>>> Model("ranker@prod").load()                              # doctest: +SKIP
>>> Registry().set_alias("ranker", 4, "prod")                # doctest: +SKIP

In a step: ``current.register_model("ranker", self.model, metrics={"ndcg": 0.41})`` (the task
calls :func:`capture`; the runtime calls :func:`commit` when the task succeeds). Errors:
see :mod:`shipyard.registry.errors`.
"""

from __future__ import annotations

from shipyard.registry.capture import capture, check_references, commit
from shipyard.registry.errors import (
    ModelNotFound,
    ModelSpecError,
    ModelVersionWarning,
    RegistryError,
)
from shipyard.registry.model import Model, set_resolver
from shipyard.registry.names import ModelSpec, parse_spec
from shipyard.registry.records import AuditEntry, ModelSummary, ModelVersion
from shipyard.registry.registry import Registry
from shipyard.registry.signature import Column, Signature, infer_signature

__all__ = [
    "AuditEntry",
    "Column",
    "Model",
    "ModelNotFound",
    "ModelSpec",
    "ModelSpecError",
    "ModelSummary",
    "ModelVersion",
    "ModelVersionWarning",
    "Registry",
    "RegistryError",
    "Signature",
    "capture",
    "check_references",
    "commit",
    "infer_signature",
    "parse_spec",
    "set_resolver",
]
