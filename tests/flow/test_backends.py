"""A whole flow — foreach, join, failure, resume, client reads — on PostgreSQL metadata and
S3 artifacts, the servers a team moves to (started by scripts/services.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.client import Flow
from shipyard.store.blobs import open_blob_store
from shipyard.store.records import RunStatus
from shipyard.testing import resume_flow, run_flow, write_flow
from support.servers import pg_schema_url

FLOW = """
import os
from shipyard import FlowSpec, step

class Model:
    def __init__(self, w):
        self.w = w

class RemoteFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 3 and os.path.exists(os.environ["BREAK_FLAG"]):
            raise RuntimeError("broken")
        self.sq = self.input ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.model = Model(sum(i.sq for i in inputs))
        self.next(self.end)

    @step
    def end(self):
        print("weights", self.model.w)
"""


@pytest.mark.postgres
@pytest.mark.s3
def test_flow_on_postgres_and_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_url: str, pg_database: sa.URL
) -> None:
    db_url = pg_schema_url(pg_database)
    monkeypatch.setenv("SHIPYARD_DB_URL", db_url)
    monkeypatch.setenv("SHIPYARD_STORE_URL", s3_url)
    flag = tmp_path / "flag"
    flag.touch()
    monkeypatch.setenv("BREAK_FLAG", str(flag))
    path = write_flow(FLOW, tmp_path)

    first = run_flow(path)
    assert first.status is RunStatus.FAILED
    flag.unlink()
    second = resume_flow(first, path)
    assert second.successful
    assert second["end"].task.data.model.w == sum(i * i for i in range(6))
    assert "weights 55" in second["end"].task.stdout
    assert any(t.origin_pathspec for t in second["work"].tasks())
    assert all(a.pid for a in second["end"].task.attempts)  # the runtime wrote it itself
    # nothing went to the local default store or database
    home = Path(os.environ["SHIPYARD_HOME"])
    assert not (home / "blobs").exists() and not (home / "meta.db").exists()
    assert len(list(open_blob_store(s3_url).list())) > 3
    # another process, another directory, the flow file gone: the model still loads
    path.unlink()
    code = f"from shipyard import Run; print(Run({second.pathspec!r}).data.model.w)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert out.stdout.strip() == "55", out.stderr
    assert Flow("RemoteFlow").latest_successful_run == second
