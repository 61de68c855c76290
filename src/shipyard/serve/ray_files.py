"""The files a replica on Ray needs on its node, fetched from the host, never from the store.

A node of the cluster need not share a filesystem with the host: each replica keeps what
its version needs in a **node-local cache** (``$SHIPYARD_RAY_NODE_CACHE``, by default
``<tmp>/shipyard-ray/serve``, read on the node), laid out as a home and a blob store:

- ``home/code/<key>/`` the version's code snapshot (and each pinned model's run snapshot),
  extracted once per node;
- ``home/cache.pub`` the cache's public key;
- ``blobs/`` a ``file://`` blob store holding only the pinned models' blobs.

The worker runs with ``SHIPYARD_HOME`` and ``SHIPYARD_STORE_URL`` pointing there, so it
never holds the store's credentials (an S3 store's keys, the database URL).

**How the bytes travel.** At deploy the host reads the snapshot and the pinned blobs from
its store (:func:`read_payload`) and hands them to the cluster's directory actor, which
``ray.put``\\ s each one: the bytes live in Ray's object store, owned by that detached actor
(they outlive the host, and a replica Ray restarts while the host is down still finds
them), until the application is deleted. The application's config, which Ray Serve keeps
in the GCS, carries only each blob's key and SHA-256 digest. A replica asks the directory
for the references (:func:`fetch`), skips what its node has already, and writes each blob
only once its digest matched (:func:`verified`). The deployment's secret values travel the
same way, held by the directory in memory: never in the GCS, the dashboard or ``serve
config``.

(Ray's ``runtime_env`` ``working_dir``/``py_modules`` would upload the snapshot as a package
into the GCS's key-value store, one gRPC message of at most 512 MiB in Ray 2.60; it is no
place for model blobs or secrets. The object store takes bytes of any size.)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.serve.errors import ServeError
from shipyard.store.files import ENCODING as FILES_ENCODING

#: the environment variable, on a node, naming its cache directory
NODE_CACHE_ENV = "SHIPYARD_RAY_NODE_CACHE"


class FetchError(ServeError):
    """A replica could not get its version's files (gone from the directory, or corrupt)."""


def node_cache() -> Path:
    """This node's cache directory (``$SHIPYARD_RAY_NODE_CACHE`` or the default)."""
    configured = os.environ.get(NODE_CACHE_ENV)
    root = Path(configured) if configured else Path(tempfile.gettempdir()) / "shipyard-ray/serve"
    return root.absolute()


def digest(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


# -- on the host --------------------------------------------------------------------------
def needed_blobs(code_key: str, records: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The blob keys a version's replicas read, and which of them are code snapshots: its
    own snapshot, and each pinned model's artifact blob (unless kept inline in its record)
    and run snapshot. (A file-artifact model's files: :func:`file_blobs`.)"""
    keys, snapshots = [code_key], [code_key]
    for record in records.values():
        artifact = record.get("artifact") or {}
        if artifact.get("inline") is None and artifact.get("key"):
            keys.append(str(artifact["key"]))
        if record.get("code_key"):
            keys.append(str(record["code_key"]))
            snapshots.append(str(record["code_key"]))
    return list(dict.fromkeys(keys)), list(dict.fromkeys(snapshots))


def file_blobs(store_url: str, records: dict[str, Any]) -> list[str]:
    """The blob keys of the files of each file-artifact model (:class:`shipyard.Files`)
    among ``records``, read from their manifests in the host's store: a node fetches them
    like any other blob, then :func:`stage_files` materialises each tree."""
    from shipyard.store.blobs import BlobNotFound, open_blob_store

    store = open_blob_store(store_url)
    keys: list[str] = []
    for spec, record in records.items():
        artifact = record.get("artifact") or {}
        if artifact.get("encoding") != FILES_ENCODING:
            continue
        try:
            manifest = _manifest(store, artifact)
        except BlobNotFound:
            raise FetchError(
                f"model {spec}: its manifest {artifact.get('key')} is missing from {store.url}"
            ) from None
        except ValueError as exc:  # FilesError is one
            raise FetchError(f"model {spec}: {exc}") from None
        keys.extend(key for key, _ in manifest.values())
    return list(dict.fromkeys(keys))


def read_payload(store_url: str, keys: list[str]) -> dict[str, bytes]:
    """The bytes of ``keys`` from the host's blob store (for the directory)."""
    from shipyard.store.blobs import BlobNotFound, open_blob_store

    store = open_blob_store(store_url)
    found = {}
    for key in keys:
        try:
            found[key] = bytes(store.get(key))
        except BlobNotFound:
            raise FetchError(
                f"blob {key} that the version needs is missing from {store.url}"
            ) from None
    return found


# -- on the node --------------------------------------------------------------------------
def verified(path: Path, expected: str) -> bool:
    """Whether the file at ``path`` exists and its SHA-256 is ``expected``."""
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest() == expected
    except OSError:
        return False


def fetch(
    root: Path,
    code_key: str,
    digests: dict[str, str],
    snapshots: list[str],
    get: Callable[[list[str]], dict[str, bytes]],
) -> Path:
    """Make ``root`` hold the version's blobs (``digests``: key -> SHA-256) and its
    ``snapshots`` extracted under ``home/code``, getting only what is missing or corrupt
    with ``get(keys)``; returns the version's code directory. Raises :class:`FetchError`
    when bytes that arrived do not match their digest."""
    from shipyard.store.blobs import check_key, open_blob_store
    from shipyard.store.code import extract_code

    home = root / "home"
    code_dir = home / "code" / check_key(code_key)
    store = open_blob_store((root / "blobs").as_uri())
    missing = []
    for key, expected in digests.items():
        check_key(key)
        if key == code_key and code_dir.is_dir():
            continue  # extracted on this node before (only the worker imports it)
        if verified(root / "blobs" / key[:2] / key, expected):
            continue
        missing.append(key)
    fetched = get(missing) if missing else {}
    for key in missing:
        data = fetched.get(key)
        if data is None:
            raise FetchError(f"the directory has no blob {key} for this version")
        if digest(data) != digests[key]:
            raise FetchError(
                f"blob {key} arrived corrupt: its SHA-256 is {digest(data)}, not {digests[key]}"
            )
        path = root / "blobs" / key[:2] / key
        if path.exists() and not verified(path, digests[key]):  # not another replica's copy
            store.delete(key)  # a corrupt one: put() keeps a key that exists
        store.put(key, [data])
    for key in snapshots:  # the version's code, and the run snapshots of its models
        if not (home / "code" / check_key(key)).is_dir():
            data = fetched.get(key)
            extract_code(data if data is not None else store.get(key), key, home)
    return code_dir


def stage_files(root: Path, records: dict[str, Any]) -> list[Path]:
    """Materialise each file-artifact model among ``records`` under ``root/home/files``
    from the node's blob store (which :func:`fetch` filled), once per node: built in a temp
    directory, every file's SHA-256 checked, renamed into place (``store/staging.py``).
    The worker's view of its home is read-only, so the replica does it before it starts
    the worker. Returns the trees' directories. Raises :class:`FetchError`."""
    from shipyard.store.blobs import BlobNotFound, open_blob_store
    from shipyard.store.files import Files
    from shipyard.store.staging import materialise

    store = open_blob_store((root / "blobs").as_uri())
    home = root / "home"
    trees = []
    for spec, record in records.items():
        artifact = record.get("artifact") or {}
        if artifact.get("encoding") != FILES_ENCODING:
            continue
        try:
            tree = Files.from_manifest(_manifest(store, artifact), store=store, home=home)
            trees.append(materialise(tree, store, home))
        except BlobNotFound as exc:
            raise FetchError(f"model {spec}: a blob is missing on this node: {exc}") from None
        except ValueError as exc:  # FilesError: a file whose digest does not match
            raise FetchError(f"model {spec}: {exc}") from None
    return trees


def staged_files(root: Path, records: dict[str, Any]) -> set[str]:
    """The blob keys of the files of those file-artifact models among ``records`` whose
    tree this node materialised already (every file was checked then): :func:`fetch` need
    neither get nor hash them again."""
    from shipyard.store.blobs import open_blob_store
    from shipyard.store.files import manifest_bytes

    store = open_blob_store((root / "blobs").as_uri())
    keys: set[str] = set()
    for record in records.values():
        artifact = record.get("artifact") or {}
        if artifact.get("encoding") != FILES_ENCODING:
            continue
        try:
            manifest = _manifest(store, artifact)
        except Exception:  # not on this node yet (or damaged): fetch gets it
            continue
        tree = hashlib.sha256(manifest_bytes(manifest)).hexdigest()
        if (root / "home" / "files" / tree).is_dir():
            keys.update(key for key, _ in manifest.values())
    return keys


def _manifest(store: Any, artifact: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """A file artifact's manifest, from its record (inline) or its blob (or range)."""
    from shipyard.store.files import parse_manifest
    from shipyard.store.serialize import manifest_payload

    inline = artifact.get("inline")
    offset = artifact.get("offset")
    data: bytes | bytearray
    if offset is not None:
        data = store.get_range(artifact["key"], int(offset), int(artifact.get("length") or 0))
    elif inline is not None:
        data = bytes.fromhex(inline)
    else:
        data = store.get(artifact["key"])
    return parse_manifest(manifest_payload(data))


def node_plan(host_plan: str, root: Path, code_dir: Path, service: str) -> str:
    """The worker's isolation view on this node: the host's plan (its writable binds, what
    it hides), with the host's home hidden where this node has one (a shared filesystem)
    and the node cache's code, blobs and ``cache.pub`` bound back read-only in place of the
    host's."""
    from shipyard.serve.isolation import Bind, Plan

    plan = Plan.from_json(host_plan)
    home = root / "home"
    blobs = root / "blobs"
    logs = blobs / "serving-logs" / service  # the service's own serving log (writable)
    for path in (home / "code", home / "files", blobs, logs):
        path.mkdir(parents=True, exist_ok=True)
    binds = [b for b in plan.binds if b.writable and not _under(Path(b.path), Path(plan.home))]
    binds += [Bind(str(home / "code")), Bind(str(home / "files")), Bind(str(code_dir))]
    binds += [Bind(str(blobs)), Bind(str(logs), True)]
    if (home / "cache.pub").is_file():
        binds.append(Bind(str(home / "cache.pub")))
    # the host's home, if this node sees it, stays an empty tmpfs (its token, key, database)
    hidden = plan.home if Path(plan.home).is_dir() else str(home)
    if hidden == plan.home:  # its writable binds (the LMDB cache's directory) come back
        binds += [b for b in plan.binds if b.writable and _under(Path(b.path), Path(hidden))]
    return Plan(home=hidden, binds=tuple(binds), hide=plan.hide).to_json()


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


__all__ = [
    "NODE_CACHE_ENV",
    "FetchError",
    "digest",
    "fetch",
    "file_blobs",
    "needed_blobs",
    "node_cache",
    "node_plan",
    "read_payload",
    "stage_files",
    "staged_files",
    "verified",
]
