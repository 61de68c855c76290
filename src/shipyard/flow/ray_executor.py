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

First slice: a timeout or Ctrl-C cancels the Ray task (Ray kills its worker); no memory-kill
or node-lost causes beyond Ray's own exception name and message, no ``--detach``.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.flow.exceptions import FlowError

if TYPE_CHECKING:
    from shipyard.flow.decorators import TaskOptions
    from shipyard.flow.task import TaskSpec

#: where a node keeps the snapshots it extracted (node-local, shared by its workers)
NODE_HOME = Path(tempfile.gettempdir()) / "shipyard-ray"


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
    run, stopped by :meth:`close`."""

    def __init__(
        self,
        *,
        code_key: str,
        flow_name: str,
        decospecs: list[str],
        options: dict[str, TaskOptions],
        address: str | None,
    ) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray = _ray()
        self.code_key, self.flow_name, self.decospecs = code_key, flow_name, decospecs
        self.options = options
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="WARNING")
            else:
                ray.init(
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
        self._remote = ray.remote(_run_attempt)
        self._remotes: dict[str, Any] = {}  # step name -> the remote with its options
        self.sock, self._wake = socket.socketpair()
        self._lock = threading.Lock()
        self._pending: dict[Any, int] = {}  # ObjectRef -> token
        self._done: list[tuple[Any, ...]] = []
        self._ready: queue.SimpleQueue[Any] = queue.SimpleQueue()  # ended ObjectRefs
        self._closing = False
        self._thread = threading.Thread(target=self._wait_loop, name="ray-wait", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self.sock.fileno()

    def spawn(self, token: int, spec: TaskSpec) -> None:
        remote = self._remotes.get(spec.step_name)
        if remote is None:  # once per step: Ray validates the options on every .options()
            opts = ray_task_options(self.options[spec.step_name])
            remote = self._remotes[spec.step_name] = self._remote.options(**opts)
        ref = remote.remote(spec, self.code_key, self.flow_name, self.decospecs)
        with self._lock:
            self._pending[ref] = token
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
        ray = _ray()
        while not self._closing:
            # Not ray.wait(pending, timeout=...): a task spawned while it waits is not
            # among what it waits for, and an empty pending list slept 50 ms; both held up
            # the next task by tens of ms each time (bench/ray.py, BENCHMARKS.md).
            try:
                ready = [self._ready.get(timeout=0.1)]
            except queue.Empty:
                continue
            for ref in ready:
                try:
                    code, report = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - Ray's failure: the attempt's cause
                    code = 1
                    error = {
                        "type": type(exc).__name__,
                        "message": f"the Ray task failed: {exc}"[:4000],
                        "traceback": "",
                    }
                    report = pickle.dumps({"ok": False, "error": error}, protocol=5)
                with self._lock:
                    token = self._pending.pop(ref)
                    self._done.append(("exited", token, None, code, report))
                self._wake.send(b"x")

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
    spec: TaskSpec, code_key: str, flow_name: str, decospecs: list[str]
) -> tuple[int, bytes]:
    """The Ray task: run one attempt in this worker, as a forked task would, and return
    (exit code, the pickled result record with the node's id)."""
    import faulthandler

    import ray
    from shipyard.flow.task import error_dict, run_task, upload_logs, write_result
    from shipyard.store.blobs import open_blob_store

    saved_fds = (os.dup(1), os.dup(2))
    saved_streams = (sys.stdout, sys.stderr)
    with tempfile.TemporaryFile() as out:
        report_fd = os.dup(out.fileno())
        try:
            try:
                flow_cls, graph = _load_snapshot(spec, code_key, flow_name, decospecs)
            except BaseException as exc:  # noqa: BLE001 - the attempt's named cause
                result: Any = {"ok": False, "error": error_dict(exc), "duration": 0.0}
                result["error"]["type"] = f"SnapshotImportError: {result['error']['type']}"
                try:
                    result.update(upload_logs(open_blob_store(spec.store_url), spec))
                except Exception:  # noqa: BLE001, S110 - the runtime uploads what is left
                    pass
                write_result(report_fd, result)
                code = 1
            else:
                code = run_task(flow_cls, graph, spec, report_fd)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            faulthandler.disable()
            for fd, saved in zip((1, 2), saved_fds, strict=True):
                os.dup2(saved, fd)
                os.close(saved)
            sys.stdout, sys.stderr = saved_streams
        out.seek(0)
        report = out.read()
    try:
        record = pickle.loads(report)
        record["node"] = ray.get_runtime_context().get_node_id()
        report = pickle.dumps(record, protocol=5)
    except Exception:  # noqa: BLE001, S110 - cut short: the runtime says so
        pass
    return code, report


__all__ = ["RayExecutor", "RayExecutorError", "ray_task_options"]
