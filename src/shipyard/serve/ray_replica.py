"""What runs in the Ray cluster for a service deployed ``--on ray``: each Ray Serve replica
is a thin keeper of one ordinary shipyard worker process.

- :class:`WorkerReplica` is the deployment's class. Its constructor makes its node's cache
  hold the version's code snapshot and pinned blobs (``ray_files.py``: fetched from the
  directory, checked by digest), then starts ``python -m shipyard.serve.worker --listen
  NODE_IP`` with the environment the host computed (the one a local worker gets: no metadata
  database URL, no admin token, no signing key, no store credentials), its home and blob
  store moved to the node cache, the secrets the directory holds for it, and the host's
  isolation plan rebuilt around the node cache; it answers the worker's model channel from
  the records the host resolved at deploy (the deployment's pins: a replica on Ray never reads the
  registry), waits for the worker's LISTENING (its ``load()`` succeeded) and registers the
  worker's address and connection token in the :class:`Directory`. The host connects to the
  worker's port itself: requests never pass through Ray Serve's proxy or a handle.
- Ray Serve health-checks the replica (:meth:`WorkerReplica.check_health`): a worker that
  exited makes it unhealthy, so Ray replaces it; the exit's cause is recorded in the
  directory first, so the host names it for the requests that were in flight.
- :meth:`WorkerReplica.record_autoscaling_stats` reports the requests the worker is running
  (its control channel's STATS); :func:`scale_by_in_flight` is the deployment's autoscaling
  policy over them, as Ray's default one is over the requests its handles saw.
- :class:`Directory` is one detached actor (``shipyard-serve-directory`` in the Ray namespace
  ``shipyard``): application name -> replica -> address, and why a replica went; and what
  the host hands each application's replicas (its blobs, in the object store, and its
  secrets), which never go into the application's config that the GCS keeps.

Nothing here imports the host: a node needs only shipyard and Ray installed.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from shipyard.serve import ray_logs
from shipyard.serve.protocol import Frame, Kind, ProtocolError, encode, recv_frame
from shipyard.serve.ray_files import (
    FetchError,
    fetch,
    node_cache,
    node_plan,
    stage_files,
    staged_files,
)
from shipyard.serve.replica import _describe_exit as describe_local_exit
from shipyard.serve.replica import exit_before_ready

DIRECTORY_NAME = "shipyard-serve-directory"
NAMESPACE = "shipyard"
#: how long a replica waits for its worker's load() before giving up
LOAD_TIMEOUT = 300.0
_LOST = (
    "the cluster's directory no longer holds this version's files and secrets (was the "
    "Ray head restarted?): restart the host or redeploy, and the host hands them again"
)


class Directory:
    """Where the host finds the workers of each Ray Serve application (one actor for the
    cluster). Entries are plain dicts: ``host``, ``port``, ``token``, ``node``, ``pid``."""

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, dict[str, Any]]] = {}
        self.gone: dict[str, str] = {}  # replica key -> why it went
        self.failed: dict[str, str] = {}  # application -> why a replica did not start
        #: application -> blob key -> the bytes in Ray's object store, owned by this actor
        self.kept: dict[str, dict[str, Any]] = {}
        #: application -> the values of its secrets (in this actor's memory only)
        self.secret_values: dict[str, dict[str, str]] = {}
        #: service -> serving-log segment -> (SHA-256, its bytes in the object store): what
        #: the nodes shipped and the host has not taken yet (``ray_logs.py``)
        self.logs: dict[str, dict[str, tuple[str, Any]]] = {}
        #: service -> the segments the host stored (their nodes may delete them)
        self.logs_stored: dict[str, dict[str, None]] = {}

    def keep(self, app: str, blobs: dict[str, bytes], secrets: dict[str, str]) -> None:
        """What the host hands a version's replicas (``ray_files.py``): its blobs, put in
        the object store (owned here, they outlive the host), and its secrets' values."""
        import ray

        kept = self.kept.setdefault(app, {})
        for key, data in blobs.items():
            kept[key] = ray.put(data)
        self.secret_values[app] = dict(secrets)

    def blobs(self, app: str, keys: list[str]) -> dict[str, Any] | None:
        """References to ``keys`` of ``app`` (None: the directory has nothing of it)."""
        kept = self.kept.get(app)
        if kept is None:
            return None
        return {key: kept[key] for key in keys if key in kept}

    def secrets(self, app: str) -> dict[str, str] | None:
        return self.secret_values.get(app)

    def offer_logs(self, service: str, names: list[str]) -> dict[str, list[str]]:
        """Which of a node's published segments the host ``stored`` (the node deletes
        them) and which it still ``wanted`` (the node sends them)."""
        stored = self.logs_stored.get(service, {})
        pending = self.logs.get(service, {})
        return {
            "stored": [n for n in names if n in stored],
            "wanted": [n for n in names if n not in stored and n not in pending],
        }

    def ship_logs(self, service: str, segments: dict[str, tuple[str, bytes]]) -> None:
        """Keep a node's segments (in the object store, owned here) until the host takes
        them."""
        import ray

        pending = self.logs.setdefault(service, {})
        stored = self.logs_stored.get(service, {})
        for name, (sha, data) in segments.items():
            if name not in pending and name not in stored:
                pending[name] = (sha, ray.put(data))

    def pending_logs(self) -> dict[str, dict[str, tuple[str, Any]]]:
        """service -> segment -> (SHA-256, reference): what the host has to take."""
        return {service: dict(p) for service, p in self.logs.items() if p}

    def logs_taken(self, service: str, names: list[str]) -> None:
        """The host's store holds these now: drop them here, let the nodes delete them."""
        pending = self.logs.get(service, {})
        stored = self.logs_stored.setdefault(service, {})
        for name in names:
            pending.pop(name, None)
            stored[name] = None
        while len(stored) > 100_000:  # keep the recent ones
            del stored[next(iter(stored))]

    def register(self, app: str, key: str, entry: dict[str, Any]) -> None:
        self.apps.setdefault(app, {})[key] = entry

    def unregister(self, app: str, key: str, reason: str) -> None:
        self.apps.get(app, {}).pop(key, None)
        self.gone[key] = reason
        if len(self.gone) > 10_000:  # keep the recent ones
            for old in list(self.gone)[:5_000]:
                del self.gone[old]

    def fail(self, app: str, reason: str) -> None:
        self.failed[app] = reason

    def failure(self, app: str) -> str | None:
        return self.failed.get(app)

    def entries(self, app: str) -> dict[str, dict[str, Any]]:
        return dict(self.apps.get(app, {}))

    def reason(self, key: str) -> str | None:
        return self.gone.get(key)

    def forget(self, app: str) -> None:
        self.apps.pop(app, None)
        self.failed.pop(app, None)
        self.kept.pop(app, None)
        self.secret_values.pop(app, None)


def directory() -> Any:
    """The cluster's directory actor, created on first use (detached, no CPU)."""
    import ray

    actor = ray.remote(num_cpus=0)(Directory).options(
        name=DIRECTORY_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    )
    return actor.remote()


class WorkerReplica:
    """One Ray Serve replica: starts and keeps one shipyard worker (see the module)."""

    def __init__(self, config: dict[str, Any]) -> None:
        import ray

        self.app: str = config["app"]
        self.key = f"{self.app}/{secrets.token_hex(6)}"
        self.token = secrets.token_hex(16)  # 32 characters
        self.records: dict[str, Any] = config.get("records") or {}
        self.stopping = False
        self.exit_reason: str | None = None
        self.in_flight = 0
        #: this service's serving-log folder on the node (shipped to the host: ray_logs.py)
        self.log_folder = ray_logs.folder(node_cache(), config["service"])
        self._ship_lock = threading.Lock()
        context = ray.get_runtime_context()
        self.node = context.get_node_id()
        self.host = config.get("listen") or ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        scratch = Path(tempfile.mkdtemp(prefix="sy-ray-"))
        log_dir = Path(config.get("log_dir") or scratch)
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError:  # the host's path is not this node's to make: keep the log here
            log_dir = scratch
        self.log_path = log_dir / f"v{config['version']}-ray-{self.key.rsplit('/', 1)[1]}.log"
        for directory_path in config.get("make_dirs", []):  # the isolation plan binds them
            Path(directory_path).mkdir(parents=True, exist_ok=True)
        try:
            code_dir, env, isolate = self._node_files(config)
        except (FetchError, OSError, ValueError) as exc:  # the host reads why
            ray.get(directory().fail.remote(self.app, f"the replica's files: {exc}"))
            raise RuntimeError(f"the replica's files: {exc}") from None
        control, control_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        models, models_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [
            sys.executable,
            "-m",
            "shipyard.serve.worker",
            "--socket",
            str(scratch / "unused.sock"),
            "--listen",
            self.host,
            "--code-dir",
            str(code_dir),
            "--entry",
            config["entry"],
            "--name",
            config["service"],
            "--control-fd",
            str(control_end.fileno()),
            "--models-fd",
            str(models_end.fileno()),
            "--host-pid",
            str(os.getpid()),
        ]
        if config.get("pins"):
            argv += ["--pins", json.dumps(config["pins"])]
        if isolate is not None:
            argv += ["--isolate", isolate]
        env["SHIPYARD_WORKER_TOKEN"] = self.token
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(control_end.fileno(), models_end.fileno()),
                start_new_session=True,
            )
        control_end.close()
        models_end.close()
        self.control = control
        self._stats_lock = threading.Lock()
        threading.Thread(target=self._answer_models, args=(models,), daemon=True).start()
        try:
            port = self._wait_listening()
        except RuntimeError as exc:  # the host reads why from the directory
            ray.get(directory().fail.remote(self.app, str(exc)))
            raise
        self.entry = {
            "host": self.host,
            "port": port,
            "token": self.token,
            "node": self.node,
            "pid": self.process.pid,
            "log": str(self.log_path),
        }
        self.directory = directory()
        ray.get(self.directory.register.remote(self.app, self.key, self.entry))
        threading.Thread(target=self._read_control, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()
        threading.Thread(target=self._ship_loop, daemon=True).start()

    # -- start ------------------------------------------------------------------------------
    def _node_files(self, config: dict[str, Any]) -> tuple[Path, dict[str, str], str | None]:
        """The version's files in this node's cache, fetched from the directory when
        missing (``ray_files.py``); the worker's environment (with its secrets) and
        isolation plan, both pointing there rather than at the host's home and store."""
        import ray

        keeper = directory()

        def get(keys: list[str]) -> dict[str, bytes]:
            refs = ray.get(keeper.blobs.remote(self.app, keys))
            if refs is None:
                raise FetchError(_LOST)
            return dict(zip(refs, ray.get(list(refs.values())), strict=True))

        root = node_cache()
        # the files of a tree this node materialised before are neither fetched nor hashed
        skip = staged_files(root, self.records)
        digests = {k: v for k, v in config["blobs"].items() if k not in skip}
        code_dir = fetch(root, config["code_key"], digests, list(config["snapshots"]), get)
        stage_files(root, self.records)  # file-artifact models: their trees, once per node
        home = root / "home"
        if config.get("cache_pub") and not _holds(home / "cache.pub", config["cache_pub"]):
            _write(home / "cache.pub", config["cache_pub"])
        values = ray.get(keeper.secrets.remote(self.app))
        if values is None:
            raise FetchError(_LOST)
        env = {
            **config["env"],
            **values,
            "SHIPYARD_HOME": str(home),
            "SHIPYARD_STORE_URL": (root / "blobs").as_uri(),
        }
        isolate = config.get("isolate")
        if isolate:
            isolate = node_plan(isolate, root, code_dir, config["service"])
        return code_dir, env, isolate or None

    def _answer_models(self, sock: socket.socket) -> None:
        """The worker's model channel: the pinned records, and a 404 for anything else (a
        replica on Ray has no registry to ask)."""
        try:
            sock.sendall(encode(Frame(Kind.PINNED, 0, payload=json.dumps(self.records).encode())))
            while True:
                frame = recv_frame(sock)
                spec = frame.payload.decode("utf-8", "replace")
                record = self.records.get(spec)
                if record is not None:
                    status, body = 200, record
                else:
                    status, body = (
                        404,
                        {
                            "error": f"model {spec!r} is not pinned by this deployment; a replica "
                            "on Ray loads only the models its deploy pinned (deploy with "
                            f"--model {spec})"
                        },
                    )
                payload = json.dumps(body).encode()
                sock.sendall(encode(Frame(Kind.MODEL, frame.request_id, status, 0, payload)))
        except (EOFError, OSError, ProtocolError):
            return

    def _wait_listening(self) -> int:
        self.control.settimeout(1.0)
        deadline = time.monotonic() + LOAD_TIMEOUT
        while time.monotonic() < deadline:
            try:
                frame = recv_frame(self.control)
            except TimeoutError:
                if self.process.poll() is not None:
                    raise RuntimeError(self._load_failure()) from None
                continue
            except (EOFError, OSError, ProtocolError):
                self.process.wait()
                raise RuntimeError(self._load_failure()) from None
            if frame.kind is Kind.LISTENING:
                self.control.settimeout(None)
                return int(json.loads(frame.payload)["port"])
        self.process.kill()
        raise RuntimeError("the worker did not become ready in time (is load() stuck?)")

    def _load_failure(self) -> str:
        return exit_before_ready(self.log_path, self.process.wait())

    # -- running ----------------------------------------------------------------------------
    def _read_control(self) -> None:
        try:
            while True:
                frame = recv_frame(self.control)
                if frame.kind is Kind.STATS:
                    self.in_flight = frame.code
        except (EOFError, OSError, ProtocolError):
            return

    def _watch(self) -> None:
        """When the worker exits, say why in the directory (the host names it), then let
        the health check fail: Ray starts a replica in this one's place."""
        code = self.process.wait()
        reason = _describe_exit(code, self.node)
        self.exit_reason = reason
        if not self.stopping:
            try:
                self.directory.unregister.remote(self.app, self.key, reason)
            except Exception:  # the directory is gone with the cluster: nothing to tell
                pass
        self._ship_logs()  # the segment it published as it exited (after the host's answer)

    def _ship_loop(self) -> None:
        """Every few seconds, the node's published serving-log segments of the service
        (also those a killed predecessor left here) go to the directory."""
        while self.exit_reason is None and not self.stopping:
            self._ship_logs()
            time.sleep(ray_logs.SHIP_SECONDS)

    def _ship_logs(self) -> None:
        service = self.log_folder.name
        keeper = getattr(self, "directory", None) or directory()
        try:
            import ray

            with self._ship_lock:
                ray_logs.offer(
                    self.log_folder,
                    lambda names: ray.get(keeper.offer_logs.remote(service, names)),
                    lambda batch: ray.get(keeper.ship_logs.remote(service, batch)),
                )
        except Exception as exc:  # the directory is unreachable: next time
            print(f"shipping the serving log of {service}: {exc!r}", file=sys.stderr)

    def check_health(self) -> None:
        if self.exit_reason is not None:
            raise RuntimeError(self.exit_reason)

    def record_autoscaling_stats(self) -> dict[str, float]:
        """The requests the worker runs (asked now; the answer is read next time)."""
        with self._stats_lock:
            try:
                self.control.sendall(encode(Frame(Kind.STATS, 0)))
            except OSError:
                pass
        return {"in_flight": float(self.in_flight)}

    def address(self) -> dict[str, Any]:
        return dict(self.entry)

    def __del__(self) -> None:
        """Ray Serve stops the replica (a scale-down, the application deleted): the host
        drained it before; stop the worker (SIGTERM: it finishes what it runs)."""
        self.stopping = True
        process = getattr(self, "process", None)
        if process is None or process.poll() is not None:
            return
        directory_actor = getattr(self, "directory", None)
        if directory_actor is not None:
            try:
                directory_actor.unregister.remote(self.app, self.key, "the replica was stopped")
            except Exception:
                pass
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        self._ship_logs()  # the segment the worker published as it stopped


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except OSError:
        return False


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (replicas of one node may race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cache-pub-")
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def scale_by_in_flight(ctx: Any) -> tuple[int, dict[str, Any]]:
    """Ray Serve autoscaling policy: enough replicas that each runs ``target_ongoing``
    requests (the requests the workers report, not the handles': the host calls workers
    directly), between the deployment's min and max."""
    metrics = ctx.aggregated_metrics or {}
    running = sum((metrics.get("in_flight") or {}).values())
    target = max(float(getattr(ctx.config, "target_ongoing_requests", 2.0) or 2.0), 0.01)
    wanted = math.ceil(running / target) if running > 0 else ctx.capacity_adjusted_min_replicas
    low, high = ctx.capacity_adjusted_min_replicas, ctx.capacity_adjusted_max_replicas
    return max(low, min(high, wanted)), {}


def _describe_exit(code: int, node: str) -> str:
    """A local worker's exit, described as :mod:`shipyard.serve.replica` does, and where."""
    return f"{describe_local_exit(code)} (Ray node {node[:8]})"


__all__ = [
    "DIRECTORY_NAME",
    "Directory",
    "NAMESPACE",
    "WorkerReplica",
    "directory",
    "scale_by_in_flight",
]
