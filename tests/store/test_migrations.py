"""Schema migrations: scripts match schema.py, old databases upgrade with their data, and
two processes opening a new database at once both succeed. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from shipyard.store import migrations, schema
from shipyard.store.engine import create_engine
from shipyard.store.meta import MetaStore, MetaStoreError
from shipyard.store.records import ArtifactRecord, RunStatus, TaskStatus
from support.waiting import wait_for


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return migrations.current_revision(conn)
    finally:
        engine.dispose()


def test_head_revision_matches_the_scripts() -> None:
    scripts = ScriptDirectory.from_config(migrations.config())
    assert scripts.get_current_head() == schema.HEAD_REVISION
    chain = [script.revision for script in scripts.walk_revisions()]
    assert chain[::-1] == [f"{n:04d}" for n in range(1, int(schema.HEAD_REVISION) + 1)]


def test_the_migrations_build_exactly_schema_py(db_url: str) -> None:
    """Replaying every revision on an empty database gives what schema.py describes — so a
    new database created straight from schema.py (what open() does) is the same thing."""
    engine = create_engine(db_url)
    try:
        migrations.upgrade(engine)
        assert _revision(db_url) == schema.HEAD_REVISION
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()


def test_a_new_database_is_created_at_head_without_alembic(db_url: str) -> None:
    code = (
        "import sys; from shipyard.store.meta import MetaStore; "
        f"MetaStore.open({db_url!r}).close(); print('alembic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    )
    assert out.stdout.strip() == "False"
    assert _revision(db_url) == schema.HEAD_REVISION
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
        migrations.upgrade(engine)  # a later upgrade finds it at head and does nothing
        assert _revision(db_url) == schema.HEAD_REVISION
    finally:
        engine.dispose()


def test_old_database_is_upgraded_on_open_with_its_data(db_url: str) -> None:
    engine = create_engine(db_url)
    created = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    try:
        migrations.upgrade(engine, "0001")
        # 0001 has no tasks.result / tasks.log_dir: insert only the columns it has
        with engine.begin() as conn:
            conn.execute(schema.flows.insert().values(name="OldFlow", created_at=created))
            old_run = conn.execute(
                schema.runs.insert()
                .values(
                    flow_name="OldFlow",
                    status="succeeded",
                    user="ann",
                    created_at=created,
                    finished_at=created,
                    heartbeat_at=created,
                    graph={"steps": ["start", "end"]},
                    code_key="code7",
                    origin_run_id=None,
                )
                .returning(schema.runs.c.run_id)
            ).scalar_one()
            conn.execute(schema.run_tags.insert().values(run_id=old_run, tag="old"))
            conn.execute(schema.run_params.insert().values(run_id=old_run, name="alpha", value=0.5))
            old_task = conn.execute(
                schema.tasks.insert()
                .values(
                    run_id=old_run,
                    step_name="start",
                    status="succeeded",
                    created_at=created,
                    started_at=created,
                    finished_at=created,
                    attempts=1,
                    foreach_stack=[],
                    input_task_ids=[],
                    origin_task_id=None,
                )
                .returning(schema.tasks.c.task_id)
            ).scalar_one()
            conn.execute(
                schema.attempts.insert().values(
                    task_id=old_task,
                    attempt=0,
                    status="succeeded",
                    started_at=created,
                    finished_at=created,
                    pid=5,
                    error=None,
                    stdout_key="out70",
                    stderr_key=None,
                )
            )
            artifact = ArtifactRecord("x", "blob70", 3, "pickle5", "builtins.int", "1")
            columns = {k: v for k, v in artifact.__dict__.items() if k != "inline"}  # 0007
            conn.execute(schema.artifacts.insert().values(task_id=old_task, **columns))
    finally:
        engine.dispose()
    assert _revision(db_url) == "0001"

    with MetaStore.open(db_url) as meta:
        assert _revision(db_url) == schema.HEAD_REVISION
        run = meta.get_run("OldFlow", old_run)
        assert run is not None
        assert (run.status, run.tags, run.params) == (RunStatus.SUCCEEDED, ("old",), {"alpha": 0.5})
        assert run.created_at == created and run.graph == {"steps": ["start", "end"]}
        [task] = meta.list_tasks(old_run)
        assert (task.task_id, task.status, task.result, task.log_dir) == (
            old_task,
            TaskStatus.SUCCEEDED,
            {},
            None,
        )
        assert meta.list_artifacts(old_task) == [artifact]
        assert meta.list_attempts(old_task)[0].stdout_key == "out70"
        assert meta.referenced_blob_keys() == {"code7", "out70", "blob70"}
        # and the new columns work on the upgraded database
        new_run = meta.create_run(
            "OldFlow", user="bob", params={}, tags=[], graph={}, code_key=None
        )
        assert new_run > old_run
        task_id = meta.create_task(
            new_run, "start", foreach_stack=[], input_task_ids=[], log_dir="/logs"
        )
        assert task_id > old_task
        meta.start_attempt(task_id, 0, pid=None)
        meta.finish_attempt(task_id, 0, status=TaskStatus.SUCCEEDED, result={"num_splits": 2})
        new_task = meta.get_task(task_id)
        assert new_task is not None
        assert (new_task.result, new_task.log_dir) == ({"num_splits": 2}, "/logs")


def test_database_from_a_newer_shipyard_is_refused_clearly(db_url: str) -> None:
    MetaStore.open(db_url).close()
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(MetaStoreError, match=r"'head'.*upgrade shipyard"):
        MetaStore.open(db_url)


_OPENER = textwrap.dedent(
    """
    import os, sys, time
    from shipyard.store.meta import MetaStore

    url, go, ready = sys.argv[1], sys.argv[2], sys.argv[3]
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.002)
    with MetaStore.open(url) as meta:
        run_id = meta.create_run("F", user="u", params={}, tags=[], graph={}, code_key=None)
    print(run_id)
    """
)


def test_two_processes_opening_a_new_database_at_once(db_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    openers = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", _OPENER, db_url, str(go), str(r)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    # both past the interpreter start-up, so the opens really race (or one failed early:
    # communicate() below says why)
    wait_for(
        lambda: all(r.exists() for r in ready) or any(o.poll() is not None for o in openers),
        "both openers to be ready",
        timeout=60,
    )
    go.touch()
    run_ids = []
    for opener in openers:
        out, err = opener.communicate(timeout=60)
        assert opener.returncode == 0, err
        run_ids.append(int(out))
    assert len(set(run_ids)) == 2
    assert _revision(db_url) == schema.HEAD_REVISION
