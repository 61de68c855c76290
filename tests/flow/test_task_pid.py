"""Each attempt records the process id of its task: while it runs (for ``py-spy`` or
``kill``) and after (to match the kernel's OOM-killer lines), shown by ``shipyard show`` and
the UI's task page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from starlette.testclient import TestClient

from shipyard.cli.main import main
from shipyard.client import Run
from shipyard.keys import Guard, KeyStore
from shipyard.store import context as _stores
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.testing import write_flow
from shipyard.ui import standalone
from support.waiting import wait_for

FLOW = """
import os
import time
from pathlib import Path

from shipyard import FlowSpec, current, retry, step

HERE = Path(__file__).parent


class PidFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @retry(times=1, minutes_between_retries=0)
    @step
    def work(self):
        (HERE / f"pid.{current.retry_count}").write_text(str(os.getpid()))
        if current.retry_count == 0:
            raise RuntimeError("the first attempt fails")
        while not (HERE / "go").exists():  # held until the test has looked
            time.sleep(0.01)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PidFlow()
"""


def test_attempts_record_their_task_pid_while_running_and_after(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, str(path), "run"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:

        def written(path: Path) -> bool:  # created, then written: wait for both
            return path.exists() and path.read_text().strip() != ""

        second = wait_for(lambda: written(tmp_path / "pid.1"), "the second attempt", 30)
        assert second
        first_pid = int((tmp_path / "pid.0").read_text())
        second_pid = int((tmp_path / "pid.1").read_text())

        def running_pids() -> list[int | None] | None:
            _stores.reset()
            task = Run("PidFlow/1")["work"].task
            pids = [a.pid for a in task.attempts]
            return pids if len(pids) == 2 and pids[1] is not None else None

        assert wait_for(running_pids, "the running attempt's pid", 10) == [first_pid, second_pid]
    finally:
        (tmp_path / "go").touch()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    _stores.reset()
    task = Run("PidFlow/1")["work"].task
    assert [a.pid for a in task.attempts] == [first_pid, second_pid]
    shown = CliRunner().invoke(main, ["show", task.pathspec]).output
    rows = [line.split() for line in shown.splitlines() if line[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "1"]
    assert str(first_pid) in rows[0] and str(second_pid) in rows[1], shown
    _stores.reset()
    with MetaStore.open() as meta, KeyStore(meta) as keys:
        app = standalone(meta, open_blob_store(), Guard(keys, bind_host="127.0.0.1"))
        with TestClient(app, client=("127.0.0.1", 1234), base_url="http://127.0.0.1:8002") as ui:
            page = ui.get(f"/ui/runs/{task.pathspec}")
    assert page.status_code == 200, page.text
    assert f"<td>{first_pid}</td>" in page.text and f"<td>{second_pid}</td>" in page.text
