"""``shipyard._entry``: a flow file's ``FlowSpec()`` starts the CLI; for a ``run`` the
recorder is forked before the CLI loads and handed to the run's ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard import _entry
from shipyard.config import settings
from shipyard.flow.ledger import Ledger
from shipyard.testing import write_flow

FLOW = """
import sys
from shipyard import FlowSpec, step

class EntryFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    EntryFlow()
    # _entry imports the CLI only after forking the recorder; the CLI exits the process
    raise AssertionError("FlowSpec() returned")
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_recorder_forked_early_is_taken_once_by_the_runs_ledger(home: Path) -> None:
    _entry.fork_recorder()
    _entry.fork_recorder()  # a second call forks nothing more
    early = _entry.take_recorder()
    assert early is not None and early.url == settings().db_url
    assert _entry.take_recorder() is None
    ledger = Ledger(settings().db_url, recorder=early)
    with ledger.closing():
        ledger.bootstrap()
        assert ledger.recorder is early and ledger.run_id() == 1


@pytest.mark.parametrize("direct", [True, False])
def test_a_recorder_forked_for_nothing_the_run_writes_is_stopped(
    home: Path, tmp_path: Path, direct: bool
) -> None:
    _entry.fork_recorder()
    early = _entry.take_recorder()
    assert early is not None
    url = settings().db_url if direct else f"sqlite:///{tmp_path / 'other.db'}"
    ledger = Ledger(url, direct=direct, recorder=early)
    with ledger.closing():
        assert ledger.recorder is not early
    assert _gone(early.pid)


def test_python_flow_file_run_starts_the_cli(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    shown = subprocess.run(
        [sys.executable, str(path), "show"], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert "start" in shown.stdout and "-> end" in shown.stdout
    run = subprocess.run(
        [sys.executable, str(path), "run", "--no-such-option"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "--no-such-option" in run.stderr  # the recorder is let go
    ran = subprocess.run(
        [sys.executable, str(path), "run"], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert "EntryFlow/1 succeeded" in ran.stdout


def test_a_recorder_left_for_another_database_is_replaced(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_DB_URL", f"sqlite:///{tmp_path / 'first.db'}")
    _entry.fork_recorder()  # a command that never took it, in a process that goes on
    monkeypatch.delenv("SHIPYARD_DB_URL")
    _entry.fork_recorder()
    early = _entry.take_recorder()
    assert early is not None and early.url == settings().db_url
    early.discard()
