"""File artifacts (``shipyard.Files``) through real flows: stored uncompressed and
content-addressed, read back in a later step, through the client and the registry, and
materialised once per host."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard import Files
from shipyard.registry import Model
from shipyard.store import context
from shipyard.store.blobs import open_blob_store
from shipyard.store.files import FilesError
from shipyard.store.staging import materialise
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
        assert stat.S_IMODE(entry.stat().st_mode) == 0o500
    assert stat.S_IMODE((path / "x.txt").stat().st_mode) == 0o400
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


def _forget(folder: Path) -> None:
    """Remove materialised (read-only) trees."""
    if not folder.exists():
        return
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o700)
    shutil.rmtree(folder)


# --- what listings show ------------------------------------------------------------------
def test_listings_describe_the_tree_not_a_pickle(home: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shipyard.cli.main import main

    source = _tree(tmp_path / "src", {"a.txt": "a" * 1500, "b.txt": "b" * 1000})
    run = run_flow(FLOW, source=str(source))
    task = run["start"].task
    artifact = task["tree"]
    assert artifact.size == 2500  # the bytes it holds, not the manifest's
    digest = task.data.tree.digest
    shown = CliRunner().invoke(main, ["artifacts", "list", task.pathspec], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    line = next(row for row in shown.output.splitlines() if row.startswith("tree"))
    assert "shipyard.store.files.Files" in line and "2.5 KB" in line
    assert f"Files: 2 files, 2.5 KB, sha256 {digest[:12]}" in line
    models = CliRunner().invoke(main, ["models", "show", "idx:1"], terminal_width=200)
    assert models.exit_code == 0, models.output
    assert f"Files: 2 files, 2.5 KB, sha256 {digest[:12]}" in models.output


# --- bad input -------------------------------------------------------------------------------
BAD_FLOW = """
from shipyard import FlowSpec, Files, Parameter, step


class BadFlow(FlowSpec):
    source = Parameter("source")
    nested = Parameter("nested", default=False)

    @step
    def start(self):
        if self.nested:
            self.trees = [Files(self.source)]
        else:
            self.tree = Files(self.source)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _failure(run: object, capsys: pytest.CaptureFixture[str]) -> str:
    """What the run printed (its failed task's error among it)."""
    out = capsys.readouterr()
    return out.out + out.err


def test_a_path_that_does_not_exist_is_named(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FilesError, match=rf"Files\('{missing}'\): no such file or directory"):
        Files(missing)


def test_a_symlink_out_of_the_directory_is_refused(home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    source = _tree(tmp_path / "src", {"ok.txt": "fine"})
    (source / "link.txt").symlink_to(secret)
    with pytest.raises(FilesError, match=rf"{source}/link.txt is a symlink to {secret}, outside"):
        Files(source)
    (source / "link.txt").unlink()
    (source / "inside.txt").symlink_to(source / "ok.txt")  # a link inside is its target
    assert Files(source).manifest["inside.txt"] == (_sha("fine"), 4)
    (source / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(FilesError, match=r"sub is a symlink to the directory .* \(outside"):
        Files(source)


def test_special_files_are_refused(home: Path, tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", {"ok.txt": "fine"})
    os.mkfifo(source / "pipe")
    with pytest.raises(FilesError, match=rf"{source}/pipe is a special file"):
        Files(source)
    with pytest.raises(FilesError, match=r"pipe is a special file"):
        Files(source / "pipe")


def test_errors_in_a_step_name_the_step_and_artifact(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _tree(tmp_path / "src", {"ok.txt": "fine"})
    nested = run_flow(BAD_FLOW, source=str(source), nested=True)
    assert not nested.successful
    said = _failure(nested, capsys)
    assert "artifact 'trees'" in said and "a Files must be an artifact of its own" in said
    missing = run_flow(BAD_FLOW, source=str(tmp_path / "gone"))
    assert not missing.successful
    said = _failure(missing, capsys)
    assert f"Files('{tmp_path / 'gone'}'): no such file or directory" in said


# --- materialising ---------------------------------------------------------------------------
def _stored(home: Path, tmp_path: Path, files: dict[str, str]) -> Files:
    from shipyard.store.files import upload

    store = open_blob_store(f"file://{home}/blobs")
    tree = Files(_tree(tmp_path / "src", files))
    upload(store, tree, name="tree")
    return Files.from_manifest(tree.manifest, store=store)


def test_a_local_store_links_instead_of_copying_and_copies_across_file_systems(
    home: Path, tmp_path: Path
) -> None:
    tree = _stored(home, tmp_path, {"a.bin": "a" * 5000})
    blob = home / "blobs" / _sha("a" * 5000)[:2] / _sha("a" * 5000)
    linked = materialise(tree, home=home) / "a.bin"
    same = linked.stat().st_ino == blob.stat().st_ino  # a hard link
    assert same or linked.stat().st_nlink == 1  # or a reflink (its own inode)
    assert linked.read_text() == "a" * 5000
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == home.stat().st_dev:
        pytest.skip("no second file system to materialise on")
    other = Path(tempfile.mkdtemp(dir=shm))
    try:
        copied = materialise(tree, home=other) / "a.bin"
        assert copied.stat().st_ino != blob.stat().st_ino and copied.read_text() == "a" * 5000
    finally:
        _forget(other)


MATERIALISE = """
import sys, time
from pathlib import Path
from shipyard.store import files, staging
from shipyard.store.blobs import open_blob_store

home, manifest, log = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
fill = staging._fill

def counted(*args):
    with open(log, "a") as f:
        f.write("built\\n")
    time.sleep(0.3)  # long enough for every other loader to arrive meanwhile
    fill(*args)

staging._fill = counted
tree = files.Files.from_manifest(files.parse_manifest(Path(manifest).read_bytes()))
start = float(sys.argv[4])
time.sleep(max(0.0, start - time.time()))
print(staging.materialise(tree, open_blob_store(f"file://{home}/blobs"), home))
"""


def test_concurrent_loaders_build_once_and_share_it(home: Path, tmp_path: Path) -> None:
    from shipyard.store.files import manifest_bytes

    tree = _stored(home, tmp_path, {f"f{i}.txt": str(i) * 1000 for i in range(20)})
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(manifest_bytes(tree.manifest))
    log = tmp_path / "builds.log"
    start = time.time() + 1.5
    loaders = [
        subprocess.Popen(
            [sys.executable, "-c", MATERIALISE, str(home), str(manifest), str(log), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    answers = [p.communicate(timeout=120) for p in loaders]
    assert [p.returncode for p in loaders] == [0] * 4, answers
    assert {out.strip() for out, _ in answers} == {str(home / "files" / tree.digest)}
    assert log.read_text() == "built\n"  # one loader built it, the others reused it
    assert sorted(p.name for p in (home / "files").iterdir()) == [
        f".{tree.digest}.lock",
        tree.digest,
    ]
    assert (home / "files" / tree.digest / "f7.txt").read_text() == "7" * 1000


def test_artifacts_get_says_where_the_files_are(home: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shipyard.cli.main import main

    run = run_flow(FLOW, source=str(_tree(tmp_path / "src", {"a.txt": "a"})))
    address = f"{run['start'].task.pathspec}:tree"
    digest = run["start"].task.data.tree.digest
    shown = CliRunner().invoke(main, ["artifacts", "get", address])
    assert shown.exit_code == 0, shown.output
    assert f"its files are in {home / 'files' / digest}" in shown.output
    refused = CliRunner().invoke(main, ["artifacts", "get", address, "-o", str(tmp_path / "x")])
    assert refused.exit_code == 1
    assert "is a file artifact (1 file, 1 B" in refused.output


def test_gc_removes_what_a_killed_loader_left_but_not_a_live_ones(
    home: Path, tmp_path: Path
) -> None:
    import fcntl
    from datetime import timedelta

    from shipyard.client.gc import collect
    from shipyard.store.staging import remove_stale

    live, dead = "a" * 64, "b" * 64
    folder = home / "files"
    folder.mkdir(parents=True)
    for digest in (live, dead):
        (folder / f".tmp-{digest[:12]}-x1").mkdir(mode=0o555)
        (folder / f".{digest}.lock").touch()
    fd = os.open(folder / f".{live}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a loader materialising `live` right now
        assert remove_stale(home) == 1
        assert [p.name for p in folder.glob(".tmp-*")] == [f".tmp-{live[:12]}-x1"]
    finally:
        os.close(fd)
    report = collect(None, 0, dry_run=False, grace=timedelta(0))
    assert report.files_temps == 1 and not list(folder.glob(".tmp-*"))


def test_a_host_staging_a_model_whose_file_is_gone_names_the_model_and_file(
    home: Path, tmp_path: Path
) -> None:
    from shipyard.registry import Registry, RegistryError

    run_flow(FLOW, source=str(_tree(tmp_path / "src", {"a.txt": "a" * 50, "b.txt": "b"})))
    key = _sha("a" * 50)
    (home / "blobs" / key[:2] / key).unlink()
    _forget(home / "files")  # the flow's end step materialised it here: another host, then
    registry = Registry()
    version = registry.get("idx")
    with pytest.raises(RegistryError, match=rf"model idx:1: Files .*: the blob {key} of 'a.txt'"):
        registry.stage_files(version)
    assert not (home / "files" / Model("idx").load().digest).exists()


# --- DAG shapes --------------------------------------------------------------------------------
FOREACH_FLOW = """
from pathlib import Path
from shipyard import FlowSpec, Files, step


class ShardFlow(FlowSpec):
    @step
    def start(self):
        self.shards = ["a", "b", "c"]
        self.next(self.build, foreach="shards")

    @step
    def build(self):
        folder = Path(current_dir()) / self.input
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "shard.txt").write_text(self.input * 10)
        (folder / "common.txt").write_text("same in every shard")
        self.shard = self.input
        self.tree = Files(folder)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.trees = {i.shard: i.tree.digest for i in inputs}
        self.best = max(inputs, key=lambda i: i.shard).tree  # an inherited Files, kept
        self.next(self.end)

    @step
    def end(self):
        self.text = (self.best / "shard.txt").read_text()


def current_dir():
    import os
    return os.environ["SHARD_DIR"]
"""


def test_files_through_a_foreach_and_a_join(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHARD_DIR", str(tmp_path / "shards"))
    run = run_flow(FOREACH_FLOW)
    assert run.successful
    join = run["join"].task
    assert len(set(join.data.trees.values())) == 3
    assert join["best"].sha == join.data.trees["c"]  # the same manifest, not a copy
    assert run["end"].task.data.text == "c" * 10
    common = _sha("same in every shard")
    assert (home / "blobs" / common[:2] / common).is_file()  # stored once for three shards


def test_a_resumed_run_reads_the_files_of_the_step_it_reused(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.testing import resume_flow, write_flow

    flaky = FLOW.replace(
        "        tree = self.tree\n",
        "        tree = self.tree\n        if os.environ.get('FAIL_END'):\n"
        "            raise RuntimeError('boom')\n",
    )
    flow = write_flow(flaky, tmp_path, "flaky_files_flow")
    source = _tree(tmp_path / "src", {"a.txt": "alpha"})
    monkeypatch.setenv("FAIL_END", "1")
    failed = run_flow(flow, source=str(source))
    assert not failed.successful
    _forget(home / "files")  # as if the resume ran on another host
    monkeypatch.delenv("FAIL_END")
    resumed = resume_flow(failed, flow)
    assert resumed.successful
    assert resumed["end"].task.data.seen == {"a.txt": "alpha"}


def test_the_ui_task_page_describes_a_file_artifact(home: Path, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from shipyard.keys import Guard, KeyStore
    from shipyard.store.meta import MetaStore
    from shipyard.ui import standalone

    run = run_flow(FLOW, source=str(_tree(tmp_path / "src", {"a.txt": "a" * 1500})))
    task = run["start"].task
    digest = task.data.tree.digest
    meta = MetaStore.open()
    keys = KeyStore(meta)
    try:
        app = standalone(meta, open_blob_store(), Guard(keys, bind_host="127.0.0.1"))
        client = TestClient(app, client=("127.0.0.1", 1234), base_url="http://127.0.0.1:8002")
        page = client.get(f"/ui/runs/{task.pathspec}").text
    finally:
        keys.close()
        meta.close()
    row = page[page.index('data-artifact="tree"') :].split("</tr>")[0]
    assert f"Files: 1 file, 1.5 KB, sha256 {digest[:12]}" in row
    assert 'title="1500 bytes in its files"' in row
