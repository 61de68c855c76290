"""Big file artifacts stream: storing a file and materialising it never holds the whole
file in memory (peak RSS of a fresh process, on a local and on an S3 blob store)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: peak memory while storing and then materialising one big file, in a fresh process
MEASURE = """
import os, resource, sys
from pathlib import Path
from shipyard.store.blobs import open_blob_store
from shipyard.store.files import Files, upload
from shipyard.store.staging import materialise

url, source, home = sys.argv[1:4]
store = open_blob_store(url)
store.exists("0" * 64)  # the client and its imports are not what is measured
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tree = Files(source)
upload(store, tree, name="big")
back = Files.from_manifest(tree.manifest, store=store, home=Path(home))
path = materialise(back, store, Path(home))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert (path / Path(source).name).stat().st_size == os.path.getsize(source)
print((after - before) // 1024)
"""


def _big_file(path: Path, megabytes: int) -> Path:
    with open(path, "wb") as f:
        for i in range(megabytes):
            f.write(hashlib.sha512(str(i).encode()).digest() * (1 << 14))  # 1 MiB, distinct
    return path


def _peak_mb(url: str, source: Path, home: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEASURE), url, str(source), str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.s3
def test_a_big_file_streams_to_and_from_s3(s3_url: str, tmp_path: Path) -> None:
    # measured: the growth is ~28 MB for 64 MB and for 128 MB alike (a few 8 MB parts)
    big = _big_file(tmp_path / "vectors.bin", 64)
    grew = _peak_mb(s3_url, big, tmp_path / "host")
    assert grew < 48, f"storing and materialising a 64 MB file grew the process by {grew} MB"


def test_a_big_file_streams_to_and_from_a_local_store(tmp_path: Path) -> None:
    big = _big_file(tmp_path / "vectors.bin", 64)
    grew = _peak_mb(f"file://{tmp_path}/blobs", big, tmp_path / "host")
    assert grew < 24, f"storing and materialising a 64 MB file grew the process by {grew} MB"
