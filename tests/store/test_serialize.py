from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import zstandard

from shipyard.store.blobs import open_blob_store
from shipyard.store.serialize import ArtifactNotPicklable, decode, encode, preview

pytestmark = pytest.mark.usefixtures("shipyard_home")  # never ~/.shipyard


@dataclass
class Point:
    """A class from a test module: it must pickle by reference and come back."""

    x: int
    y: list[float]


class Renamed(Point):
    pass


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def blob_of(obj: Any) -> bytearray:
    return bytearray(b"".join(encode(obj).chunks))


def payload_of(blob: bytes | bytearray) -> bytes:
    body = bytes(blob[16:])
    return zstandard.ZstdDecompressor().decompress(body) if blob[5] == 1 else body


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        0,
        -(2**70),
        3.5,
        None,
        "text ✓",
        "long " * 10_000,
        b"\x00\xff" * 5,
        {"a": [1, 2, {"b": (3, None)}], 4: {5, 6}},
        Point(1, [2.0, 3.0]),
    ],
    ids=repr,
)
def test_round_trip(obj: Any) -> None:
    blob = blob_of(obj)
    assert decode(blob) == obj
    assert decode(bytes(blob)) == obj
    assert decode(memoryview(bytes(blob))) == obj


def test_class_from_a_test_module_comes_back_as_itself() -> None:
    out = decode(blob_of(Point(1, [2.0])))
    assert type(out) is Point


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.asfortranarray(np.arange(20, dtype=np.int32).reshape(4, 5)),
        np.arange(100, dtype=np.int64)[::3],  # not contiguous: pickled in band
        np.array([1 + 2j, 3 - 4j], dtype=np.complex128),
        np.array(["a", "bc"]),
        np.zeros((0, 3)),
        np.random.default_rng(0).random(200_000),
    ],
    ids=lambda a: f"{a.dtype}-{a.shape}",
)
@pytest.mark.parametrize("as_type", [bytearray, bytes])
def test_numpy_arrays_come_back_equal_and_writable(array: np.ndarray, as_type: type) -> None:
    out = decode(as_type(blob_of(array)))

    np.testing.assert_array_equal(out, array)
    assert out.dtype == array.dtype
    assert out.flags.writeable
    assert out.flags.aligned
    out[...] = out  # really writable, no "assignment destination is read-only"


def test_large_buffers_are_neither_copied_on_encode_nor_on_decode() -> None:
    array = np.random.default_rng(1).random(100_000)
    enc = encode(array)
    views = [c for c in enc.chunks if isinstance(c, memoryview)]
    assert any(np.shares_memory(np.frombuffer(v, np.uint8), array) for v in views)

    blob = bytearray(b"".join(enc.chunks))
    out = decode(blob)
    assert np.shares_memory(out, np.frombuffer(blob, np.uint8))  # a view into the blob


def test_pandas_round_trip() -> None:
    frame = pd.DataFrame(
        {"a": np.arange(1000), "b": np.linspace(0, 1, 1000), "c": ["x", "y"] * 500}
    )
    out = decode(blob_of(frame))
    pd.testing.assert_frame_equal(out, frame)
    out.loc[0, "b"] = 42.0  # writable

    series = pd.Series(np.arange(10.0), name="s")
    pd.testing.assert_series_equal(decode(blob_of(series)), series)


def test_find_class_overrides_class_lookup() -> None:
    seen: list[tuple[str, str]] = []

    def find_class(module: str, name: str) -> Any:
        seen.append((module, name))
        if (module, name) == (Point.__module__, "Point"):
            return Renamed
        return getattr(importlib.import_module(module), name)

    out = decode(blob_of([Point(1, [2.0]), np.arange(3)]), find_class=find_class)

    assert type(out[0]) is Renamed
    assert (Point.__module__, "Point") in seen
    np.testing.assert_array_equal(out[1], np.arange(3))


def test_find_class_can_refuse() -> None:
    def refuse(module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")

    with pytest.raises(pickle.UnpicklingError, match="Point is not allowed"):
        decode(blob_of(Point(1, [])), find_class=refuse)


# -- keys and dedup ----------------------------------------------------------------------------


def test_same_object_same_key_and_second_put_is_deduplicated(shipyard_home: Path) -> None:
    store = open_blob_store()
    first, second = encode(np.arange(1000.0)), encode(np.arange(1000.0))
    assert first.key == second.key
    assert encode(np.arange(1001.0)).key != first.key

    assert store.put(first.key, first.chunks) is True
    assert store.put(second.key, second.chunks) is False
    np.testing.assert_array_equal(decode(store.get(first.key)), np.arange(1000.0))


@pytest.mark.parametrize("obj", [12, np.zeros(300_000), os.urandom(300_000), "z" * 100_000])
def test_key_is_the_sha256_of_the_uncompressed_payload(obj: Any) -> None:
    enc = encode(obj)
    payload = payload_of(b"".join(enc.chunks))
    assert len(payload) == enc.size
    assert hashlib.sha256(payload).hexdigest() == enc.key


def test_compressible_data_is_compressed_and_random_data_is_not() -> None:
    zeros = encode(np.zeros(1_000_000))
    noise = encode(np.random.default_rng(2).random(1_000_000))

    assert zeros.encoding == "pickle5+zstd"
    assert sum(len(c) for c in zeros.chunks) < zeros.size / 100
    assert noise.encoding == "pickle5"
    assert sum(len(c) for c in noise.chunks) == noise.size + 16  # the envelope only
    for enc in (zeros, noise):
        blob = b"".join(enc.chunks)
        assert blob[5] == (enc.encoding == "pickle5+zstd")  # the blob says how to decode it


def test_mixed_frame_compression_is_decided_by_a_sample() -> None:
    rng = np.random.default_rng(3)
    text = encode({"log": "step finished\n" * 50_000})
    mostly_random = encode({"noise": rng.random(500_000), "label": "x"})
    assert text.encoding == "pickle5+zstd"
    assert mostly_random.encoding == "pickle5"
    assert decode(bytearray(b"".join(text.chunks))) == {"log": "step finished\n" * 50_000}


def test_artifacts_sharing_a_blob_load_through_get_range(shipyard_home: Path) -> None:
    store = open_blob_store()
    parts = [b"".join(encode(obj).chunks) for obj in ({"i": 0}, np.arange(5000), "third")]
    blob = b"".join(parts)
    key = hashlib.sha256(blob).hexdigest()
    store.put(key, parts)

    offset = len(parts[0])
    out = decode(store.get_range(key, offset, len(parts[1])))
    np.testing.assert_array_equal(out, np.arange(5000))
    assert out.flags.writeable
    assert decode(store.get_range(key, offset + len(parts[1]), len(parts[2]))) == "third"


# -- errors ------------------------------------------------------------------------------------


def _gen() -> Any:
    yield 1


@pytest.mark.parametrize(
    ("obj", "type_name"),
    [
        (lambda: 1, "builtins.function"),
        (threading.Lock(), "_thread.lock"),
        (_gen(), "builtins.generator"),
        ({"ok": 1, "bad": threading.Lock()}, "builtins.dict"),
    ],
    ids=["lambda", "lock", "generator", "dict-with-lock"],
)
def test_unpicklable_objects_name_the_artifact_and_type(obj: Any, type_name: str) -> None:
    with pytest.raises(ArtifactNotPicklable) as info:
        encode(obj, name="model")
    error = info.value
    assert isinstance(error, TypeError)
    assert (error.name, error.type_name) == ("model", type_name)
    assert "'model'" in str(error) and type_name in str(error)
    assert error.reason


def test_decode_rejects_foreign_and_truncated_data() -> None:
    with pytest.raises(ValueError, match="not a shipyard artifact blob"):
        decode(b"\x80\x05K\x01.")
    blob = blob_of(np.random.default_rng(4).random(1000))
    with pytest.raises(ValueError, match="truncated"):
        decode(blob[:-10])
    compressed = blob_of(np.zeros(100_000))
    with pytest.raises(ValueError, match="truncated"):
        decode(compressed[: len(compressed) // 2])


# -- previews ----------------------------------------------------------------------------------


def test_previews_by_type() -> None:
    assert preview(np.zeros((3, 4))) == "ndarray shape=(3, 4) dtype=float64"
    assert preview([1, 2, 3]) == "list len=3 [1, 2, 3]"
    assert preview({"a": 1}) == "dict len=1 {'a': 1}"
    assert preview(7) == "7"
    assert preview(np.float64(1.5)) == "np.float64(1.5)"  # a scalar: its repr

    frame = pd.DataFrame({"alpha": range(100), "beta": ["x"] * 100})
    text = preview(frame)
    assert text.startswith("DataFrame shape=(100, 2) columns=['alpha', 'beta']")
    assert "alpha" in text.splitlines()[1] and len(text.splitlines()) == 7  # header + 5 rows

    series = preview(pd.Series([1.5, 2.5], name="price"))
    assert series.startswith("Series name='price' len=2 dtype=float64")


class _Counted(int):
    """An int that counts how often it is repr()'d."""

    reprs = 0

    def __repr__(self) -> str:
        _Counted.reprs += 1
        return int.__repr__(self)


def test_previews_are_bounded_and_cheap() -> None:
    huge = [_Counted(i) for i in range(200_000)]
    _Counted.reprs = 0
    text = preview(huge, limit=50)
    assert _Counted.reprs <= 50  # only what it shows: not repr() of the whole list
    assert text.startswith("list len=200000 [0, 1, 2")
    assert len(text) <= 50
    assert len(preview("x" * 10_000)) <= 200


def test_preview_never_raises() -> None:
    assert preview(Broken()) == "<Broken>"
    assert encode(Broken(), name="b").preview == "<Broken>"


def test_import_is_cheap() -> None:
    code = (
        "import sys, shipyard.store.serialize, shipyard.store.blobs;"
        "print(sorted(m for m in ('numpy', 'pandas', 'zstandard', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
