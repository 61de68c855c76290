"""A Ray replica's serving log shipped back to the host's store (``serve/ray_logs.py``):
only published segments move, each digest-checked and written atomically, and a node
deletes a segment only once the host's store holds it. No Ray here: the go-between is the
directory's bookkeeping (tests/ray/test_ray_serve.py runs the whole path on the cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.features import ServingLog, read_serving_log
from shipyard.serve.ray_logs import LogShipError, Segments, folder, offer, store_segments


class GoBetween:
    """What the directory keeps: the segments pending, and those the host stored."""

    def __init__(self) -> None:
        self.pending: Segments = {}
        self.stored: set[str] = set()
        self.sent: list[list[str]] = []

    def ask(self, names: list[str]) -> dict[str, list[str]]:
        return {
            "stored": [n for n in names if n in self.stored],
            "wanted": [n for n in names if n not in self.stored and n not in self.pending],
        }

    def send(self, batch: Segments) -> None:
        self.sent.append(sorted(batch))
        self.pending.update(batch)

    def take(self, store_url: str, service: str) -> list[str]:
        stored = store_segments(store_url, service, dict(self.pending))
        for name in stored:
            self.pending.pop(name)
            self.stored.add(name)
        return stored


def _log(store: Path, service: str, values: range) -> None:
    """Records written by the real ServingLog into a store (one published segment)."""
    serving_log = ServingLog(service=service, store_url=store.as_uri())
    for value in values:
        serving_log.log(facts={"x": value}, features={"f": value}, prediction=float(value))
    serving_log.close()


def test_published_segments_reach_the_hosts_store_and_leave_the_node(tmp_path: Path) -> None:
    node, host = tmp_path / "node", tmp_path / "host-blobs"
    where = folder(node, "ranker")
    _log(node / "blobs", "ranker", range(5))
    _log(node / "blobs", "ranker", range(5, 8))
    segments = sorted(p.name for p in where.iterdir())
    assert len(segments) == 2
    # a segment being written: hidden, never shipped
    (where / f".{segments[0]}.999999.tmp").write_bytes(b"half a segment")
    between = GoBetween()

    assert offer(where, between.ask, between.send) == 2
    assert between.sent == [segments]
    assert offer(where, between.ask, between.send) == 0  # pending: not sent twice
    assert sorted(p.name for p in where.iterdir() if not p.name.startswith(".")) == segments

    assert sorted(between.take(host.as_uri(), "ranker")) == segments
    logged = read_serving_log("ranker", store_url=host.as_uri())
    assert sorted(row["x"] for row in logged["facts"]) == list(range(8))
    assert not [p for p in (host / "serving-logs" / "ranker").iterdir() if p.name[0] == "."]

    # the next offer deletes what the host holds; the one being written stays
    assert offer(where, between.ask, between.send) == 0
    assert [p.name for p in where.iterdir()] == [f".{segments[0]}.999999.tmp"]


def test_a_corrupt_segment_is_not_stored_and_stays_on_the_node(tmp_path: Path) -> None:
    node, host = tmp_path / "node", tmp_path / "host-blobs"
    where = folder(node, "ranker")
    _log(node / "blobs", "ranker", range(3))
    (name,) = [p.name for p in where.iterdir()]
    between = GoBetween()
    offer(where, between.ask, between.send)
    sha, data = between.pending[name]
    between.pending[name] = (sha, data[:-1] + bytes([data[-1] ^ 1]))
    assert between.take(host.as_uri(), "ranker") == []
    assert not (host / "serving-logs" / "ranker" / name).exists()
    offer(where, between.ask, between.send)
    assert (where / name).is_file()  # the node keeps it until the host holds it

    # the same segment arriving twice (two replicas of one node) is written once
    assert store_segments(host.as_uri(), "ranker", {name: (sha, data)}) == [name]
    assert store_segments(host.as_uri(), "ranker", {name: (sha, data)}) == [name]
    assert [p.name for p in (host / "serving-logs" / "ranker").iterdir()] == [name]


def test_names_that_leave_the_folder_and_remote_stores_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a serving-log name"):
        store_segments(tmp_path.as_uri(), "ranker", {"../escape": ("0" * 64, b"")})
    with pytest.raises(ValueError, match="not a serving-log name"):
        store_segments(tmp_path.as_uri(), "..", {"x": ("0" * 64, b"")})
    with pytest.raises(LogShipError, match="cannot ship serving logs to the store"):
        store_segments("gs://bucket/prefix", "ranker", {})


def test_segments_reach_a_hosts_store_on_s3(tmp_path: Path, s3_url: str) -> None:
    node = tmp_path / "node"
    where = folder(node, "ranker")
    _log(node / "blobs", "ranker", range(4))
    between = GoBetween()
    assert offer(where, between.ask, between.send) == 1
    ((name, (sha, data)),) = between.pending.items()
    corrupt = {name: (sha, data[:-1] + bytes([data[-1] ^ 1]))}
    assert store_segments(s3_url, "ranker", corrupt) == []
    assert between.take(s3_url, "ranker") == [name]
    assert store_segments(s3_url, "ranker", {name: (sha, data)}) == [name]  # held already
    logged = read_serving_log("ranker", store_url=s3_url)
    assert sorted(row["x"] for row in logged["facts"]) == list(range(4))
    offer(where, between.ask, between.send)
    assert not where.exists() or not list(where.iterdir())
