"""The deploy check in-process: a service's feature sets against its models' records, and
what a worker does with it (EndpointTable.load): warnings, or a refusal naming must_match."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shipyard.features import FeatureSet, FeatureSetMismatch, ServingLog, feature
from shipyard.features.checks import bind_serving_logs, check_service
from shipyard.registry import ModelVersion, Signature
from shipyard.registry import model as registry_model
from shipyard.serve import Service, ServiceDefinitionError, endpoint
from shipyard.serve.dispatch import EndpointTable
from shipyard.store.records import ArtifactRecord


@feature
def doubled(facts: dict[str, Any]) -> float:
    return facts["x"] * 2.0


@feature
def tripled(facts: dict[str, Any]) -> float:
    return facts["x"] * 3.0


LOOSE = FeatureSet("s", [doubled])
OTHER = FeatureSet("s", [tripled])
STRICT = FeatureSet("s", [tripled], must_match=True)


def _record(name: str, feature_set: dict[str, str] | None) -> ModelVersion:
    signature = Signature.of({"doubled": "float"})
    if feature_set is not None:
        signature = Signature(signature.columns, feature_set=feature_set)
    return ModelVersion(
        name=name,
        version=1,
        aliases=(),
        metrics={},
        tags=(),
        flow_name="F",
        run_id=1,
        step_name="start",
        task_id=1,
        artifact_name=None,
        artifact=ArtifactRecord("model", "0" * 64, 1, "pickle", "dict", ""),
        code_key=None,
        module=None,
        libraries={},
        user="u",
        created_at=datetime.now(UTC),
        signature=signature,
    )


class Holder:
    features = LOOSE


def test_same_version_passes_and_another_set_name_is_not_compared() -> None:
    assert check_service(Holder(), [_record("m", LOOSE.ref())]) == []
    assert check_service(Holder(), [_record("m", {"name": "other", "version": "x"})]) == []
    assert check_service(Holder(), [_record("m", None)]) == []


def test_a_different_version_is_a_warning_naming_both() -> None:
    holder = Holder()
    holder.features = OTHER  # an instance attribute wins over the class's
    warnings = check_service(holder, {"m@prod": _record("m", LOOSE.ref())})
    assert len(warnings) == 1
    assert f"is version {OTHER.version}" in warnings[0]
    assert f"model m:1 was trained with version {LOOSE.version}" in warnings[0]


def test_must_match_refuses() -> None:
    holder = Holder()
    holder.features = STRICT
    with pytest.raises(FeatureSetMismatch, match="must_match=True"):
        check_service(holder, [_record("m", LOOSE.ref())])


class Strict(Service):
    features = STRICT
    serving_log = ServingLog(store_url="file:///nonexistent")

    @endpoint
    def score(self, x: float) -> float:
        return float(STRICT.row({"x": x})["tripled"])


def test_a_worker_refuses_to_load_and_binds_its_serving_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry_model, "records", {"m": _record("m", LOOSE.ref())})
    with pytest.raises(ServiceDefinitionError, match="must_match=True"):
        EndpointTable.load(Strict, "strict")
    monkeypatch.setattr(registry_model, "records", {"m": _record("m", STRICT.ref())})
    table = EndpointTable.load(Strict, "strict-ok")
    assert table.warnings == []
    assert Strict.serving_log.service == "strict"  # bound by the first load; a name sticks
    assert bind_serving_logs(Strict(), "x") == 1
