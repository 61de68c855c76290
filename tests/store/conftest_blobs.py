"""Fixtures for the blob-store tests: a private SHIPYARD_HOME, the S3 test server, and a
``blob_store`` fixture parametrized over the local and S3 backends.

Test modules import the ``*_fixture`` functions (pytest finds them by their ``name=``);
tests/store/conftest.py belongs to the metadata tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.store.blobs import BlobStore, open_blob_store


@pytest.fixture(name="blob_store", params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def blob_store_fixture(request: pytest.FixtureRequest, shipyard_home: Path) -> BlobStore:
    """The same behaviour tests run against both backends."""
    if request.param == "s3":
        return open_blob_store(request.getfixturevalue("s3_url"))
    return open_blob_store()  # the default: file://$SHIPYARD_HOME/blobs
