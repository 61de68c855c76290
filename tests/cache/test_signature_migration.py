"""``shipyard cache migrate-signatures``: values stored under the old shared HMAC key are
re-signed with the Ed25519 private key in every version and region (LMDB, memory, Redis,
replicated); tampered ones are reported, not re-signed; it is idempotent and resumable; and
HMAC-signed values are refused afterwards."""

from __future__ import annotations

import hashlib
import hmac
import pickle
import secrets
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
from click.testing import CliRunner

from shipyard import cache
from shipyard.cache import codec, signing
from shipyard.cache.backends import memory, open_backend
from shipyard.cache.backends.base import Backend
from shipyard.cli.main import main


@dataclass
class Thing:
    n: int


class Boom:
    """Unpickling it touches a file: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


def legacy(value: Any, key: bytes) -> bytes:
    """``value`` as the old codec stored it: 0x02 + HMAC-SHA256(key, pickle) + pickle."""
    payload = pickle.dumps(value, protocol=5)
    return codec.HMAC_PICKLE + hmac.new(key, payload, hashlib.sha256).digest() + payload


def tampered(value: Any, key: bytes) -> bytes:
    data = bytearray(legacy(value, key))
    data[-2] ^= 0x01
    return bytes(data)


def seed(backend: Backend, namespace: str, items: dict[str, bytes], *, publish: bool) -> str:
    """A version holding ``items`` as stored bytes, written straight to the backend."""
    version = backend.begin(namespace, {})
    backend.put_many(namespace, version, [(k.encode(), v) for k, v in items.items()])
    if publish:
        backend.publish(namespace, version)
    return version


def stored(backend: Backend, namespace: str, version: str) -> dict[bytes, bytes]:
    return dict(item for batch in backend.scan(namespace, version) for item in batch)


def read(backend: Backend, namespace: str, version: str, key: str) -> Any:
    (raw,) = backend.get_many(namespace, version, [key.encode()])
    assert raw is not None
    return codec.decode(raw, where=f"{namespace} {version} {key}")


def migrate(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["cache", "--url", url, "migrate-signatures", *args])
    return result.exit_code, result.output


@pytest.fixture
def old_key(cache_home: Path) -> bytes:
    """The old ``cache.key``: 32 random bytes, mode 0600, as the HMAC codec made it."""
    cache_home.mkdir(parents=True)
    key = secrets.token_bytes(32)
    (cache_home / "cache.key").write_bytes(key)
    (cache_home / "cache.key").chmod(0o600)
    return key


def as_service(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, this process has what a service has: the public key only."""
    service = tmp_path / f"service-{uuid.uuid4().hex[:6]}"
    service.mkdir()
    shutil.copy(home / "cache.pub", service / "cache.pub")
    monkeypatch.setenv("SHIPYARD_HOME", str(service))


def test_migration_re_signs_every_version_then_hmac_values_are_refused(
    url: str, old_key: bytes, cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = open_backend(url)
    bad = tampered(Thing(0), old_key)
    v1 = seed(backend, "rows", {"a": legacy(Thing(1), old_key), "bad": bad}, publish=True)
    v2 = seed(
        backend,
        "rows",
        {"a": legacy(Thing(2), old_key), "b": legacy(Thing(3), old_key), "p": codec.encode([1])},
        publish=True,
    )
    marker = msgpack.packb({"keys": 1})  # a bulk part's completion marker: raw msgpack
    v3 = seed(
        backend, "rows", {"c": legacy(Thing(4), old_key), "\0part\x000": marker}, publish=False
    )
    cache.configure("rows", keep=5, url=url)  # a settings namespace: not the codec's bytes
    with pytest.raises(cache.UntrustedValue, match=f"version {v2}, key 'a'.*migrate-signatures"):
        cache.reader("rows", url=url).get("a")

    code, out = migrate(url)
    assert code == 1, out
    assert f"rows {v1}: re-signed 1, already signed 0, plain 0; 1 LEFT AS THEY WERE" in out
    assert "key 'bad': its HMAC signature does not verify" in out
    assert f"rows {v2}: re-signed 2, already signed 0, plain 1\n" in out
    assert f"rows {v3}: re-signed 1, already signed 0, plain 1\n" in out
    assert "_settings" not in out
    assert "1 version still holds values that readers refuse" in out
    # the old key moved aside (kept for the re-run), the pair in its place
    assert (cache_home / "cache.hmac.key").read_bytes() == old_key
    assert stat.S_IMODE((cache_home / "cache.hmac.key").stat().st_mode) == 0o600
    assert (cache_home / "cache.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    assert stored(backend, "rows", v1)[b"bad"] == bad  # left as it was, not dropped

    # a reader with only the public key reads every re-signed version
    as_service(cache_home, tmp_path, monkeypatch)
    rows = cache.reader("rows", url=url)
    assert rows.get("a") == Thing(2) and rows.get("b") == Thing(3) and rows.get("p") == [1]
    assert read(backend, "rows", v1, "a") == Thing(1)
    assert read(backend, "rows", v3, "c") == Thing(4)  # unpublished versions too
    with pytest.raises(cache.UntrustedValue, match="HMAC"):
        read(backend, "rows", v1, "bad")

    # idempotent: a second run changes nothing
    monkeypatch.setenv("SHIPYARD_HOME", str(cache_home))
    before = {v: stored(backend, "rows", v) for v in (v1, v2, v3)}
    code, out = migrate(url)
    assert code == 1 and f"rows {v2}: re-signed 0, already signed 2, plain 1\n" in out
    assert {v: stored(backend, "rows", v) for v in (v1, v2, v3)} == before

    # dropping what cannot be re-signed completes it, and the old key is deleted
    backend.drop("rows", v1)
    code, out = migrate(url)
    assert code == 0, out
    assert f"deleted the old HMAC key {cache_home / 'cache.hmac.key'}" in out
    assert not (cache_home / "cache.hmac.key").exists()

    # after it, a value forged with the old key (every old reader held it) is refused by
    # readers, and a later run cannot re-sign it: the key is gone
    pwned = tmp_path / "pwned"
    v4 = seed(backend, "rows", {"a": legacy(Boom(pwned), old_key)}, publish=True)
    as_service(cache_home, tmp_path, monkeypatch)
    where = f"namespace 'rows', version {v4}, key 'a'"
    with pytest.raises(cache.UntrustedValue, match=f"{where}.*shipyard cache migrate-signatures"):
        cache.reader("rows", url=url).get("a")
    monkeypatch.setenv("SHIPYARD_HOME", str(cache_home))
    code, out = migrate(url)
    assert code == 1 and "no old HMAC key was found" in out
    assert not pwned.exists()


def test_an_interrupted_or_partial_migration_is_finished_by_running_again(
    url: str, old_key: bytes, cache_home: Path
) -> None:
    backend = open_backend(url)
    assert signing.hmac_key() == (old_key, str(cache_home / "cache.hmac.key"))
    # a version half re-signed, as an interrupted run leaves it
    mixed = {f"k{i}": legacy(Thing(i), old_key) for i in range(0, 1500, 2)}
    mixed |= {f"k{i}": codec.encode(Thing(i)) for i in range(1, 1500, 2)}
    version = seed(backend, "rows", mixed, publish=True)
    other = seed(backend, "other", {"x": legacy(Thing(-1), old_key)}, publish=True)

    code, out = migrate(url, "--namespace", "other")
    assert code == 0 and f"other {other}: re-signed 1" in out and f"rows {version}" not in out
    assert "remove the old HMAC key" in out  # a partial run keeps it
    code, out = migrate(url)
    assert code == 0, out
    assert f"rows {version}: re-signed 750, already signed 750, plain 0" in out
    assert f"other {other}: re-signed 0, already signed 1" in out
    assert all(read(backend, "rows", version, f"k{i}") == Thing(i) for i in range(0, 1500, 7))


def test_with_no_old_key_hmac_values_are_reported_then_the_file_option_is_used(
    url: str, cache_home: Path, tmp_path: Path
) -> None:
    backend = open_backend(url)
    key_file = tmp_path / "saved-hmac-key"
    key_file.write_text("an old SHIPYARD_CACHE_SIGNING_KEY string, long enough\n")
    key = b"an old SHIPYARD_CACHE_SIGNING_KEY string, long enough"
    version = seed(backend, "rows", {"a": legacy(Thing(1), key)}, publish=True)
    code, out = migrate(url)
    assert code == 1 and "old HMAC key: none found" in out
    assert "key 'a': HMAC-signed, and no old HMAC key was found" in out
    code, out = migrate(url, "--hmac-key-file", str(key_file))
    assert code == 0 and f"rows {version}: re-signed 1" in out, out
    assert f"remove the old HMAC key ({key_file})" in out and key_file.exists()
    assert read(backend, "rows", version, "a") == Thing(1)


def test_env_keys_before_and_after(
    url: str, cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = "o" * 64  # the old SHIPYARD_CACHE_SIGNING_KEY, moved to SHIPYARD_CACHE_HMAC_KEY
    private, public = signing.generate()
    backend = open_backend(url)
    version = seed(backend, "rows", {"a": legacy(Thing(1), old.encode())}, publish=True)
    monkeypatch.setenv("SHIPYARD_CACHE_SIGNING_KEY", old)
    code, out = migrate(url)
    assert code == 1 and "SHIPYARD_CACHE_HMAC_KEY" in out  # the old value is named, not used
    monkeypatch.setenv("SHIPYARD_CACHE_HMAC_KEY", old)
    monkeypatch.setenv("SHIPYARD_CACHE_SIGNING_KEY", private)
    code, out = migrate(url)
    assert code == 0 and "old HMAC key: SHIPYARD_CACHE_HMAC_KEY" in out, out
    assert not (cache_home / "cache.key").exists()
    monkeypatch.delenv("SHIPYARD_CACHE_SIGNING_KEY")
    monkeypatch.delenv("SHIPYARD_CACHE_HMAC_KEY")
    monkeypatch.setenv("SHIPYARD_CACHE_VERIFY_KEY", public)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "reader"))
    assert cache.reader("rows", url=url).get("a") == Thing(1)
    assert read(backend, "rows", version, "a") == Thing(1)


@pytest.fixture
def two_regions(tmp_path: Path) -> Iterator[tuple[str, str]]:
    name = uuid.uuid4().hex
    yield f"lmdb://{tmp_path / 'region-a'}", f"memory://{name}"
    memory.reset(name)


def test_replicated_every_region_is_migrated_and_a_missed_one_is_resumed(
    two_regions: tuple[str, str], old_key: bytes
) -> None:
    first, second = two_regions
    url = f"{first},{second}"
    version = seed(open_backend(url), "rows", {"a": legacy(Thing(1), old_key)}, publish=True)
    memory.set_available(second.removeprefix("memory://"), False)
    code, out = migrate(url)
    assert code == 1
    assert f"[{first}] rows {version}: re-signed 1" in out
    assert f"[{second}] * *: NOT MIGRATED" in out
    memory.set_available(second.removeprefix("memory://"), True)
    code, out = migrate(url)
    assert code == 0, out
    assert f"[{first}] rows {version}: re-signed 0, already signed 1" in out
    assert f"[{second}] rows {version}: re-signed 1" in out
    for region in two_regions:
        assert read(open_backend(region), "rows", version, "a") == Thing(1)


@pytest.mark.parametrize("layout", ["single", "replicated"])
def test_redis(layout: str, redis_urls: list[str], old_key: bytes) -> None:
    url = redis_urls[0] if layout == "single" else ",".join(redis_urls)
    backend = open_backend(url)
    items = {f"k{i}": legacy(Thing(i), old_key) for i in range(1200)}
    items["bad"] = tampered(Thing(0), old_key)
    version = seed(backend, "rows", items, publish=True)
    code, out = migrate(url)
    assert code == 1 and "key 'bad': its HMAC signature does not verify" in out
    assert out.count(f"rows {version}: re-signed 1,200, already signed 0") == len(url.split(",")), (
        out
    )
    for region in url.split(","):
        assert read(open_backend(region), "rows", version, "k7") == Thing(7)
        with pytest.raises(cache.UntrustedValue, match="HMAC"):
            read(open_backend(region), "rows", version, "bad")
    code, out = migrate(url)
    assert code == 1 and "re-signed 0, already signed 1,200" in out


# --- the two maintenance methods every backend has ----------------------------------------
def _scan_and_replace(backend: Backend) -> None:
    keys = [b""] + [f"k{i:05d}".encode() for i in range(2500)]
    version = backend.begin("rows", {})
    backend.put_many("rows", version, [(k, b"v" + k) for k in keys])
    backend.publish("rows", version)
    found = stored(backend, "rows", version)
    assert found == {k: b"v" + k for k in keys}  # across batches, the empty key included
    changes = [
        (b"k00001", b"vk00001", b"new1"),  # replaced
        (b"k00002", b"stale", b"new2"),  # holds something else: left
        (b"absent", b"", b"new3"),  # never added
    ]
    assert backend.replace_values("rows", version, changes) == 1  # in a published version
    assert backend.get_many("rows", version, [b"k00001", b"k00002", b"absent"]) == [
        b"new1",
        b"vk00002",
        None,
    ]
    assert backend.versions("rows")[-1].keys == len(keys)
    other = backend.begin("rows", {})
    backend.publish("rows", other)
    backend.drop("rows", version)
    with pytest.raises(cache.CacheError):
        backend.replace_values("rows", version, [(b"k00003", b"vk00003", b"x")])
    with pytest.raises(cache.CacheError):
        list(backend.scan("rows", version))


def test_scan_and_replace_values(url: str) -> None:
    _scan_and_replace(open_backend(url))


def test_scan_and_replace_values_redis(redis_url: str) -> None:
    _scan_and_replace(open_backend(redis_url))
