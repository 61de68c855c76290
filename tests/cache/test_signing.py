"""The cache's Ed25519 key pair: readers hold only the public key and cannot sign; where the
keys live, their modes, the environment overrides, and creating the pair from several
processes at once."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
import shutil
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipyard import cache
from shipyard.cache import codec, signing
from shipyard.cache.backends import open_backend
from shipyard.cli.main import main


@dataclass
class Thing:
    name: str


# A process with what a service has: the cache and the public key, not the private one. It
# tries to sign with shipyard, then forges with a key of its own (naming it, or naming the
# writers' key) and publishes the forgeries, which another reader must refuse.
FORGER = """
import pickle, sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from shipyard import cache
from shipyard.cache import codec, signing
from shipyard.cache.backends import open_backend

url, marker = sys.argv[1], sys.argv[2]

class Boom:
    def __reduce__(self):
        return (Path.touch, (Path(marker),))

try:
    codec.encode(Boom())
except cache.SigningKeyError as exc:
    print("refused:", exc, file=sys.stderr)
else:
    raise SystemExit("a reader signed a pickle")
payload = pickle.dumps(Boom())
own = Ed25519PrivateKey.generate()
writers = signing.verifier().key_id
backend = open_backend(url)
version = backend.begin("rows", {})
backend.put_many("rows", version, [
    (b"own", codec.PICKLE + signing.key_id(own.public_key()) + own.sign(payload) + payload),
    (b"claimed", codec.PICKLE + writers + own.sign(payload) + payload),
])
backend.publish("rows", version)
print(version)
"""


class Boom:
    """Unpickling it touches a file: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


def _old_reader_accepts(data: bytes, key: bytes) -> bool:
    """The check readers made before Ed25519: HMAC-SHA256 of the pickle with the shared key."""
    digest, payload = data[1:33], data[33:]
    return hmac.compare_digest(digest, hmac.new(key, payload, hashlib.sha256).digest())


def _service_home(writer_home: Path, tmp_path: Path) -> Path:
    """A home holding what a service may read: the public key only."""
    home = tmp_path / "service-home"
    home.mkdir()
    shutil.copy(writer_home / "cache.pub", home / "cache.pub")
    return home


def test_a_reader_cannot_forge_a_pickle_another_reader_loads(
    cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"lmdb://{tmp_path / 'lmdb'}"
    marker = tmp_path / "pwned"
    # Before: one HMAC key both verified and signed, and every reader held it. A reader's
    # forgery passed every other reader's check.
    shared = secrets.token_bytes(32)
    payload = pickle.dumps(Boom(marker))
    forged = codec.HMAC_PICKLE + hmac.new(shared, payload, hashlib.sha256).digest() + payload
    assert _old_reader_accepts(forged, shared)
    with pytest.raises(codec.UntrustedValue, match="old shared HMAC key"):
        codec.decode(forged)  # now refused

    # Now: the writer signs with the private key; a service process has only cache.pub.
    with cache.writer("rows", url=url) as w:
        w.put("thing", Thing("ok"))
    service = _service_home(cache_home, tmp_path)
    env = {**os.environ, "SHIPYARD_HOME": str(service)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FORGER), url, str(marker)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "refused: cannot sign a cache pickle here" in done.stderr
    assert sorted(p.name for p in service.iterdir()) == ["cache.pub"]  # no key made there

    # Another reader, with the public key only, refuses both forgeries without loading them
    monkeypatch.setenv("SHIPYARD_HOME", str(service))
    rows = cache.reader("rows", url=url)
    assert rows.version == done.stdout.strip()
    with pytest.raises(cache.UntrustedValue, match="key 'own'.*trusts only key"):
        rows.get("own")
    with pytest.raises(cache.UntrustedValue, match="key 'claimed'.*altered"):
        rows.get("claimed")
    assert not marker.exists()
    # ...and reads what the writer signed
    cache.rollback("rows", url=url)
    assert cache.reader("rows", url=url).get("thing") == Thing("ok")


def test_the_pair_is_made_by_the_first_writer_with_exact_modes(cache_home: Path) -> None:
    assert not (cache_home / "cache.key").exists()
    old = os.umask(0o077)  # would make cache.pub private...
    try:
        signer = signing.signer()
    finally:
        os.umask(old)
    key, pub = cache_home / "cache.key", cache_home / "cache.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644  # ...but it stays readable
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert signing.verifier().key_id == signer.key_id
    assert [p.name for p in cache_home.iterdir() if p.name.startswith(".cache")] == []


def test_a_permissive_umask_still_gives_a_private_key(cache_home: Path) -> None:
    old = os.umask(0)
    try:
        signing.signer()
    finally:
        os.umask(old)
    assert stat.S_IMODE((cache_home / "cache.key").stat().st_mode) == 0o600


def test_plain_data_needs_no_key(cache_home: Path, tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'lmdb'}"
    with cache.writer("rows", url=url) as w:
        w.put("p", [1, 2])
    assert cache.reader("rows", url=url).get("p") == [1, 2]
    assert not (cache_home / "cache.key").exists()


def test_a_reader_with_no_public_key_is_told_where_and_how(
    cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"lmdb://{tmp_path / 'lmdb'}"
    with cache.writer("rows", url=url) as w:
        w.put("thing", Thing("x"))
    empty = tmp_path / "empty-home"
    monkeypatch.setenv("SHIPYARD_HOME", str(empty))
    with pytest.raises(cache.SigningKeyError) as caught:
        cache.reader("rows", url=url).get("thing")
    message = str(caught.value)
    for needed in (
        f"namespace 'rows', version {w.version}, key 'thing'",
        str(empty / "cache.pub"),
        str(empty / "cache.key"),
        "SHIPYARD_CACHE_VERIFY_KEY",
        "shipyard cache public-key",
    ):
        assert needed in message
    assert not (empty / "cache.key").exists()  # a reader never makes keys


def test_a_home_with_only_the_public_key_reads_but_cannot_sign(
    cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = codec.encode(Thing("x"))
    service = _service_home(cache_home, tmp_path)
    monkeypatch.setenv("SHIPYARD_HOME", str(service))
    assert codec.decode(data) == Thing("x")
    with pytest.raises(cache.SigningKeyError, match="Only writers hold the private key"):
        codec.encode(Thing("y"))
    (service / "cache.key").write_bytes(b"")  # hidden, as a worker's bind mount leaves it
    with pytest.raises(cache.SigningKeyError, match="empty.*hidden"):
        codec.encode(Thing("y"))


def _write_pair(home: Path, *, public_of: Ed25519PrivateKey | None = None) -> None:
    """A cache.key (mode 0600) and cache.pub as a writer leaves them (``public_of``: a
    cache.pub of another key)."""
    key = Ed25519PrivateKey.generate()
    home.mkdir(parents=True, exist_ok=True)
    private = home / "cache.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    (home / "cache.pub").write_bytes(
        (public_of or key)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def test_private_key_readable_by_others_is_refused(cache_home: Path) -> None:
    _write_pair(cache_home)
    (cache_home / "cache.key").chmod(0o644)
    with pytest.raises(cache.SigningKeyError, match="readable by others.*chmod 600"):
        signing.signer()


def test_a_public_key_not_matching_the_private_one_is_refused(cache_home: Path) -> None:
    _write_pair(cache_home, public_of=Ed25519PrivateKey.generate())
    with pytest.raises(cache.SigningKeyError, match="not the public half.*delete"):
        signing.signer()


def test_the_old_hmac_key_file_is_refused_naming_the_migration(cache_home: Path) -> None:
    cache_home.mkdir(parents=True, exist_ok=True)
    (cache_home / "cache.key").write_bytes(secrets.token_bytes(32))
    with pytest.raises(cache.SigningKeyError, match="old shared HMAC key.*migrate-signatures"):
        codec.encode(Thing("x"))
    result = CliRunner().invoke(main, ["cache", "public-key"])
    assert result.exit_code == 1 and "migrate-signatures" in result.output


def test_env_keys_override_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["cache", "keygen"])
    assert result.exit_code == 0, result.output
    private_line, public_line = result.output.splitlines()
    private = private_line.removeprefix("SHIPYARD_CACHE_SIGNING_KEY=")
    public = public_line.removeprefix("SHIPYARD_CACHE_VERIFY_KEY=")
    assert private.startswith("ed25519:") and len(private) == len("ed25519:") + 64
    writer_home, reader_home = tmp_path / "w", tmp_path / "r"

    monkeypatch.setenv("SHIPYARD_HOME", str(writer_home))
    monkeypatch.setenv("SHIPYARD_CACHE_SIGNING_KEY", private)
    data = codec.encode(Thing("x"))
    assert codec.decode(data) == Thing("x")  # verified with the public half of the env key

    monkeypatch.delenv("SHIPYARD_CACHE_SIGNING_KEY")
    monkeypatch.setenv("SHIPYARD_HOME", str(reader_home))
    monkeypatch.setenv("SHIPYARD_CACHE_VERIFY_KEY", public)
    assert codec.decode(data) == Thing("x")
    with pytest.raises(cache.SigningKeyError):
        codec.encode(Thing("y"))  # a reader home: no private key, and none made
    for home in (writer_home, reader_home):
        assert not (home / "cache.key").exists() and not (home / "cache.pub").exists()

    other = signing.generate()[1]
    monkeypatch.setenv("SHIPYARD_CACHE_VERIFY_KEY", other)
    with pytest.raises(cache.UntrustedValue, match="SHIPYARD_CACHE_VERIFY_KEY"):
        codec.decode(data)
    monkeypatch.setenv("SHIPYARD_CACHE_SIGNING_KEY", private)
    with pytest.raises(cache.SigningKeyError, match="not the public half"):
        codec.encode(Thing("y"))


def test_env_keys_may_be_pem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    monkeypatch.setenv("SHIPYARD_CACHE_SIGNING_KEY", private_pem)
    data = codec.encode(Thing("x"))
    monkeypatch.delenv("SHIPYARD_CACHE_SIGNING_KEY")
    monkeypatch.setenv("SHIPYARD_CACHE_VERIFY_KEY", public_pem)
    assert codec.decode(data) == Thing("x")
    assert signing.verifier().key_id == signing.key_id(key.public_key())


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SHIPYARD_CACHE_SIGNING_KEY", "s" * 64, "old shared HMAC key.*SHIPYARD_CACHE_HMAC_KEY"),
        ("SHIPYARD_CACHE_SIGNING_KEY", "ed25519:" + "ab" * 31, "64 hex digits"),
        ("SHIPYARD_CACHE_VERIFY_KEY", "ed25519:zz", "64 hex digits"),
        ("SHIPYARD_CACHE_VERIFY_KEY", "-----BEGIN PUBLIC KEY-----\nxx\n", "PEM public key"),
        ("SHIPYARD_CACHE_VERIFY_KEY", "t" * 64, "not an Ed25519 public key"),
    ],
)
def test_bad_env_keys_are_named_and_never_shown(
    variable: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    call = signing.signer if variable == "SHIPYARD_CACHE_SIGNING_KEY" else signing.verifier
    with pytest.raises(cache.SigningKeyError, match=expected) as caught:
        call()
    assert variable in str(caught.value)
    assert value.removeprefix("ed25519:") not in str(caught.value)


def test_the_loser_of_a_creation_race_keeps_the_winners_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.key"
    assert signing._link_new(path, b"winner", 0o600)
    assert not signing._link_new(path, b"loser", 0o600)
    assert path.read_bytes() == b"winner"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.key"]  # no temp files left


CREATOR = """
import sys
from shipyard.cache import signing
print("ready", flush=True)
sys.stdin.readline()  # go
print(signing.public_text(signing.signer().key.public_key()), flush=True)
"""


def test_processes_creating_the_pair_at_once_end_with_one_pair(cache_home: Path) -> None:
    cache_home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SHIPYARD_HOME": str(cache_home)}
    creators = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CREATOR)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for creator in creators:  # every one imported and waiting...
            assert creator.stdout is not None and creator.stdout.readline() == "ready\n"
        for creator in creators:  # ...then all go at once
            assert creator.stdin is not None
            creator.stdin.write("go\n")
            creator.stdin.flush()
        results = [creator.communicate(timeout=120) for creator in creators]
    finally:
        for creator in creators:
            if creator.poll() is None:
                creator.kill()
    assert all(c.returncode == 0 for c in creators), [err for _, err in results]
    keys = {out.strip() for out, _ in results}
    assert len(keys) == 1
    assert keys == {signing.public_text(signing.verifier().key)}
    assert signing.public_text(signing.signer().key.public_key()) in keys
    assert sorted(p.name for p in cache_home.iterdir()) == ["cache.key", "cache.pub"]


def test_public_key_command_prints_the_verify_key(cache_home: Path) -> None:
    result = CliRunner().invoke(main, ["cache", "public-key"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == signing.public_text(signing.verifier().key)
    assert (cache_home / "cache.key").exists()


def test_cli_get_names_the_version_of_a_refused_value(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'lmdb'}"
    backend = open_backend(url)
    version = backend.begin("rows", {})
    payload = pickle.dumps(Thing("x"))
    old = codec.HMAC_PICKLE + hmac.new(b"k" * 32, payload, hashlib.sha256).digest() + payload
    backend.put_many("rows", version, [(b"p", old)])
    backend.publish("rows", version)
    result = CliRunner().invoke(main, ["cache", "--url", url, "get", "rows", "p"])
    assert result.exit_code == 1
    assert f"namespace 'rows', version {version}, key 'p'" in result.output
    assert "shipyard cache migrate-signatures" in result.output
