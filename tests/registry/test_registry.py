"""Registering (capture in the task, commit in the runtime), versions, specs, aliases, the
audit log, loading and the library-version warning; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import platform
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import sqlalchemy as sa

from shipyard.flow.artifacts import ArtifactLoader
from shipyard.registry import (
    Model,
    ModelNotFound,
    ModelSpecError,
    ModelVersionWarning,
    RegistryError,
    capture,
    check_references,
    commit,
)
from shipyard.registry.libraries import libraries_for
from shipyard.store.records import ArtifactRecord, TaskStatus
from shipyard.store.schema import audit_log, model_versions

if TYPE_CHECKING:
    from conftest import Env


class StepState:
    """Stands in for a FlowSpec instance in the middle of a step: public attributes are what
    the step set, ``_data`` what it inherited (as in flow/task.py)."""


def _flow(env: Env, own: dict[str, Any], inherited: dict[str, ArtifactRecord]) -> StepState:
    state = StepState()
    state.__dict__.update(own, _data=ArtifactLoader(env.blobs, inherited))
    return state


def _commit(
    env: Env,
    intents: list[dict[str, Any]],
    run_id: int,
    task_id: int,
    artifacts: dict[str, ArtifactRecord],
    user: str = "ann",
) -> list[tuple[str, int]]:
    with env.meta.writer.begin() as conn:
        return commit(
            conn,
            intents,
            artifacts=artifacts,
            flow_name="TrainFlow",
            run_id=run_id,
            step_name="train",
            task_id=task_id,
            user=user,
        )


def _register(env: Env, name: str, value: Any, **kw: Any) -> tuple[str, int]:
    """One task that produced ``value`` as artifact ``model``, registered as ``name``."""
    run_id, task_id, records = env.task({"model": value})
    flow = _flow(env, {}, records)
    intent = capture(name, "model", flow=flow, store=env.blobs, **kw)
    [added] = _commit(env, [intent], run_id, task_id, records)
    return added


def test_versions_count_up_per_name_and_record_lineage(env: Env) -> None:
    assert _register(env, "ranker", {"w": 1}, metrics={"ndcg": 0.3}) == ("ranker", 1)
    assert _register(env, "ranker", {"w": 2}, metrics={"ndcg": 0.4}, tags=["nightly"]) == (
        "ranker",
        2,
    )
    assert _register(env, "churn", [1, 2]) == ("churn", 1)
    versions = env.registry.versions("ranker")
    assert [v.version for v in versions] == [1, 2]
    second = versions[1]
    assert second.metrics == {"ndcg": 0.4} and second.tags == ("nightly",)
    assert second.artifact_name == "model" and second.lineage.endswith(
        "/train/" + str(second.task_id) + ":model"
    )
    assert second.pathspec == f"TrainFlow/{second.run_id}/train/{second.task_id}"
    assert second.artifact.type_name == "builtins.dict" and second.user == "ann"
    assert second.libraries["python"] == platform.python_version()
    assert second.module == "train_flow"
    assert [s.name for s in env.registry.list_models()] == ["churn", "ranker"]
    summary = {s.name: s for s in env.registry.list_models()}["ranker"]
    assert (summary.latest.version, summary.versions) == (2, 2)
    assert env.registry.get("ranker").version == 2
    assert Model("ranker:1", registry=env.registry).load() == {"w": 1}


def test_an_object_is_written_at_capture_and_named_if_it_is_an_artifact(env: Env) -> None:
    run_id, task_id, records = env.task({"model": {"w": 3}, "other": 5})
    flow = _flow(env, {"model": {"w": 3}}, {})
    intent = capture("ranker", {"w": 3}, flow=flow, store=env.blobs, metrics={"auc": 1})
    assert env.blobs.exists(intent["record"]["key"])
    fresh = capture("ranker", {"w": 4}, flow=flow, store=env.blobs)
    assert _commit(env, [intent, fresh], run_id, task_id, records) == [("ranker", 1), ("ranker", 2)]
    first, second = env.registry.versions("ranker")
    assert first.artifact_name == "model"  # same bytes as the task's artifact
    assert second.artifact_name is None and second.lineage == second.pathspec
    assert Model("ranker", registry=env.registry).load() == {"w": 4}


def test_capture_checks_its_input_inside_the_step(env: Env) -> None:
    flow = _flow(env, {"model": 1}, {"scaler": env.artifact("scaler", 2)})
    with pytest.raises(ModelSpecError, match=r"no artifact 'modle'.*artifacts: model, scaler"):
        capture("ranker", "modle", flow=flow, store=env.blobs)
    with pytest.raises(ModelSpecError, match="bad model name 'Ranker'"):
        capture("Ranker", "model", flow=flow, store=env.blobs)
    with pytest.raises(ModelSpecError, match="is not a number"):
        capture("ranker", "model", flow=flow, store=env.blobs, metrics={"auc": "0.9"})
    with pytest.raises(RegistryError, match=r"cannot be pickled"):
        capture("ranker", threading.Lock(), flow=flow, store=env.blobs)
    inherited = capture("ranker", "scaler", flow=flow, store=env.blobs)
    assert inherited["artifact"] == "scaler" and "record" not in inherited


def test_a_reference_to_a_deleted_artifact_fails_and_commits_nothing(env: Env) -> None:
    run_id, task_id, records = env.task({"model": 1})
    intents = [{"name": "ranker", "artifact": "gone", "metrics": {}, "tags": [], "libraries": {}}]
    with pytest.raises(RegistryError, match="no longer has an artifact 'gone'"):
        check_references(intents, records)
    with pytest.raises(RegistryError, match="'gone'"):
        _commit(env, [_intent_for(env, "model"), *intents], run_id, task_id, records)
    with pytest.raises(ModelNotFound, match="no models are registered yet"):
        env.registry.get("ranker")  # the first intent was rolled back with the second


def _intent_for(env: Env, artifact: str) -> dict[str, Any]:
    return {"name": "ranker", "artifact": artifact, "metrics": {}, "tags": [], "libraries": {}}


def test_specs_resolve_and_errors_list_what_exists(env: Env) -> None:
    for value in range(3):
        _register(env, "ranker", value)
    _register(env, "churn", 0)
    env.registry.set_alias("ranker", 2, "prod", user="ann")
    reg = env.registry
    assert [reg.get(s).version for s in ("ranker", "ranker:1", "ranker@prod", "ranker@latest")] == [
        3,
        1,
        2,
        3,
    ]
    assert reg.get("ranker@prod").aliases == ("prod",)
    with pytest.raises(
        ModelNotFound,
        match=r"no model named 'rankr' \(did you mean 'ranker'\?\); registered models: churn, "
        r"ranker",
    ):
        reg.get("rankr")
    with pytest.raises(ModelNotFound, match="has no version 9; it has versions 1 to 3"):
        reg.get("ranker:9")
    with pytest.raises(ModelNotFound, match=r"no alias 'canary'; its aliases: prod -> 2"):
        reg.get("ranker@canary")
    with pytest.raises(ModelNotFound, match=r"no alias 'prod' \(it has no aliases\)"):
        reg.get("churn@prod")
    with pytest.raises(ModelSpecError):
        reg.get("ranker:")
    with pytest.raises(ModelNotFound) as info:
        Model("nothing", registry=reg)
    assert isinstance(info.value, LookupError) and info.value.spec == "nothing"


def test_model_pins_its_version_when_made(env: Env) -> None:
    _register(env, "ranker", "v1", metrics={"auc": 0.5})
    _register(env, "ranker", "v2")
    env.registry.set_alias("ranker", 1, "prod")
    model = Model("ranker@prod", registry=env.registry)
    env.registry.set_alias("ranker", 2, "prod")  # moved after the Model was made
    assert (model.name, model.version, model.resolve()) == ("ranker", 1, "ranker:1")
    assert model.load() == "v1"
    assert model.info.metrics == {"auc": 0.5} and model.info.aliases == ("prod",)
    assert model.info.key == model.info.artifact.key
    assert Model("ranker@prod", registry=env.registry).resolve() == "ranker:2"
    assert "ranker:1" in repr(model)


def test_a_bare_name_in_the_code_takes_the_version_the_deployment_pinned(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in ("v1", "v2", "v3"):
        _register(env, "ranker", value)
    _register(env, "other", "o1")
    pins = {"ranker:2": "ranker:2", "other": "other:1"}
    monkeypatch.setenv("SHIPYARD_MODEL_PINS", json.dumps(pins))
    assert Model("ranker", registry=env.registry).resolve() == "ranker:2"  # --model ranker:2
    assert Model("ranker:3", registry=env.registry).resolve() == "ranker:3"  # its own spec
    assert Model("ranker@latest", registry=env.registry).resolve() == "ranker:3"
    pins["ranker@prod"] = "ranker:1"  # two pins of one model: a bare name stays the latest
    monkeypatch.setenv("SHIPYARD_MODEL_PINS", json.dumps(pins))
    assert Model("ranker", registry=env.registry).resolve() == "ranker:3"


def test_aliases_move_and_every_move_is_audited(env: Env) -> None:
    for value in range(3):
        _register(env, "ranker", value)
    reg = env.registry
    assert reg.set_alias("ranker", 1, "prod", user="ann") is None
    assert reg.set_alias("ranker", 3, "prod", user="bob") == 1
    assert reg.set_alias("ranker", 3, "prod", user="bob") == 3  # no change, no entry
    assert reg.set_alias("ranker", 2, "canary", user="bob") is None
    assert reg.delete_alias("ranker", "canary", user="cy") == 2
    with pytest.raises(ModelNotFound, match=r"no alias 'canary'; its aliases: prod -> 3"):
        reg.delete_alias("ranker", "canary")
    with pytest.raises(ModelNotFound, match="has no version 7; it has versions 1 to 3"):
        reg.set_alias("ranker", 7, "prod")
    with pytest.raises(ModelNotFound, match="no model named 'churn'"):
        reg.set_alias("churn", 1, "prod")
    with pytest.raises(ModelSpecError, match="'latest' cannot be an alias"):
        reg.set_alias("ranker", 1, "latest")
    moves = [
        (e.user, e.action, e.model, e.alias, e.from_version, e.to_version)
        for e in reg.audit("ranker")
        if e.action != "register"
    ]
    assert moves == [
        ("cy", "alias.delete", "ranker", "canary", 2, None),
        ("bob", "alias.set", "ranker", "canary", None, 2),
        ("bob", "alias.move", "ranker", "prod", 1, 3),
        ("ann", "alias.set", "ranker", "prod", None, 1),
    ]
    registered = [e for e in reg.audit() if e.action == "register"]
    assert [e.to_version for e in registered] == [3, 2, 1]
    assert registered[0].detail is not None and registered[0].detail["lineage"].endswith(":model")
    assert len(reg.audit(limit=2)) == 2
    assert reg.get("ranker:3").aliases == ("prod",)


def test_user_comes_from_shipyard_user(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(env, "ranker", 1)
    monkeypatch.setenv("SHIPYARD_USER", "dana")
    env.registry.set_alias("ranker", 1, "prod")
    assert env.registry.audit("ranker")[0].user == "dana"


def test_libraries_are_recorded_for_the_class_package_and_imported_watchlist() -> None:
    from sklearn.linear_model import LinearRegression

    found = libraries_for(f"{LinearRegression.__module__}.LinearRegression")
    assert found["scikit-learn"] == __import__("sklearn").__version__  # sklearn -> scikit-learn
    assert found["numpy"] == np.__version__  # imported, so recorded
    assert found["python"] == platform.python_version()
    assert set(libraries_for("builtins.dict")) >= {"python", "numpy"}
    assert "train_flow" not in libraries_for("train_flow.Scorer")


def test_loading_under_other_library_versions_warns(env: Env) -> None:
    run_id, task_id, records = env.task({"model": np.arange(3)})
    flow = _flow(env, {}, records)
    intent = capture("ranker", "model", flow=flow, store=env.blobs)
    assert intent["libraries"]["numpy"] == np.__version__
    _commit(env, [intent], run_id, task_id, records)
    with pytest.warns(ModelVersionWarning) as nothing:
        import warnings

        warnings.warn("sentinel", ModelVersionWarning, stacklevel=1)
        assert list(Model("ranker", registry=env.registry).load()) == [0, 1, 2]
    assert len(nothing) == 1  # same versions: only the sentinel

    recorded = {"python": "2.7.18", "numpy": "1.0.0", "not-a-real-dist": "3.1", "scipy": "x"}
    with env.meta.writer.begin() as conn:
        conn.execute(sa.update(model_versions).values(libraries=recorded))
    with pytest.warns(ModelVersionWarning) as caught:
        value = Model("ranker:1", registry=env.registry).load()
    assert list(value) == [0, 1, 2]  # a warning, not a failure
    [warning] = caught
    message = str(warning.message)
    assert "model ranker:1 was registered with" in message
    assert f"numpy 1.0.0 (here: {np.__version__})" in message
    assert f"python 2.7.18 (here: {platform.python_version()})" in message
    assert "not-a-real-dist 3.1 (not installed here)" in message
    assert warning.filename == __file__  # points at the caller's line


def test_same_major_minor_does_not_warn(env: Env) -> None:
    _register(env, "ranker", 1)
    major, minor, *_ = np.__version__.split(".")
    with env.meta.writer.begin() as conn:
        conn.execute(sa.update(model_versions).values(libraries={"numpy": f"{major}.{minor}.999"}))
    assert Model("ranker", registry=env.registry).load() == 1  # filterwarnings=error


def test_register_artifact_reads_the_row_only(env: Env) -> None:
    run_id, task_id, records = env.task(
        {"model": {"w": 1}, "score": 0.5}, result={"libraries": {"scikit-learn": "1.5.0"}}
    )
    address = f"TrainFlow/{run_id}/train/{task_id}:model"
    env.blobs.delete(records["model"].key)  # it must not be read
    version = env.registry.register_artifact(address, "ranker", metrics={"auc": 0.9}, user="cy")
    assert (version.spec, version.metrics, version.user) == ("ranker:1", {"auc": 0.9}, "cy")
    assert version.lineage == address and version.key == records["model"].key
    assert version.libraries == {"scikit-learn": "1.5.0"}
    by_step = env.registry.register_artifact(f"TrainFlow/{run_id}/train:score", "score")
    assert by_step.task_id == task_id and by_step.lineage.endswith(":score")
    other_run, other_task, _ = env.task({"model": 2})  # recorded no libraries
    assert (
        env.registry.register_artifact(f"TrainFlow/{other_run}/train:model", "ranker").libraries
        == {}
    )
    with pytest.raises(
        RegistryError, match=r"has no artifact 'modle'; its artifacts: model, score"
    ):
        env.registry.register_artifact(f"TrainFlow/{run_id}/train/{task_id}:modle", "ranker")
    with pytest.raises(ModelSpecError, match="bad artifact address"):
        env.registry.register_artifact("TrainFlow/1", "ranker")
    with pytest.raises(RegistryError, match=r"no run TrainFlow/999"):
        env.registry.register_artifact("TrainFlow/999/train:model", "ranker")
    with pytest.raises(RegistryError, match="no task"):
        env.registry.register_artifact(f"TrainFlow/{run_id}/eval:model", "ranker")
    with (
        pytest.warns(ModelVersionWarning, match=r"scikit-learn 1\.5\.0 \(here: "),
        pytest.raises(RegistryError, match=r"model ranker:1 points at blob \w+, which is missing"),
    ):
        Model("ranker:1", registry=env.registry).load()


def test_register_artifact_refuses_a_failed_task(env: Env) -> None:
    run_id, _, _ = env.task({}, status=TaskStatus.FAILED)
    with pytest.raises(RegistryError, match=r"has not succeeded \(failed\)"):
        env.registry.register_artifact(f"TrainFlow/{run_id}/train:model", "ranker")


def test_registered_blobs_are_referenced(env: Env) -> None:
    code = env.artifact("code", b"zip")  # any blob stands in for the code snapshot here
    run_id, task_id, records = env.task({"model": 1}, code_key=code.key)
    _commit(env, [_intent_for(env, "model")], run_id, task_id, records)
    assert env.registry.referenced_blob_keys() == {records["model"].key, code.key}
    assert env.registry.get("ranker").code_key == code.key


def test_gc_keeps_the_blobs_of_registered_models(env: Env) -> None:
    run_id, task_id, records = env.task({"model": 1})
    _commit(env, [_intent_for(env, "model")], run_id, task_id, records)
    env.meta.delete_runs([run_id])
    assert records["model"].key in env.meta.referenced_blob_keys()
    assert Model("ranker", registry=env.registry).load() == 1  # the run is gone, the model not


def test_audit_rows_are_plain_rows(env: Env) -> None:
    _register(env, "ranker", 1)
    with env.meta.writer.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar() == 1


def test_hosting_can_log_its_own_events(env: Env) -> None:
    _register(env, "ranker", 1)
    env.registry.log_event(
        "deploy", model="ranker", to_version=1, detail={"service": "ranker"}, user="ops"
    )
    entry = env.registry.audit("ranker")[0]
    assert (entry.user, entry.action, entry.to_version, entry.detail) == (
        "ops",
        "deploy",
        1,
        {"service": "ranker"},
    )
    with pytest.raises(ModelSpecError, match="bad audit action"):
        env.registry.log_event("", model=None)
