"""Migration 0003 (the registry tables) upgrades a database made at 0002, keeping its data."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from shipyard.registry import Registry
from shipyard.store import migrations
from shipyard.store.engine import create_engine
from shipyard.store.meta import MetaStore
from shipyard.store.records import ArtifactRecord, TaskStatus
from support.migration_data import seed_old_run


def test_a_0002_database_upgrades_with_its_data(db_url: str) -> None:
    engine = create_engine(db_url)
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    artifact = ArtifactRecord("model", "cd" * 32, 3, "pickle5", "builtins.int", "1")
    try:
        migrations.upgrade(engine, "0002")
        with engine.begin() as conn:
            run_id, task_id = seed_old_run(conn, at, artifact)
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == "0002"
            assert not sa.inspect(conn).has_table("model_versions")
    finally:
        engine.dispose()

    with MetaStore.open(db_url) as meta:
        [task] = meta.list_tasks(run_id)
        assert (task.status, task.result) == (TaskStatus.SUCCEEDED, {"x": 1})
        assert meta.list_artifacts(task_id) == [artifact]
        run = meta.get_run("OldFlow", run_id)
        assert run is not None and run.user == "ann" and run.code_key == "ef" * 32
        registry = Registry(meta)
        assert registry.list_models() == []
        version = registry.register_artifact(f"OldFlow/{run_id}/end/{task_id}:model", "old")
        assert (version.spec, version.code_key, version.module) == ("old:1", "ef" * 32, "old_flow")
        registry.set_alias("old", 1, "prod", user="ann")
        assert registry.get("old@prod").version == 1
