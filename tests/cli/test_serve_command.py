"""``shipyard serve FILE.py:Class`` names its service after the class, by the name rule;
``shipyard deploy --secret`` refuses a malformed reference itself, without repeating it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.cli.serve import _default_name
from shipyard.names import service_name_problem


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        ("Ranker", "ranker"),
        ("RankerService", "ranker-service"),
        ("HomeRows2", "home-rows2"),
        ("UI", "svc-ui"),  # a reserved name: the host's own path
        ("Api", "svc-api"),
    ],
)
def test_the_default_service_name_is_the_class_name(cls: str, name: str) -> None:
    assert _default_name(cls) == name
    assert service_name_problem(name) is None


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("sk-live-9f8e7d", "a secret: expected NAME=env:VARIABLE"),
        ("API_KEY=sk-live-9f8e7d", "secret API_KEY: that is no reference"),
        ("API_KEY=file:run/secrets/x", "file: needs an absolute path on the host"),
    ],
)
def test_deploy_refuses_a_malformed_secret_before_calling_the_host(
    tmp_path: Path, secret: str, says: str
) -> None:
    from click.testing import CliRunner

    from shipyard.cli.serve import deploy_command

    service = tmp_path / "svc.py"
    service.write_text("")
    result = CliRunner().invoke(
        deploy_command,
        [f"{service}:Svc", "--name", "svc", "--secret", secret, "--url", "http://127.0.0.1:9"],
    )
    assert result.exit_code == 2, result.output
    assert says in result.output and "--secret" in result.output
    assert "sk-live-9f8e7d" not in result.output


def test_serve_refuses_a_bad_name_before_starting(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shipyard.cli.serve import serve_command

    service = tmp_path / "svc.py"
    service.write_text("")
    result = CliRunner().invoke(serve_command, [f"{service}:Svc", "--name", "Bad_Name"])
    assert result.exit_code == 2, result.output
    assert "service name 'Bad_Name' is not valid" in result.output and "--name" in result.output
