"""The ``blob_store`` fixture (a plugin: ``pytest_plugins`` in tests/conftest.py), one store
parametrized over the local and S3 backends, each in a private SHIPYARD_HOME."""

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
