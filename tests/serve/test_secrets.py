"""Secret references (``env:VAR``, ``file:PATH``): parsed strictly, resolved by the host
process, and never echoed: every error names the secret and its reference, never the value.
The end-to-end promises (not in meta.db, logs or output; present in the worker) are in
test_secrets_host.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipyard.serve.secrets import MAX_FILE_BYTES, SecretError, parse_secret, resolve_secrets

VALUE = "sk-live-4f9c2a7e1b"


@pytest.fixture(autouse=True)
def _home(shipyard_home: Path) -> Path:
    shipyard_home.mkdir(mode=0o700)
    return shipyard_home


@pytest.mark.parametrize(
    ("item", "parsed"),
    [
        ("API_KEY=env:RANKER_API_KEY", ("API_KEY", "env:RANKER_API_KEY")),
        ("_k1=file:/run/secrets/ranker", ("_k1", "file:/run/secrets/ranker")),
        ("DSN=file:/run/secrets/a=b:c", ("DSN", "file:/run/secrets/a=b:c")),
    ],
)
def test_a_reference_is_parsed(item: str, parsed: tuple[str, str]) -> None:
    assert parse_secret(item) == parsed


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("API_KEY=env:", "secret API_KEY (env:): '' is not an environment variable's name"),
        ("API_KEY=env:A-B", "secret API_KEY (env:A-B): 'A-B' is not an environment variable"),
        (
            "API_KEY=file:secrets/ranker",
            "secret API_KEY (file:secrets/ranker): file: needs an absolute path on the host",
        ),
        ("1KEY=env:X", "a secret: its name must be an environment variable's name"),
        ("=env:X", "a secret: its name must be an environment variable's name"),
        ("A B=env:X", "a secret: its name must be an environment variable's name"),
    ],
)
def test_a_malformed_reference_is_refused_saying_what_a_reference_is(item: str, says: str) -> None:
    with pytest.raises(SecretError) as raised:
        parse_secret(item)
    assert str(raised.value).startswith(says)


@pytest.mark.parametrize(
    ("item", "says"),
    [
        (VALUE, "a secret: expected NAME=env:VARIABLE"),  # the value alone
        (f"API_KEY={VALUE}", "secret API_KEY: that is no reference; expected NAME=env:"),
        (f"{VALUE}=env:X", "a secret: its name must be an environment variable's name"),
    ],
)
def test_a_value_given_by_mistake_is_not_repeated_in_the_error(item: str, says: str) -> None:
    with pytest.raises(SecretError) as raised:
        parse_secret(item)
    assert str(raised.value).startswith(says)
    assert VALUE not in str(raised.value)


def test_an_env_reference_reads_the_hosts_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANKER_API_KEY", VALUE)
    assert resolve_secrets({"API_KEY": "env:RANKER_API_KEY"}) == {"API_KEY": VALUE}


def test_a_file_reference_reads_the_file_less_one_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "a").write_text(VALUE + "\n")
    (tmp_path / "b").write_bytes(b"line one\nline two\r\n")
    (tmp_path / "c").write_text(" spaced \n\n")
    resolved = resolve_secrets(
        {
            "A": f"file:{tmp_path / 'a'}",
            "B": f"file:{tmp_path / 'b'}",
            "C": f"file:{tmp_path / 'c'}",
        }
    )
    assert resolved == {"A": VALUE, "B": "line one\nline two", "C": " spaced \n"}


def _unresolvable(tmp_path: Path) -> list[tuple[str, str]]:
    os.mkfifo(tmp_path / "fifo")  # no writer: a blocking open would hang the host
    (tmp_path / "empty").write_text("")
    (tmp_path / "big").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    (tmp_path / "nul").write_bytes(b"a\0b")
    return [
        ("env:SHIPYARD_TEST_NOT_SET", "the host has no environment variable"),
        ("env:SHIPYARD_TEST_EMPTY", "the value is empty"),
        (f"file:{tmp_path / 'missing'}", "the host cannot read"),
        (f"file:{tmp_path}", "is not a regular file"),
        (f"file:{tmp_path / 'fifo'}", "is not a regular file"),
        (f"file:{tmp_path / 'empty'}", "the value is empty"),
        (f"file:{tmp_path / 'big'}", f"larger than {MAX_FILE_BYTES} bytes"),
        (f"file:{tmp_path / 'nul'}", "NUL byte"),
    ]


def test_an_unresolvable_secret_names_itself_its_reference_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPYARD_TEST_NOT_SET", raising=False)
    monkeypatch.setenv("SHIPYARD_TEST_EMPTY", "")
    for reference, why in _unresolvable(tmp_path):
        with pytest.raises(SecretError) as raised:
            resolve_secrets({"API_KEY": reference})
        message = str(raised.value)
        assert message.startswith(f"secret API_KEY ({reference}): "), message
        assert why in message, message


def test_an_unreadable_file_is_refused_without_its_contents(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(VALUE)
    secret.chmod(0)
    if os.geteuid() == 0:  # root reads any mode: take the file away instead
        secret.unlink()
    with pytest.raises(SecretError, match="the host cannot read") as raised:
        resolve_secrets({"API_KEY": f"file:{secret}"})
    assert VALUE not in str(raised.value)


def test_no_reference_may_name_a_file_under_shipyard_home(tmp_path: Path, _home: Path) -> None:
    token = _home / "admin.token"
    token.write_text(VALUE)
    outside = tmp_path / "innocent-looking"
    outside.symlink_to(token)  # a path outside the home that leads into it
    for reference in (f"file:{token}", f"file:{outside}"):
        with pytest.raises(SecretError, match="files under SHIPYARD_HOME") as raised:
            resolve_secrets({"API_KEY": reference})
        assert VALUE not in str(raised.value)
