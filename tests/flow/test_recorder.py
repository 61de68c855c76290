"""The recorder process: the runtime's writes applied in order, failures said, nothing lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.flow.ledger import Ledger
from shipyard.flow.recorder import Recorder, RecorderFailed
from shipyard.store.bootstrap import IdReserver
from shipyard.store.meta import MetaStore
from shipyard.store.records import RunStatus, TaskStatus
from shipyard.testing import write_flow

TWO_STEPS = """
from shipyard import FlowSpec, step

class TwoStepFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        pass
"""
RUN = {"user": "u", "params": {"alpha": "0.1"}, "tags": ["t"], "graph": {}, "code_key": None}


def _run_two_steps(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``shipyard run`` of a two-step flow, in a fresh interpreter."""
    flow = write_flow(TWO_STEPS, tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "shipyard", "run", str(flow)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    reserver = IdReserver.open(url)  # creates the schema, as the runtime's start does
    assert reserver is not None
    reserver.close()
    return url


def test_writes_are_applied_in_order_and_a_flush_waits_for_them(tmp_path: Path) -> None:
    url = _url(tmp_path)
    recorder = Recorder(url)
    recorder.write("create_run", ("F",), {**RUN, "run_id": 7})
    recorder.write("create_tasks", (7, [("start", [], [], None)]), {"task_ids": [3]})
    recorder.write("start_attempt", (3, 0), {"pid": None})
    recorder.write("finish_attempt", (3, 0), {"status": TaskStatus.SUCCEEDED})
    recorder.write("finish_run", (7, RunStatus.SUCCEEDED), {})
    recorder.flush()
    with MetaStore.open(url) as meta:  # committed: another connection sees all of it
        run = meta.get_run("F", 7)
        task = meta.get_task(3)
        assert run is not None and run.status is RunStatus.SUCCEEDED
        assert task is not None and task.status is TaskStatus.SUCCEEDED
    recorder.close()
    recorder.close()  # closing twice is harmless


def test_a_failed_write_stops_the_recorder_and_says_why(tmp_path: Path) -> None:
    recorder = Recorder(_url(tmp_path))
    recorder.write("finish_attempt", (99, 0), {"status": TaskStatus.SUCCEEDED})
    with pytest.raises(RecorderFailed, match="WriteRefused: task 99 has no attempt 0"):
        recorder.flush()
    with pytest.raises(RecorderFailed, match="WriteRefused"):  # closing says it again
        recorder.close()


def test_a_recorder_whose_runtime_died_applies_what_it_got_and_exits(tmp_path: Path) -> None:
    url = _url(tmp_path)
    recorder = Recorder(url)
    recorder.write("create_run", ("F",), {**RUN, "run_id": 1})
    recorder.send()
    recorder.sock.close()  # as the end of a process killed with SIGKILL
    _, status = os.waitpid(recorder.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with MetaStore.open(url) as meta:
        run = meta.get_run("F", 1)
        assert run is not None and run.status is RunStatus.RUNNING  # dead once unbeaten


def test_a_store_that_cannot_open_is_reported(tmp_path: Path) -> None:
    url = _url(tmp_path)
    (tmp_path / "meta.db").write_bytes(b"not a database" * 100)
    recorder = Recorder(url)
    with pytest.raises(RecorderFailed, match="cannot record the run's metadata: .*Error"):
        recorder.flush()
    with pytest.raises(RecorderFailed):
        recorder.close()


def test_the_ledger_numbers_tasks_in_blocks_and_gives_back_what_it_did_not_use(
    tmp_path: Path,
) -> None:
    url = _url(tmp_path)
    ledger = Ledger(url)
    with ledger.closing():
        ledger.bootstrap()
        assert ledger.recorder is not None
        assert ledger.run_id() == 1
        assert ledger.task_ids(1) == [1]
        assert ledger.task_ids(100) == list(range(2, 102))  # a new block, right after
        assert ledger.task_ids(2) == [102, 103]
    again = Ledger(url)
    with again.closing():
        again.bootstrap()
        assert again.run_id() == 2
        assert again.task_ids(1) == [104]  # the rest of the block was given back
    direct = Ledger(url, direct=True)
    with direct.closing():
        direct.bootstrap()
        assert direct.recorder is None and direct.run_id() is None
        assert direct.task_ids(3) is None  # the database numbers them


def test_a_run_whose_rows_cannot_be_written_stops_with_the_reason(
    tmp_path: Path, home: Path
) -> None:
    url = f"sqlite:///{home / 'meta.db'}"
    reserver = IdReserver.open(url)
    assert reserver is not None
    reserver.close()
    with sqlite3.connect(home / "meta.db") as conn:  # the database refuses new runs
        conn.execute(
            "CREATE TRIGGER no_runs BEFORE INSERT ON runs "
            "BEGIN SELECT RAISE(ABORT, 'no new runs today'); END"
        )
    proc = _run_two_steps(tmp_path)
    assert proc.returncode == 1
    assert "cannot record the run's metadata" in proc.stderr
    assert "no new runs today" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_database_to_migrate_is_migrated_and_written_directly(tmp_path: Path, home: Path) -> None:
    from shipyard.store import migrations, schema
    from shipyard.store.engine import create_engine

    url = f"sqlite:///{home / 'meta.db'}"
    home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        migrations.upgrade(engine, "0006")  # made by the previous release
    finally:
        engine.dispose()
    assert IdReserver.open(url) is None
    proc = _run_two_steps(tmp_path)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(home / "meta.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (schema.HEAD_REVISION,)
        ]
        assert conn.execute("SELECT status FROM runs").fetchall() == [("succeeded",)]
