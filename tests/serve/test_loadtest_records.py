"""Load tests kept with a deployment (``shipyard.serve.loadtests``), on SQLite and
PostgreSQL: newest first, per service, with or without their report."""

from __future__ import annotations

from shipyard.serve.loadtests import MAX_REPORT, LoadTestStore
from shipyard.store.meta import MetaStore


def test_load_tests_are_kept_per_service_newest_first(meta: MetaStore) -> None:
    store = LoadTestStore(meta)
    first = store.record("ranker", 3, {"requests": 10, "latency_ms": {"p99": 1.5}},
                         report="<html>one</html>", created_by="ann")  # fmt: skip
    second = store.record("ranker", 4, {"requests": 20}, report=None, created_by="bob")
    store.record("other", 1, {"requests": 5}, report="<html>x</html>", created_by="ann")
    listed = store.recent("ranker")
    assert [t.id for t in listed] == [second.id, first.id]
    assert [(t.version, t.has_report, t.created_by) for t in listed] == [
        (4, False, "bob"), (3, True, "ann")]  # fmt: skip
    assert listed[1].summary == {"requests": 10, "latency_ms": {"p99": 1.5}}
    assert store.report("ranker", first.id) == "<html>one</html>"
    assert store.report("ranker", second.id) is None
    assert store.report("other", first.id) is None  # another service's number


def test_an_oversized_report_is_dropped_and_the_summary_kept(meta: MetaStore) -> None:
    store = LoadTestStore(meta)
    record = store.record("ranker", None, {"requests": 1}, report="x" * (MAX_REPORT + 1),
                          created_by="ann")  # fmt: skip
    assert not record.has_report and store.recent("ranker")[0].summary == {"requests": 1}
