from __future__ import annotations

import hashlib
import hmac
import pickle
import stat
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shipyard.cache import codec
from shipyard.cache.backends.base import CacheError


@dataclass
class Thing:
    name: str
    score: float


class Boom:
    """Unpickling it touches a file: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (self.path,))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**63),
        2**64 - 1,
        3.25,
        float("inf"),
        "",
        "héllo ✓",
        b"\x00\xff",
        [],
        list(range(50)),
        {"a": [1, "b", None, {"c": b"d"}], "e": {}},
    ],
)
def test_plain_data_is_msgpack_and_round_trips(value: Any) -> None:
    data = codec.encode(value)
    assert data[:1] == codec.MSGPACK
    assert codec.decode(data) == value


def test_tuples_come_back_as_lists() -> None:
    data = codec.encode({"pairs": [("t1", 0.5), ("t2", 0.25)]})
    assert data[:1] == codec.MSGPACK
    assert codec.decode(data) == {"pairs": [["t1", 0.5], ["t2", 0.25]]}


@pytest.mark.parametrize(
    "value",
    [
        Thing("x", 1.5),
        {1: "int keys are not plain"},
        {("a", 1): 2},
        {1, 2},
        [1, Decimal("1.5")],
        2**64,  # beyond msgpack's integers
        {"nested": [Thing("y", 2.0)]},
    ],
)
def test_anything_else_is_a_signed_pickle(value: Any) -> None:
    data = codec.encode(value)
    assert data[:1] == codec.PICKLE
    assert codec.decode(data) == value


def test_signing_key_is_created_private_once(cache_home: Path) -> None:
    key = codec.signing_key()
    path = cache_home / "cache.key"
    assert path.read_bytes() == key and len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert codec.signing_key() == key


def test_tampered_pickle_is_refused_without_unpickling(tmp_path: Path) -> None:
    data = bytearray(codec.encode(Thing("x", 1.0)))
    data[-3] ^= 0x01
    with pytest.raises(codec.UntrustedValue, match="namespace 'ns', key 'k'.*signature"):
        codec.decode(bytes(data), where="namespace 'ns', key 'k'")


def test_unsigned_or_foreign_pickles_are_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Boom(marker))
    pickle.loads(payload)
    assert marker.exists()  # the probe works...
    marker.unlink()
    # a raw pickle, a pickle with a zeroed signature, one signed with another key
    wrong = hmac.new(b"k" * 32, payload, hashlib.sha256).digest()
    for data in (
        payload,
        codec.PICKLE + payload,
        codec.PICKLE + b"\0" * 32 + payload,
        codec.PICKLE + wrong + payload,
    ):
        with pytest.raises(codec.UntrustedValue):
            codec.decode(data)
    assert not marker.exists()  # ...and none of these loaded it


def test_env_key_is_shared_across_homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_CACHE_SIGNING_KEY", "s" * 64)
    data = codec.encode(Thing("x", 1.0))
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "elsewhere"))
    assert codec.decode(data) == Thing("x", 1.0)
    assert not (tmp_path / "elsewhere" / "cache.key").exists()
    monkeypatch.setenv("SHIPYARD_CACHE_SIGNING_KEY", "t" * 64)
    with pytest.raises(codec.UntrustedValue):
        codec.decode(data)
    monkeypatch.setenv("SHIPYARD_CACHE_SIGNING_KEY", "short")
    with pytest.raises(CacheError, match="too short"):
        codec.signing_key()


def test_a_different_home_key_refuses_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = codec.encode(Thing("x", 1.0))
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "other"))
    with pytest.raises(codec.UntrustedValue):
        codec.decode(data)
