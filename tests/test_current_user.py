"""``shipyard.config.current_user``: the one answer to "who is acting" (runs, models, keys,
deploys)."""

from __future__ import annotations

import getpass

import pytest

from shipyard.config import current_user


def test_shipyard_user_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_USER", "ann")
    monkeypatch.setattr(getpass, "getuser", lambda: "login-name")
    assert current_user() == "ann"


def test_the_login_name_without_shipyard_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_USER", "")  # set but empty: as if unset
    monkeypatch.setattr(getpass, "getuser", lambda: "login-name")
    assert current_user() == "login-name"


@pytest.mark.parametrize("error", [KeyError("uid 1234"), OSError("no login name")])
def test_unknown_when_there_is_no_login_name(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def no_login() -> str:
        raise error

    monkeypatch.delenv("SHIPYARD_USER", raising=False)
    monkeypatch.setattr(getpass, "getuser", no_login)
    assert current_user() == "unknown"


def test_keys_still_exports_it() -> None:
    from shipyard.keys import store

    assert store.current_user is current_user
