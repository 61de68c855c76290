"""Fixtures for the blob-store tests: a private SHIPYARD_HOME, the S3 test server, and a
``blob_store`` fixture parametrized over the local and S3 backends.

Test modules import the ``*_fixture`` functions (pytest finds them by their ``name=``);
tests/store/conftest.py belongs to the metadata tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.store.blobs import BlobStore, open_blob_store


@pytest.fixture(name="shipyard_home")
def shipyard_home_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private SHIPYARD_HOME; no store URL from the caller's environment leaks in."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    return home


@pytest.fixture(name="s3_url")
def s3_url_fixture(shipyard_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://<fresh bucket>/blobs`` on the moto_server started by scripts/services.sh."""
    endpoint = os.environ.get("SHIPYARD_TEST_S3_ENDPOINT")
    if not endpoint:
        message = (
            "SHIPYARD_TEST_S3_ENDPOINT is not set: "
            "run `source scripts/services.sh && services_start` first"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(shipyard_home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(shipyard_home / "no-aws-credentials"),
        "SHIPYARD_S3_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    import boto3

    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    bucket = f"shipyard-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield f"s3://{bucket}/blobs"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(name="blob_store", params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def blob_store_fixture(request: pytest.FixtureRequest, shipyard_home: Path) -> BlobStore:
    """The same behaviour tests run against both backends."""
    if request.param == "s3":
        return open_blob_store(request.getfixturevalue("s3_url"))
    return open_blob_store()  # the default: file://$SHIPYARD_HOME/blobs
