"""A finished run written straight into an OLD schema, for the migration tests of each part."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from shipyard.store import schema
from shipyard.store.records import ArtifactRecord


def seed_old_run(conn: Connection, at: datetime, artifact: ArtifactRecord) -> tuple[int, int]:
    """Insert a flow, a succeeded run, its end task and one artifact; (run_id, task_id)."""
    conn.execute(schema.flows.insert().values(name="OldFlow", created_at=at))
    run_id = conn.execute(
        schema.runs.insert()
        .values(flow_name="OldFlow", status="succeeded", user="ann", created_at=at,
                graph={"module": "old_flow"}, code_key="ef" * 32)
        .returning(schema.runs.c.run_id)
    ).scalar_one()  # fmt: skip
    task_id = conn.execute(
        schema.tasks.insert()
        .values(run_id=run_id, step_name="end", status="succeeded", created_at=at,
                attempts=1, foreach_stack=[], input_task_ids=[], result={"x": 1})
        .returning(schema.tasks.c.task_id)
    ).scalar_one()  # fmt: skip
    columns = {k: v for k, v in artifact.__dict__.items() if k != "inline"}  # added in 0007
    conn.execute(schema.artifacts.insert().values(task_id=task_id, **columns))
    return int(run_id), int(task_id)
