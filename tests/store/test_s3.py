"""S3-only behaviour, against the real moto_server from scripts/services.sh (no mocks)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from shipyard.store._s3 import S3BlobStore
from shipyard.store.blobs import open_blob_store

pytestmark = pytest.mark.s3


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_store(url: str) -> S3BlobStore:
    store = open_blob_store(url)
    assert isinstance(store, S3BlobStore)
    return store


def raw_client() -> Any:
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=os.environ["SHIPYARD_S3_ENDPOINT_URL"])


def test_objects_live_under_the_prefix(s3_url: str) -> None:
    store = s3_store(s3_url)
    key = key_of(b"x")
    store.put(key, [b"x"])

    assert store.url == s3_url
    names = [o["Key"] for o in raw_client().list_objects_v2(Bucket=store.bucket)["Contents"]]
    assert names == [f"blobs/{key[:2]}/{key}"]


def test_big_blobs_go_up_as_a_multipart_upload(s3_url: str) -> None:
    store = s3_store(s3_url)
    store.multipart_threshold = store.part_size = 5 << 20  # S3's smallest part
    data = os.urandom(12 << 20)
    view = memoryview(data)
    chunks = [view[i : i + (1 << 20) + 7] for i in range(0, len(data), (1 << 20) + 7)]
    key = key_of(data)

    assert store.put(key, chunks) is True
    head = raw_client().head_object(Bucket=store.bucket, Key=f"blobs/{key[:2]}/{key}")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 2 MiB
    assert store.get(key) == data
    boundary = 5 << 20
    assert store.get_range(key, boundary - 4, 8) == data[boundary - 4 : boundary + 4]
    assert store.put(key, chunks) is False


def test_list_paginates_and_skips_foreign_objects(s3_url: str) -> None:
    store = s3_store(s3_url)
    store.list_page_size = 2
    keys = {key_of(bytes([i])) for i in range(5)}
    for i in range(5):
        store.put(key_of(bytes([i])), [bytes([i])])
    client = raw_client()
    client.put_object(Bucket=store.bucket, Key="blobs/readme.txt", Body=b"not a blob")
    client.put_object(Bucket=store.bucket, Key=f"other/{next(iter(keys))}", Body=b"elsewhere")

    assert {key for key, _ in store.list()} == keys


def test_client_is_rebuilt_after_fork(s3_url: str) -> None:
    store = s3_store(s3_url)
    store.put(key_of(b"parent"), [b"parent"])
    parent_client = store._client()

    pid = os.fork()
    if pid == 0:  # the child: must not reuse the parent's client (and its sockets)
        code = 1
        try:
            ok = store._client() is not parent_client
            ok = ok and store.get(key_of(b"parent")) == b"parent"
            ok = ok and store.put(key_of(b"child"), [b"child"])
            code = 0 if ok else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert store._client() is parent_client
    assert store.get(key_of(b"child")) == b"child"


def test_endpoint_from_aws_endpoint_url(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = os.environ["SHIPYARD_S3_ENDPOINT_URL"]
    monkeypatch.delenv("SHIPYARD_S3_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = s3_store(s3_url)

    assert store.endpoint_url == endpoint
    assert store.put(key_of(b"y"), [b"y"]) is True


def test_missing_bucket_names_the_bucket(s3_url: str) -> None:
    store = s3_store("s3://no-such-bucket-here/blobs")
    with pytest.raises(FileNotFoundError, match="'no-such-bucket-here'"):
        store.get(key_of(b"z"))
    with pytest.raises(FileNotFoundError, match="create it"):
        store.put(key_of(b"z"), [b"z"])
