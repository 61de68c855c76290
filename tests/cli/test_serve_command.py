"""``shipyard serve FILE.py:Class`` names its service after the file, by the name rule."""

from __future__ import annotations

import pytest

from shipyard.cli.serve import _default_name
from shipyard.names import service_name_problem


@pytest.mark.parametrize(
    ("file", "name"),
    [
        ("ranker.py", "ranker"),
        ("my_service.py", "my-service"),
        ("models/Home_Rows.py", "home-rows"),
        ("2fast.py", "svc-2fast"),
        ("ui.py", "svc-ui"),  # a reserved name: the host's own path
    ],
)
def test_the_default_service_name_is_the_files_stem(file: str, name: str) -> None:
    assert _default_name(file) == name
    assert service_name_problem(name) is None
