"""Fault: processes a task started outlive it. When a task ends (success or failure), what is
left in its process group is killed; when the runtime is killed -9, its tasks die too, with
their process groups: through the zygote when only the runtime dies, and through
``PR_SET_PDEATHSIG`` when the zygote dies with it (``kill -9`` of the runtime's whole process
group, as a CI cancel or ``timeout -s KILL`` does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.store.records import RunStatus
from shipyard.testing import run_flow, write_flow
from support.waiting import wait_for


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


LEAVER = """
import os, subprocess
from shipyard import FlowSpec, step

class LeaverFlow(FlowSpec):
    @step
    def start(self):
        sleeper = subprocess.Popen(["sleep", "300"])
        pid = os.fork()  # a Python grandchild too, holding the task's report pipe
        if pid == 0:
            import time
            time.sleep(300)
            os._exit(0)
        open(os.environ["PIDS"], "w").write(f"{sleeper.pid} {pid}")
        if os.environ.get("FAIL"):
            raise RuntimeError("the step failed")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize("fail", [False, True], ids=["succeeds", "fails"])
def test_what_a_task_leaves_in_its_process_group_dies_when_it_ends(
    fail: bool, tmp_path: Path, shipyard_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("PIDS", str(pidfile))
    if fail:
        monkeypatch.setenv("FAIL", "1")
    run = run_flow(LEAVER)
    assert run.status is (RunStatus.FAILED if fail else RunStatus.SUCCEEDED)
    left = [int(p) for p in pidfile.read_text().split()]
    try:
        wait_for(lambda: not any(alive(p) for p in left), "the task's leftovers to die", 10)
    finally:
        for pid in left:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


SLEEPY = """
import os, subprocess, time
from shipyard import FlowSpec, step

class NapFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.nap, foreach="items")

    @step
    def nap(self):
        child = subprocess.Popen(["sleep", "300"])
        open(os.path.join(os.environ["PIDS"], f"{os.getpid()}-{child.pid}"), "w").close()
        time.sleep(300)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize("victims", ["runtime", "runtime-and-zygote"])
def test_kill_9_of_the_runtime_takes_its_tasks_and_their_groups(
    victims: str, tmp_path: Path, shipyard_home: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    flow = write_flow(SLEEPY, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "run", str(flow), "--max-workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PIDS": str(pids)},
        start_new_session=True,  # its own process group: the runtime, zygote and recorder
    )
    procs: list[int] = []
    try:
        wait_for(lambda: len(list(pids.iterdir())) == 2, "two tasks to start", 30)
        procs = [int(p) for name in os.listdir(pids) for p in name.split("-")]
        if victims == "runtime":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        wait_for(lambda: not any(alive(p) for p in procs), "every task and its child to die", 10)
    finally:
        for pid in procs:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)


ESCAPER = """
import os, subprocess, time
from shipyard import FlowSpec, step

def wait(condition):
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)

class EscaperFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["escaper", "sibling"]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        sibling = os.path.join(os.environ["PIDS"], "sibling")
        if self.input == "sibling":  # ends once the other task's processes are started
            open(sibling, "w").write(str(os.getpid()))
            wait(lambda: os.path.exists(os.path.join(os.environ["PIDS"], "escaped")))
        else:
            self.escape(sibling)
        self.next(self.join)

    def escape(self, sibling):
        own_group = subprocess.Popen(["sleep", "300"], process_group=0)
        own_session = subprocess.Popen(["sleep", "300"], start_new_session=True)
        # a daemon: double fork, its parent gone at once, in a session of its own
        r, w = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.write(w, str(os.getpid()).encode())
                time.sleep(300)
            os._exit(0)
        pids = [own_group.pid, own_session.pid, int(os.read(r, 100))]
        open(os.path.join(os.environ["PIDS"], "escaped"), "w").write(" ".join(map(str, pids)))
        # the sibling task ends meanwhile: what this task started lives on while it does
        wait(lambda: os.path.exists(sibling))
        wait(lambda: not os.path.exists(f"/proc/{open(sibling).read()}"))
        time.sleep(0.2)  # a margin for the zygote to finish the sibling's end
        assert all(os.path.exists(f"/proc/{p}") for p in pids)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_what_a_task_started_outside_its_group_dies_when_it_ends(
    tmp_path: Path, shipyard_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIDS", str(tmp_path))
    run = run_flow(ESCAPER, max_workers=2)
    assert run.successful, [t.exception for t in run["work"].tasks()]
    left = [int(p) for p in (tmp_path / "escaped").read_text().split()]
    try:
        wait_for(lambda: not any(alive(p) for p in left), "what the task started to die", 10)
    finally:
        for pid in left:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
