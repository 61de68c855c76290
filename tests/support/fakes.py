"""Fake runs written directly through the stores (no flow runtime), for the tests of any
package: ``FakeRuns`` writes runs, tasks, attempts, live logs and artifacts the way the
runtime does; ``store_artifact`` puts one value in a blob store and returns its record."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.store import serialize
from shipyard.store.blobs import BlobStore, open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.store.records import ArtifactRecord, RunStatus, TaskStatus, live_log


def store_artifact(blobs: BlobStore, name: str, value: Any) -> ArtifactRecord:
    """Encode ``value`` as the runtime does, put its chunks in ``blobs``, return its record."""
    enc = serialize.encode(value, name=name)
    blobs.put(enc.key, enc.chunks)
    return ArtifactRecord(
        name=name,
        key=enc.key,
        size=enc.size,
        encoding=enc.encoding,
        type_name=enc.type_name,
        preview=enc.preview,
    )


def graph(flow: str = "DemoFlow", module: str = "demo_flow") -> dict[str, Any]:
    """start -> train (foreach over grid) -> join -> end."""
    return {
        "flow": flow,
        "file": f"{module}.py",
        "module": module,
        "order": ["start", "train", "join", "end"],
        "steps": {
            "start": {"type": "foreach", "next": ["train"], "foreach": "grid", "lineno": 5,
                      "doc": "Make the grid.", "decorators": [], "in": []},
            "train": {"type": "linear", "next": ["join"], "foreach": None, "lineno": 10,
                      "doc": "Train one.", "decorators": ["retry"], "in": ["start"]},
            "join": {"type": "join", "next": ["end"], "foreach": None, "lineno": 15,
                     "doc": "Pick the best.", "decorators": [], "in": ["train"]},
            "end": {"type": "end", "next": [], "foreach": None, "lineno": 20,
                    "doc": "", "decorators": [], "in": ["join"]},
        },
    }  # fmt: skip


@dataclass
class DemoRun:
    run_id: int
    start: int
    train: list[int]
    join: int
    end: int

    def pathspec(self, flow: str = "DemoFlow") -> str:
        return f"{flow}/{self.run_id}"


class FakeRuns:
    """Writes runs, tasks, attempts, logs and artifacts the way the runtime does."""

    graph = staticmethod(graph)

    def __init__(self, home: Path) -> None:
        self.home = home
        self.meta = MetaStore.open()
        self.blobs: BlobStore = open_blob_store()

    def close(self) -> None:
        self.meta.close()

    def put_bytes(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        self.blobs.put(key, [data])
        return key

    def artifact(self, name: str, value: Any) -> ArtifactRecord:
        return store_artifact(self.blobs, name, value)

    def run(
        self,
        flow: str = "DemoFlow",
        *,
        params: dict[str, Any] | None = None,
        tags: Sequence[str] = (),
        graph_json: dict[str, Any] | None = None,
        code_key: str | None = None,
        origin_run_id: int | None = None,
    ) -> int:
        """A RUNNING run (finish it with :meth:`finish`)."""
        return self.meta.create_run(
            flow,
            user="tester",
            params=params or {},
            tags=tags,
            graph=graph_json or graph(flow),
            code_key=code_key,
            origin_run_id=origin_run_id,
        )

    def finish(self, run_id: int, status: RunStatus = RunStatus.SUCCEEDED) -> None:
        self.meta.finish_run(run_id, status)

    def task(
        self,
        run_id: int,
        step: str,
        *,
        artifacts: dict[str, Any] | None = None,
        status: TaskStatus | None = TaskStatus.SUCCEEDED,
        stdout: str = "",
        stderr: str = "",
        failures: int = 0,
        error: dict[str, Any] | None = None,
        index: int | None = None,
        num_splits: int | None = None,
        inputs: Sequence[int] = (),
        result: dict[str, Any] | None = None,
    ) -> int:
        """A task with ``failures`` failed attempts before a final one ending in ``status``.

        ``status=None`` leaves the last attempt RUNNING with live log files in its log_dir.
        """
        # the runtime's layout: one directory per run, a name per task (records.live_log)
        log_dir = self.home / "logs" / "live" / str(run_id) / f"{step}.{os.urandom(4).hex()}"
        stack = [] if index is None else [{"step": "start", "index": index,
                                           "num_splits": num_splits or 1}]  # fmt: skip
        task_id = self.meta.create_task(
            run_id, step, foreach_stack=stack, input_task_ids=inputs, log_dir=str(log_dir)
        )
        for attempt in range(failures):
            self.meta.start_attempt(task_id, attempt, pid=os.getpid())
            self.meta.finish_attempt(
                task_id,
                attempt,
                status=TaskStatus.FAILED,
                error={"type": "ValueError", "message": f"flaky {attempt}", "traceback": "tb"},
                stdout_key=self.put_bytes(f"attempt {attempt} out\n".encode()),
                stderr_key=self.put_bytes(f"attempt {attempt} err\n".encode()),
                final=False,
            )
        last = failures
        self.meta.start_attempt(task_id, last, pid=os.getpid())
        if status is None:
            log_dir.parent.mkdir(parents=True, exist_ok=True)
            live_log(str(log_dir), last, "out").write_text(stdout)
            live_log(str(log_dir), last, "err").write_text(stderr)
            return task_id
        records = [self.artifact(n, v) for n, v in (artifacts or {}).items()]
        self.meta.finish_attempt(
            task_id,
            last,
            status=status,
            error=error,
            stdout_key=self.put_bytes(stdout.encode()) if stdout else None,
            stderr_key=self.put_bytes(stderr.encode()) if stderr else None,
            artifacts=records,
            result=result,
        )
        return task_id

    def demo_run(
        self,
        flow: str = "DemoFlow",
        *,
        grid: Sequence[int] = (1, 2, 3),
        tags: Sequence[str] = (),
        status: RunStatus = RunStatus.SUCCEEDED,
    ) -> DemoRun:
        """A finished run of :func:`graph`: train ×len(grid), scores = grid / 10."""
        run_id = self.run(flow, params={"alpha": 0.5, "name": "demo"}, tags=tags)
        start = self.task(
            run_id,
            "start",
            artifacts={"grid": list(grid), "alpha": 0.5},
            stdout="starting\n",
            result={"num_splits": len(grid)},
        )
        train = [
            self.task(
                run_id,
                "train",
                artifacts={"score": g / 10, "factor": g},
                stdout=f"training {g}\nscore {g / 10}\n",
                stderr=f"warn {g}\n",
                index=i,
                num_splits=len(grid),
                inputs=[start],
            )
            for i, g in enumerate(grid)
        ]
        join = self.task(
            run_id, "join", artifacts={"best": max(grid) / 10, "blob": b"\x00raw"}, inputs=train
        )
        end = self.task(
            run_id, "end", artifacts={"model": {"kind": "demo", "best": max(grid)}}, inputs=[join]
        )
        self.finish(run_id, status)
        return DemoRun(run_id, start, train, join, end)
