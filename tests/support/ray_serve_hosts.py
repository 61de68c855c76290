"""A real host (``shipyard serve``) in a subprocess whose ``deploy --on ray`` goes to the
tests' Ray cluster, and the service the Ray serving tests deploy."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from serve.hosts import HostProcess

#: what the tests deploy on Ray: who answered (pid, version), a slow call, and the probes of
#: what a replica may read
SERVICE = """
import os
import time
from datetime import timedelta

from shipyard.features import ServingLog
from shipyard.serve import Service, endpoint


class Echo(Service):
    # a segment published every LOG_MAX_AGE seconds, and the last one when the worker stops
    serving_log = ServingLog(max_age=timedelta(seconds=float(os.environ.get("LOG_MAX_AGE", 300))))

    def load(self):
        self.version = os.environ.get("ECHO_VERSION", "1")
        if os.environ.get("ECHO_FAIL"):
            raise RuntimeError("load refused on purpose")

    @endpoint
    def echo(self, x: int) -> dict[str, int | str]:
        return {"x": x, "pid": os.getpid(), "version": self.version}

    @endpoint
    def note(self, x: int) -> int:
        self.serving_log.log(facts={"x": x}, features={"x": x}, prediction=float(x))
        return x

    @endpoint
    async def slow(self, seconds: float) -> int:
        import asyncio

        await asyncio.sleep(seconds)
        return os.getpid()

    @endpoint
    def read(self, paths: list[str]) -> dict[str, str]:
        found = {}
        for path in paths:
            try:
                with open(path, "rb") as file:
                    found[path] = "read:" + file.read().decode("utf-8", "replace")
            except OSError as exc:
                found[path] = type(exc).__name__
        return found

    @endpoint
    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @endpoint
    def source(self) -> str:
        return __file__

    @endpoint
    def model(self) -> str:
        import hashlib

        from shipyard import Model

        return hashlib.sha256(Model("tiny").load()).hexdigest()

    @endpoint
    def tree(self) -> dict[str, str]:
        from shipyard import Model

        tree = Model("tree").load()
        found = {"": str(tree.path)}
        for path in sorted(tree.path.rglob("*")):
            if path.is_file():
                found[str(path.relative_to(tree.path))] = path.read_text()
        return found
"""


#: a flow that registers model ``tiny``: bytes over the inline limit, so a blob of its own;
#: and ``tree``, a file-artifact model (a folder of files, like examples/screenplay_entities')
FLOW = """
import pathlib, random, tempfile
from shipyard import FlowSpec, Files, step, current

class TinyFlow(FlowSpec):
    @step
    def start(self):
        current.register_model("tiny", random.Random(7).randbytes(8192))
        folder = pathlib.Path(tempfile.mkdtemp())
        (folder / "labels").mkdir()
        (folder / "config.json").write_text('{"labels": 2}')
        (folder / "labels" / "names.txt").write_text("PERSON\\nPLACE\\n")
        current.register_model("tree", Files(folder))
        self.next(self.end)

    @step
    def end(self):
        pass
"""
WEIGHTS = __import__("random").Random(7).randbytes(8192)
#: the files of model ``tree``
TREE = {"config.json": '{"labels": 2}', "labels/names.txt": "PERSON\nPLACE\n"}


def register_tiny(home: Path) -> None:
    """Run :data:`FLOW` in this process against ``home`` (the host's)."""
    import os

    from shipyard.store.context import reset
    from shipyard.testing import run_flow

    saved = os.environ.get("SHIPYARD_HOME")
    os.environ["SHIPYARD_HOME"] = str(home)
    try:
        run_flow(FLOW)
    finally:
        reset()
        if saved is None:
            os.environ.pop("SHIPYARD_HOME", None)
        else:
            os.environ["SHIPYARD_HOME"] = saved


def write_service(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "echo_service.py"
    path.write_text(SERVICE)
    return path


class RayHost(HostProcess):
    """``shipyard serve`` (:class:`serve.hosts.HostProcess`) with ``SHIPYARD_RAY_ADDRESS``
    set to the cluster's address."""

    def __init__(self, home: Path, ray_address: str, env: dict[str, str] | None = None) -> None:
        ray_env = {"SHIPYARD_RAY_ADDRESS": ray_address, "RAY_USAGE_STATS_ENABLED": "0"}
        super().__init__(home, {**ray_env, **(env or {})})

    def cli(self, *args: str, check: bool = True, remote: bool = True) -> Any:
        """``shipyard ARGS`` against the host; a failure shows the host's log too."""
        out = super().cli(*args, check=False, remote=remote)
        if check and out.returncode != 0:
            raise AssertionError(
                f"shipyard {' '.join(args)} failed: {out.stdout}{out.stderr}\n"
                f"host log: {self.log.read_text()[-3000:]}"
            )
        return out

    def deployment(self, name: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/api/v1/deployments/{name}", headers=self.admin, timeout=10
        )
        response.raise_for_status()
        return dict(response.json())

    def answering_pids(self, name: str, calls: int = 40) -> set[int]:
        pids = set()
        for i in range(calls):
            response = self.post(f"/{name}/echo", {"x": i})
            assert response.status_code == 200, response.text
            pids.add(int(response.json()["pid"]))
        return pids


def wait_until(condition: Any, what: str, timeout: float = 60.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def loads(text: str) -> Any:
    return json.loads(text)
