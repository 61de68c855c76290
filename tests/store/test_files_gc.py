"""File artifacts and the stores: deduplicated rebuilds, blob gc keeping exactly the files
of the manifests it keeps, on SQLite and PostgreSQL metadata and on S3 blobs."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shipyard.client.gc import collect
from shipyard.registry import Model
from shipyard.store import context
from shipyard.store.blobs import BlobStore, open_blob_store
from shipyard.testing import run_flow, write_flow

FLOW = """
from shipyard import FlowSpec, Files, Parameter, current, step


class TreeFlow(FlowSpec):
    source = Parameter("source")
    register = Parameter("register", default=False)

    @step
    def start(self):
        self.tree = Files(self.source)
        if self.register:
            current.register_model("tree", "tree")
        self.next(self.end)

    @step
    def end(self):
        self.texts = {p.name: p.read_text() for p in self.tree.path.iterdir()}
"""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for path in root.iterdir():
        path.unlink()
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def stores(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[BlobStore, Path]]:
    monkeypatch.setenv("SHIPYARD_DB_URL", db_url)
    context.reset()
    yield open_blob_store(f"file://{tmp_path}/home/blobs"), tmp_path / "home"
    context.reset()


def _keys(blobs: BlobStore) -> set[str]:
    return {key for key, _ in blobs.list()}


def test_a_rebuild_uploads_only_what_changed_and_gc_frees_only_what_nothing_keeps(
    stores: tuple[BlobStore, Path], tmp_path: Path
) -> None:
    blobs, home = stores
    flow = write_flow(FLOW, tmp_path, "tree_flow")
    source = tmp_path / "src"
    first = {"a.txt": "alpha" * 300, "b.txt": "beta" * 300, "c.txt": "gamma" * 300}
    run1 = run_flow(flow, source=str(_write(source, first)))
    assert run1.successful and run1["end"].task.data.texts == first
    inodes = {t: (blobs.path(_sha(t))).stat().st_ino for t in first.values()}  # type: ignore[attr-defined]

    second = {**first, "b.txt": "BETA" * 300}
    run2 = run_flow(flow, source=str(_write(source, second)))
    assert run2.successful and run2["end"].task.data.texts == second
    files1 = {_sha(t) for t in first.values()}
    files2 = {_sha(t) for t in second.values()}
    # the one changed file is the only new file blob; the others were not written again
    assert files1 | files2 <= _keys(blobs)
    assert files2 - files1 == {_sha("BETA" * 300)}
    for text in ("alpha" * 300, "gamma" * 300):
        assert blobs.path(_sha(text)).stat().st_ino == inodes[text]  # type: ignore[attr-defined]

    third = {"a.txt": "alpha" * 300, "d.txt": "delta" * 300}
    run3 = run_flow(flow, source=str(_write(source, third)), register=True)
    assert run3.successful
    manifest1 = run1["start"].task["tree"].sha
    manifest3 = run3["start"].task["tree"].sha

    # gc of the first run: only "beta" (no other manifest lists it) and its manifest go
    dry = collect(None, None, dry_run=True, grace=timedelta(0), runs=[run1.pathspec])
    doomed = {_sha("beta" * 300), manifest1}
    assert doomed <= _keys(blobs)
    report = collect(None, None, dry_run=False, grace=timedelta(0), runs=[run1.pathspec])
    assert report.blobs == dry.blobs >= len(doomed)
    left = _keys(blobs)
    assert not doomed & left
    assert files2 | {_sha(t) for t in third.values()} <= left

    # the registered model outlives its run: its manifest and files are kept
    collect(None, None, dry_run=False, grace=timedelta(0), runs=[run3.pathspec])
    left = _keys(blobs)
    assert {manifest3, _sha("delta" * 300), _sha("alpha" * 300)} <= left
    assert _sha("gamma" * 300) in left  # still run2's
    _forget(home / "files")  # as on another host: materialise again
    tree = Model("tree").load()
    assert (tree / "d.txt").read_text() == "delta" * 300

    # once nothing lists them, run2's files go too (but "alpha", which the model lists)
    collect(None, None, dry_run=False, grace=timedelta(0), runs=[run2.pathspec])
    left = _keys(blobs)
    assert _sha("gamma" * 300) not in left and _sha("BETA" * 300) not in left
    assert {manifest3, _sha("delta" * 300), _sha("alpha" * 300)} <= left


def _forget(folder: Path) -> None:
    """Remove a materialised (read-only) tree, as a fresh host would not have it."""
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o700)
    shutil.rmtree(folder)
