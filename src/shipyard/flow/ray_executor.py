"""``--executor ray``: each task attempt runs as a Ray task instead of a forked process.

:class:`RayExecutor` has the zygote's face (``sock``, ``spawn``, ``receive``, ``close``), so
the runtime's loop, its ledger and every metadata write stay as they are: the runtime is the
one writer of metadata, the Ray task only reads its inputs from the run's blob store, writes
its artifacts there and returns its result record (the bytes a forked task writes to its
report pipe).

The Ray task imports the flow from the run's **code snapshot** (``run.code_key`` in the blob
store), extracted once per node by content hash under ``<tmp>/shipyard-ray/code/<key>``;
before importing, it drops from ``sys.modules`` every module loaded from another snapshot,
so a warm worker never serves a stale flow module.

**Before the first task** (an existing cluster): every live node must run this machine's
Python (major.minor), Ray and shipyard (one tiny task pinned to each node), and a
``file://`` store is refused if a node is on another machine (ray_checks.py).

**Logs** (ray_node.py): the attempt writes them to a node-local directory and streams them
to the blob store in numbered chunks every second; the wait thread here appends the chunks
to the runtime's live log file of the attempt, and completes it from the stored log (or
the post-mortem) when the attempt ends.

**Failures**: an attempt that did not report gets a record made here, with a named cause
(failures.py): Ray's exception, plus — after a crashed worker — what a post-mortem task on
the attempt's node found (``os._exit`` status, faulthandler's signal, the memory cgroup's
OOM kills), and the last lines of the log. ``@timeout`` or Ctrl-C cancel the Ray task.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import socket
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

from shipyard.flow import ray_node
from shipyard.flow.exceptions import FlowError
from shipyard.flow.failures import (
    SNAPSHOT_IMPORT,
    Evidence,
    log_tail,
    node_of,
    ray_failure,
    with_log_tail,
)
from shipyard.flow.ray_attempts import (
    LOOK_MAX,
    PROBE_SECONDS,
    Attempt,
    alive_nodes,
    append_chunks,
    check_cluster,
    drop_chunks,
    node_label,
)
from shipyard.flow.ray_node import NODE_HOME, SUFFIXES
from shipyard.store.blobs import BlobNotFound, BlobStore, open_blob_store

if TYPE_CHECKING:
    from shipyard.flow.decorators import TaskOptions
    from shipyard.flow.report import TaskResult
    from shipyard.flow.task import TaskSpec

#: the most attempts whose live logs one sync looks at
LOOKS_PER_SYNC = 32


class RayExecutorError(FlowError):
    """Ray could not be started or reached; the message says which and the fix."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayExecutorError(
            "--executor ray needs Ray, which is not installed; "
            "install it with: pip install 'shipyard[ray]'"
        ) from None
    return ray


def ray_task_options(opts: TaskOptions) -> dict[str, Any]:
    """Ray's options for one step's tasks: ``@resources`` first, ``@ray_options`` over it."""
    options: dict[str, Any] = {"num_cpus": opts.cpu, "max_retries": 0}
    if opts.memory_mb:
        options["memory"] = opts.memory_mb * 2**20
    if opts.gpu:
        options["num_gpus"] = opts.gpu
    options.update(opts.ray_options or {})
    return options


class RayExecutor:
    """Submits task attempts to Ray; tells the runtime of their ends over a socketpair.

    ``address``: an existing cluster's (``host:port``); None starts a local Ray for this
    run, stopped by :meth:`close`. Before anything runs, a cluster's nodes are checked:
    the same Python, Ray and shipyard as here, and a blob store (``store_url``) they can
    all reach; either failure raises :class:`RayExecutorError` with both sides or the fix."""

    def __init__(
        self,
        *,
        code_key: str,
        flow_name: str,
        decospecs: list[str],
        options: dict[str, TaskOptions],
        address: str | None,
        store_url: str | None = None,
    ) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray = _ray()
        self.code_key, self.flow_name, self.decospecs = code_key, flow_name, decospecs
        self.options = options
        if store_url is None:
            from shipyard.config import settings

            store_url = settings().store_url
        self.store: BlobStore = open_blob_store(store_url)
        self.node_versions: dict[str, dict[str, str]] = {}  # node label -> its versions
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="WARNING")
            else:
                ray.init(
                    address="local",  # a new Ray: never one /tmp/ray or RAY_ADDRESS names
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="WARNING",
                    _node_ip_address="127.0.0.1",
                )
        except Exception as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise RayExecutorError(
                f"--executor ray: could not start or reach {where}: {type(exc).__name__}: {exc}"
                + ("; check the address (--ray-address / SHIPYARD_RAY_ADDRESS)" if address else "")
            ) from exc
        try:
            if address:  # a Ray this process started runs its Python, Ray and shipyard
                problem, self.node_versions = check_cluster(address, store_url)
                if problem:
                    raise RayExecutorError(f"--executor ray: {problem}")
        except BaseException:
            ray.shutdown()
            raise
        self._remote = ray.remote(_run_attempt)
        # what a forked task inherits from the runtime's process, given to each Ray task:
        # current.trigger (why the run runs) and current's @project names
        from shipyard.flow import project, trigger

        self._context = (trigger.active(), project.active())
        self._remotes: dict[str, Any] = {}  # step name -> the remote with its options
        self.sock, self._wake = socket.socketpair()
        self._lock = threading.Lock()
        self._pending: dict[Any, int] = {}  # ObjectRef -> token
        self._attempts: dict[int, Attempt] = {}
        self._done: list[tuple[Any, ...]] = []
        self._ready: queue.SimpleQueue[Any] = queue.SimpleQueue()  # ended ObjectRefs
        self._closing = False
        self._next_sync = 0.0
        self._thread = threading.Thread(target=self._wait_loop, name="ray-wait", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self.sock.fileno()

    def spawn(self, token: int, spec: TaskSpec) -> None:
        remote = self._remotes.get(spec.step_name)
        if remote is None:  # once per step: Ray validates the options on every .options()
            opts = ray_task_options(self.options[spec.step_name])
            remote = self._remotes[spec.step_name] = self._remote.options(**opts)
        ref = remote.remote(spec, self.code_key, self.flow_name, self.decospecs, self._context)
        with self._lock:
            self._pending[ref] = token
            self._attempts[token] = Attempt(spec, ref)
        # Ray calls back (from its own thread) when the task's result is there: the wait
        # thread is woken per ended task instead of polling (see _wait_loop)
        ref.future().add_done_callback(lambda _: self._ready.put(ref))

    def cancel(self, token: int) -> None:
        """Stop the attempt ``token`` (a timeout, Ctrl-C): Ray kills the worker running
        it, and its end is reported as any other, as a failure."""
        with self._lock:
            refs = [ref for ref, t in self._pending.items() if t == token]
        for ref in refs:
            try:
                _ray().cancel(ref, force=True)
            except Exception:  # noqa: BLE001, S110 - it ended already
                pass

    def receive(self) -> list[tuple[Any, ...]]:
        """Messages available now: ``("exited", token, None, exitcode, report)``."""
        self.sock.recv(1 << 16)
        with self._lock:
            done, self._done = self._done, []
        return done

    def _wait_loop(self) -> None:
        while not self._closing:
            # Not ray.wait(pending, timeout=...): a task spawned while it waits is not
            # among what it waits for, and an empty pending list slept 50 ms; both held up
            # the next task by tens of ms each time (bench/ray.py, BENCHMARKS.md).
            try:
                ready = [self._ready.get(timeout=0.1)]
            except queue.Empty:
                ready = []  # nothing ended: the live logs may still have grown
            for ref in ready:
                with self._lock:
                    token = self._pending.get(ref)
                    if token is None:  # reported already (a callback for a closed run)
                        continue
                    attempt = self._attempts[token]
                code, report = self._ended(attempt)
                with self._lock:
                    del self._pending[ref], self._attempts[token]
                    self._done.append(("exited", token, None, code, report))
                self._wake.send(b"x")
            if time.monotonic() >= self._next_sync:
                self._sync_logs()

    # -- logs -----------------------------------------------------------------------------
    def _sync_logs(self) -> None:
        """Append the chunks the running attempts streamed to their live log files here
        (at most LOOKS_PER_SYNC attempts a time, those due first: a big foreach queued in
        Ray costs the store a bounded number of reads)."""
        self._next_sync = time.monotonic() + ray_node.STREAM_SECONDS / 2
        now = time.monotonic()
        with self._lock:
            due = [a for a in self._attempts.values() if a.next_look <= now]
        due.sort(key=lambda a: a.next_look)
        for attempt in due[:LOOKS_PER_SYNC]:
            try:
                found = append_chunks(self.store, attempt)
            except Exception:  # noqa: BLE001 - the store's hiccup: next time
                found = False
            attempt.wait = 1.0 if found else min(LOOK_MAX, attempt.wait * 2)
            attempt.next_look = time.monotonic() + attempt.wait

    def _finish_logs(self, attempt: Attempt, result: TaskResult) -> None:
        for suffix, key in (("out", result.get("stdout_key")), ("err", result.get("stderr_key"))):
            if key:
                try:
                    attempt.complete(suffix, bytes(self.store.get(key)))
                except (BlobNotFound, OSError):
                    pass
        drop_chunks(self.store, attempt)

    # -- an attempt ended -----------------------------------------------------------------
    def _ended(self, attempt: Attempt) -> tuple[int, bytes]:
        """The attempt's exit code and report; for a Ray failure, one made here with its
        named cause, the facts, and the last lines of its log."""
        ray = _ray()
        try:
            code, report = ray.get(attempt.ref)
        except Exception as exc:  # noqa: BLE001 - Ray's failure: the attempt's cause
            result = self._failure(attempt, exc)
            return 1, pickle.dumps(result, protocol=5)
        try:
            self._finish_logs(attempt, pickle.loads(report))
        except Exception:  # noqa: BLE001, S110 - a report cut short: the runtime says so
            pass
        return code, report

    def _failure(self, attempt: Attempt, exc: BaseException) -> TaskResult:
        from shipyard.flow.task import upload_logs

        names = [cls.__name__ for cls in type(exc).__mro__]
        evidence = Evidence(
            ray_task_id=attempt.ref.task_id().hex(),
            request_mb=self.options[attempt.spec.step_name].memory_mb,
        )
        try:
            append_chunks(self.store, attempt)
        except Exception:  # noqa: BLE001, S110 - what was streamed is what there is
            pass
        died = {"WorkerCrashedError", "ActorDiedError", "OutOfMemoryError", "TaskCancelledError"}
        if died & set(names):
            self._post_mortem(attempt, evidence)
        else:  # a lost node: say which, in words (its address and resources) if Ray knows
            node_id = node_of(str(exc))
            known = [n for n in _ray().nodes() if n.get("NodeID") == node_id] if node_id else []
            if known:
                evidence.node = node_label(known[0])
        drop_chunks(self.store, attempt)
        logs = [attempt.spec.path(suffix) for suffix in SUFFIXES]
        evidence.stdout, evidence.stderr = (
            p.read_bytes().decode("utf-8", "replace") if p.exists() else "" for p in logs
        )
        result: TaskResult = {
            "ok": False,
            "error": ray_failure(names, str(exc), evidence),
            "duration": time.monotonic() - attempt.started,
        }
        try:
            result = {**result, **upload_logs(self.store, attempt.spec)}
        except Exception:  # noqa: BLE001, S110 - the files stay, for `shipyard logs`
            pass
        return result

    def _post_mortem(self, attempt: Attempt, evidence: Evidence) -> None:
        """Ask every live node for what the attempt left there (see ray_node.post_mortem)."""
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = {node["NodeID"]: node for node in alive_nodes()}
        probe = ray.remote(ray_node.post_mortem)
        refs = [
            probe.options(
                num_cpus=0,
                max_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(attempt.spec, node_id)
            for node_id in nodes
        ]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=PROBE_SECONDS)
        for ref in ready:
            try:
                found = ray.get(ref)
            except Exception:  # noqa: BLE001, S112 - that node could not say
                continue
            if found is None:
                continue
            start, memory = found["start"], found["memory"]
            node = nodes.get(start.get("node", ""))
            evidence.node = node_label(node) if node else str(start.get("node", ""))
            evidence.pid = start.get("pid")
            evidence.exit_code = found["exit_code"]
            evidence.oom_kills = memory["oom_kills"] - start["memory"]["oom_kills"]
            evidence.memory_limit, evidence.memory_peak = memory["limit"], memory["peak"]
            evidence.cgroup = memory["cgroup"]
            for suffix in SUFFIXES:
                attempt.complete(suffix, found["logs"][suffix])
            return

    def close(self) -> None:
        """Stop waiting, cancel what still runs, disconnect (and stop a local Ray)."""
        ray = _ray()
        self._closing = True
        self._thread.join(timeout=5)
        for ref in list(self._pending):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001, S110 - ended already
                pass
        ray.shutdown()
        self.sock.close()
        self._wake.close()


def _load_snapshot(spec: TaskSpec, code_key: str, flow_name: str, decospecs: list[str]) -> Any:
    """The flow class and graph from the run's code snapshot, imported fresh if this
    worker last served another snapshot."""
    from shipyard.flow.decorators import attach_decospecs
    from shipyard.flow.loader import load_flow
    from shipyard.store.blobs import open_blob_store
    from shipyard.store.code import MANIFEST, extract_code

    root = NODE_HOME / "code" / code_key
    if not root.is_dir():
        data = open_blob_store(spec.store_url).get(code_key)
        root = extract_code(data, code_key, NODE_HOME)
    manifest = json.loads((root / MANIFEST).read_text())
    snapshots = str(NODE_HOME / "code") + os.sep
    mine = str(root) + os.sep
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if file.startswith(snapshots) and not file.startswith(mine):
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not (p + os.sep).startswith(snapshots) or p == str(root)]
    loaded = load_flow(root / manifest["flow_file"], flow_name)
    graph = loaded.graph()
    attach_decospecs(graph, decospecs)
    return loaded.flow_cls, graph


def _run_attempt(
    spec: TaskSpec,
    code_key: str,
    flow_name: str,
    decospecs: list[str],
    context: tuple[Any, Any] = (None, None),
) -> tuple[int, bytes]:
    """The Ray task: run one attempt in this worker, as a forked task would, and return
    (exit code, the pickled result record with the node's id). Its output goes to files
    in a node-local directory, streamed to the blob store as it grows (ray_node.py)."""
    import faulthandler

    import ray
    from shipyard.flow import project, trigger
    from shipyard.flow.task import _redirect_output, run_task, upload_logs, write_result

    # this worker may have served another run: its trigger and project are this run's now
    trigger.activate(context[0])
    project.activate(context[1])

    node_id = ray.get_runtime_context().get_node_id()
    here, local = ray_node.begin(spec, node_id)
    store = open_blob_store(spec.store_url)
    streamer = ray_node.LogStreamer(store, spec, local)
    saved_fds = (os.dup(1), os.dup(2))
    saved_streams = (sys.stdout, sys.stderr)
    # a forked task's changes to its environment and directory die with it; a Ray worker
    # is reused, so put them back (@environment's variables must not reach the next task)
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    with tempfile.TemporaryFile() as out, ray_node.recording_exit(here):
        report_fd = os.dup(out.fileno())
        try:
            _redirect_output(local)  # what importing the snapshot prints is logged too
            streamer.start()
            try:
                flow_cls, graph = _load_snapshot(spec, code_key, flow_name, decospecs)
            except BaseException as exc:  # noqa: BLE001 - the attempt's named cause
                result: Any = {
                    "ok": False,
                    "error": _snapshot_error(exc, local),
                    "duration": 0.0,
                }
                try:
                    result.update(upload_logs(store, local))
                except Exception:  # noqa: BLE001, S110 - the runtime has the streamed part
                    pass
                write_result(report_fd, result)
                code = 1
            else:
                code = run_task(flow_cls, graph, local, report_fd)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            streamer.stop()
            faulthandler.disable()
            for fd, saved in zip((1, 2), saved_fds, strict=True):
                os.dup2(saved, fd)
                os.close(saved)
            sys.stdout, sys.stderr = saved_streams
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)
        out.seek(0)
        report = out.read()
    ray_node.end(here)
    try:
        record = pickle.loads(report)
        record["node"] = node_id
        record["node_ip"] = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        record["node_host"] = socket.gethostname()
        report = pickle.dumps(record, protocol=5)
    except Exception:  # noqa: BLE001, S110 - cut short: the runtime says so
        pass
    return code, report


def _snapshot_error(exc: BaseException, local: TaskSpec) -> Any:
    """SnapshotImportError: the exception, its traceback (also in the log), the log's end."""
    from shipyard.flow.task import error_dict

    error = error_dict(exc)  # its traceback is recorded with it; the log gets the gist
    print(f"{error['type']}: {error['message']}", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    logs = []
    for suffix in ray_node.SUFFIXES:
        try:
            logs.append(local.path(suffix).read_text("utf-8", "replace"))
        except OSError:
            logs.append("")
    message = (
        f"the run's code snapshot did not import on the Ray node: "
        f"{error['type']}: {error['message']}"
    )
    error["type"] = SNAPSHOT_IMPORT
    error["message"] = with_log_tail(message, log_tail(logs[0], logs[1]))
    return error


__all__ = ["RayExecutor", "RayExecutorError", "ray_task_options"]
