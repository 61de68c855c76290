from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipyard import cache
from shipyard.cache.backends import open_backend
from shipyard.cli.main import main


@dataclass
class Thing:
    name: str


@pytest.fixture
def lmdb_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"lmdb://{tmp_path / 'cli-cache'}"
    monkeypatch.setenv("SHIPYARD_CACHE_URL", url)
    return url


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["cache", *args])
    return result.exit_code, result.output


def test_ls_show_get(lmdb_url: str) -> None:
    assert invoke("ls") == (0, f"no cache namespaces in {lmdb_url} yet\n")
    with cache.writer("home-rows", meta={"run": "RankerFlow/3"}) as w:
        w.put_many({"p1": ["t1", "t2"], "obj": Thing("x"), "ü": {"a": None}})
    cache.configure("home-rows", keep=4)
    code, out = invoke("ls")
    assert code == 0, out
    assert "home-rows" in out and w.version in out and "STALE" not in out
    code, out = invoke("ls", "--json")
    (row,) = json.loads(out)
    assert row["namespace"] == "home-rows" and row["keys"] == 3 and row["keep"] == 4
    assert row["stale"] is False and row["live"] == w.version

    code, out = invoke("show", "home-rows")
    assert code == 0 and "RankerFlow/3" in out and "live" in out and "keep 4" in out
    code, out = invoke("show", "home-rows", "--json")
    meta = json.loads(out)[0]["meta"]
    assert meta["run"] == "RankerFlow/3" and meta["bytes"] > 0  # the size the writer measured

    assert invoke("get", "home-rows", "p1") == (0, '[\n  "t1",\n  "t2"\n]\n')
    code, out = invoke("get", "home-rows", "obj")
    assert code == 0 and out.endswith("Thing(name='x')\n")  # a pickled object: its repr
    assert json.loads(invoke("get", "home-rows", "ü")[1]) == {"a": None}


def test_stale_marker(lmdb_url: str) -> None:
    with cache.writer("old-rows") as w:
        w.put("k", 1)
    cache.configure("old-rows", max_age=0.01)
    deadline = time.monotonic() + 10  # the CLI reads the real time: wait for 10 ms to pass
    while "STALE" not in (out := invoke("ls"))[1]:
        assert out[0] == 0 and time.monotonic() < deadline, out
    assert json.loads(invoke("ls", "--json")[1])[0]["stale"] is True
    assert invoke("get", "old-rows", "k") == (0, "1\n")  # still served


def test_rollback_and_gc(lmdb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.cache import namespaces

    versions = []
    for value in ("one", "two"):
        with cache.writer("home-rows") as w:
            w.put("k", value)
        versions.append(w.version)
    code, out = invoke("rollback", "home-rows")
    assert code == 0 and f"now {versions[0]} (was {versions[1]})" in out
    assert invoke("get", "home-rows", "k")[1] == '"one"\n'
    code, out = invoke("rollback", "home-rows")
    assert code == 1 and "no published version before the live one" in out

    backend = open_backend(lmdb_url)
    abandoned = backend.begin("home-rows", {})
    backend.put_many("home-rows", abandoned, [(b"k", b"\x01\xa1x")])
    assert invoke("gc") == (0, "dropped 0 versions\n")  # the abandoned one is too young
    monkeypatch.setattr(namespaces, "DROP_GRACE_SECONDS", 0.0)
    cache.configure("home-rows", keep=1)
    code, out = invoke("gc", "--dry-run", "--unpublished-after", "0s")
    assert code == 0 and f"would drop home-rows version {abandoned} (unpublished, 1 keys)" in out
    # keep=1: the newest published version (two) stays, and so does the live one (one)
    assert f"version {versions[1]}" not in out and f"version {versions[0]}" not in out
    code, out = invoke("gc", "--unpublished-after", "0s")
    assert code == 0 and "dropped 1 version\n" in out
    assert [v.version for v in backend.versions("home-rows")] == versions


def test_configure(lmdb_url: str) -> None:
    code, out = invoke("configure", "home-rows", "--keep", "5", "--max-age", "6h")
    assert code == 0 and "keep 5 versions, max age 6h00m" in out
    code, out = invoke("configure", "home-rows", "--max-age", "off")
    assert code == 0 and "keep 5 versions, max age none" in out


def test_errors_exit_1_for_runtime_and_2_for_usage(lmdb_url: str, tmp_path: Path) -> None:
    code, out = invoke("show", "Bad/Name")
    assert code == 2 and "bad cache namespace 'Bad/Name'" in out
    code, out = invoke("configure", "home-rows", "--max-age", "soon")
    assert code == 2 and "bad max_age 'soon'" in out
    code, out = invoke("show", "nothing-here")
    assert code == 1 and "has no versions" in out
    code, out = invoke("get", "nothing-here", "k")
    assert code == 1 and "no live version" in out
    with cache.writer("home-rows") as w:
        w.put("k", 1)
    code, out = invoke("get", "home-rows", "missing")
    assert code == 1 and "key 'missing' is not in version" in out
    code, out = invoke("--url", "ftp://nowhere", "ls")
    assert code == 1 and "unknown cache URL 'ftp://nowhere'" in out
    other = f"lmdb://{tmp_path / 'other'}"
    code, out = invoke("--url", other, "ls")
    assert code == 0 and "no cache namespaces" in out
