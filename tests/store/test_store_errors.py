"""The store's exception tree: one root, each error keeping its old base and old address."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from shipyard.store import errors
from shipyard.store.blobs import open_blob_store
from shipyard.store.errors import StoreError
from shipyard.store.meta import MetaStore
from shipyard.store.records import RunStatus

#: error -> (the base it had before the root existed, the modules it is still importable from)
TREE: dict[type[Exception], tuple[type[Exception], tuple[str, ...]]] = {
    errors.MetaStoreError: (Exception, ("shipyard.store.meta",)),
    errors.RecordNotFound: (LookupError, ("shipyard.store.meta",)),
    errors.WriteRefused: (Exception, ("shipyard.store.sqlite_writer",)),
    errors.BlobNotFound: (KeyError, ("shipyard.store.blobs",)),
    errors.ArtifactNotPicklable: (TypeError, ("shipyard.store.serialize",)),
    errors.CodeSnapshotError: (Exception, ("shipyard.store.code",)),
}


@pytest.mark.parametrize("error", list(TREE), ids=lambda e: e.__name__)
def test_every_store_error_is_a_store_error_and_keeps_its_base(error: type[Exception]) -> None:
    base, modules = TREE[error]
    assert issubclass(error, StoreError)
    assert issubclass(error, base)
    for module in modules:
        assert getattr(importlib.import_module(module), error.__name__) is error


def test_the_tree_names_every_error_of_the_module() -> None:
    listed = {e.__name__ for e in TREE} | {"StoreError"}
    assert set(errors.__all__) == listed
    for name in listed:
        assert name in (errors.__doc__ or ""), f"{name} is missing from the drawn tree"


def test_record_not_found_is_a_meta_store_error() -> None:
    assert issubclass(errors.RecordNotFound, errors.MetaStoreError)


def test_blob_not_found_still_reads_as_a_key_error(tmp_path: Path) -> None:
    blobs = open_blob_store(tmp_path.as_uri())
    with pytest.raises(StoreError) as caught:
        blobs.get("0" * 64)
    assert isinstance(caught.value, KeyError)
    assert str(caught.value) == str(KeyError(caught.value.args[0]))


def test_a_refused_metadata_operation_is_caught_as_a_store_error(tmp_path: Path) -> None:
    with MetaStore.open(f"sqlite:///{tmp_path / 'meta.db'}") as meta:
        with pytest.raises(StoreError, match="no run with id 12345"):
            meta.finish_run(12345, RunStatus.SUCCEEDED)


def test_artifact_not_picklable_keeps_its_fields() -> None:
    exc = errors.ArtifactNotPicklable("model", "socket.socket", "TypeError: nope")
    assert (exc.name, exc.type_name, exc.reason) == ("model", "socket.socket", "TypeError: nope")
    assert "'model'" in str(exc) and "socket.socket" in str(exc)
