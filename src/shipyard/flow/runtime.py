"""The local runtime: decides what runs next, runs it in parallel, records everything.

One process, one loop, no threads: tasks are forked by the zygote (see zygote.py), the loop
waits on the zygote's socket, follows the tasks' log files, enforces timeouts, schedules
retries and @catch fallbacks, keeps the run's heartbeat, and decides every metadata write;
the recorder process applies them (see ledger.py), so the loop never waits for the database.
Resume is the same loop: a task whose step, foreach position and inputs match a successful
task of the origin run is cloned instead of run.
"""

from __future__ import annotations

import functools
import os
import pickle
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.config import Settings, current_user, settings
from shipyard.flow.artifacts import save
from shipyard.flow.decorators import TaskOptions, task_options
from shipyard.flow.environments import launch_task, prepare_environments, pypi_extra
from shipyard.flow.exceptions import StoreRefused
from shipyard.flow.failures import CLUSTER_LOST, exit_error
from shipyard.flow.launch import RunPlan
from shipyard.flow.ledger import Ledger
from shipyard.flow.output import LogTail, RunOutput
from shipyard.flow.recorder import Recorder, RecorderFailed
from shipyard.flow.report import NODE_KEYS, LogKeys, TaskError, TaskResult
from shipyard.flow.resume import ResumePlan
from shipyard.flow.slots import Slots
from shipyard.flow.successors import NewTask, Successors
from shipyard.flow.task import InputSpec, TaskSpec, upload_logs
from shipyard.flow.zygote import Zygote

if TYPE_CHECKING:
    from shipyard.flow.ray_executor import RayExecutor
    from shipyard.flow.ray_watch import ClusterWatch
from shipyard.store.blobs import BlobStore, open_blob_store
from shipyard.store.records import ArtifactRecord, RunStatus, TaskRecord, TaskStatus


@dataclass
class _Task:
    task_id: int
    step: str
    stack: list[dict[str, Any]]
    inputs: list[int]
    foreach_item: ArtifactRecord | None = None
    index: int | None = None
    attempt: int = 0
    not_before: float = 0.0
    caught_error: TaskError | None = None


@dataclass
class _Running:
    task: _Task
    started: float
    deadline: float | None
    tails: tuple[LogTail, LogTail]
    cpu: int
    memory: int
    pid: int | None = None
    timed_out: bool = False


class Runtime:
    """Execute a :class:`RunPlan`. ``run()`` returns the run id; see ``.status``.
    ``recorder``: one forked before the flow loaded (``shipyard._entry``), to use."""

    def __init__(
        self, plan: RunPlan, config: Settings | None = None, *, recorder: Recorder | None = None
    ) -> None:
        self.plan = plan
        self._early_recorder = recorder
        self.graph = plan.graph
        self.config = config or settings()
        self.max_workers = plan.max_workers or os.cpu_count() or 1
        self.options: dict[str, TaskOptions] = {n.name: task_options(n) for n in self.graph}
        self.out = RunOutput(quiet=plan.quiet)
        self.status = RunStatus.RUNNING
        self._interrupted: int | None = None
        self.ready: deque[_Task] = deque()
        self.running: dict[int, _Running] = {}
        self.launched: list[tuple[int, TaskSpec]] = []  # started in the DB, not yet forked
        self.completed: deque[int] = deque()
        self.outputs: dict[int, dict[str, ArtifactRecord]] = {}
        self.results: dict[int, dict[str, Any]] = {}
        self.task_info: dict[int, _Task] = {}
        self.successors = Successors(self.graph)
        self.resume: ResumePlan | None = None
        self.bars: dict[str, list[int]] = {}
        self.failed_tasks: list[str] = []
        self.log_dirs: dict[int, str] = {}
        self.on_run_id: Callable[[int], None] | None = None  # told the id once it is known
        self.registered: list[str] = []
        self.slots = Slots(self.max_workers, self.options, self.out.line)
        self.watch: ClusterWatch | None = None  # --executor ray: is the cluster still there?
        self.lost: str | None = None  # why the cluster is gone, once it is

    def run(self) -> int:
        # @pypi environments before anything: a pip failure fails the run before it exists
        self.pythons = prepare_environments(
            self.graph, self.config.home, self.plan.pypi_find_links, self.out.line
        )
        # Fork the zygote first: nothing below (database, threads, progress bars) may leak
        # in, and it stays small (SQLAlchemy is imported after it), so forks and exits of
        # tasks are cheap. It has imported what every task needs, the blob store included.
        self.store: BlobStore = open_blob_store(self.config.store_url)
        # The recorder (see ledger.py) first: it imports SQLAlchemy while we go on.
        self.ledger = Ledger(
            self.config.db_url, direct=self.plan.origin is not None, recorder=self._early_recorder
        )
        self.zygote: Zygote | RayExecutor | None = None
        if self.plan.executor == "local":
            self.zygote = Zygote(
                functools.partial(launch_task, self.plan.flow_cls, self.graph),
                close_in_child=self.ledger.sockets,
            )
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            with self.ledger.closing():
                self.ledger.bootstrap()
                self.run_id = self._create_run()
                if self.zygote is None:  # --executor ray: needs the run's code snapshot
                    self.zygote = self._ray_executor()
                self._loop()
            return self.run_id
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.out.close()
            if self.watch is not None:
                self.watch.stop()
            if self.zygote is not None:
                self.zygote.close()

    @property
    def _tasks(self) -> Zygote | RayExecutor:
        """What starts the tasks: the zygote, or Ray (set before the loop starts)."""
        assert self.zygote is not None
        return self.zygote

    def _ray_executor(self) -> RayExecutor:
        """Connect to (or start) Ray; a failure fails the run, with its cause."""
        from shipyard.flow.ray_executor import RayExecutor, RayExecutorError

        try:
            executor = RayExecutor(
                code_key=self.code_key,
                flow_name=self.graph.flow_name,
                decospecs=self.plan.decospecs,
                options=self.options,
                address=self.plan.ray_address,
                store_url=self.config.store_url,
            )
        except RayExecutorError:
            self.ledger.write("finish_run", self.run_id, RunStatus.FAILED)
            self.status = RunStatus.FAILED
            raise
        self.watch = _watch_cluster(self.plan.ray_address)
        return executor

    def _create_run(self) -> int:
        from shipyard.store.code import pack_code

        code = pack_code(self.plan.source_file, self.plan.module)
        import hashlib

        code_key = self.code_key = hashlib.sha256(code).hexdigest()
        try:
            self.store.put(code_key, [code])
            self.param_records = {
                attr: save(self.store, attr, value) for attr, value in self.plan.params.items()
            }
        except OSError as exc:  # before the run exists: nothing to record, say why
            raise StoreRefused("the run's code snapshot and parameters", exc) from None
        origin = self.plan.origin
        fields: dict[str, Any] = {
            "user": current_user(),
            "params": self.plan.param_display,
            "tags": self.plan.tags,
            "graph": {**self.graph.to_json(self.plan.module), "with": self.plan.decospecs},
            "code_key": code_key,
            "origin_run_id": origin.run_id if origin else None,
        }
        if self.plan.trigger is not None:
            fields["trigger"] = self.plan.trigger
        run_id = self.ledger.run_id()
        if run_id is None:
            run_id = self.ledger.store().create_run(self.graph.flow_name, **fields)
        else:
            self.ledger.write("create_run", self.graph.flow_name, **fields, run_id=run_id)
        self.logs_root = self.config.home / "logs" / self.graph.flow_name / str(run_id)
        self.logs_root.mkdir(parents=True, exist_ok=True)
        if self.on_run_id is not None:
            # whoever is told the id (Runner, --detach) reads the run at once: it must be
            # committed first, not still on its way through the recorder
            self.ledger.store()
            self.on_run_id(run_id)
        if origin is not None:
            self.resume = ResumePlan(
                self.graph, self.ledger.store().list_tasks(origin.run_id), self.plan.resume_step
            )
            self.out.line(
                f"[bold]{self.graph.flow_name}/{run_id}[/] resuming {origin.pathspec} "
                f"({self.max_workers} workers)"
            )
        else:
            self.out.line(
                f"[bold]{self.graph.flow_name}/{run_id}[/] started "
                f"({self.plan.source_file.name}, {self.max_workers} workers)"
            )
        self.next_heartbeat = time.monotonic() + self.config.heartbeat_seconds
        return run_id

    # -- the loop -------------------------------------------------------------------------
    def _loop(self) -> None:
        self._advance([], begin=True)
        selector = selectors.DefaultSelector()
        selector.register(self._tasks.sock, selectors.EVENT_READ, "zygote")
        if self.ledger.recorder is not None:  # it only ever speaks to say it failed
            selector.register(self.ledger.recorder.sock, selectors.EVENT_READ, "recorder")
        while True:
            if self._interrupted is not None:
                self._shutdown(RunStatus.KILLED)
                return
            if not self.running and (self.failed_tasks or not self.ready):
                break
            messages: list[tuple[Any, ...]] = []
            for key, _ in selector.select(self._wait_time()):
                if key.data == "zygote":
                    messages = self._tasks.receive()
                elif self.ledger.recorder is not None:
                    self.ledger.recorder.check()
            self._advance(messages)
            if self.watch is not None and self.watch.lost:
                self._cluster_lost(self.watch)
                break
            self._tail_logs()
            self._check_timeouts()
            if time.monotonic() >= self.next_heartbeat:
                self.ledger.write("heartbeat", self.run_id)
                self.next_heartbeat = time.monotonic() + self.config.heartbeat_seconds
        self._finish()

    def _advance(self, messages: list[tuple[Any, ...]], *, begin: bool = False) -> None:
        """Record what the messages say ended, create the tasks that follow and start what
        can run (one transaction); then fork the tasks whose start is recorded."""
        with self.ledger.transaction():
            if begin:
                self._create_many([("start", [], [], None)])
            for message in messages:
                self._on_message(message)
            while self.completed:
                self._on_success(self.completed.popleft())
            self._launch_ready()
        self.ledger.send()
        self._spawn_launched()

    def _wait_time(self) -> float:
        waits = [0.1 if self.running else 1.0, self.next_heartbeat - time.monotonic()]
        if self.ready and not self.running:
            waits.append(min(t.not_before for t in self.ready) - time.monotonic())
        return max(0.0, min(waits))

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._interrupted = signum

    # -- creating tasks -------------------------------------------------------------------
    def _create_many(self, items: Sequence[NewTask]) -> None:
        """Create tasks (a foreach's fan-out in one transaction); on resume, clone those
        the origin run already did with the same inputs instead."""
        clones: list[tuple[_Task, TaskRecord]] = []
        fresh: list[_Task] = []
        for step, stack, inputs, item in items:
            index = int(stack[-1]["index"]) if stack else None
            task = _Task(0, step, stack, inputs, item, index)
            origin = self.resume.candidate(step, stack, inputs) if self.resume else None
            if origin is None:
                fresh.append(task)
            else:
                clones.append((task, origin))
        if clones:
            meta = self.ledger.store()  # resume: the store opened first
            cloned = meta.clone_tasks(
                self.run_id, [(origin.task_id, task.inputs) for task, origin in clones]
            )
            for task_id, (task, origin) in zip(cloned, clones, strict=True):
                task.task_id = task_id
                assert self.resume is not None
                self.resume.origin_of[task_id] = origin.task_id
                self.task_info[task_id] = task
                self.outputs[task_id] = {a.name: a for a in meta.list_artifacts(task_id)}
                self.results[task_id] = dict(origin.result)
                self.completed.append(task_id)
                self._report_success(task, None)
        if fresh:
            # live logs are named by creation order (on PostgreSQL the ids come with the
            # insert), one directory per run (records.live_log): no directory per task
            first = len(self.task_info)
            log_dirs = [str(self.logs_root / f"{t.step}.{first + i}") for i, t in enumerate(fresh)]
            rows = [(t.step, t.stack, t.inputs, d) for t, d in zip(fresh, log_dirs, strict=True)]
            ids = self.ledger.task_ids(len(rows))
            if ids is None:
                ids = self.ledger.store().create_tasks(self.run_id, rows)
            else:
                self.ledger.write("create_tasks", self.run_id, rows, task_ids=ids)
            for task_id, task, log_dir in zip(ids, fresh, log_dirs, strict=True):
                task.task_id = task_id
                self.task_info[task_id] = task
                self.log_dirs[task_id] = log_dir
                self.ready.append(task)

    def _on_success(self, task_id: int) -> None:
        task = self.task_info[task_id]
        new = self.successors.after(task_id, task.step, task.stack, self.results[task_id])
        if self.graph[task.step].foreach is not None:
            target = self.graph[task.step].out[0]
            bar = self.bars.setdefault(target, [0, 0])
            bar[1] += len(new)
            self.out.foreach_started(target, bar[1])
        self._create_many(new)

    # -- launching ------------------------------------------------------------------------
    def _launch_ready(self) -> None:
        if self.failed_tasks or not self.ready:
            return
        for task, opts in self.slots.pick(self.ready, self.running.values(), time.monotonic()):
            self.ready.remove(task)
            self._start(task, opts)

    def _start(self, task: _Task, opts: TaskOptions) -> None:
        spec = TaskSpec(
            flow_name=self.graph.flow_name,
            run_id=self.run_id,
            task_id=task.task_id,
            step_name=task.step,
            attempt=task.attempt,
            store_url=self.config.store_url,
            inputs=self._input_specs(task),
            param_names=list(self.param_records),
            log_dir=self.log_dirs[task.task_id],
            foreach_item=task.foreach_item,
            index=task.index,
            origin_run_id=self.plan.origin.run_id if self.plan.origin else None,
            caught_error=task.caught_error,
            catch_var=opts.catch_var,
        )
        python = self.pythons.get(task.step)
        if python is not None:  # @pypi: started with its environment's python
            spec.extra["pypi"] = pypi_extra(
                self.plan.source_file, self.graph.flow_name, self.plan.decospecs, python
            )
        self.ledger.write("start_attempt", task.task_id, task.attempt, pid=None)
        now = time.monotonic()
        self.running[task.task_id] = _Running(
            task=task,
            started=now,
            deadline=now + opts.timeout_seconds if opts.timeout_seconds else None,
            tails=(LogTail(spec.path("out")), LogTail(spec.path("err"))),
            cpu=opts.cpu,
            memory=opts.memory_mb,
        )
        self.launched.append((task.task_id, spec))

    def _spawn_launched(self) -> None:
        """Fork the tasks whose start is now recorded (or sent to the recorder)."""
        for task_id, spec in self.launched:
            self._tasks.spawn(task_id, spec)
        self.launched.clear()

    def _input_specs(self, task: _Task) -> list[InputSpec]:
        if not task.inputs:
            return [InputSpec("_parameters", 0, None, dict(self.param_records))]
        return [
            InputSpec(self.task_info[i].step, i, self.task_info[i].index, self.outputs[i])
            for i in task.inputs
        ]

    # -- tasks ending ---------------------------------------------------------------------
    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind, task_id = message[0], message[1]
        running = self.running.get(task_id)
        if running is None:
            return
        if kind == "started":
            running.pid = message[2]
            self.ledger.write("record_pid", task_id, running.task.attempt, message[2])
        elif kind == "exited":
            running.pid = message[2]
            self._on_exit(running, int(message[3]), message[4])

    def _on_exit(self, running: _Running, exitcode: int, report: bytes) -> None:
        """A task process ended: record the attempt, then go on, retry, catch or fail."""
        task = running.task
        del self.running[task.task_id]
        self._tail(running, final=True)
        result = self._read_result(running, exitcode, report)
        logs: LogKeys = {
            "stdout_key": result.get("stdout_key"),
            "stderr_key": result.get("stderr_key"),
        }
        if result["ok"]:
            result = self._succeeded(running, result, logs)
        if not result["ok"]:
            error = result["error"]
            if self._lost_with(result, running):  # the whole cluster went: say that
                error = {
                    "type": CLUSTER_LOST,
                    "message": f"{self.watch.message()} ({error['type']}: {error['message']})"
                    if self.watch is not None
                    else error["message"],
                    "traceback": "",
                }
            for name in NODE_KEYS:  # --executor ray: where it failed, when the task said
                if result.get(name) and name not in error:
                    error[name] = result[name]  # type: ignore[literal-required]
            self._failed(task, error, logs)
        stored = (logs["stdout_key"], logs["stderr_key"])
        for tail, key in zip(running.tails, stored, strict=True):
            tail.close()
            if key is not None:  # else empty (the task removed it) or the store refused it
                tail.path.unlink(missing_ok=True)

    def _read_result(self, running: _Running, exitcode: int, report: bytes) -> TaskResult:
        """What the task reported, or why it could not (crash, signal, timeout)."""
        try:
            result: TaskResult = pickle.loads(report)
        except Exception:  # noqa: BLE001 - nothing, or cut short: the task died first
            result = {"ok": False, "error": exit_error(exitcode)}
            try:
                result = {**result, **self._upload_logs(running.task)}
            except Exception as exc:  # noqa: BLE001 - the task failed already; say, go on
                # (StoreRefused from a file:// store; an S3 store's own errors as they are)
                self.out.line(f"[yellow]{running.task.step}/{running.task.task_id}[/]: {exc}")
        if running.timed_out:
            limit = self.options[running.task.step].timeout_seconds
            result["ok"], result["error"] = False, exit_error(exitcode, timeout_seconds=limit)
        return result

    def _succeeded(self, running: _Running, result: TaskResult, logs: LogKeys) -> TaskResult:
        """Record a successful attempt (and the models it registered, in one transaction);
        returns a failure result instead if the registry refused them."""
        task = running.task
        artifacts = [ArtifactRecord(**a) for a in result["artifacts"]]
        keep: dict[str, Any] = {
            "foreach": result.get("foreach"),
            "duration": result.get("duration"),
        }
        for key in NODE_KEYS:  # --executor ray: the Ray node the attempt ran on
            if result.get(key):
                keep[key] = result[key]  # type: ignore[literal-required]
        cards = result.get("extras", {}).get("cards")
        if cards:  # rendered by @card in the task: [{"id", "type", "key", ...}]
            keep["cards"] = cards
        register = self._register_models(task, artifacts, result)
        finish: dict[str, Any] = {
            "status": TaskStatus.SUCCEEDED,
            "artifacts": artifacts,
            "result": keep,
            **logs,
        }
        if register is None:
            self.ledger.write("finish_attempt", task.task_id, task.attempt, **finish)
        else:  # the registry may refuse: know it now, before anything follows the task
            from sqlalchemy.exc import SQLAlchemyError

            from shipyard.registry import RegistryError

            meta = self.ledger.store()
            try:
                meta.finish_attempt(task.task_id, task.attempt, **finish, also=register)
            except RegistryError as exc:  # the task fails, nothing recorded
                self.registered.clear()
                return {
                    "ok": False,
                    "error": {"type": type(exc).__name__, "message": str(exc), "traceback": ""},
                }
            except SQLAlchemyError as exc:  # the database's failure, not the user's: stop
                raise RecorderFailed(
                    f"the metadata database could not record {task.step}/{task.task_id}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        for model in self.registered:
            self.out.line(f"[green]{task.step}/{task.task_id}[/] registered the model {model}")
        self.registered.clear()
        self.outputs[task.task_id] = {a.name: a for a in artifacts}
        self.results[task.task_id] = keep
        self._report_success(task, time.monotonic() - running.started)
        self.completed.append(task.task_id)
        return result

    def _failed(self, task: _Task, error: TaskError, logs: LogKeys) -> None:
        """Record a failed attempt, then schedule a retry, the @catch attempt, or stop."""
        opts = self.options[task.step]
        prefix = f"{task.step}/{task.task_id}"
        lost = self.watch is not None and self.watch.lost  # nowhere to retry or go on
        retry = task.attempt + 1 < opts.max_attempts and task.caught_error is None and not lost
        catch = not retry and opts.catch_var is not None and task.caught_error is None
        catch = catch and not lost
        self.ledger.write(
            "finish_attempt",
            task.task_id,
            task.attempt,
            status=TaskStatus.FAILED,
            error=error,
            final=not (retry or catch),
            **logs,
        )
        self.out.line(
            f"[red]{prefix} failed[/] (attempt {task.attempt + 1}): "
            f"{error['type']}: {error['message']}"
        )
        if not (retry or catch):
            self.failed_tasks.append(prefix)
            return
        task.attempt += 1
        task.not_before = time.monotonic() + (opts.retry_delay_seconds if retry else 0)
        if catch:
            task.caught_error = error
            self.out.line(f"{prefix}: @catch stores the failure and the flow goes on")
        else:
            delay = f" in {opts.retry_delay_seconds:g} s" if opts.retry_delay_seconds else ""
            self.out.line(
                f"{prefix}: retrying (attempt {task.attempt + 1} of {opts.max_attempts}){delay}"
            )
        self.ready.appendleft(task)

    def _register_models(
        self, task: _Task, artifacts: list[ArtifactRecord], result: TaskResult
    ) -> Callable[[Any], None] | None:
        """The registry's commit of the models the task registered, to run inside the
        transaction that records the task's success."""
        intents = result.get("extras", {}).get("models") or []
        if not intents:
            return None
        from shipyard.registry import commit

        def write(conn: Any) -> None:
            added = commit(
                conn,
                intents,
                artifacts={a.name: a for a in artifacts},
                flow_name=self.graph.flow_name,
                run_id=self.run_id,
                step_name=task.step,
                task_id=task.task_id,
                user=current_user(),
            )
            self.registered.extend(f"{name}:{version}" for name, version in added)

        return write

    def _report_success(self, task: _Task, seconds: float | None) -> None:
        """``seconds`` is None for a task reused from the origin run."""
        bar = self.bars.get(task.step)
        if bar is not None:
            bar[0] += 1
            self.out.foreach_advanced(task.step, bar[0], bar[1])
        elif seconds is None:
            self.out.line(f"[green]{task.step}/{task.task_id}[/] reused from the origin run")
        else:
            self.out.line(f"[green]{task.step}/{task.task_id}[/] done in {seconds:.2f} s")

    def _upload_logs(self, task: _Task) -> LogKeys:
        spec = TaskSpec(
            flow_name="",
            run_id=0,
            task_id=task.task_id,
            step_name=task.step,
            attempt=task.attempt,
            store_url="",
            inputs=[],
            param_names=[],
            log_dir=self.log_dirs[task.task_id],
        )
        return upload_logs(self.store, spec)

    # -- while running --------------------------------------------------------------------
    def _tail_logs(self) -> None:
        for running in self.running.values():
            self._tail(running)

    def _tail(self, running: _Running, final: bool = False) -> None:
        prefix = f"{running.task.step}/{running.task.task_id}"
        for tail, err in ((running.tails[0], False), (running.tails[1], True)):
            for line in tail.read(final=final):
                self.out.task_line(prefix, line, err=err)

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for running in self.running.values():
            if running.deadline is not None and now > running.deadline and not running.timed_out:
                if running.pid is not None:
                    running.timed_out = True
                    _kill_group(running.pid, signal.SIGKILL)
                elif not isinstance(self._tasks, Zygote):  # a Ray task: cancel it
                    running.timed_out = True
                    self._tasks.cancel(running.task.task_id)

    def _lost_with(self, result: TaskResult, running: _Running) -> bool:
        """A Ray attempt that ended without the task's own report (no ``node``: Ray's
        failure, not the step's): is the whole cluster gone? (probes for a few seconds)"""
        if self.watch is None or result.get("node") or running.timed_out:
            return False
        return self.watch.confirm_lost()

    def _cluster_lost(self, watch: ClusterWatch) -> None:
        """The cluster is gone: the attempts still running failed with that cause, nothing
        more starts, and the run fails (``_finish``) — resumable on another cluster."""
        error: TaskError = {"type": CLUSTER_LOST, "message": watch.message(), "traceback": ""}
        self.out.line(f"[bold red]{CLUSTER_LOST}[/]: {watch.message()}")
        with self.ledger.transaction():
            for running in list(self.running.values()):
                task = running.task
                del self.running[task.task_id]
                for tail in running.tails:
                    tail.close()
                self.ledger.write(
                    "finish_attempt", task.task_id, task.attempt, status=TaskStatus.FAILED,
                    error=error, final=True,
                )  # fmt: skip
                self.failed_tasks.append(f"{task.step}/{task.task_id}")
        self.ledger.send()
        for task in self.ready:  # a retry waiting for its turn: its last attempt failed
            if task.attempt > 0:
                self.failed_tasks.append(f"{task.step}/{task.task_id}")
        self.ready.clear()
        self.lost = watch.message()

    # -- ending ---------------------------------------------------------------------------
    def _shutdown(self, status: RunStatus) -> None:
        self.out.line(
            f"[yellow]interrupted ({signal.Signals(self._interrupted or 2).name}): "
            "stopping every task[/]"
        )
        stopping = list(self.running.values())
        for running in self.running.values():
            if running.pid is not None:
                _kill_group(running.pid, signal.SIGTERM)
            elif not isinstance(self._tasks, Zygote):  # a Ray task: cancel it
                self._tasks.cancel(running.task.task_id)
        deadline = time.monotonic() + 3
        with selectors.DefaultSelector() as selector:
            selector.register(self._tasks.sock, selectors.EVENT_READ)
            while self.running and time.monotonic() < deadline:
                if selector.select(timeout=0.1):
                    for message in self._tasks.receive():
                        if message[0] == "exited":
                            self.running.pop(message[1], None)
        for running in self.running.values():
            if running.pid is not None:
                _kill_group(running.pid, signal.SIGKILL)
        for running in stopping:
            for tail in running.tails:
                tail.close()
        self.ledger.write("kill_unfinished_tasks", self.run_id)
        self.ledger.write("finish_run", self.run_id, status)
        self.status = status
        self.out.close()
        self.out.line(f"[yellow]{self.graph.flow_name}/{self.run_id} killed[/]")

    def _finish(self) -> None:
        self.out.close()
        ok = not self.failed_tasks and self.lost is None
        self.status = RunStatus.SUCCEEDED if ok else RunStatus.FAILED
        if not ok:
            self.ledger.write("kill_unfinished_tasks", self.run_id)
        self.ledger.write("finish_run", self.run_id, self.status)
        pathspec = f"{self.graph.flow_name}/{self.run_id}"
        if self.resume is not None and self.plan.origin is not None:
            steps = {task_id: task.step for task_id, task in self.task_info.items()}
            reused = self.resume.summary(steps, self.plan.origin.pathspec)
            if reused:
                self.out.line(f"[green]{reused}[/]")
        if ok:
            self.out.line(f"[bold green]{pathspec} succeeded[/]")
        elif self.lost is not None:
            where = f" ({', '.join(self.failed_tasks)} did not finish)" if self.failed_tasks else ""
            self.out.line(
                f"[bold red]{pathspec} failed[/]: {CLUSTER_LOST}{where}\n"
                f"  resume it on another cluster: shipyard resume {pathspec} --executor ray "
                "--ray-address "
                "HOST:PORT\n"
                f"  or here: shipyard resume {pathspec} --executor local"
            )
        else:
            self.out.line(
                f"[bold red]{pathspec} failed[/] in {', '.join(self.failed_tasks)}\n"
                f"  see the logs: shipyard logs {pathspec}/{self.failed_tasks[0]}\n"
                f"  fix and resume: shipyard resume {pathspec}"
            )
        _remove_empty_dirs(self.logs_root)


def _watch_cluster(address: str | None) -> ClusterWatch | None:
    """Watch the GCS of the cluster Ray is connected to (None if Ray cannot say where)."""
    import ray
    from shipyard.flow.ray_watch import ClusterWatch

    try:
        gcs = ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - no watch: Ray's own errors still end the attempts
        return None
    return ClusterWatch(gcs, address or f"{gcs} (a local Ray)")


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _remove_empty_dirs(root: Path) -> None:
    if not root.exists():
        return
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            try:
                path.rmdir()
            except OSError:
                pass
    try:
        root.rmdir()
    except OSError:
        pass
