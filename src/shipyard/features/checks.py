"""At deploy: does a service compute its features with the version its model learnt from?

A model registered with ``features=`` records its feature set's name and version in its input
signature. When a worker has run the service's ``load()``, :func:`check_service` finds every
``FeatureSet`` the service holds (a class or instance attribute: ``features = ranker_set``)
and every model record ``load()`` resolved; for each pair with the same set name and a
different version it returns a warning (shown by ``shipyard deploy`` and in
``shipyard deployments NAME``), or raises :class:`FeatureSetMismatch` when the set says
``must_match=True`` (the deploy is refused; the version before keeps serving).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shipyard.features.errors import FeatureSetMismatch
from shipyard.features.servinglog import ServingLog
from shipyard.features.sets import FeatureSet

if TYPE_CHECKING:
    from shipyard.registry import ModelVersion

__all__ = ["bind_serving_logs", "check_service", "feature_sets_of"]


def feature_sets_of(instance: object) -> list[tuple[str, FeatureSet]]:
    """``(attribute, FeatureSet)`` of a loaded service: instance attributes, then class ones."""
    found: dict[int, tuple[str, FeatureSet]] = {}
    for attr, value in _attributes(instance).items():
        if isinstance(value, FeatureSet) and id(value) not in found:
            found[id(value)] = (attr, value)
    return list(found.values())


def bind_serving_logs(instance: object, service: str) -> int:
    """Name ``service`` in every ``ServingLog`` the loaded service holds; how many."""
    count = 0
    for value in _attributes(instance).values():
        if isinstance(value, ServingLog):
            value.bind(service)
            count += 1
    return count


def _attributes(instance: object) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for klass in reversed(type(instance).__mro__):
        names.update(vars(klass))
    names.update(getattr(instance, "__dict__", {}))
    return names


def check_service(
    instance: object, models: Mapping[str, ModelVersion] | Iterable[ModelVersion]
) -> list[str]:
    """Warnings for each feature set of ``instance`` whose version differs from the one a
    loaded model was trained with; raises :class:`FeatureSetMismatch` for a set with
    ``must_match=True``."""
    records = list(models.values()) if isinstance(models, Mapping) else list(models)
    warnings: list[str] = []
    for attr, fs in feature_sets_of(instance):
        for record in records:
            recorded = record.signature.feature_set if record.signature is not None else None
            if not recorded or recorded.get("name") != fs.name:
                continue
            if recorded.get("version") == fs.version:
                continue
            message = (
                f"feature set {fs.name!r} (self.{attr}) is version {fs.version}, but model "
                f"{record.spec} was trained with version {recorded.get('version')}: the "
                "features served may not be the ones it learnt from; retrain and register "
                "it with features=..., or deploy the feature code it was trained with"
            )
            if fs.must_match:
                raise FeatureSetMismatch(
                    message + f" (refused: FeatureSet({fs.name!r}, must_match=True))"
                )
            warnings.append(message)
    return warnings
