from __future__ import annotations

import hashlib
import hmac
import pickle
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipyard.cache import codec, signing


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


def test_tampered_pickle_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    signed = codec.encode(Boom(marker))
    for position in (codec.HEADER - 1, len(signed) - 3):  # the signature, the pickle
        data = bytearray(signed)
        data[position] ^= 0x01
        with pytest.raises(codec.UntrustedValue, match="namespace 'ns', key 'k'.*altered"):
            codec.decode(bytes(data), where="namespace 'ns', key 'k'")
    assert not marker.exists()
    codec.decode(signed)  # the untouched value is trusted (and so loaded)
    assert marker.exists()


def test_unsigned_foreign_and_hmac_pickles_are_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Boom(marker))
    pickle.loads(payload)
    assert marker.exists()  # the probe works...
    marker.unlink()
    mine = signing.signer()
    other = Ed25519PrivateKey.generate()
    for data in (
        b"",
        payload,
        codec.PICKLE + payload,
        codec.PICKLE + mine.key_id + b"\0" * 64 + payload,
        # signed with another key, naming it or claiming ours
        codec.PICKLE + signing.key_id(other.public_key()) + other.sign(payload) + payload,
        codec.PICKLE + mine.key_id + other.sign(payload) + payload,
        # the old format, with a right HMAC under some key
        codec.HMAC_PICKLE + hmac.new(b"k" * 32, payload, hashlib.sha256).digest() + payload,
    ):
        with pytest.raises(codec.UntrustedValue):
            codec.decode(data)
    assert not marker.exists()  # ...and none of these loaded it


def test_an_hmac_value_is_refused_naming_the_migration() -> None:
    payload = pickle.dumps(Thing("x", 1.0))
    old = codec.HMAC_PICKLE + hmac.new(b"k" * 32, payload, hashlib.sha256).digest() + payload
    where = "namespace 'ns', version 000007, key 'k'"
    with pytest.raises(codec.UntrustedValue, match=f"{where}.*shipyard cache migrate-signatures"):
        codec.decode(old, where=where)


def test_a_value_signed_by_another_pair_names_both_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = codec.encode(Thing("x", 1.0))
    theirs = signing.signer().key_id.hex()
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "other"))
    ours = signing.signer().key_id.hex()  # another home: another pair
    with pytest.raises(codec.UntrustedValue, match=f"signing key {theirs}.*only key {ours}"):
        codec.decode(data)
