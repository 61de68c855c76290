"""Helpers for testing flows in-process: ``run_flow`` and ``resume_flow``.

>>> run = run_flow(tmp_path / "flow.py", alpha=0.5)        # doctest: +SKIP
>>> assert run.successful and run["end"].task.data.result == 1.5

Runs go to the current ``SHIPYARD_HOME`` (point it at a temporary directory in tests).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from shipyard.client import Run
from shipyard.flow.launch import make_plan
from shipyard.flow.loader import load_flow
from shipyard.flow.runtime import Runtime

_counter = itertools.count()


def write_flow(source: str, directory: str | Path | None = None, name: str | None = None) -> Path:
    """Write flow source to a uniquely named file (one module name per test flow)."""
    folder = Path(directory or tempfile.mkdtemp(prefix="shipyard-flow-"))
    path = folder / f"{name or 'test_flow'}_{os.getpid()}_{next(_counter)}.py"
    path.write_text(textwrap.dedent(source))
    return path


def run_flow(
    flow: str | Path,
    *,
    flow_name: str | None = None,
    max_workers: int = 2,
    tags: tuple[str, ...] = (),
    origin: Run | None = None,
    resume_step: str | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    **params: Any,
) -> Run:
    """Run a flow file (or flow source text) in this process and return its ``Run``
    (``executor="ray"``: its tasks on the Ray cluster at ``ray_address``)."""
    path = write_flow(flow) if isinstance(flow, str) and "\n" in flow else Path(flow)
    loaded = load_flow(path, flow_name)
    plan = make_plan(
        loaded,
        params if origin is None else {**origin.parameters, **params},
        tags=tags,
        max_workers=max_workers,
        quiet=True,
        origin=origin.record if origin is not None else None,
        resume_step=resume_step,
        executor=executor,
        ray_address=ray_address,
    )
    runtime = Runtime(plan)
    run_id = runtime.run()
    return Run(f"{loaded.flow_cls.__name__}/{run_id}")


def resume_flow(run: Run, flow: str | Path, *, step: str | None = None, **kw: Any) -> Run:
    """Resume ``run`` with the flow file ``flow`` (which may have been fixed meanwhile)."""
    return run_flow(flow, origin=run, resume_step=step, **kw)
