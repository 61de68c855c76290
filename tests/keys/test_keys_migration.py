"""Migration 0004 (api_keys) follows 0003 and upgrades a database made at 0003 (to head),
keeping its data."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from shipyard.keys import KeyStore
from shipyard.store import migrations, schema
from shipyard.store.engine import create_engine
from shipyard.store.meta import MetaStore
from shipyard.store.records import ArtifactRecord, RunStatus, TaskStatus
from support.migration_data import seed_old_run


def test_0004_follows_0003() -> None:
    scripts = ScriptDirectory.from_config(migrations.config())
    script = scripts.get_revision("0004")
    assert script is not None and script.down_revision == "0003"
    chain = [s.revision for s in scripts.walk_revisions()][::-1]
    assert chain[:4] == ["0001", "0002", "0003", "0004"]
    assert chain[-1] == schema.HEAD_REVISION == scripts.get_current_head()


def test_a_0003_database_upgrades_with_its_data(db_url: str) -> None:
    engine = create_engine(db_url)
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    artifact = ArtifactRecord("model", "ab" * 32, 3, "pickle5", "builtins.int", "1")
    try:
        migrations.upgrade(engine, "0003")
        with engine.begin() as conn:
            run_id, task_id = seed_old_run(conn, at, artifact)
            conn.execute(schema.models.insert().values(name="old", created_at=at, last_version=0))
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == "0003"
            assert not sa.inspect(conn).has_table("api_keys")
    finally:
        engine.dispose()

    with MetaStore.open(db_url) as meta:
        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                assert migrations.current_revision(conn) == schema.HEAD_REVISION
                names = conn.execute(sa.select(schema.models.c.name)).scalars().all()
                assert names == ["old"]
        finally:
            engine.dispose()
        run = meta.get_run("OldFlow", run_id)
        assert run is not None and run.status is RunStatus.SUCCEEDED and run.user == "ann"
        [task] = meta.list_tasks(run_id)
        assert (task.status, task.result) == (TaskStatus.SUCCEEDED, {"x": 1})
        assert meta.list_artifacts(task_id) == [artifact]
        with KeyStore(meta) as keys:
            assert keys.list() == []
            record, plaintext = keys.create("after upgrade", ["invoke:ranker"])
            verified = keys.verify(plaintext)
            assert verified is not None and verified.key_id == record.key_id
