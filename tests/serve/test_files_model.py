"""A file-artifact model (``shipyard.Files``) served by a real host: the host materialises
the files once under ``SHIPYARD_HOME/files`` for its workers (whose view of the home is
read-only when they are isolated), every replica memory-maps the same read-only files."""

from __future__ import annotations

import hashlib
import mmap
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hosts import HostProcess

SERVICE = """
import mmap, os

from shipyard import Files, Model
from shipyard.serve import Service, endpoint


class Lookup(Service):
    def load(self):
        self.tree = Model("vectors@prod").load()  # pinned at deploy
        assert isinstance(self.tree, Files), type(self.tree)
        with open(self.tree / "data/vectors.bin", "rb") as f:
            self.view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    @endpoint
    def facts(self) -> dict:
        other = Model("notes:1").load()  # not pinned: resolved (and staged) by the host
        try:
            with open(self.tree / "data/vectors.bin", "r+b"):
                writable = "yes"
        except OSError as exc:
            writable = type(exc).__name__
        return {
            "pid": os.getpid(),
            "path": str(self.tree.path),
            "digest": self.tree.digest,
            "head": self.view[:16].hex(),
            "size": len(self.view),
            "notes": (other / "notes.txt").read_text(),
            "writable": writable,
        }
"""

FLOW = """
import os
from shipyard import FlowSpec, Files, Parameter, current, step


class VectorsFlow(FlowSpec):
    source = Parameter("source")
    notes = Parameter("notes")

    @step
    def start(self):
        self.vectors = Files(self.source)
        current.register_model("vectors", self.vectors)
        current.register_model("notes", Files(self.notes))
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostProcess, bytes]]:
    from shipyard.registry import Registry
    from shipyard.store.context import reset
    from shipyard.testing import run_flow

    base = tmp_path_factory.mktemp("files-model")
    home = base / "home"
    host = HostProcess(home).start()
    data = os.urandom(3 << 20)
    source = base / "vectors"
    (source / "data").mkdir(parents=True)
    (source / "data" / "vectors.bin").write_bytes(data)
    (source / "meta.json").write_text('{"dim": 384}')
    notes = base / "notes.txt"
    notes.write_text("hello from the notes")
    saved = os.environ.get("SHIPYARD_HOME")
    os.environ["SHIPYARD_HOME"] = str(home)
    try:
        assert run_flow(FLOW, source=str(source), notes=str(notes)).successful
        Registry().set_alias("vectors", 1, "prod")
        code = base / "lookup_service.py"
        code.write_text(textwrap.dedent(SERVICE))
        host.deploy(f"{code}:Lookup", "lookup", "--model", "vectors@prod", "--replicas", "2")
        yield host, data
    finally:
        reset()
        if saved is None:
            os.environ.pop("SHIPYARD_HOME", None)
        else:
            os.environ["SHIPYARD_HOME"] = saved
        host.stop()


def test_every_replica_maps_the_same_files_materialised_once(
    served: tuple[HostProcess, bytes],
) -> None:
    host, data = served
    pids = host.worker_pids("lookup")
    assert len(pids) == 2
    seen: dict[int, dict[str, object]] = {}
    for _ in range(40):
        facts = host.post("/lookup/facts", {}).json()
        seen[facts["pid"]] = facts
        if len(seen) == 2:
            break
    assert set(seen) == set(pids)
    paths = {str(f["path"]) for f in seen.values()}
    [path] = paths  # one directory for the host, shared by its workers
    digest = next(iter(seen.values()))["digest"]
    assert Path(path) == host.home / "files" / str(digest)
    for facts in seen.values():
        assert facts["head"] == data[:16].hex() and facts["size"] == len(data)
        assert facts["notes"] == "hello from the notes"
        assert facts["writable"] in ("PermissionError", "OSError")  # read-only for a worker
    # materialised once: no other tree, no temp directory left behind; the bytes are right
    trees = sorted(p.name for p in (host.home / "files").iterdir() if not p.name.startswith("."))
    assert len(trees) == 2 and str(digest) in trees  # the pinned model and the notes
    assert not [p for p in (host.home / "files").iterdir() if p.name.startswith(".tmp-")]
    mapped = Path(path) / "data" / "vectors.bin"
    with open(mapped, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert hashlib.sha256(m).hexdigest() == hashlib.sha256(data).hexdigest()
