"""Runtime behaviour beyond the shape matrix: timeouts, signals, dead runs, scheduling,
isolation, artifacts that cannot be saved, and code loaded back in another process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.client import Run
from shipyard.store.records import RunStatus, TaskStatus
from shipyard.testing import run_flow, write_flow
from support.waiting import wait_for

HEAD = """
import os, subprocess, sys, threading, time
from shipyard import FlowSpec, Parameter, IncludeFile, current, step, retry, catch
from shipyard import timeout, resources, environment
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def shipyard(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "shipyard", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )


def test_timeout_kills_a_hanging_step_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    run = run_flow(
        HEAD
        + f"""
class HangFlow(FlowSpec):
    @timeout(seconds=1)
    @step
    def start(self):
        child = subprocess.Popen(["sleep", "60"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    assert run.status is RunStatus.FAILED
    task = run["start"].task
    assert task.exception["type"] == "TimeoutError"
    assert "@timeout of 1 s" in task.exception["message"]
    child = int(pidfile.read_text())
    wait_for(lambda: not alive(child), "the child to exit", 5)


def test_retry_counts_timeouts_and_catch_takes_the_last_failure(tmp_path: Path) -> None:
    run = run_flow(
        HEAD
        + """
class SlowFlow(FlowSpec):
    @catch(var="failure")
    @retry(times=1, minutes_between_retries=0)
    @timeout(seconds=0.5)
    @step
    def start(self):
        time.sleep(30)
        self.next(self.end)

    @step
    def end(self):
        self.failed_with = self.failure.type
"""
    )
    assert run.successful
    assert run["end"].task.data.failed_with == "TimeoutError"
    attempts = run["start"].task.attempts
    assert [a.status for a in attempts] == [
        TaskStatus.FAILED,
        TaskStatus.FAILED,
        TaskStatus.SUCCEEDED,
    ]


def test_resources_are_honoured_by_the_scheduler(tmp_path: Path) -> None:
    run = run_flow(
        HEAD
        + """
class HeavyFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.work, foreach="items")

    @resources(cpu=2)
    @step
    def work(self):
        self.began = time.time()
        time.sleep(0.3)
        self.ended = time.time()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.spans = sorted((i.began, i.ended) for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        max_workers=2,
    )
    spans = run["end"].task.data.spans
    for (_, end), (begin, _) in zip(spans, spans[1:], strict=False):
        assert begin >= end, spans  # cpu=2 on 2 workers: one at a time


def test_environment_and_current(tmp_path: Path) -> None:
    run = run_flow(
        HEAD
        + """
class EnvFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @environment(vars={"MY_SETTING": "on", "THREADS": 1})
    @step
    def start(self):
        self.setting = os.environ["MY_SETTING"], os.environ["THREADS"]
        self.me = (current.flow_name, current.run_id, current.step_name, current.task_id,
                   current.retry_count, current.parameters)
        self.next(self.end)

    @step
    def end(self):
        self.leaked = os.environ.get("MY_SETTING")
""",
        alpha=2.5,
    )
    task = run["start"].task
    assert task.data.setting == ("on", "1")
    assert task.data.me == ("EnvFlow", run.id, "start", task.id, 0, {"alpha": 2.5})
    assert run["end"].task.data.leaked is None  # only that step's process


def test_unpicklable_artifact_names_attribute_type_and_step() -> None:
    run = run_flow(
        HEAD
        + """
class LockFlow(FlowSpec):
    @step
    def start(self):
        self.lock = threading.Lock()
        self._scratch = threading.Lock()  # underscore: not an artifact, fine
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    error = run["start"].task.exception
    assert run.status is RunStatus.FAILED
    assert "'lock'" in error["message"] and "lock" in error["message"].lower()
    assert "step 'start'" in error["message"] and "_scratch" not in error["message"]


def test_sys_exit_and_missing_next_fail_only_their_task() -> None:
    run = run_flow(
        HEAD
        + """
class ExitFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        sys.exit(3)
        self.next(self.join)

    @step
    def b(self):
        self.done = True
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    assert "sys.exit(3)" in run["a"].task.exception["message"]
    assert run["b"].task.successful


def test_a_foreach_task_loads_only_its_own_item() -> None:
    run = run_flow(
        HEAD
        + """
class ItemFlow(FlowSpec):
    @step
    def start(self):
        self.items = [{"n": i, "payload": "x" * 1000} for i in range(5)]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.n = self.input["n"]
        self.loaded = sorted(self.__dict__["_data"]._values)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.ns = [i.n for i in inputs]
        self.loaded = [i.loaded for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    data = run["join"].task.data
    assert data.ns == [0, 1, 2, 3, 4]
    assert all("items" not in loaded for loaded in data.loaded)


def test_include_file_stores_contents(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n1,2\n")
    run = run_flow(
        HEAD
        + """
class IncludeFlow(FlowSpec):
    data = IncludeFile("data")

    @step
    def start(self):
        self.rows = self.data.splitlines()
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        data=str(csv),
    )
    csv.write_text("changed")
    assert run["end"].task.data.rows == ["a,b", "1,2"]


def test_flow_file_classes_load_in_another_process(tmp_path: Path) -> None:
    path = (
        write_flow(
            HEAD
            + """
class Doubler:
    def __init__(self, k):
        self.k = k

    def predict(self, x):
        return x * self.k


class ModelFlow(FlowSpec):
    @step
    def start(self):
        self.model = Doubler(2)
        self.next(self.end)

    @step
    def end(self):
        pass
""",
            tmp_path / "",
            name="model_flow",
        )
        if (tmp_path / "").exists()
        else None
    )
    assert path is not None
    run = run_flow(path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = path.with_suffix(".moved")
    path.rename(moved)  # the original file is gone: the run's code snapshot must serve
    code = (
        f"from shipyard import Run; m = Run({run.pathspec!r})['end'].task.data.model; "
        "print(type(m).__module__, type(m).__name__, m.predict(21))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    assert out.stdout.split() == [path.stem, "Doubler", "42"]


SLEEPY = (
    HEAD
    + """
class SleepyFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.nap, foreach="items")

    @step
    def nap(self):
        child = subprocess.Popen(["sleep", "60"])
        open(os.path.join(os.environ["PIDS"], f"{os.getpid()}-{child.pid}"), "w").close()
        time.sleep(60)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""
)


def _start_sleepy(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, list[int]]:
    pids = tmp_path / "pids"
    pids.mkdir()
    flow = write_flow(SLEEPY, tmp_path)
    proc = shipyard("run", str(flow), "--max-workers", "2", env={"PIDS": str(pids)})
    wait_for(lambda: len(list(pids.iterdir())) == 2, "two tasks to start", 20)
    procs = [int(p) for name in os.listdir(pids) for p in name.split("-")]
    return proc, flow, procs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_cleanly(sig: int, tmp_path: Path) -> None:
    proc, _, procs = _start_sleepy(tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, (out, err)
    wait_for(lambda: not any(alive(p) for p in procs), "every task process to exit", 5)
    run = Run("SleepyFlow/1")
    assert run.status is RunStatus.KILLED
    assert {t.status for t in run["nap"].tasks()} == {TaskStatus.KILLED}


def test_kill_9_of_the_runtime_leaves_no_orphans_and_a_dead_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_HEARTBEAT_SECONDS", "0.3")
    proc, _, procs = _start_sleepy(tmp_path)
    assert Run("SleepyFlow/1").status is RunStatus.RUNNING
    proc.kill()
    proc.communicate(timeout=10)
    wait_for(lambda: not any(alive(p) for p in procs), "every task process to exit", 5)
    wait_for(lambda: Run("SleepyFlow/1").status is RunStatus.DEAD, "the run to be dead", 10)


def test_two_runs_at_once(tmp_path: Path) -> None:
    flow = write_flow(
        HEAD
        + """
class BusyFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(12))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.sq = self.input ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        tmp_path,
    )
    procs = [shipyard("run", str(flow), "--max-workers", "2") for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, (out, err)
    runs = [Run("BusyFlow/1"), Run("BusyFlow/2")]
    assert [r["end"].task.data.total for r in runs] == [506, 506]


def test_kill_9_of_a_task_mid_write_leaves_no_partial_artifact(tmp_path: Path) -> None:
    from shipyard.config import settings
    from shipyard.store.blobs import open_blob_store
    from shipyard.store.serialize import decode

    pidfile = tmp_path / "task.pid"
    flow = write_flow(
        HEAD
        + f"""
class BigFlow(FlowSpec):
    @step
    def start(self):
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        self.big = os.urandom(300 * 1024 * 1024)
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        tmp_path,
    )
    proc = shipyard("run", str(flow), "--max-workers", "1")
    wait_for(pidfile.exists, "the task to write its pid", 20)
    blobs = Path(settings().store_url.removeprefix("file://"))
    # the artifact is being written once a temporary file grows in the blob store
    wait_for(
        lambda: any(
            p.name.startswith(".") and p.stat().st_size > 1 << 20
            for p in blobs.rglob("*")
            if p.is_file()
        ),
        "a large artifact to be half-written",
        60,
    )
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, (out, err)
    run = Run("BigFlow/1")
    task = run["start"].task
    assert task.status is TaskStatus.FAILED and "SIGKILL" in task.exception["message"]
    assert list(task.artifacts) == []
    store = open_blob_store()
    for key, _ in store.list():  # every visible blob is whole
        assert len(store.get(key)) > 0
        if key != run.code_key:
            decode(store.get(key))


def test_a_result_larger_than_a_pipe_buffer_reaches_the_runtime() -> None:
    # 2,000 artifacts make a result of ~400 KB, several times a pipe's 64 KB: the zygote must
    # drain the report pipe while the task writes it.
    run = run_flow(
        HEAD
        + """
class ManyFlow(FlowSpec):
    @step
    def start(self):
        for i in range(2000):
            setattr(self, f"value_{i:04d}", i)
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(getattr(self, f"value_{i:04d}") for i in range(2000))
"""
    )
    assert run.successful
    assert len(run["start"].task.artifacts) == 2000
    assert run["end"].task.data.total == sum(range(2000))


def test_a_process_left_behind_by_a_step_does_not_hold_the_run(tmp_path: Path) -> None:
    # A forked grandchild inherits the task's report pipe; the task's end is still seen at
    # its exit, not when the grandchild closes the pipe; then the grandchild is killed with
    # what else is left in the task's process group.
    pidfile = tmp_path / "grandchild.pid"
    run = run_flow(
        HEAD
        + f"""
class LeftBehindFlow(FlowSpec):
    @step
    def start(self):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        open({str(pidfile)!r}, "w").write(str(pid))
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    grandchild = int(pidfile.read_text())
    try:
        assert run.successful
        wait_for(lambda: not alive(grandchild), "the grandchild to be killed", 10)
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_a_run_recorded_while_the_store_opened_keeps_its_times_and_ids(tmp_path: Path) -> None:
    # In a fresh interpreter the store opens in a thread (importing SQLAlchemy) while the
    # first steps already run; their rows are written later, with the times they happened.
    flow = write_flow(
        HEAD
        + """
class PacedFlow(FlowSpec):
    @step
    def start(self):
        time.sleep(0.05)
        self.next(self.a)

    @step
    def a(self):
        time.sleep(0.05)
        self.next(self.b)

    @step
    def b(self):
        time.sleep(0.05)
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        tmp_path,
    )
    for _ in range(2):
        proc = shipyard("run", str(flow), "--max-workers", "2")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (out, err)
    first, second = Run("PacedFlow/1"), Run("PacedFlow/2")
    tasks = [first[s].task for s in ("start", "a", "b", "end")]
    assert [t.id for t in tasks] == [1, 2, 3, 4]
    assert [second[s].task.id for s in ("start", "a", "b", "end")] == [5, 6, 7, 8]  # no gap
    for before, after in zip(tasks, tasks[1:], strict=False):
        assert before.finished_at is not None and after.started_at is not None
        assert (before.finished_at - before.started_at).total_seconds() >= 0.04
        assert after.started_at >= before.finished_at
    assert first.created_at <= tasks[0].started_at
    assert first.finished_at is not None and first.finished_at >= tasks[-1].finished_at


def test_small_artifacts_live_in_their_row_and_large_ones_in_the_blob_store(home: Path) -> None:
    run = run_flow(
        HEAD
        + """
class SizesFlow(FlowSpec):
    @step
    def start(self):
        self.small = 41
        self.large = os.urandom(5000)  # does not compress below the inline limit
        self.next(self.end)

    @step
    def end(self):
        self.total = self.small + len(self.large)
"""
    )
    artifacts = run["start"].task.artifacts
    small, large = artifacts["small"].sha, artifacts["large"].sha
    blobs = home / "blobs"
    assert not (blobs / small[:2] / small).exists()
    assert (blobs / large[:2] / large).exists()
    assert run["start"].task.data.small == 41  # read from the row, in another process too
    assert run["end"].task.data.total == 5041  # and handed to the next task


def test_slots_pick_what_fits_in_order_and_clamp_what_never_could() -> None:
    from dataclasses import dataclass

    from shipyard.flow.decorators import TaskOptions
    from shipyard.flow.slots import Slots

    @dataclass
    class Waiting:
        step: str
        not_before: float = 0.0

    @dataclass
    class Holding:
        cpu: int
        memory: int

    notes: list[str] = []
    options = {
        "small": TaskOptions(cpu=1, memory_mb=100),
        "wide": TaskOptions(cpu=8, memory_mb=100),
        "later": TaskOptions(cpu=1, memory_mb=100),
    }
    slots = Slots(3, options, notes.append)
    assert options["wide"].cpu == 3 and "asks for cpu=8" in notes[0]  # clamped, said once
    ready = [Waiting("wide"), Waiting("later", not_before=10.0), Waiting("small")]
    assert [t.step for t, _ in slots.pick(ready, [], now=1.0)] == ["wide"]  # takes all 3
    busy = [Holding(cpu=1, memory=100)]
    assert [t.step for t, _ in slots.pick(ready, busy, now=1.0)] == ["small"]  # wide waits
    assert [t.step for t, _ in slots.pick(ready, busy, now=11.0)] == ["later", "small"]
    hungry = [Holding(cpu=1, memory=slots.memory_total - 50)]
    assert slots.pick(ready, hungry, now=11.0) == []  # no memory left for 100 MB


MODEL_FLOW = """
from shipyard import FlowSpec, current, step
from shipyard.flow.decorators import StepDecorator


class smuggle(StepDecorator):
    '''Slips a registration past the task's checks: only the registry's commit sees it.'''

    name = "smuggle"

    def task_finished(self, ctx, ok):
        ctx.extras["models"].append({"name": "Not A Name", "artifact": "weights"})


class ModelFlow(FlowSpec):
    @smuggle()
    @step
    def start(self):
        self.weights = list(range(300))
        current.register_model("ranker", "weights")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_model_the_registry_refuses_fails_the_task(home: Path) -> None:
    run = run_flow(MODEL_FLOW)
    assert not run.successful
    [attempt] = run["start"].task.attempts
    assert attempt.error["type"] == "ModelSpecError"
    assert "Not A Name" in attempt.error["message"]


def _fill_the_disk_as_weights_are_recorded(home: Path) -> None:
    import sqlite3

    from shipyard.store.bootstrap import IdReserver

    reserver = IdReserver.open(f"sqlite:///{home / 'meta.db'}")  # the schema, as a run makes it
    assert reserver is not None
    reserver.close()
    with sqlite3.connect(home / "meta.db") as conn:  # the disk fills up as the task ends
        conn.execute(
            "CREATE TRIGGER full BEFORE INSERT ON artifacts WHEN NEW.name = 'weights' "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )


def test_a_database_failure_while_registering_is_not_reported_as_the_registrys(
    home: Path,
) -> None:
    import sqlite3

    import sqlalchemy as sa

    from shipyard.flow.recorder import RecorderFailed
    from shipyard.registry import RegistryError
    from shipyard.store.bootstrap import IdReserver

    reserver = IdReserver.open(f"sqlite:///{home / 'meta.db'}")  # the schema, as a run makes it
    assert reserver is not None
    reserver.close()
    _fill_the_disk_as_weights_are_recorded(home)
    flow = MODEL_FLOW.replace("    @smuggle()\n", "")
    with pytest.raises(RecorderFailed, match="database or disk is full") as raised:
        run_flow(flow)
    assert not isinstance(raised.value, RegistryError)
    assert "could not record start/" in str(raised.value)
    assert isinstance(raised.value.__cause__, sa.exc.DBAPIError)
    with sqlite3.connect(home / "meta.db") as conn:  # nothing says the task failed
        assert conn.execute("SELECT status FROM tasks").fetchall() == [("running",)]


def test_the_cli_says_the_database_failed_while_registering(tmp_path: Path, home: Path) -> None:
    _fill_the_disk_as_weights_are_recorded(home)
    flow = write_flow(MODEL_FLOW.replace("    @smuggle()\n", ""), tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "shipyard", "run", str(flow)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "the metadata database could not record start/" in proc.stderr
    assert "database or disk is full" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ModelSpecError" not in proc.stderr + proc.stdout
