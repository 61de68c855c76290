"""File artifacts on an S3 blob store (the real moto_server from scripts/services.sh):
stored and read back through flows, and gc."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shipyard.client.gc import collect
from shipyard.store import context
from shipyard.store.blobs import BlobStore, open_blob_store
from shipyard.testing import run_flow

pytestmark = pytest.mark.s3

FLOW = """
from shipyard import FlowSpec, Files, Parameter, step


class S3TreeFlow(FlowSpec):
    source = Parameter("source")

    @step
    def start(self):
        self.tree = Files(self.source)
        self.next(self.end)

    @step
    def end(self):
        self.texts = {p.name: p.read_text() for p in self.tree.path.iterdir()}
"""


@pytest.fixture
def s3_blobs(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[BlobStore]:
    monkeypatch.setenv("SHIPYARD_STORE_URL", s3_url)
    monkeypatch.delenv("SHIPYARD_DB_URL", raising=False)
    context.reset()
    yield open_blob_store(s3_url)
    context.reset()


def test_files_on_s3_round_trip_and_gc(s3_blobs: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    texts = {"one.txt": "one" * 400, "two.txt": "two" * 400}
    for name, text in texts.items():
        (source / name).write_text(text)
    run = run_flow(FLOW, source=str(source))
    assert run.successful and run["end"].task.data.texts == texts
    keys = {hashlib.sha256(t.encode()).hexdigest() for t in texts.values()}
    assert keys <= {k for k, _ in s3_blobs.list()}
    collect(None, None, dry_run=False, grace=timedelta(0), runs=[run.pathspec])
    assert not keys & {k for k, _ in s3_blobs.list()}
