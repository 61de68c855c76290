"""Small things the CLI gets right: tables are not cut at 80 columns when piped, and
``shipyard tag list`` lists tags (all of them with counts, a flow's, or a run's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shipyard.cli.main import main
from shipyard.store import context as _stores
from support.fakes import FakeRuns

LONG_TAGS = [f"a-rather-long-tag-name-{i}" for i in range(5)]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    runs = FakeRuns(tmp_path / "home")
    yield runs
    runs.close()
    _stores.reset()


def invoke(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)  # not a terminal: piped
    assert result.exit_code == code, result.output
    return result


def test_piped_tables_keep_whole_rows(fake: Any) -> None:
    run = fake.demo_run(tags=LONG_TAGS)
    lines = invoke("runs").output.splitlines()
    row = next(line for line in lines if line.startswith(run.pathspec()))
    assert ", ".join(LONG_TAGS) in row  # one line per run, nothing cut or folded
    assert len(row.rstrip()) > 80
    assert len([line for line in lines if line.strip()]) == 2  # the header and the run
    # COLUMNS, when set, is the width asked for
    narrow = invoke("runs", env={"COLUMNS": "60"}).output.splitlines()
    assert max(len(line.rstrip()) for line in narrow) <= 60
    assert ", ".join(LONG_TAGS) not in "\n".join(narrow)


def test_tag_list(fake: Any) -> None:
    assert "no tags on any run yet" in invoke("tag", "list").output
    first = fake.demo_run(tags=["baseline", "nightly"])
    second = fake.demo_run(tags=["nightly"])
    other = fake.demo_run("OtherFlow", tags=["nightly", "other"])
    everything = invoke("tag", "list").output.splitlines()
    assert [line.split() for line in everything] == [
        ["baseline", "1", "run"],
        ["nightly", "3", "runs"],
        ["other", "1", "run"],
    ]
    of_flow = invoke("tag", "list", "DemoFlow").output.splitlines()
    assert [line.split()[:2] for line in of_flow] == [["baseline", "1"], ["nightly", "2"]]
    assert invoke("tag", "list", first.pathspec()).output.splitlines() == ["baseline", "nightly"]
    assert invoke("tag", "list", other.pathspec("OtherFlow")).output.split() == [
        "nightly",
        "other",
    ]
    invoke("tag", "remove", second.pathspec(), "nightly")
    assert "has no tags" in invoke("tag", "list", second.pathspec()).output
    assert "not found" in invoke("tag", "list", "DemoFlow/999", code=1).output
    assert "expected Flow or Flow/run_id" in invoke("tag", "list", "A/1/x", code=2).output
