from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from shipyard.store.blobs import BlobNotFound, BlobStore, open_blob_store

BAD_KEYS = ["../../etc/passwd", "A" * 64, "0" * 63, "0" * 65, "g" * 64, "0" * 63 + "\n", ""]


pytestmark = pytest.mark.usefixtures("shipyard_home")  # never ~/.shipyard


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- behaviour, on every backend ---------------------------------------------------------------


def test_put_get_round_trip_of_mixed_chunks(blob_store: BlobStore) -> None:
    data = b"hello " * 1000 + bytes(range(256))
    chunks = [data[:10], memoryview(data)[10:5000], bytearray(data[5000:])]
    key = key_of(data)

    assert blob_store.put(key, chunks) is True
    assert blob_store.exists(key)
    got = blob_store.get(key)
    assert got == data
    assert isinstance(got, bytearray)  # writable: decode hands numpy arrays this memory


def test_put_twice_is_deduplicated(blob_store: BlobStore) -> None:
    key = key_of(b"same")
    assert blob_store.put(key, [b"same"]) is True
    assert blob_store.put(key, [b"ignored, the key exists"]) is False
    assert blob_store.get(key) == b"same"


def test_empty_blob(blob_store: BlobStore) -> None:
    key = key_of(b"")
    assert blob_store.put(key, []) is True
    assert blob_store.get(key) == b""


def test_get_range(blob_store: BlobStore) -> None:
    data = bytes(range(256)) * 40
    key = key_of(data)
    blob_store.put(key, [data])

    assert blob_store.get_range(key, 0, 5) == data[:5]
    assert blob_store.get_range(key, 1000, 300) == data[1000:1300]
    assert blob_store.get_range(key, len(data) - 3, 10) == data[-3:]  # short at the end
    assert blob_store.get_range(key, len(data) + 5, 10) == b""  # past the end
    assert blob_store.get_range(key, 7, 0) == b""
    with pytest.raises(ValueError, match="start=-1"):
        blob_store.get_range(key, -1, 3)


def test_missing_key_raises_blob_not_found(blob_store: BlobStore) -> None:
    key = key_of(b"never written")
    assert not blob_store.exists(key)
    with pytest.raises(BlobNotFound, match=key):
        blob_store.get(key)
    with pytest.raises(BlobNotFound):
        blob_store.get_range(key, 0, 10)
    with pytest.raises(BlobNotFound):
        blob_store.get_range(key, 0, 0)
    blob_store.delete(key)  # no error


def test_delete(blob_store: BlobStore) -> None:
    key = key_of(b"gone soon")
    blob_store.put(key, [b"gone soon"])
    blob_store.delete(key)
    assert not blob_store.exists(key)
    assert blob_store.put(key, [b"gone soon"]) is True  # can be written again


def test_list_reports_every_key_with_its_mtime(blob_store: BlobStore) -> None:
    before = time.time() - 60
    keys = {key_of(str(i).encode()) for i in range(5)}
    for i in range(5):
        blob_store.put(key_of(str(i).encode()), [str(i).encode()])

    listed = dict(blob_store.list())
    assert set(listed) == keys
    assert all(before < mtime < time.time() + 60 for mtime in listed.values())


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_bad_keys_are_rejected_before_touching_storage(blob_store: BlobStore, bad: str) -> None:
    for call in (
        lambda: blob_store.put(bad, [b"x"]),
        lambda: blob_store.get(bad),
        lambda: blob_store.get_range(bad, 0, 1),
        lambda: blob_store.exists(bad),
        lambda: blob_store.delete(bad),
    ):
        with pytest.raises(ValueError, match="invalid blob key") as info:
            call()
        assert repr(bad) in str(info.value)
    assert list(blob_store.list()) == []


# -- open_blob_store ---------------------------------------------------------------------------


def test_default_store_lives_under_shipyard_home(shipyard_home: Path) -> None:
    store = open_blob_store()
    key = key_of(b"x")
    store.put(key, [b"x"])
    assert (shipyard_home / "blobs" / key[:2] / key).read_bytes() == b"x"
    assert store.url == f"file://{shipyard_home.resolve() / 'blobs'}"


def test_store_url_from_environment(
    shipyard_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_STORE_URL", f"file://{tmp_path / 'elsewhere'}")
    key = key_of(b"x")
    open_blob_store().put(key, [b"x"])
    assert (tmp_path / "elsewhere" / key[:2] / key).exists()


@pytest.mark.parametrize(
    "url",
    ["http://example.com/blobs", "gs://bucket", "/just/a/path", "file://relative/dir", "s3://"],
)
def test_unsupported_urls_name_the_url_and_the_accepted_forms(url: str) -> None:
    with pytest.raises(ValueError) as info:
        open_blob_store(url)
    message = str(info.value)
    assert repr(url) in message
    assert "file://" in message or "s3://" in message


# -- local backend specifics -------------------------------------------------------------------


def test_local_layout_and_temp_files_are_not_keys(shipyard_home: Path) -> None:
    store = open_blob_store()
    key = key_of(b"data")
    store.put(key, [b"data"])
    folder = shipyard_home / "blobs" / key[:2]
    (folder / f".tmp-123-{'0' * 16}").write_bytes(b"partial")
    (folder / ("f" * 64)).write_bytes(b"a key in the wrong folder")

    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        [key, "f" * 64]
    )
    assert [k for k, _ in store.list()] == [key]


def test_failed_put_leaves_nothing_behind(shipyard_home: Path) -> None:
    store = open_blob_store()
    key = key_of(b"never")

    def chunks():
        yield b"first part"
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        store.put(key, chunks())
    assert not store.exists(key)
    assert list((shipyard_home / "blobs" / key[:2]).iterdir()) == []


_WRITER = textwrap.dedent(
    """
    import sys, time
    from shipyard.store.blobs import open_blob_store

    def chunks():
        block = b"x" * (1 << 20)
        for i in range(300):
            if i == 100:
                print("writing", flush=True)
            if i >= 100:
                time.sleep(0.01)  # keep the temp file growing while the test kills us
            yield block

    open_blob_store(sys.argv[1]).put(sys.argv[2], chunks())
    print("finished", flush=True)
    """
)


def test_sigkill_mid_write_never_exposes_a_partial_blob(shipyard_home: Path) -> None:
    root = shipyard_home / "blobs"
    url = f"file://{root}"
    key = key_of(b"x" * (300 << 20))
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, url, key], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "writing\n"
        folder = root / key[:2]
        temp = next(folder.glob(".tmp-*"))
        size = temp.stat().st_size
        deadline = time.monotonic() + 10
        while temp.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.001)
        assert temp.stat().st_size > size  # growing right now
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    store = open_blob_store(url)
    assert 100 << 20 <= temp.stat().st_size < 300 << 20  # killed mid-write
    assert not store.exists(key)
    assert not (folder / key).exists()
    assert [name for name in os.listdir(folder) if not name.startswith(".tmp-")] == []
    assert list(store.list()) == []
    # the interrupted write does not block a later one
    assert store.put(key, [b"whole"]) is True
    assert store.get(key) == b"whole"
