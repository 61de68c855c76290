"""KeyStore: create/verify round trip, hash-only storage, constant-time compare, expiry,
revocation (and how long the verify cache may hide it), listing, last use."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shipyard.keys import KeyInputError, KeyNotFound, KeyStore, hash_key
from shipyard.keys import store as store_module
from shipyard.store.meta import MetaStore
from shipyard.store.schema import api_keys


def _rows(meta: MetaStore) -> list[dict[str, Any]]:
    with meta.reader.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(api_keys))]


def test_create_and_verify_round_trip(keys: KeyStore) -> None:
    record, plaintext = keys.create("web", ["invoke:ranker", "route:chat"], created_by="ann")
    match = re.fullmatch(r"sy_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", plaintext)
    assert match is not None and match.group(1) == record.prefix
    assert record.label == f"sy_{record.prefix}"
    assert (record.name, record.created_by, record.scopes) == (
        "web",
        "ann",
        ("invoke:ranker", "route:chat"),
    )
    assert record.expires_at is None and record.revoked_at is None
    verified = keys.verify(plaintext)
    assert verified is not None
    assert (verified.key_id, verified.scopes, verified.created_at) == (
        record.key_id,
        record.scopes,
        record.created_at,
    )
    assert verified.allows("invoke:ranker") and not verified.allows("invoke:other")


def test_every_key_is_different_and_has_256_random_bits(keys: KeyStore) -> None:
    made = [keys.create("k", ["ui"])[1] for _ in range(5)]
    assert len(set(made)) == 5
    assert len({key.split("_", 2)[1] for key in made}) == 5  # distinct prefixes too
    assert all(len(key.split("_", 2)[2]) == 43 for key in made)  # token_urlsafe(32)


def test_wrong_or_malformed_keys_do_not_verify(keys: KeyStore) -> None:
    _, plaintext = keys.create("web", ["ui"])
    prefix, secret = plaintext.split("_", 2)[1:]
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert keys.verify(f"sy_{prefix}_{flipped}") is None  # right prefix, wrong secret
    assert keys.verify(f"sy_{'0' * 12}_{secret}") is None  # unknown prefix
    for bad in ("", "sy_", plaintext + "x", plaintext.upper(), " " + plaintext, None, 42):
        assert keys.verify(bad) is None  # type: ignore[arg-type]


def test_only_the_hash_is_stored(keys: KeyStore, meta: MetaStore, db_url: str) -> None:
    record, plaintext = keys.create("web", ["invoke:*"])
    secret = plaintext.split("_", 2)[2]
    [row] = _rows(meta)
    assert row["hash"] == hashlib.sha256(plaintext.encode()).hexdigest() == hash_key(plaintext)
    assert all(secret not in str(value) for value in row.values())
    if db_url.startswith("sqlite"):
        meta.close()  # checkpoint the WAL into the file; then grep every file of the database
        files = list(Path(db_url.removeprefix("sqlite:///")).parent.glob("meta.db*"))
        assert files
        for path in files:
            data = path.read_bytes()
            assert secret.encode() not in data and plaintext.encode() not in data
            if path.name == "meta.db":
                assert record.prefix.encode() in data  # the grep would find what is there


def test_hashes_are_compared_in_constant_time(
    keys: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(store_module.hmac, "compare_digest", spy)
    _, plaintext = keys.create("web", ["ui"])
    assert keys.verify(plaintext) is not None
    assert calls == [(hash_key(plaintext), hash_key(plaintext))]
    wrong = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    assert keys.verify(wrong) is None
    assert calls[-1] == (hash_key(plaintext), hash_key(wrong))


def test_expired_keys_do_not_verify_even_when_cached(keys: KeyStore) -> None:
    record, plaintext = keys.create("short", ["ui"], expires=timedelta(seconds=0.3))
    assert record.expires_at is not None
    assert timedelta(0) < record.expires_at - datetime.now(UTC) <= timedelta(seconds=0.3)
    assert keys.verify(plaintext) is not None  # now cached for cache_ttl
    time.sleep(0.35)
    assert keys.verify(plaintext) is None  # expiry is checked on every call
    [listed] = keys.list()
    assert listed.is_expired(datetime.now(UTC))  # listed, marked by its expiry


@pytest.mark.parametrize("expires", [timedelta(0), timedelta(seconds=-5)])
def test_expiry_must_be_in_the_future(keys: KeyStore, expires: timedelta) -> None:
    with pytest.raises(KeyInputError, match="positive lifetime"):
        keys.create("k", ["ui"], expires=expires)


def test_revocation_here_is_immediate(keys: KeyStore) -> None:
    record, plaintext = keys.create("web", ["ui"])
    assert keys.verify(plaintext) is not None  # cached
    revoked = keys.revoke(record.key_id)
    assert revoked.revoked_at is not None
    assert keys.verify(plaintext) is None


def test_revocation_elsewhere_takes_effect_within_the_cache_ttl(
    keys: KeyStore, meta: MetaStore, clock: Any
) -> None:
    record, plaintext = keys.create("web", ["ui"])
    assert keys.verify(plaintext) is not None
    with KeyStore(meta) as cli:  # another process: `shipyard keys revoke`
        cli.revoke(record.label)
    clock.advance(keys.cache_ttl - 0.01)
    assert keys.verify(plaintext) is not None  # still inside the TTL: the documented bound
    clock.advance(0.02)
    assert keys.verify(plaintext) is None


def test_revoke_by_id_prefix_or_label_and_unknown_keys(keys: KeyStore) -> None:
    a, _ = keys.create("a", ["ui"])
    b, _ = keys.create("b", ["ui"])
    c, _ = keys.create("c", ["ui"])
    assert keys.revoke(str(a.key_id)).key_id == a.key_id
    assert keys.revoke(b.prefix).key_id == b.key_id
    first = keys.revoke(c.label)
    again = keys.revoke(c.label)
    assert again.revoked_at == first.revoked_at  # revoking twice keeps the first time
    with pytest.raises(KeyNotFound, match=r"no key with id or prefix '999'.*keys list --all"):
        keys.revoke(999)
    with pytest.raises(KeyNotFound):
        keys.revoke("sy_" + "0" * 12)
    with pytest.raises(KeyInputError, match="neither a key id nor a key prefix"):
        keys.revoke("not-a-key")


def test_list_hides_revoked_keys_unless_asked(keys: KeyStore) -> None:
    a, _ = keys.create("a", ["ui"])
    b, _ = keys.create("b", ["invoke:x"], expires=timedelta(days=1))
    keys.revoke(a.key_id)
    assert [r.key_id for r in keys.list()] == [b.key_id]
    listed = keys.list(include_revoked=True)
    assert [r.key_id for r in listed] == [a.key_id, b.key_id]
    assert listed[0].revoked_at is not None and listed[1].expires_at is not None
    assert keys.get(b.label) == listed[1]


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        ([], "at least one scope"),
        (["nope"], "unknown scope 'nope'"),
        (["invoke:"], "service name '' is not valid"),
        (["invoke:Ranker"], "service name 'Ranker' is not valid"),
        (["route:" + "a" * 64], "route name 'a+' is not valid"),
        (["invoke:healthz"], "can never be a service name"),
    ],
)
def test_bad_scopes_are_refused_clearly(keys: KeyStore, scopes: list[str], message: str) -> None:
    with pytest.raises(KeyInputError, match=message):
        keys.create("k", scopes)
    assert keys.list(include_revoked=True) == []


def test_has_keys_with_scope_prefix(keys: KeyStore, clock: Any) -> None:
    assert not keys.has_keys_with_scope_prefix("invoke:")
    keys.create("admin", ["admin"])
    assert not keys.has_keys_with_scope_prefix("invoke:")  # admin keys do not count
    record, _ = keys.create("web", ["invoke:*"])
    assert keys.has_keys_with_scope_prefix("invoke:")  # created here: cache invalidated
    assert not keys.has_keys_with_scope_prefix("route:")
    assert not keys.has_keys_with_scope_prefix("ui")
    keys.revoke(record.key_id)
    assert not keys.has_keys_with_scope_prefix("invoke:")
    keys.create("soon", ["ui"], expires=timedelta(seconds=0.2))
    assert keys.has_keys_with_scope_prefix("ui")
    time.sleep(0.25)
    assert keys.has_keys_with_scope_prefix("ui")  # cached answer ...
    clock.advance(keys.cache_ttl)
    assert not keys.has_keys_with_scope_prefix("ui")  # ... until the TTL: expired keys do not count


def test_last_use_is_written_at_most_once_per_interval(
    keys: KeyStore, meta: MetaStore, clock: Any
) -> None:
    record, plaintext = keys.create("web", ["ui"])
    assert record.last_used_at is None
    assert keys.verify(plaintext) is not None
    keys.flush()
    [row] = _rows(meta)
    first = row["last_used_at"]
    assert first is not None and first >= record.created_at
    clock.advance(keys.touch_interval / 2)
    assert keys.verify(plaintext) is not None
    keys.flush()
    assert _rows(meta)[0]["last_used_at"] == first  # throttled
    clock.advance(keys.touch_interval)
    time.sleep(0.01)
    assert keys.verify(plaintext) is not None
    keys.flush()
    assert _rows(meta)[0]["last_used_at"] > first
    assert keys.list()[0].last_used_at == _rows(meta)[0]["last_used_at"]


def test_a_fresh_process_does_not_rewrite_a_recent_last_use(
    keys: KeyStore, meta: MetaStore
) -> None:
    _, plaintext = keys.create("web", ["ui"])
    assert keys.verify(plaintext) is not None
    keys.flush()
    first = _rows(meta)[0]["last_used_at"]
    with KeyStore(meta) as other:
        assert other.verify(plaintext) is not None
    assert _rows(meta)[0]["last_used_at"] == first


def test_the_cache_is_bounded(keys: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MAX_CACHED", 3)
    _, plaintext = keys.create("web", ["ui"])
    for i in range(10):
        assert keys.verify(f"sy_{i:012x}_{'A' * 43}") is None
    assert keys.verify(plaintext) is not None
    assert len(keys._cache) == 3
