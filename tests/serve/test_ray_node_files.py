"""A Ray replica's node cache (``serve/ray_files.py``): what it fetches, what it refuses,
and the isolation view built around it. No Ray here: ``get`` is the directory's answer
(tests/ray/test_ray_serve.py runs the whole path on the tests' cluster)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shipyard.serve.isolation import Bind, Plan
from shipyard.serve.ray_files import FetchError, digest, fetch, needed_blobs, node_plan
from shipyard.store.code import pack_code


def _snapshot(tmp_path: Path) -> tuple[str, bytes]:
    source = tmp_path / "src"
    source.mkdir()
    (source / "echo_service.py").write_text("VALUE = 41\n")
    data = pack_code(source / "echo_service.py", "echo_service")
    return digest(data), data


class Directory:
    """The blobs the host handed over, and the keys each replica asked for."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.asked: list[list[str]] = []

    def get(self, keys: list[str]) -> dict[str, bytes]:
        self.asked.append(list(keys))
        return {k: self.blobs[k] for k in keys if k in self.blobs}


def test_a_node_fetches_what_it_lacks_once_and_checks_every_digest(tmp_path: Path) -> None:
    code_key, code = _snapshot(tmp_path)
    model = b"a pickled model"
    model_key = digest(model)
    digests = {code_key: code_key, model_key: model_key}
    directory = Directory({code_key: code, model_key: model})
    root = tmp_path / "node"

    code_dir = fetch(root, code_key, digests, [code_key], directory.get)
    assert code_dir == root / "home" / "code" / code_key
    assert (code_dir / "echo_service.py").read_text() == "VALUE = 41\n"
    assert (root / "blobs" / model_key[:2] / model_key).read_bytes() == model
    assert directory.asked == [[code_key, model_key]]

    # a second replica on the node asks for nothing
    assert fetch(root, code_key, digests, [code_key], directory.get) == code_dir
    assert len(directory.asked) == 1

    # a copy damaged on the node is fetched again
    (root / "blobs" / model_key[:2] / model_key).write_bytes(b"damaged")
    fetch(root, code_key, digests, [code_key], directory.get)
    assert directory.asked[-1] == [model_key]
    assert (root / "blobs" / model_key[:2] / model_key).read_bytes() == model


def test_bytes_that_do_not_match_their_digest_are_refused(tmp_path: Path) -> None:
    code_key, code = _snapshot(tmp_path)
    model_key = digest(b"the model the host read")
    directory = Directory({code_key: code, model_key: b"something else"})
    root = tmp_path / "node"
    with pytest.raises(FetchError, match=f"blob {model_key} arrived corrupt"):
        fetch(root, code_key, {code_key: code_key, model_key: model_key}, [code_key], directory.get)
    assert not (root / "blobs" / model_key[:2] / model_key).exists()

    gone = Directory({})
    with pytest.raises(FetchError, match=f"no blob {code_key}"):
        fetch(tmp_path / "other", code_key, {code_key: code_key}, [code_key], gone.get)


def test_needed_blobs_are_the_snapshot_and_the_pinned_models_blobs() -> None:
    code_key, model_key, run_key = "a" * 64, "b" * 64, "c" * 64
    records = {
        "iris@prod": {"artifact": {"key": model_key, "inline": None}, "code_key": run_key},
        "small:1": {"artifact": {"key": "d" * 64, "inline": "00"}, "code_key": None},
    }
    keys, snapshots = needed_blobs(code_key, records)
    assert keys == [code_key, model_key, run_key]
    assert snapshots == [code_key, run_key]


def test_the_workers_view_binds_the_node_cache_and_hides_the_hosts_home(tmp_path: Path) -> None:
    host_home = tmp_path / "host-home"
    host_home.mkdir()
    lmdb = host_home / "cache"
    host_plan = Plan(
        home=str(host_home),
        binds=(
            Bind(str(host_home / "code")),
            Bind(str(host_home / "blobs")),
            Bind("/tmp/shipyard-ray-serve", True),
            Bind(str(lmdb), True),
        ),
        hide=("/srv/meta.db",),
    ).to_json()
    root = tmp_path / "node"
    code_dir = root / "home" / "code" / ("e" * 64)
    view = json.loads(node_plan(host_plan, root, code_dir, "echo"))
    binds = {path: writable for path, writable in view["binds"]}
    assert view["home"] == str(host_home)  # this node sees the host's home: it stays hidden
    assert str(host_home / "code") not in binds and str(host_home / "blobs") not in binds
    assert binds[str(root / "home" / "code")] is False
    assert binds[str(code_dir)] is False
    assert binds[str(root / "blobs")] is False
    assert binds[str(root / "blobs" / "serving-logs" / "echo")] is True
    assert binds["/tmp/shipyard-ray-serve"] is True and binds[str(lmdb)] is True
    assert view["hide"] == ["/srv/meta.db"]

    # a node without the host's home: the node cache's home is the hidden one
    elsewhere = Plan(home=str(tmp_path / "absent"), binds=(), hide=()).to_json()
    assert json.loads(node_plan(elsewhere, root, code_dir, "echo"))["home"] == str(root / "home")


TREE_FLOW = """
from shipyard import FlowSpec, Files, Parameter, current, step


class TreeFlow(FlowSpec):
    source = Parameter("source")

    @step
    def start(self):
        current.register_model("tree", Files(self.source))
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_file_artifact_model_travels_file_by_file_and_is_materialised_once_per_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.registry import Registry
    from shipyard.serve.model_channel import record_to_json
    from shipyard.serve.ray_files import file_blobs, read_payload, stage_files, staged_files
    from shipyard.store.context import reset
    from shipyard.testing import run_flow

    host_home = tmp_path / "host"
    monkeypatch.setenv("SHIPYARD_HOME", str(host_home))
    source = tmp_path / "model"
    (source / "vocab").mkdir(parents=True)
    weights = bytes(range(256)) * 300
    (source / "weights.bin").write_bytes(weights)
    (source / "vocab" / "labels.txt").write_text("PERSON\nPLACE\n")
    reset()
    try:
        assert run_flow(TREE_FLOW, source=str(source)).successful
        records = {"tree:1": record_to_json(Registry().get("tree:1"))}
    finally:
        reset()
    store_url = (host_home / "blobs").as_uri()

    # the host reads the manifest: one blob per file, keyed by its SHA-256
    file_keys = file_blobs(store_url, records)
    assert sorted(file_keys) == sorted([digest(weights), digest(b"PERSON\nPLACE\n")])
    code_key, code = _snapshot(tmp_path)
    keys, snapshots = needed_blobs(code_key, records)
    keys += file_keys
    blobs = {code_key: code, **read_payload(store_url, [k for k in keys if k != code_key])}
    digests = {k: digest(v) for k, v in blobs.items()}
    directory = Directory(blobs)
    root = tmp_path / "node"

    fetch(root, code_key, digests, snapshots, directory.get)
    (tree,) = stage_files(root, records)
    assert tree.parent == root / "home" / "files"
    assert (tree / "weights.bin").read_bytes() == weights
    assert (tree / "vocab" / "labels.txt").read_text() == "PERSON\nPLACE\n"
    assert not os.access(tree / "weights.bin", os.W_OK) or os.geteuid() == 0
    assert set(directory.asked[0]) == set(keys)

    # a second replica on the node fetches nothing and finds the tree in place
    fetch(root, code_key, digests, snapshots, directory.get)
    assert stage_files(root, records) == [tree]
    assert len(directory.asked) == 1
    # nor does it read the files of a tree in place again (checked when it was built)
    assert staged_files(root, records) == set(file_keys)
    assert staged_files(tmp_path / "empty-node", records) == set()

    # a file whose bytes do not match its digest never reaches the node's store or tree
    other = tmp_path / "node-b"
    bad = Directory({**blobs, digest(weights): weights[:-1] + b"x"})
    with pytest.raises(FetchError, match=f"blob {digest(weights)} arrived corrupt"):
        fetch(other, code_key, digests, snapshots, bad.get)
    assert not (other / "home" / "files").exists() or not any((other / "home" / "files").iterdir())

    # a file blob damaged on a node before it was materialised: the tree is refused
    third = tmp_path / "node-c"
    fetch(third, code_key, digests, snapshots, directory.get)
    damaged = third / "blobs" / digest(weights)[:2] / digest(weights)
    os.chmod(damaged, 0o644)
    damaged.write_bytes(b"x" * len(weights))
    with pytest.raises(FetchError, match="model tree:1"):
        stage_files(third, records)
    assert not (third / "home" / "files" / tree.name).exists()
