"""Model records for workers, from the host: a worker never opens the metadata database.

The host hands each worker one end of a socket pair (``--models-fd``) and speaks the framing
of ``protocol.py`` on it: first PINNED, the records of the models the deployment pinned;
then a MODEL answer to each RESOLVE the worker sends (any other ``Model(spec)`` its code
makes; a pinned spec is answered with its pin, never with where an alias points now).

In the worker, :class:`HostResolver` is the registry's process-wide resolver
(:func:`shipyard.registry.set_resolver`), installed by :func:`install` when the service's
code first imports the registry (a worker that never uses it does not pay for importing
it). On the host, :func:`serve_models` answers, and extracts each answered model's code
snapshot under ``SHIPYARD_HOME/code`` first (and a file-artifact model's files under
``SHIPYARD_HOME/files``), because an isolated worker sees those directories read-only.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import socket
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.serve.protocol import Frame, Kind, ProtocolError, encode, read_frame, recv_frame
from shipyard.store.records import ArtifactRecord

if TYPE_CHECKING:
    from shipyard.registry import ModelVersion

log = logging.getLogger("shipyard.serve")


class ModelSource(Protocol):
    """What the host resolves models with (:class:`shipyard.registry.Registry` is one)."""

    def get(self, spec: str) -> ModelVersion: ...

    def stage_code(self, version: ModelVersion) -> Any: ...

    def stage_files(self, version: ModelVersion) -> Any: ...


# -- the records on the wire ------------------------------------------------------------
def record_to_json(version: ModelVersion) -> dict[str, Any]:
    """Everything :func:`record_from_json` needs to rebuild ``version``."""
    artifact = version.artifact
    return {
        "name": version.name,
        "version": version.version,
        "aliases": list(version.aliases),
        "metrics": dict(version.metrics),
        "tags": list(version.tags),
        "flow_name": version.flow_name,
        "run_id": version.run_id,
        "step_name": version.step_name,
        "task_id": version.task_id,
        "artifact_name": version.artifact_name,
        "artifact": {
            "name": artifact.name,
            "key": artifact.key,
            "size": artifact.size,
            "encoding": artifact.encoding,
            "type_name": artifact.type_name,
            "preview": artifact.preview,
            "offset": artifact.offset,
            "length": artifact.length,
            "inline": artifact.inline.hex() if artifact.inline is not None else None,
        },
        "code_key": version.code_key,
        "module": version.module,
        "libraries": dict(version.libraries),
        "user": version.user,
        "created_at": version.created_at.isoformat(),
        "signature": version.signature.to_json() if version.signature is not None else None,
        "project": version.project,
        "project_branch": version.project_branch,
    }


def record_from_json(data: dict[str, Any]) -> ModelVersion:
    """The record :func:`record_to_json` wrote."""
    from shipyard.registry import ModelVersion, Signature

    artifact = dict(data["artifact"])
    signature = data.get("signature")
    inline = artifact.pop("inline")
    return ModelVersion(
        name=data["name"],
        version=data["version"],
        aliases=tuple(data["aliases"]),
        metrics=dict(data["metrics"]),
        tags=tuple(data["tags"]),
        flow_name=data["flow_name"],
        run_id=data["run_id"],
        step_name=data["step_name"],
        task_id=data["task_id"],
        artifact_name=data["artifact_name"],
        artifact=ArtifactRecord(
            **artifact, inline=bytes.fromhex(inline) if inline is not None else None
        ),
        code_key=data["code_key"],
        module=data["module"],
        libraries=dict(data["libraries"]),
        user=data["user"],
        created_at=datetime.fromisoformat(data["created_at"]),
        signature=Signature.from_json(signature) if signature else None,
        project=data.get("project"),
        project_branch=data.get("project_branch"),
    )


# -- in the worker ------------------------------------------------------------------------
class HostResolver:
    """The worker's resolver: the pinned records it got at start, then the host, asked over
    the model channel (blocking; one question at a time from any thread)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._lock = threading.Lock()
        self._next_id = 1
        first = recv_frame(sock)
        if first.kind is not Kind.PINNED:
            raise ProtocolError(f"expected PINNED first on the model channel, got {first.kind}")
        #: spec -> record (JSON), as the host sent them at start
        self.pinned: dict[str, dict[str, Any]] = json.loads(first.payload)

    def __call__(self, spec: str) -> ModelVersion:
        from shipyard.registry import ModelNotFound, ModelSpecError, RegistryError

        found = self.pinned.get(spec)
        if found is not None:
            return record_from_json(found)
        with self._lock:
            request_id, self._next_id = self._next_id, self._next_id + 1
            self._sock.sendall(encode(Frame(Kind.RESOLVE, request_id, payload=spec.encode())))
            answer = recv_frame(self._sock)
        if answer.kind is not Kind.MODEL or answer.request_id != request_id:
            raise ProtocolError(f"expected MODEL {request_id}, got {answer.kind.name}")
        body = json.loads(answer.payload)
        if answer.code == 200:
            return record_from_json(body)
        message = str(body.get("error", "the host could not resolve the model"))
        if answer.code == 404:
            raise ModelNotFound(spec, message)
        if answer.code == 422:
            raise ModelSpecError(message)
        raise RegistryError(f"the host could not resolve model {spec!r}: {message}")


def install(resolver: HostResolver) -> None:
    """Make ``resolver`` the registry's resolver: now if the registry is imported, else the
    moment it is."""
    registry = sys.modules.get("shipyard.registry")
    if registry is not None:
        registry.set_resolver(resolver)
    else:
        sys.meta_path.insert(0, _InstallOnImport(resolver))


class _InstallOnImport(importlib.abc.MetaPathFinder):
    """Finds ``shipyard.registry`` as usual, and calls its ``set_resolver`` once it ran."""

    def __init__(self, resolver: HostResolver) -> None:
        self.resolver = resolver

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "shipyard.registry":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if spec is None or not isinstance(loader, importlib.abc.Loader):
            return spec
        run = loader.exec_module
        resolver = self.resolver

        def exec_module(module: ModuleType) -> None:
            run(module)
            module.set_resolver(resolver)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


# -- on the host ----------------------------------------------------------------------------
def _answer(source: ModelSource, spec: str) -> tuple[int, dict[str, Any]]:
    from shipyard.registry import ModelNotFound, ModelSpecError, RegistryError

    try:
        version = source.get(spec)
        source.stage_code(version)
        source.stage_files(version)
    except ModelNotFound as exc:
        return 404, {"error": str(exc)}
    except ModelSpecError as exc:
        return 422, {"error": str(exc)}
    except RegistryError as exc:
        return 500, {"error": str(exc)}
    except Exception:  # the database is down: the worker's Model() fails, the host goes on
        log.exception("resolving model %r for a worker failed", spec)
        return 500, {"error": "the host failed to read the registry; see its log"}
    return 200, record_to_json(version)


def _pinned(source: ModelSource, pins: dict[str, str]) -> dict[str, Any]:
    records = {}
    for spec, pinned in pins.items():
        status, body = _answer(source, pinned)
        if status == 200:
            records[spec] = body
        else:  # the worker asks again when its code needs it, and gets the error then
            log.warning("pinned model %s (%s) is unavailable: %s", spec, pinned, body["error"])
    return records


async def serve_models(sock: socket.socket, pins: dict[str, str], source: ModelSource) -> None:
    """Answer one worker's model channel until it closes (see the module docstring)."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    try:
        records = await asyncio.to_thread(_pinned, source, dict(pins))
        writer.write(encode(Frame(Kind.PINNED, 0, payload=json.dumps(records).encode())))
        while True:
            frame = await read_frame(reader)
            if frame.kind is not Kind.RESOLVE:
                raise ProtocolError(f"unexpected {frame.kind.name} frame on the model channel")
            spec = frame.payload.decode("utf-8", "replace")
            status, body = await asyncio.to_thread(_answer, source, pins.get(spec, spec))
            payload = json.dumps(body).encode()
            writer.write(encode(Frame(Kind.MODEL, frame.request_id, status, 0, payload)))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the worker exited
    except ProtocolError as exc:
        log.warning("model channel closed: %s", exc)
    finally:
        writer.close()


__all__ = [
    "HostResolver",
    "ModelSource",
    "install",
    "record_from_json",
    "record_to_json",
    "serve_models",
]
