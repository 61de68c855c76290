"""Fixtures for the registry tests: a metadata store on SQLite and PostgreSQL, a local blob
store, and helpers that write succeeded tasks with artifacts the way the runtime does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipyard.registry import Registry
from shipyard.store import context
from shipyard.store.blobs import BlobStore, open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.store.records import ArtifactRecord, RunStatus, TaskStatus
from support.fakes import store_artifact


@dataclass
class Env:
    meta: MetaStore
    blobs: BlobStore
    home: Path
    registry: Registry

    def artifact(self, name: str, value: Any) -> ArtifactRecord:
        return store_artifact(self.blobs, name, value)

    def task(
        self,
        values: dict[str, Any],
        *,
        flow: str = "TrainFlow",
        step: str = "train",
        code_key: str | None = None,
        module: str = "train_flow",
        status: TaskStatus = TaskStatus.SUCCEEDED,
        result: dict[str, Any] | None = None,
    ) -> tuple[int, int, dict[str, ArtifactRecord]]:
        """A finished run with one task holding ``values`` as artifacts."""
        run_id = self.meta.create_run(
            flow, user="tester", params={}, tags=[], graph={"module": module}, code_key=code_key
        )
        task_id = self.meta.create_task(run_id, step, foreach_stack=[], input_task_ids=[])
        records = {name: self.artifact(name, value) for name, value in values.items()}
        self.meta.start_attempt(task_id, 0, pid=None)
        self.meta.finish_attempt(
            task_id, 0, status=status, artifacts=list(records.values()), result=result
        )
        self.meta.finish_run(run_id, RunStatus.SUCCEEDED)
        return run_id, task_id, records


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    meta = MetaStore.open(db_url)
    blobs = open_blob_store(f"file://{tmp_path}/blobs")
    home = tmp_path / "home"
    try:
        yield Env(meta, blobs, home, Registry(meta, blobs=blobs, home=home))
    finally:
        meta.close()
        context.reset()
