"""``--detach``: the runtime itself runs in the Ray cluster, so the laptop can disconnect.

The submitting process checks that the cluster can reach the run's metadata database and
blob store, packs the flow's code snapshot and starts a **detached actor** (named
``shipyard-run-<hex>`` in the Ray namespace ``shipyard``, ``lifetime="detached"``; Ray Jobs
would need the dashboard). The actor extracts the snapshot on its node and starts the
runtime there in a process of its own (``python -m shipyard.flow.ray_detach PLAN``), exactly
the runtime ``--executor ray`` runs on a laptop: it writes the run's metadata to the same
database, its tasks are Ray tasks. As soon as the run has an id the actor answers, the
submitter prints it and returns; ``shipyard runs``, ``show``, ``logs`` and the UI follow the
run in the database. When the runtime's process ends, the actor ends itself.

A SQLite file or a ``file://`` store is only reachable from a cluster on this machine (an
address on 127.0.0.1); anything else is refused with the fix before the actor starts.
"""

from __future__ import annotations

import ipaddress
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.flow.ray_executor import RayExecutorError
from shipyard.flow.ray_node import NODE_HOME

if TYPE_CHECKING:
    from shipyard.flow.launch import RunPlan
    from shipyard.store.records import RunRecord

#: the Ray namespace the detached runtimes' actors are named in
NAMESPACE = "shipyard"
#: how long the submitter waits for the run to have an id
START_SECONDS = 120.0


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _cluster_host(address: str) -> str:
    """The host part of ``HOST:PORT`` (``ray://HOST:PORT`` too)."""
    rest = address.split("://", 1)[-1]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def check_reachable(db_url: str, store_url: str, address: str) -> None:
    """Refuse a detached run whose database or blob store the cluster at ``address`` could
    not reach: a SQLite file or a ``file://`` store is this machine's alone, so they do only
    for a cluster on 127.0.0.1; a PostgreSQL on loopback likewise."""
    if _loopback(_cluster_host(address)):
        return
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        raise RayExecutorError(
            f"--detach: the run's metadata database is the SQLite file {url.database} on this "
            f"machine, which the Ray cluster at {address} cannot reach; point SHIPYARD_DB_URL "
            "at a PostgreSQL the cluster reaches (postgresql://USER@HOST/DB), or drop --detach"
        )
    if url.host is not None and _loopback(url.host):
        raise RayExecutorError(
            f"--detach: the run's metadata database is on {url.host} (this machine's "
            f"loopback), which the Ray cluster at {address} cannot reach; use the database's "
            "address on the network in SHIPYARD_DB_URL, or drop --detach"
        )
    if store_url.startswith("file://"):
        raise RayExecutorError(
            f"--detach: the run's blob store {store_url} is a directory on this machine, "
            f"which the Ray cluster at {address} cannot reach; point SHIPYARD_STORE_URL at "
            "an s3:// bucket the cluster reaches, or drop --detach"
        )


def detach(
    plan: RunPlan, given: dict[str, Any], options: dict[str, Any], origin: RunRecord | None
) -> str:
    """Start the run in the cluster at ``plan.ray_address`` under a detached actor and
    return its pathspec (``Flow/12``) once it has one."""
    import hashlib

    from shipyard.config import current_user, settings
    from shipyard.flow.ray_executor import _ray
    from shipyard.store.code import pack_code

    address = plan.ray_address
    if not address:
        raise RayExecutorError(
            "--detach needs an existing cluster to run in: give --ray-address HOST:PORT "
            "(or SHIPYARD_RAY_ADDRESS, ray_address in config.yaml)"
        )
    conf = settings()
    check_reachable(conf.db_url, conf.store_url, address)
    code = pack_code(plan.source_file, plan.module)
    env = {
        "SHIPYARD_DB_URL": conf.db_url,
        "SHIPYARD_STORE_URL": conf.store_url,
        "SHIPYARD_USER": current_user(),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if _loopback(_cluster_host(address)):  # the same machine: live logs where we read them
        env["SHIPYARD_HOME"] = str(conf.home)
    job = {
        "flow_name": plan.graph.flow_name,
        "given": given,
        "tags": plan.tags,
        "max_workers": plan.max_workers,
        "decospecs": plan.decospecs,
        "pypi_find_links": plan.pypi_find_links,
        "branch": options.get("branch"),
        "production": bool(options.get("production")),
        "origin": origin.pathspec if origin is not None else None,
        "resume_step": plan.resume_step,
        "ray_address": address,
    }
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = _ray()
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="WARNING")
    except Exception as exc:
        raise RayExecutorError(
            f"--detach: could not reach the Ray cluster at {address}: "
            f"{type(exc).__name__}: {exc}; check the address (--ray-address / "
            "SHIPYARD_RAY_ADDRESS)"
        ) from exc
    try:
        name = f"shipyard-run-{uuid.uuid4().hex[:12]}"
        actor = (
            ray.remote(DetachedRuntime)
            .options(name=name, lifetime="detached", num_cpus=0, max_restarts=0)
            .remote()
        )
        key = hashlib.sha256(code).hexdigest()
        try:
            pathspec = str(ray.get(actor.start.remote(code, key, job, env), timeout=START_SECONDS))
        except Exception as exc:
            ray.kill(actor, no_restart=True)
            cause = getattr(exc, "cause", None) or exc
            raise RayExecutorError(
                f"--detach: the runtime did not start in the cluster at {address}: {cause}"
            ) from None
    finally:
        ray.shutdown()
    _wait_recorded(pathspec, conf.db_url)
    return pathspec


def _wait_recorded(pathspec: str, db_url: str, timeout: float = 30.0) -> None:
    """Return once the run is in the database this machine reads (the runtime's recorder
    commits it a moment after the run has its id): so the commands that follow find it,
    and a cluster writing to another database is caught here."""
    from shipyard.store.meta import MetaStore

    flow, _, run_id = pathspec.partition("/")
    deadline = time.monotonic() + timeout
    with MetaStore.open(db_url) as meta:
        while meta.get_run(flow, int(run_id)) is None:
            if time.monotonic() > deadline:
                raise RayExecutorError(
                    f"--detach: the runtime in the cluster started {pathspec}, but {db_url} "
                    f"has no such run after {timeout:g} s: does the cluster write to another "
                    "database? (SHIPYARD_DB_URL must name the same one on both sides)"
                )
            time.sleep(0.05)


class DetachedRuntime:
    """The detached actor: starts the runtime's process on its node, answers with the
    run's pathspec, and ends itself when that process ends."""

    def start(self, code: bytes, key: str, job: dict[str, Any], env: dict[str, str]) -> str:
        import json

        import ray
        from shipyard.store.code import MANIFEST, extract_code

        root = NODE_HOME / "code" / key
        if not root.is_dir():
            root = extract_code(code, key, NODE_HOME)
        job["flow_file"] = str(root / json.loads((root / MANIFEST).read_text())["flow_file"])
        work = Path(tempfile.mkdtemp(prefix="shipyard-detached-"))
        (work / "job.pickle").write_bytes(pickle.dumps(job, protocol=5))
        pathspec = work / "pathspec"
        with (work / "output").open("wb") as output:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shipyard.flow.ray_detach", str(work)],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=str(root),
            )
        deadline = time.monotonic() + START_SECONDS
        while not (pathspec.exists() and pathspec.read_text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                tail = (work / "output").read_text(errors="replace")[-3000:]
                raise RuntimeError(
                    f"the runtime exited ({proc.poll()}) before the run began:\n{tail}"
                )
            time.sleep(0.05)
        me = ray.get_runtime_context().current_actor

        def end_when_done() -> None:
            if proc.wait() == 0:  # else its output stays, for whoever looks at the node
                shutil.rmtree(work, ignore_errors=True)
            ray.kill(me, no_restart=True)

        threading.Thread(target=end_when_done, name="detached-runtime", daemon=True).start()
        return pathspec.read_text()


def _main(work: Path) -> int:
    """The runtime's process on the cluster's node (``python -m shipyard.flow.ray_detach``)."""
    from shipyard.config import current_user
    from shipyard.flow.launch import make_plan
    from shipyard.flow.loader import load_flow
    from shipyard.flow.project import activate, resolve
    from shipyard.flow.runtime import Runtime
    from shipyard.store.meta import MetaStore
    from shipyard.store.records import RunStatus

    job = pickle.loads((work / "job.pickle").read_bytes())
    loaded = load_flow(job["flow_file"], job["flow_name"])
    origin = None
    if job["origin"]:
        flow, _, run_id = job["origin"].partition("/")
        with MetaStore.open() as meta:
            origin = meta.get_run(flow, int(run_id))
    on_branch = resolve(
        loaded.flow_cls, branch=job["branch"], production=job["production"], user=current_user()
    )
    plan = make_plan(
        loaded,
        job["given"],
        tags=job["tags"],
        max_workers=job["max_workers"],
        quiet=True,
        origin=origin,
        resume_step=job["resume_step"],
        decospecs=job["decospecs"],
        pypi_find_links=job["pypi_find_links"],
        executor="ray",
        ray_address=job["ray_address"],
    )
    activate(on_branch)
    runtime = Runtime(plan)

    def told(run_id: int) -> None:  # whole or not at all: the actor polls for it
        (work / "pathspec.tmp").write_text(f"{plan.graph.flow_name}/{run_id}")
        (work / "pathspec.tmp").rename(work / "pathspec")

    runtime.on_run_id = told
    runtime.run()
    return {RunStatus.SUCCEEDED: 0, RunStatus.KILLED: 130}.get(runtime.status, 1)


__all__ = ["NAMESPACE", "DetachedRuntime", "check_reachable", "detach"]

if __name__ == "__main__":
    sys.exit(_main(Path(sys.argv[1])))
