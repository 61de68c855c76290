"""``shipyard models``: list, show, register, alias, audit; exit 1 (runtime) / 2 (usage)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shipyard.cli.main import main
from shipyard.store import context as _stores
from support.fakes import FakeRuns


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("SHIPYARD_USER", "ann")
    for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(var, raising=False)
    runs = FakeRuns(tmp_path / "home")
    yield runs
    runs.close()
    _stores.reset()


def invoke(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, ["models", *args])
    assert result.exit_code == code, result.output
    if code == 0:
        assert result.exception is None
    return result


def _model_task(fake: Any, value: Any = None) -> str:
    """A finished run whose ``end`` task has a ``model`` artifact; its address."""
    run_id = fake.run("RankFlow")
    task_id = fake.task(run_id, "end", artifacts={"model": value or {"w": 1}, "score": 0.4})
    fake.finish(run_id)
    return f"RankFlow/{run_id}/end/{task_id}:model"


def test_register_list_show_and_audit(fake: Any) -> None:
    assert "no models registered yet" in invoke("list").output
    first = _model_task(fake)
    out = invoke("register", first, "--name", "ranker", "-m", "ndcg=0.31", "-t", "baseline")
    assert out.output.strip() == f"registered ranker:1 from {first}"
    second = _model_task(fake, {"w": 2})
    invoke("register", second, "--name", "ranker", "--metric", "ndcg=0.42", "-m", "mrr=0.5")
    invoke("register", _model_task(fake), "--name", "churn")
    invoke("alias", "ranker", "1", "prod")

    listing = invoke("list").output
    ranker_line = next(line for line in listing.splitlines() if line.startswith("ranker"))
    assert ranker_line.split()[:4] == ["ranker", "2", "2", "prod->1"]
    assert "mrr=0.5, ndcg=0.42" in ranker_line
    assert "churn" in listing

    table = invoke("show", "ranker").output.splitlines()
    header = next(line for line in table if line.startswith("version"))
    assert header.split()[:4] == ["version", "aliases", "mrr", "ndcg"]
    rows = [line.split() for line in table if line[:1].isdigit() or line.strip()[:1].isdigit()]
    assert [r[:4] for r in rows] == [["2", "-", "0.5", "0.42"], ["1", "prod", "-", "0.31"]]
    assert second in table[table.index(header) + 1]

    detail = invoke("show", "ranker@prod").output
    assert "ranker:1" in detail and first in detail and "baseline" in detail
    assert "not recorded" in detail  # CLI registration: the task recorded no libraries
    as_json = json.loads(invoke("show", "ranker:2", "--json").output)
    assert (as_json["version"], as_json["metrics"], as_json["lineage"]) == (
        2,
        {"mrr": 0.5, "ndcg": 0.42},
        second,
    )
    listed = json.loads(invoke("list", "--json").output)
    assert [(m["name"], m["latest"], m["aliases"]) for m in listed] == [
        ("churn", 1, {}),
        ("ranker", 2, {"prod": 1}),
    ]

    audit = invoke("audit", "ranker").output.splitlines()
    body = [line.split() for line in audit[1:]]
    assert [row[2:8] for row in body] == [
        ["ann", "alias.set", "ranker", "prod", "-", "1"],
        ["ann", "register", "ranker", "-", "-", "2"],
        ["ann", "register", "ranker", "-", "-", "1"],
    ]
    assert body[1][8:] == ["from", second]  # the version's lineage
    assert len(invoke("audit", "-n", "1").output.splitlines()) == 2


def test_alias_move_delete_and_latest(fake: Any) -> None:
    for _ in range(3):
        invoke("register", _model_task(fake), "--name", "ranker")
    assert invoke("alias", "ranker", "1", "prod").output.strip() == "ranker@prod -> version 1"
    assert (
        invoke("alias", "ranker", "latest", "prod").output.strip()
        == "ranker@prod moved: version 1 -> 3"
    )
    assert "already points at version 3" in invoke("alias", "ranker", "3", "prod").output
    invoke("alias", "ranker", "2", "prod", "--delete", code=1)  # points at 3: refused
    assert (
        "deleted ranker@prod (was version 3)"
        in invoke("alias", "ranker", "prod", "--delete").output
    )
    result = invoke("alias", "ranker", "prod", "--delete", code=1)
    assert "has no alias 'prod'" in result.output
    actions = [line.split()[3] for line in invoke("audit").output.splitlines()[1:4]]
    assert actions == ["alias.delete", "alias.move", "alias.set"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("show", "nothing"), 1, "no models are registered yet"),
        (("show", "Ranker"), 2, "try 'ranker'"),
        (("show", "ranker:x"), 2, "version 'x'"),
        (("alias", "ranker", "1", "latest"), 2, "'latest' cannot be an alias"),
        (("alias", "ranker", "one", "prod"), 2, "not a version number"),
        (("alias", "ranker", "prod"), 2, "expected NAME VERSION ALIAS"),
        (("register", "RankFlow/1", "--name", "ranker"), 2, "bad artifact address"),
        (("register", "RankFlow/1/end:model", "--name", "Bad Name"), 2, "bad model name"),
        (("register", "RankFlow/1/end:model", "--name", "r", "-m", "auc"), 2, "NAME=NUMBER"),
        (("register", "RankFlow/99/end:model", "--name", "r"), 1, "no run RankFlow/99"),
        (("audit", "Bad"), 2, "bad model name"),
    ],
)
def test_errors_exit_with_a_hint(fake: Any, args: tuple[str, ...], code: int, message: str) -> None:
    result = invoke(*args, code=code)
    assert message in result.output
    assert "Traceback" not in result.output


def test_unknown_names_versions_and_aliases_exit_1_listing_what_exists(fake: Any) -> None:
    invoke("register", _model_task(fake), "--name", "ranker")
    assert "did you mean 'ranker'" in invoke("show", "rankr", code=1).output
    assert "it has version 1" in invoke("show", "ranker:4", code=1).output
    assert "no alias 'prod'" in invoke("show", "ranker@prod", code=1).output
    assert "has no version 5" in invoke("alias", "ranker", "5", "prod", code=1).output
    assert (
        "its artifacts: model, score"
        in invoke(
            "register", _model_task(fake).replace(":model", ":modle"), "--name", "ranker", code=1
        ).output
    )
