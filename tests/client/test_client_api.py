from __future__ import annotations

import shipyard.client as client


def test_all_is_sorted_and_complete() -> None:
    assert client.__all__ == sorted(client.__all__)
    for name in client.__all__:
        assert hasattr(client, name), name


def test_not_found_is_a_key_error_and_a_client_error() -> None:
    exc = client.NotFound("F/1", "run F/1 not found")
    assert isinstance(exc, KeyError)
    assert isinstance(exc, client.ClientError)
    assert str(exc) == "run F/1 not found"  # not KeyError's quoted repr
