"""Run one task attempt inside the process the zygote forked for it.

The task never touches the metadata database: it reads its inputs from the blob store,
runs the user's step, persists the artifacts, and writes a small result to the pipe
the zygote gave it, which the runtime gets with the news of the process's exit. A task
killed at any point leaves no result (or one cut short, which is no result either), and
blobs are only ever visible complete, so nothing half-written is ever recorded.
"""

from __future__ import annotations

import faulthandler
import hashlib
import os
import pickle
import sys
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.flow.artifacts import ArtifactLoader, save, save_items
from shipyard.flow.current import start_task
from shipyard.flow.decorators import TaskContext
from shipyard.flow.exceptions import ArtifactError, StoreRefused, TransitionError
from shipyard.flow.output import StampedStream
from shipyard.flow.report import ForeachSplit, LogKeys, TaskError, TaskResult
from shipyard.flow.spec import FlowSpec, Inputs, InputView
from shipyard.store.blobs import BlobStore, open_blob_store
from shipyard.store.files import FilesError
from shipyard.store.loglines import Clock
from shipyard.store.records import ArtifactRecord, live_log
from shipyard.store.serialize import ArtifactNotPicklable

if TYPE_CHECKING:
    from shipyard.flow.graph import Graph, Node

_SHIPYARD_DIR = str(Path(__file__).resolve().parent.parent)


@dataclass
class InputSpec:
    step_name: str
    task_id: int
    index: int | None
    artifacts: dict[str, ArtifactRecord]


@dataclass
class TaskSpec:
    """Everything a task attempt needs; sent to the zygote (pickled)."""

    flow_name: str
    run_id: int
    task_id: int
    step_name: str
    attempt: int
    store_url: str
    inputs: list[InputSpec]
    param_names: list[str]
    log_dir: str
    foreach_item: ArtifactRecord | None = None
    index: int | None = None
    origin_run_id: int | None = None
    #: set for the extra attempt @catch runs after the last failure: the step is not run
    caught_error: TaskError | None = None
    catch_var: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def path(self, suffix: str) -> Path:
        """This attempt's live log file: ``out`` or ``err``."""
        return live_log(self.log_dir, self.attempt, suffix)


class CaughtFailure:
    """What ``@catch(var=...)`` stores when every attempt of a step failed."""

    def __init__(self, error: TaskError) -> None:
        self.type = str(error.get("type", "Exception"))
        self.message = str(error.get("message", ""))
        self.traceback = str(error.get("traceback", ""))

    def __repr__(self) -> str:
        return f"CaughtFailure({self.type}: {self.message})"

    def __bool__(self) -> bool:
        return True


def _redirect_output(spec: TaskSpec) -> None:
    for fd, suffix in ((1, "out"), (2, "err")):
        target = os.open(spec.path(suffix), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)
    # New file objects over fds 1 and 2: whatever sys.stdout was in the parent (a notebook's
    # or pytest's capture object) may not write to fd 1 at all. Each line they write carries
    # the time it was written, on one clock, so that `shipyard logs` can interleave them.
    clock = Clock()
    sys.stdout = StampedStream(1, clock)
    sys.stderr = StampedStream(2, clock)
    # a segfault in user code then leaves its Python stack in the task's own stderr log
    faulthandler.enable(file=sys.stderr)


def user_traceback(exc: BaseException) -> str:
    """The traceback without shipyard's own frames, so it starts at the user's step."""
    tb = traceback.TracebackException.from_exception(exc)
    frames = [f for f in tb.stack if not f.filename.startswith(_SHIPYARD_DIR)]
    if frames:
        tb.stack = traceback.StackSummary.from_list(frames)
    return "".join(tb.format())


def error_dict(exc: BaseException) -> TaskError:
    """How ``exc`` is reported and recorded."""
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        # the store's refusal is no bug in the user's code: its message is the whole story
        "traceback": "" if isinstance(exc, StoreRefused) else user_traceback(exc),
    }


def _upload_log(store: BlobStore, path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data:  # nothing to keep: remove it here, in parallel, not in the runtime's loop
        path.unlink(missing_ok=True)
        return None
    key = hashlib.sha256(data).hexdigest()
    try:
        store.put(key, [data])
    except OSError as exc:  # the file stays, for `shipyard logs` and whoever frees the disk
        raise StoreRefused(f"the log {path}", exc) from None
    return key


def upload_logs(store: BlobStore, spec: TaskSpec) -> LogKeys:
    """Store the attempt's output files as blobs (an empty one is removed instead).
    Raises :class:`StoreRefused` if the store refuses, leaving the files in place."""
    return {
        "stdout_key": _upload_log(store, spec.path("out")),
        "stderr_key": _upload_log(store, spec.path("err")),
    }


def write_result(fd: int, result: TaskResult) -> None:
    """Write the result (a pickle: it carries small artifacts' bytes) to the report pipe;
    the zygote reads it as it comes."""
    view = memoryview(pickle.dumps(result, protocol=5))
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


def _build_flow(
    flow_cls: type[FlowSpec], spec: TaskSpec, node: Node, store: BlobStore
) -> tuple[FlowSpec, Inputs]:
    flow = flow_cls.__new__(flow_cls)
    inputs = [
        InputView(i.step_name, ArtifactLoader(store, i.artifacts), i.index) for i in spec.inputs
    ]
    if node.is_join:
        first = spec.inputs[0].artifacts if spec.inputs else {}
        data = ArtifactLoader(store, {n: first[n] for n in spec.param_names if n in first})
    else:
        data = ArtifactLoader(store, spec.inputs[0].artifacts if spec.inputs else {})
    item = (
        ArtifactLoader(store, {"input": spec.foreach_item})
        if spec.foreach_item is not None
        else None
    )
    flow._init_task(step_name=spec.step_name, data=data, foreach_item=item, index=spec.index)
    return flow, Inputs(inputs)


def _start_current(ctx: TaskContext) -> None:
    """Point ``current`` at this task; ``current.register_model`` files into
    ``ctx.extras["models"]``, which the runtime commits if the task succeeds."""
    spec, data = ctx.spec, ctx.flow.__dict__["_data"]
    models: list[dict[str, Any]] = ctx.extras.setdefault("models", [])

    def register_model(
        name: str,
        obj: Any,
        *,
        metrics: Mapping[str, float] | None = None,
        tags: Iterable[str] | None = None,
        signature: Any = None,
        input_example: Any = None,
        features: Any = None,
    ) -> None:
        """Register ``obj`` (or the artifact named by a string) as the next version of the
        model ``name``; committed only if this task succeeds. Its input signature is
        ``signature``, else inferred (a fitted scikit-learn model, ``input_example``);
        ``features``: the ``FeatureSet`` it was trained on, recorded in that signature."""
        from shipyard.registry import capture

        models.append(
            capture(
                name,
                obj,
                flow=ctx.flow,
                store=ctx.store,
                metrics=metrics,
                tags=tags,
                signature=signature,
                input_example=input_example,
                features=features,
            )
        )

    start_task(
        ctx,
        parameters=lambda: {n: data.load(n) for n in spec.param_names if n in data},
        register_model=register_model,
    )


def _check_transition(flow: FlowSpec, node: Node) -> None:
    transition = flow.__dict__.get("_transition")
    if node.name == "end":
        return
    if transition is None:
        raise TransitionError(
            f"step {node.name!r} returned without calling self.next()",
            hint="every path through the step must end in self.next(...)",
        )
    names, foreach = transition
    if names != node.out or foreach != node.foreach:
        raise TransitionError(f"step {node.name!r} called self.next() unlike its source says")


def _persist(flow: FlowSpec, spec: TaskSpec, store: BlobStore) -> dict[str, ArtifactRecord]:
    data: ArtifactLoader = flow.__dict__["_data"]
    outputs = {name: data[name] for name in data}
    for name, value in list(flow.__dict__.items()):
        if name.startswith("_"):
            continue
        try:
            outputs[name] = save(store, name, value)
        except ArtifactNotPicklable as exc:
            raise ArtifactError(
                f"step {spec.step_name!r}: artifact {name!r} of type {exc.type_name} "
                f"cannot be pickled: {exc.reason}",
                hint=f"store something picklable, or name it self._{name} to keep it "
                "out of the artifacts",
            ) from None
        except FilesError as exc:
            raise ArtifactError(f"step {spec.step_name!r}: {exc}") from None
        except OSError as exc:
            raise StoreRefused(f"artifact {name!r} of step {spec.step_name!r}", exc) from None
    return outputs


def _split(flow: FlowSpec, node: Node, store: BlobStore) -> ForeachSplit:
    assert node.foreach is not None
    try:
        items = list(getattr(flow, node.foreach))
    except AttributeError:
        raise ArtifactError(
            f"step {node.name!r}: foreach={node.foreach!r} but self.{node.foreach} is not set"
        ) from None
    except TypeError:
        raise ArtifactError(
            f"step {node.name!r}: foreach={node.foreach!r} must name a list or other iterable"
        ) from None
    if not items:
        raise ArtifactError(
            f"step {node.name!r}: foreach over {node.foreach!r} has no items",
            hint="a foreach needs at least one item",
        )
    try:
        records = save_items(store, node.foreach, items)
    except OSError as exc:
        raise StoreRefused(f"the items of foreach={node.foreach!r}", exc) from None
    return {
        "num_splits": len(records),
        "items_key": records[0].key,
        "spans": [[r.offset, r.length] for r in records],
    }


def run_task(flow_cls: type[FlowSpec], graph: Graph, spec: TaskSpec, report_fd: int) -> int:
    """The body of a task process: its result goes to ``report_fd``; returns the exit
    code."""
    _redirect_output(spec)
    store = open_blob_store(spec.store_url)
    node = graph[spec.step_name]
    started = time.time()
    result: TaskResult = {"ok": False}
    ctx: TaskContext | None = None
    try:
        flow, inputs = _build_flow(flow_cls, spec, node, store)
        ctx = TaskContext(flow=flow, spec=spec, node=node, store=store)
        _start_current(ctx)
        for deco in node.decorators:
            deco.task_pre_step(ctx)
        if spec.caught_error is not None:
            if spec.catch_var:
                setattr(flow, spec.catch_var, CaughtFailure(spec.caught_error))
            flow.__dict__["_transition"] = (list(node.out), node.foreach)
        else:
            try:
                step_fn = getattr(flow, spec.step_name)
                step_fn(inputs) if node.is_join else step_fn()
            except BaseException as exc:
                if not any(deco.task_exception(ctx, exc) for deco in node.decorators):
                    raise
            for deco in node.decorators:
                deco.task_post_step(ctx)
        _check_transition(flow, node)
        outputs = _persist(flow, spec, store)
        ctx.artifacts = outputs
        if ctx.extras["models"]:
            from shipyard.registry import check_references

            check_references(ctx.extras["models"], outputs, store)
        result = {
            "ok": True,
            "artifacts": [asdict(r) for r in outputs.values()],
            "foreach": _split(flow, node, store) if node.foreach else None,
            "extras": ctx.extras,  # the same dict: what task_finished hooks add is sent too
        }
    except BaseException as exc:  # noqa: BLE001 - reported to the runtime, never swallowed
        if isinstance(exc, SystemExit):
            exc = RuntimeError(f"the step called sys.exit({exc.code!r})")
        result = {"ok": False, "error": error_dict(exc)}
        print(result["error"]["traceback"] or f"{exc}\n", file=sys.stderr, end="")
    finally:
        if ctx is not None:
            for deco in node.decorators:
                try:
                    deco.task_finished(ctx, result["ok"])
                except Exception as exc:  # noqa: BLE001
                    result = {"ok": False, "error": error_dict(exc)}
    sys.stdout.flush()
    sys.stderr.flush()
    result["duration"] = time.time() - started
    try:
        result = {**result, **upload_logs(store, spec)}
    except Exception as exc:  # noqa: BLE001 - the output is lost to the run: so is the attempt
        if result["ok"]:
            result = {"ok": False, "error": error_dict(exc), "duration": result["duration"]}
    write_result(report_fd, result)
    return 0 if result["ok"] else 1
