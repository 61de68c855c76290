"""File artifacts (``shipyard.Files``) through real flows: stored uncompressed and
content-addressed, read back in a later step, through the client and the registry, and
materialised once per host."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard import Files
from shipyard.registry import Model
from shipyard.store import context
from shipyard.store.blobs import open_blob_store
from shipyard.store.files import FilesError, materialise
from shipyard.testing import run_flow

FLOW = """
import os
from pathlib import Path
from shipyard import FlowSpec, Files, Parameter, current, step


class IndexFlow(FlowSpec):
    source = Parameter("source")

    @step
    def start(self):
        self.tree = Files(self.source)
        current.register_model("idx", self.tree, metrics={"files": len(self.tree)})
        self.next(self.end)

    @step
    def end(self):
        tree = self.tree
        assert tree.stored, tree
        self.seen = {
            p.relative_to(tree.path).as_posix(): p.read_text()
            for p in sorted(tree.path.rglob("*")) if p.is_file()
        }
        self.where = str(tree.path)
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(path))
    for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(var, raising=False)
    yield path
    context.reset()


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_directory_goes_to_the_store_file_by_file_and_comes_back_everywhere(
    home: Path, tmp_path: Path
) -> None:
    files = {"a.txt": "alpha", "sub/b.txt": "beta", "sub/deeper/c.bin": "gamma" * 500}
    source = _tree(tmp_path / "src", files)
    run = run_flow(FLOW, source=str(source))
    assert run.successful
    blobs = home / "blobs"
    for text in files.values():  # each file is a blob of its own, as is, under its sha256
        key = _sha(text)
        assert (blobs / key[:2] / key).read_text() == text
    # a later step read them from its local materialised directory
    end = run["end"].task.data
    assert end.seen == files
    tree = run["start"].task.data.tree  # the client
    assert isinstance(tree, Files) and tree.stored
    assert tree.manifest == {n: (_sha(t), len(t)) for n, t in files.items()}
    assert tree.path == home / "files" / tree.digest == Path(end.where)
    assert (tree / "sub/b.txt").read_text() == "beta"
    # the artifact is the manifest, shown as such
    artifact = run["start"].task["tree"]
    assert artifact.type_name == "shipyard.store.files.Files"
    assert artifact.preview == f"Files: 3 files, 2.5 KB, sha256 {tree.digest[:12]}"
    # and the registry gives the same tree
    loaded = Model("idx").load()
    assert isinstance(loaded, Files) and loaded.digest == tree.digest
    assert loaded.path == tree.path


def test_the_materialised_directory_is_read_only_and_verified(home: Path, tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", {"x.txt": "x" * 100, "d/y.txt": "y"})
    run = run_flow(FLOW, source=str(source))
    tree = run["start"].task.data.tree
    path = tree.path
    for entry in [path, path / "d"]:
        assert stat.S_IMODE(entry.stat().st_mode) == 0o555
    assert stat.S_IMODE((path / "x.txt").stat().st_mode) == 0o444
    # a corrupt blob is refused when materialising on another host (another home)
    key = _sha("y")
    blob = home / "blobs" / key[:2] / key
    blob.chmod(0o644)
    blob.write_text("z")
    fresh = Files.from_manifest(tree.manifest, store=open_blob_store(f"file://{home}/blobs"))
    with pytest.raises(FilesError, match=r"file 'd/y.txt'.*corrupt"):
        materialise(fresh, home=tmp_path / "other-host")
    assert not (tmp_path / "other-host" / "files" / tree.digest).exists()
    assert [p.name for p in (tmp_path / "other-host" / "files").iterdir()] == [
        f".{tree.digest}.lock"
    ]


def test_a_single_file(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(os.urandom(3000))
    run = run_flow(FLOW, source=str(source))
    tree = run["start"].task.data.tree
    assert list(tree.manifest) == ["model.onnx"]
    assert tree.file.read_bytes() == source.read_bytes()
