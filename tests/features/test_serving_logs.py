"""Serving logs: sampled, off the request path, rotated by size and age, kept for a
retention, never half-written, read back as a DataFrame."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from shipyard.features import (
    FeatureSet,
    Lookup,
    ServingLog,
    facts_frame,
    feature,
    lookup_frames,
    read_serving_log,
)
from shipyard.features.logstore import open_segments

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _log(url: str, **options: object) -> ServingLog:
    options.setdefault("flush_interval", 0.02)
    return ServingLog(service="ranker", store_url=url, **options)  # type: ignore[arg-type]


def _record(i: int) -> dict[str, object]:
    return {
        "facts": {"profile_id": f"p{i % 7}", "title": f"t{i}", "when": datetime(2026, 1, 1)},
        "features": {"title_length": i, "mean_rating": i / 2},
        "prediction": i * 0.1,
        "lookups": {"profile": {"mean_rating": 3.0, "as_of": datetime(2026, 1, 1, tzinfo=UTC)}},
        "request_id": f"r{i}",
    }


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'blobs'}"


def test_records_read_back_with_a_column_per_feature(url: str) -> None:
    serving = _log(url)
    for i in range(5):
        assert serving.log(**_record(i))  # type: ignore[arg-type]
    assert serving.flush()
    frame = read_serving_log("ranker", store_url=url)
    assert list(frame.columns) == [
        "request_id",
        "ts",
        "facts",
        "lookups",
        "title_length",
        "mean_rating",
        "prediction",
    ]
    assert frame["request_id"].tolist() == [f"r{i}" for i in range(5)]
    assert frame["title_length"].tolist() == [0, 1, 2, 3, 4]
    assert frame["facts"][3]["when"] == datetime(2026, 1, 1, tzinfo=UTC)  # naive: UTC
    assert str(frame["ts"].dt.tz) == "UTC"
    facts = facts_frame(frame)
    assert {"profile_id", "title", "ts", "profile.as_of"} <= set(facts.columns)
    later = read_serving_log("ranker", store_url=url, since=datetime.now(UTC))
    assert len(later) == 0
    serving.close()


def test_logged_facts_and_lookups_recompute_the_logged_features(url: str) -> None:
    @feature
    def words(facts: dict[str, object]) -> int:
        return len(str(facts.get("title") or "").split())

    @feature
    def mean(facts: dict[str, object], lookups: dict[str, dict[str, float]]) -> float:
        return lookups["profile"]["mean"]

    fs = FeatureSet("s", [words, mean], lookups={"profile": Lookup("p", default={"mean": 3.0})})
    serving = _log(url)
    cases = [({"title": "a b", "p": "p1"}, {"profile": {"mean": 4.5}}), ({"title": "c"}, {})]
    for facts, lookups in cases:
        serving.log(facts=facts, lookups=lookups, features=fs.row(facts, lookups))
    serving.flush()
    logged = read_serving_log("ranker", store_url=url)
    again = fs.frame(facts_frame(logged), lookups=lookup_frames(logged))
    assert again.to_dict("records") == logged[list(fs.names)].to_dict("records")
    assert again["mean"].tolist() == [4.5, 3.0]  # the missing lookup: its default again
    serving.close()


def test_rotation_by_size_and_by_age(url: str) -> None:
    by_size = _log(url, max_bytes=2_000, flush_interval=5.0)
    for i in range(200):
        by_size.log(**_record(i))  # type: ignore[arg-type]
    by_size.flush()
    segments = open_segments(url).segments("ranker")
    assert len(segments) >= 5, segments  # ~100 bytes a record, 2 KB a segment
    assert len(read_serving_log("ranker", store_url=url)) == 200
    by_size.close()

    store = f"{url}-age"
    by_age = _log(store, max_age=timedelta(milliseconds=100), flush_interval=0.02)
    for i in range(3):
        by_age.log(**_record(i))  # type: ignore[arg-type]
        # each record's segment is published for its age alone (no flush) before the next
        # record comes: waited for, not slept, so a slow machine cannot merge two segments
        deadline = time.monotonic() + 5
        while len(open_segments(store).segments("ranker")) < i + 1:
            assert time.monotonic() < deadline, f"segment {i + 1} not published by age"
            time.sleep(0.02)
    assert len(open_segments(store).segments("ranker")) == 3
    assert len(read_serving_log("ranker", store_url=store)) == 3
    by_age.close()


def test_retention_deletes_old_segments(url: str, tmp_path: Path) -> None:
    folder = tmp_path / "blobs" / "serving-logs" / "ranker"
    folder.mkdir(parents=True)
    now_ms = int(time.time() * 1000)
    old = f"{now_ms - 10 * 86_400_000:013d}-{now_ms - 9 * 86_400_000:013d}-h-1-000001.msgpack.zst"
    recent = f"{now_ms - 3_600_000:013d}-{now_ms - 60_000:013d}-h-1-000002.msgpack.zst"
    (folder / old).write_bytes(b"")
    (folder / recent).write_bytes(b"")
    serving = _log(url, retention=timedelta(days=2))
    serving.log(**_record(1))  # type: ignore[arg-type]
    serving.flush()
    names = sorted(p.name for p in folder.iterdir())
    assert old not in names
    assert recent in names
    assert len(names) == 2  # the recent one and the new one
    serving.close()


def test_the_sampling_rate_is_kept(url: str) -> None:
    serving = _log(url, sample=0.3)
    kept = sum(bool(serving.log(**_record(i))) for i in range(20_000))  # type: ignore[arg-type]
    assert serving.logged == kept and serving.sampled_out == 20_000 - kept
    assert abs(kept / 20_000 - 0.3) < 0.015  # > 4 standard deviations
    serving.flush()
    assert len(read_serving_log("ranker", store_url=url)) == kept
    assert ServingLog(sample=0.0, service="x", store_url=url).log(**_record(0)) is False  # type: ignore[arg-type]
    serving.close()


def test_a_full_queue_drops_and_counts_never_blocks(url: str) -> None:
    serving = _log(url, queue_size=10, flush_interval=30.0)  # the writer sleeps meanwhile
    started = time.perf_counter()
    results = [serving.log(**_record(i)) for i in range(1_000)]  # type: ignore[arg-type]
    assert time.perf_counter() - started < 1.0
    assert results.count(True) == 10 and serving.dropped == 990
    serving.flush()
    assert serving.written == 10
    serving.close()


CRASHING = """
import sys, time
from shipyard.features import ServingLog
log = ServingLog(service="ranker", store_url=sys.argv[1], max_bytes=10_000_000, flush_interval=0.01)
for i in range(3_000):
    log.log(facts={"i": i, "pad": "x" * 100}, features={"f": i}, prediction=i)
    if i == 1_999:
        log.flush()  # records 0..1999: published
while log.written < 3_000:  # 2000..2999: in the open segment (under max_bytes), unpublished
    time.sleep(0.01)
print("writing", flush=True)
time.sleep(60)
"""


def test_a_crash_mid_write_leaves_no_half_written_segment(url: str, tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text(CRASHING)
    proc = subprocess.Popen(
        [sys.executable, str(script), url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    folder = tmp_path / "blobs" / "serving-logs" / "ranker"
    temps = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert temps, "the killed writer had a segment open"
    frame = read_serving_log("ranker", store_url=url)  # reads only finished segments
    assert frame["f"].tolist() == list(range(2_000))
    # the next writer of the service clears what the dead one left
    serving = _log(url)
    serving.log(**_record(0))  # type: ignore[arg-type]
    serving.flush()
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    serving.close()


@pytest.mark.s3
def test_segments_go_to_s3_when_the_store_is_s3(s3_url: str) -> None:
    serving = ServingLog(service="ranker", store_url=s3_url, max_bytes=1_000, flush_interval=0.02)
    for i in range(30):
        serving.log(**_record(i))  # type: ignore[arg-type]
    assert serving.flush()
    assert serving.errors == 0
    assert len(open_segments(s3_url).segments("ranker")) >= 2
    frame = read_serving_log("ranker", store_url=s3_url)
    assert frame["request_id"].tolist() == [f"r{i}" for i in range(30)]
    serving.close()


def test_the_writer_counts_drops_and_writes_in_prometheus(url: str) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str) -> float:
        value = REGISTRY.get_sample_value(f"shipyard_serving_log_{name}_total", {"service": "m"})
        return value or 0.0

    before = {name: sample(name) for name in ("written", "dropped", "segments")}
    serving = ServingLog(service="m", store_url=url, queue_size=10, flush_interval=30.0)
    results = [serving.log(**_record(i)) for i in range(25)]  # type: ignore[arg-type]
    assert results.count(True) == 10 and serving.dropped == 15
    assert sample("dropped") == before["dropped"]  # the request path touched no metric
    serving.close()  # the writer reports after its last wake
    assert sample("written") - before["written"] == 10
    assert sample("dropped") - before["dropped"] == 15
    assert sample("segments") - before["segments"] == 1


def test_a_record_that_cannot_be_encoded_is_counted_the_rest_written(url: str) -> None:
    serving = _log(url)
    for i in range(5):
        record = _record(i)
        if i == 2:
            record["features"] = {"title_length": 2**70, "mean_rating": 1.0}  # past 64 bits
        assert serving.log(**record) is (i != 2)  # type: ignore[arg-type]
    serving.flush()
    assert serving.errors == 1 and serving.written == 4 and serving.logged == 4
    frame = read_serving_log("ranker", store_url=url)
    assert frame["request_id"].tolist() == ["r0", "r1", "r3", "r4"]
    serving.close()


def test_a_record_is_encoded_when_logged(url: str) -> None:
    serving = _log(url)
    facts = {"title": "Heat"}
    serving.log(facts=facts, features={"n": 1})
    facts["title"] = "changed after logging"
    serving.flush()
    assert read_serving_log("ranker", store_url=url)["facts"].tolist() == [{"title": "Heat"}]
    serving.close()


def test_both_encoders_write_the_same_values_and_old_segments_still_read(url: str) -> None:
    import msgpack
    import numpy as np
    import zstandard
    from pydantic import BaseModel

    from shipyard.features.servinglog import FIELDS, encoder

    class Profile(BaseModel):
        mean: float

    record = (
        1.5,
        "r1",
        {"when": datetime(2026, 1, 1), "tags": {"a"}, "at": datetime(2026, 1, 1, tzinfo=UTC)},
        {"profile": Profile(mean=4.0), "day": date(2026, 1, 2)},
        {"n": np.int64(3), "x": np.float32(0.5), "v": np.array([1, 2]), "t": (1, 2)},
        np.float64(0.25),
    )
    decoded = [
        msgpack.unpackb(encoder(name)(record), timestamp=3, strict_map_key=False)
        for name in ("ormsgpack", "msgpack")
    ]
    assert decoded[0] == decoded[1]
    values = decoded[0]
    assert values[2] == {
        "when": datetime(2026, 1, 1, tzinfo=UTC),
        "tags": ["a"],
        "at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    assert values[3] == {"profile": {"mean": 4.0}, "day": "2026-01-02"}
    assert values[4] == {"n": 3, "x": 0.5, "v": [1, 2], "t": [1, 2]} and values[5] == 0.25

    # a version-1 segment (one record per msgpack value, before batches) reads as before
    folder = Path(url.removeprefix("file://")) / "serving-logs" / "old"
    folder.mkdir(parents=True)
    header = {"format": "shipyard-serving-log", "version": 1, "fields": list(FIELDS)}
    raw = msgpack.packb(header) + b"".join(
        msgpack.packb([float(i), f"r{i}", {"i": i}, None, {"f": i}, i * 2]) for i in range(3)
    )
    (folder / "0000000000000-0000000002000-h-1-000001.msgpack.zst").write_bytes(
        zstandard.ZstdCompressor().compress(raw)
    )
    frame = read_serving_log("old", store_url=url)
    assert frame["f"].tolist() == [0, 1, 2] and frame["prediction"].tolist() == [0, 2, 4]


def test_a_feature_vector_is_logged_with_its_names_once_per_segment(url: str) -> None:
    import msgpack
    import zstandard

    @feature
    def words(facts: dict[str, object]) -> int:
        return len(str(facts.get("title") or "").split())

    @feature
    def loud(facts: dict[str, object]) -> bool:
        return str(facts.get("title") or "").isupper()

    fs = FeatureSet("vec", [words, loud])
    serving = _log(url, features=fs)
    titles = ["a b", "HEAT", "c d e"]
    for i, title in enumerate(titles):
        facts = {"title": title}
        assert serving.log(facts=facts, features=fs.vector(facts), prediction=i, request_id=f"r{i}")
    serving.log(facts={"title": "x"}, features={"words": 1, "loud": False}, request_id="r3")
    assert serving.flush()
    frame = read_serving_log("ranker", store_url=url)
    columns = ["request_id", "ts", "facts", "lookups", "words", "loud", "prediction"]
    assert list(frame.columns) == columns
    assert frame["words"].tolist() == [2, 1, 3, 1]
    assert frame["loud"].tolist() == [False, True, False, False]
    # the names are in the header, not in each record
    (segment,) = open_segments(url).segments("ranker")
    raw = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(open_segments(url).read("ranker", segment.name))
    )
    unpacker = msgpack.Unpacker(raw=False, timestamp=3, strict_map_key=False)
    unpacker.feed(raw)
    header, records = list(unpacker)
    assert header["version"] == 3 and header["features"] == ["words", "loud"]
    assert records[0][4] == [2, False] and records[3][4] == {"words": 1, "loud": False}
    # the segment's name bounds its records' times
    assert segment.first_ms <= records[0][0] * 1000 < segment.first_ms + 1
    assert segment.last_ms <= records[-1][0] * 1000 < segment.last_ms + 1
    serving.close()


def test_a_vector_without_names_or_of_the_wrong_length_is_refused_and_a_clear_error(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from shipyard.features import FeatureDefinitionError, FeatureError

    with pytest.raises(FeatureDefinitionError, match="feature names"):
        ServingLog(service="x", features="words")
    with pytest.raises(FeatureDefinitionError, match="distinct"):
        ServingLog(service="x", features=["a", "a"])
    # refused when logged: counted in errors, with a warning; nothing else logged is lost
    unnamed = _log(url)
    with caplog.at_level("WARNING", logger="shipyard.features"):
        assert not unnamed.log(facts={}, features=[1, 2])
    assert "the log has no feature names" in caplog.text
    assert unnamed.log(facts={}, features={"a": 1})
    assert unnamed.log(facts={}, features=OrderedDict(a=2))  # any mapping carries its names
    unnamed.flush()
    assert unnamed.stats()["errors"] == 1 and unnamed.stats()["written"] == 2
    assert read_serving_log("ranker", store_url=url)["a"].tolist() == [1, 2]
    unnamed.close()
    short = _log(url, features=["a", "b", "c"])
    caplog.clear()
    with caplog.at_level("WARNING", logger="shipyard.features"):
        assert not short.log(facts={}, features=[1, 2])
        assert not short.log(facts={}, features=3.5)
    assert "has 2 values, but the log's features are 3 (a, b, c)" in caplog.text
    assert short.stats()["errors"] == 2
    short.close()
    # a segment written elsewhere with such records is a clear error when read
    import msgpack
    import zstandard

    from shipyard.features.servinglog import FIELDS

    for name, header_names, message in (
        ("nameless", None, "no feature names in its header"),
        ("short", ["a", "b", "c"], "has 2 values, but its header names 3"),
    ):
        folder = tmp_path / "store" / "serving-logs" / name
        folder.mkdir(parents=True)
        header = {"format": "shipyard-serving-log", "version": 3, "fields": list(FIELDS)}
        if header_names:
            header["features"] = header_names
        raw = msgpack.packb(header) + msgpack.packb([[1.0, "r", {}, None, [1, 2], None]])
        (folder / "0000000001000-0000000001000-h-1-000001.msgpack.zst").write_bytes(
            zstandard.ZstdCompressor().compress(raw)
        )
        with pytest.raises(FeatureError, match=message):
            read_serving_log(name, store_url=f"file://{tmp_path / 'store'}")


def test_a_record_time_is_read_from_its_bytes_with_either_encoder() -> None:
    from shipyard.features.servinglog import encoder, packer, record_time

    record = (1_790_000_000.123456, "r", {"a": 1}, None, [1.5], 0.5)
    for name in ("ormsgpack", "msgpack"):
        data = encoder(name)(record)
        pack, default, option = packer(name)
        assert pack(record, default, option) == data
        assert record_time(b"xx" + data, 2) == record_time(data) == record[0]


def test_version_2_segments_still_read(url: str) -> None:
    import msgpack
    import zstandard

    folder = Path(url.removeprefix("file://")) / "serving-logs" / "v2"
    folder.mkdir(parents=True)
    from shipyard.features.servinglog import FIELDS

    header = {"format": "shipyard-serving-log", "version": 2, "fields": list(FIELDS)}
    batch = [[float(i), f"r{i}", {"i": i}, None, {"f": i, "g": -i}, i * 2] for i in range(4)]
    raw = msgpack.packb(header) + msgpack.packb(batch[:2]) + msgpack.packb(batch[2:])
    (folder / "0000000000000-0000000003000-h-1-000001.msgpack.zst").write_bytes(
        zstandard.ZstdCompressor().compress(raw)
    )
    frame = read_serving_log("v2", store_url=url)
    assert frame["f"].tolist() == [0, 1, 2, 3] and frame["g"].tolist() == [0, -1, -2, -3]
    assert frame["request_id"].tolist() == ["r0", "r1", "r2", "r3"]


def test_retention_applies_after_a_publish_once_its_interval_passed(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.features import servinglog

    folder = tmp_path / "blobs" / "serving-logs" / "ranker"
    serving = _log(url, retention=timedelta(days=2))
    serving.log(**_record(0))  # type: ignore[arg-type]
    serving.flush()  # the writer started (retention applied) and published
    now_ms = int(time.time() * 1000)
    old = f"{now_ms - 10 * 86_400_000:013d}-{now_ms - 9 * 86_400_000:013d}-h-1-000009.msgpack.zst"
    (folder / old).write_bytes(b"")
    serving.log(**_record(1))  # type: ignore[arg-type]
    serving.flush()
    assert (folder / old).exists()  # within RETAIN_EVERY of the last listing: kept for now
    monkeypatch.setattr(servinglog, "RETAIN_EVERY", 0.0)
    serving.log(**_record(2))  # type: ignore[arg-type]
    serving.flush()
    assert not (folder / old).exists()
    assert len(read_serving_log("ranker", store_url=url)) == 3
    serving.close()
