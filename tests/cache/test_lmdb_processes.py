"""The LMDB backend with several processes: forked readers, concurrent writers, and a writer
killed in the middle of a load."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from shipyard import cache
from shipyard.cache.backends import open_backend

WRITER = """
import sys
from shipyard import cache
url, tag, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(rounds):
    with cache.writer("shared", url=url, meta={"tag": tag}) as w:
        w.put_many((f"k{n}", f"{tag}-{i}") for n in range(3000))
"""

KILLED_WRITER = """
import sys
from pathlib import Path
from shipyard import cache
url, marker = sys.argv[1], Path(sys.argv[2])
def rows():
    for n in range(10_000_000):
        if n == 30_000:
            marker.write_text("loading")
        yield f"k{n}", [n] * 50
w = cache.writer("shared", url=url)
print(w.version, flush=True)
w.put_many(rows())
w.commit()
"""


def _read_until(url: str, stop_at: float, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        reader = cache.reader("shared", url=url, refresh_seconds=0, strict=True)
        seen: set[str] = set()
        reads = 0
        while time.monotonic() < stop_at:
            keys = [f"k{n}" for n in random.sample(range(3000), 20)]
            values = reader.get_many(keys)
            assert len(values) == 20, f"missing keys in version {reader.version}"
            assert len(set(values.values())) == 1, f"mixed versions: {set(values.values())}"
            seen.add(next(iter(values.values())))
            reads += 1
        queue.put(("ok", os.getpid(), reads, len(seen)))
    except BaseException as exc:  # report anything to the parent
        queue.put(("error", os.getpid(), repr(exc), 0))


def _run(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_forked_readers_see_whole_versions_while_two_processes_write(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'cache'}"
    with cache.writer("shared", url=url) as w:
        w.put_many((f"k{n}", "seed-0") for n in range(3000))
    # the parent has the environment open before forking: children must reopen it
    parent = cache.reader("shared", url=url, refresh_seconds=3600)
    assert parent.get("k1") == "seed-0"

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    stop_at = time.monotonic() + 4.0
    readers = [context.Process(target=_read_until, args=(url, stop_at, queue)) for _ in range(3)]
    for p in readers:
        p.start()
    writers = [_run(WRITER, url, tag, "6") for tag in ("a", "b")]
    for w in writers:
        _, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
    results = [queue.get(timeout=30) for _ in readers]
    for p in readers:
        p.join(timeout=10)
    assert all(r[0] == "ok" for r in results), results
    assert all(r[2] > 50 for r in results), results  # each reader did real work
    assert max(r[3] for r in results) > 1, results  # and saw versions change under it
    assert parent.get("k1") == "seed-0"  # the parent's own env still works after the forks
    parent.refresh()
    assert parent.get("k1") in {"a-5", "b-5"}
    versions = open_backend(url).versions("shared")
    assert [v.version for v in versions] == sorted(v.version for v in versions)
    assert sum(1 for v in versions if v.published_at) == 13  # nothing dropped within grace


def test_a_writer_killed_mid_load_leaves_the_live_version_alone(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'cache'}"
    with cache.writer("shared", url=url) as w:
        w.put_many({"k1": "old", "k2": "old"})
    live = w.version
    marker = tmp_path / "loading"
    proc = _run(KILLED_WRITER, url, str(marker))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    partial = out.split()[0]

    backend = open_backend(url)
    assert backend.live("shared") == live
    reader = cache.reader("shared", url=url)
    assert reader.get("k1") == "old" and reader.get("k5") is None
    info = {v.version: v for v in backend.versions("shared")}[partial]
    assert info.published_at is None and info.keys >= 20_000
    # the write lock is not stuck: another writer gets through, then gc drops the leftover
    with cache.writer("shared", url=url) as w:
        w.put("k1", "new")
    assert reader.refresh() == w.version and reader.get("k1") == "new"
    assert cache.gc(url=url, dry_run=True) == []  # too young to be garbage
    dropped = cache.gc(url=url, unpublished_after=0)
    assert [(ns, v.version) for ns, v in dropped] == [("shared", partial)]
    assert partial not in [v.version for v in backend.versions("shared")]


@pytest.mark.parametrize("chunk", [7])
def test_bulk_writes_are_chunked_and_drops_are_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    from shipyard.cache.backends import lmdb as lmdb_backend

    monkeypatch.setattr(lmdb_backend, "CHUNK_ITEMS", chunk)
    url = f"lmdb://{tmp_path / 'cache'}"
    backend = open_backend(url)
    keep = cache.writer("other", url=url)
    keep.put_many({f"x{n}": n for n in range(10)})
    keep.commit()
    version = backend.begin("ns", {})
    assert backend.put_many("ns", version, ((f"k{n}".encode(), b"v") for n in range(50))) == 50
    assert {v.version: v.keys for v in backend.versions("ns")} == {version: 50}
    backend.drop("ns", version)
    assert backend.versions("ns") == []
    assert backend.get_many("other", keep.version, [b"x3"])[0] is not None
    r = cache.reader("other", url=url)
    assert r.get_many([f"x{n}" for n in range(10)]) == {f"x{n}": n for n in range(10)}
