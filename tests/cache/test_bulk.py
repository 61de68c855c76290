"""The bulk pattern: a foreach writes the parts of one version, the join publishes it; it
survives a shard's retry and a resumed run."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard import cache
from shipyard.cache import codec
from shipyard.cache.backends import open_backend
from shipyard.cache.namespaces import encode_key
from shipyard.store.records import RunStatus
from shipyard.testing import resume_flow, run_flow, write_flow

FLOW = """
import os
from shipyard import FlowSpec, cache, current, retry, step

FAIL_SHARD_ONCE = {fail_shard_once!r}
JOIN_FLAG = {join_flag!r}

class BulkFlow(FlowSpec):
    @step
    def start(self):
        self.home_rows = cache.bulk("home-rows", meta={{"run": current.pathspec}})
        self.shards = list(range(4))
        self.next(self.score, foreach="shards")

    @retry(times=1, minutes_between_retries=0)
    @step
    def score(self):
        shard = self.input
        rows = ((f"p{{shard}}-{{n}}", [shard, n] * 25) for n in range(200))
        with self.home_rows.part(shard) as part:
            if shard == FAIL_SHARD_ONCE and current.retry_count == 0:
                part.put_many(list(rows)[:50])
                part.put("junk-from-the-failed-attempt", 1)
                raise RuntimeError("shard crashed half-way")
            part.put_many(rows, total=200)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        if JOIN_FLAG and os.path.exists(JOIN_FLAG):
            raise RuntimeError("join broke")
        self.version = self.home_rows.commit(parts=len(inputs))
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def check_complete(version: str) -> None:
    reader = cache.reader("home-rows", strict=True)
    assert reader.version == version
    keys = [f"p{s}-{n}" for s in range(4) for n in range(200)]
    values = reader.get_many(keys)
    assert values == {f"p{s}-{n}": [s, n] * 25 for s in range(4) for n in range(200)}


def test_a_shard_that_fails_once_is_retried_into_a_complete_version(tmp_path: Path) -> None:
    run = run_flow(write_flow(FLOW.format(fail_shard_once=2, join_flag=""), tmp_path))
    assert run.successful
    retried = [t for t in run["score"].tasks() if len(t.attempts) > 1]
    assert len(retried) == 1  # shard 2 failed once, then succeeded
    handle = run["start"].task.data.home_rows
    info = run["join"].task.data.version
    assert info.version == handle.version and info.published_at is not None
    assert info.meta["run"] == f"{run.pathspec}/start/{run['start'].task.id}"
    assert info.meta["bytes"] > 4 * 200 * 10  # the parts' sizes, each counted once
    # the failed attempt's put_many landed and was rewritten; its buffered put() never landed
    assert info.keys == 4 * 200 + 4  # + one completion marker per part
    check_complete(info.version)


def test_a_resumed_run_publishes_the_version_its_origin_began(tmp_path: Path) -> None:
    flag = tmp_path / "join-broken"
    flag.touch()
    path = write_flow(FLOW.format(fail_shard_once=-1, join_flag=str(flag)), tmp_path)
    first = run_flow(path)
    assert first.status is RunStatus.FAILED
    handle = first["start"].task.data.home_rows
    assert open_backend().live("home-rows") is None  # nothing published
    assert handle.missing(4) == []

    flag.unlink()  # "fix the bug"
    second = resume_flow(first, path)
    assert second.successful
    assert all(t.origin_pathspec is not None for t in second["score"].tasks())  # reused
    info = second["join"].task.data.version
    assert info.version == handle.version
    check_complete(handle.version)
    # a retried or repeated join does not publish again (nor roll back a newer version)
    with cache.writer("home-rows") as w:
        w.put("x", 1)
    assert handle.commit(parts=4).version == handle.version
    assert open_backend().live("home-rows") == w.version


def test_commit_names_the_parts_that_did_not_finish() -> None:
    url = "memory://bulk-parts"
    handle = cache.bulk("home-rows", url=url, meta={"run": "F/1"})
    for shard in ("a", "c"):
        with handle.part(shard) as part:
            part.put(f"k-{shard}", shard)
    with pytest.raises(RuntimeError):
        with handle.part("b") as part:
            part.put("k-b", "b")
            raise RuntimeError("crash")
    with pytest.raises(cache.CacheError, match=r"1 of 3 parts did not finish .*: b;"):
        handle.commit(parts=["a", "b", "c"])
    with pytest.raises(cache.CacheError, match=r"2 of 2 parts did not finish .*: 0, 1"):
        handle.commit(parts=2)
    assert open_backend(url).live("home-rows") is None
    with handle.part("b") as part:
        part.put("k-b", "b")
    info = handle.commit(parts=["a", "b", "c"])
    assert cache.reader("home-rows", url=url).get_many(["k-a", "k-b", "k-c"]) == {
        "k-a": "a",
        "k-b": "b",
        "k-c": "c",
    }
    stored = [(encode_key("home-rows", f"k-{s}"), codec.encode(s)) for s in "abc"]
    assert info.meta == {"run": "F/1", "bytes": sum(len(k) + len(v) for k, v in stored)}
    import pickle

    assert pickle.loads(pickle.dumps(handle)) == handle
