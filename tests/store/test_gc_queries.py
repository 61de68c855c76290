"""The queries gc and the audit log run, on SQLite and PostgreSQL: which runs gc keeps and
why, the blobs left referenced without some runs, and deploys shown among a model's entries."""

from __future__ import annotations

from shipyard.registry import Registry
from shipyard.serve.deployments import DeploymentStore, VersionStatus
from shipyard.store.meta import MetaStore
from shipyard.store.records import ArtifactRecord, RunStatus, TaskStatus


def _run_with_artifact(meta: MetaStore, key: str, tags: list[str] | None = None) -> tuple[int, int]:
    run_id = meta.create_run(
        "GcFlow", user="ann", params={}, tags=tags or [], graph={}, code_key=f"code-{key}"
    )
    task_id = meta.create_task(run_id, "start", foreach_stack=[], input_task_ids=[])
    meta.start_attempt(task_id, 0, pid=None)
    artifact = ArtifactRecord(
        name="model", key=key, size=10, encoding="pickle5+zstd", type_name="builtins.dict",
        preview="{}",
    )  # fmt: skip
    meta.finish_attempt(
        task_id, 0, status=TaskStatus.SUCCEEDED, stdout_key=f"out-{key}", artifacts=[artifact]
    )
    meta.finish_run(run_id, RunStatus.SUCCEEDED)
    return run_id, task_id


def test_what_gc_keeps_and_frees_and_deploys_in_the_audit(meta: MetaStore) -> None:
    tagged, _ = _run_with_artifact(meta, "blob-t", tags=["b", "a"])
    producer, task = _run_with_artifact(meta, "blob-p")
    plain, _ = _run_with_artifact(meta, "blob-x")
    registry = Registry(meta)
    registry.register_artifact(f"GcFlow/{producer}/start/{task}:model", "m", user="ann")
    assert meta.runs_gc_keeps([tagged, producer, plain]) == {
        tagged: ["tagged a, b"],
        producer: ["registered m:1"],
    }
    store = DeploymentStore(meta)
    version = store.add_version(
        "svc", entry="svc.py:S", code_key="0" * 64, replicas=1, env={},
        pins={"m@prod": "m:1"}, created_by="ann",
    )  # fmt: skip
    store.mark("svc", version.version, VersionStatus.LIVE)
    assert meta.runs_gc_keeps([producer, plain]) == {producer: ["registered m:1 (deployed: svc)"]}

    everything = meta.referenced_blob_keys()
    without = meta.referenced_blob_keys(excluding=[plain, producer])
    freed = {"blob-x", "out-blob-x", "code-blob-x", "out-blob-p"}
    assert everything - without == freed
    assert {"blob-p", "code-blob-p"} <= without  # the registered version holds its model and code

    registry.log_event(
        "deploy", model=None, user="bob",
        detail={"service": "svc", "version": 1, "previous": None, "pins": {"m@prod": "m:1"}},
    )  # fmt: skip
    registry.log_event("scale", model=None, user="bob", detail={"service": "svc", "replicas": 2})
    entries = registry.audit("m")
    assert [(e.action, e.alias, e.to_version) for e in entries] == [
        ("deploy", "prod", 1),
        ("register", None, 1),
    ]
    assert entries[0].summary == "svc v1: m@prod = m:1"
    assert [e.action for e in registry.audit("m", limit=1)] == ["deploy"]
    assert [e.action for e in registry.audit()][:2] == ["scale", "deploy"]
