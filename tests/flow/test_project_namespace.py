"""``@project`` branches, ``current``'s project names, the models they make, and the
client's namespaces and metadata, as in Metaflow; runs through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipyard import (
    Flow,
    Run,
    current,
    default_metadata,
    default_namespace,
    get_metadata,
    get_namespace,
    metadata,
    namespace,
)
from shipyard.cli.main import main
from shipyard.client import NotInNamespace, Step, Task, list_runs
from shipyard.flow.exceptions import FlowDefinitionError
from shipyard.flow.project import project
from shipyard.registry import Model
from shipyard.testing import write_flow

FLOW = """
from shipyard import FlowSpec, current, get_namespace, project, step

@project(name="movies")
class RecsFlow(FlowSpec):
    @step
    def start(self):
        self.project_name = current.project_name
        self.branch_name = current.branch_name
        self.is_production = current.is_production
        self.is_user_branch = current.is_user_branch
        self.project_flow_name = current.project_flow_name
        self.seen_namespace = get_namespace()
        self.current_names = (current.username, current.namespace)
        current.register_model("recs", {"weights": [1, 2]})
        self.next(self.end)

    @step
    def end(self):
        pass
"""

PLAIN = """
from shipyard import FlowSpec, current, step

class PlainFlow(FlowSpec):
    @step
    def start(self):
        try:
            current.project_name
        except AttributeError as exc:
            self.error = str(exc)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture(autouse=True)
def as_alice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    default_namespace()
    yield
    default_namespace()


def shipyard(*args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SHIPYARD_USER": user},
        timeout=120,
    )


def test_branches_tags_current_and_models(tmp_path: Path) -> None:
    path = str(write_flow(FLOW, tmp_path))
    cases = [
        ((), "user.alice", False, True),
        (("--branch", "exp"), "test.exp", False, False),
        (("--production",), "prod", True, False),
        (("--production", "--branch", "blue"), "prod.blue", True, False),
    ]
    for options, branch, production, user_branch in cases:
        out = shipyard("run", path, "--quiet", *options)
        assert out.returncode == 0, out.stderr
        assert f"Project: movies, Branch: {branch}" in out.stdout
        data = Flow("RecsFlow").latest_run.data  # type: ignore[union-attr]
        assert data is not None
        assert (data.project_name, data.branch_name) == ("movies", branch)
        assert data.is_production is production and data.is_user_branch is user_branch
        assert data.project_flow_name == f"movies.{branch}.RecsFlow"
        assert data.seen_namespace == "user:alice"  # a step's client starts in user:<you>
        assert data.current_names == ("alice", "user:alice")
        run = Flow("RecsFlow").latest_run
        assert run is not None and {"project:movies", f"project_branch:{branch}"} <= run.tags
        model = Model(f"recs:{len(Flow('RecsFlow').runs())}").info
        assert (model.project, model.project_branch) == ("movies", branch)
    shown = CliRunner().invoke(main, ["models", "show", "recs:3"])
    assert shown.exit_code == 0, shown.output
    assert "movies (branch prod)" in shown.output


def test_bad_names_and_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FlowDefinitionError, match="lowercase letters, digits and underscores"):
        project(name="Movie-Recs")
    with pytest.raises(FlowDefinitionError, match="decorates a FlowSpec class"):
        project(name="movies")(dict)
    path = str(write_flow(FLOW, tmp_path))
    out = shipyard("run", path, "--branch", "Not.Valid")
    assert out.returncode == 2 and "--branch 'Not.Valid' is not valid" in out.stderr
    plain = str(write_flow(PLAIN, tmp_path))
    out = shipyard("run", plain, "--production")
    assert out.returncode == 2
    assert "--production needs a flow decorated with @project" in out.stderr
    assert shipyard("run", plain, "--quiet").returncode == 0
    run = Flow("PlainFlow").latest_run
    assert run is not None and run.data is not None
    assert "only available in a flow decorated with @project" in run.data.error
    with pytest.raises(AttributeError, match="only available while a flow step runs"):
        _ = current.branch_name


def test_runs_are_filtered_by_namespace(tmp_path: Path) -> None:
    path = str(write_flow(FLOW, tmp_path))
    assert shipyard("run", path, "--quiet").returncode == 0  # alice: RecsFlow/1
    assert shipyard("run", path, "--quiet", user="bob").returncode == 0  # bob: 2
    assert shipyard("run", path, "--quiet", "--production", user="bob").returncode == 0  # 3

    assert get_namespace() == "user:alice"
    assert [r.id for r in Flow("RecsFlow").runs()] == [1]
    assert Flow("RecsFlow").latest_successful_run == Run("RecsFlow/1")
    assert [r.id for r in list_runs()] == [1]
    with pytest.raises(NotInNamespace, match="not in the namespace 'user:alice'"):
        Run("RecsFlow/2")
    namespace(None)
    bobs_task = Run("RecsFlow/2")["start"].task.pathspec
    default_namespace()
    with pytest.raises(NotInNamespace, match="RecsFlow/2"):  # Step and Task too
        Step("RecsFlow/2/start")
    with pytest.raises(NotInNamespace, match=bobs_task):
        Task(bobs_task)
    assert Task(Run("RecsFlow/1")["start"].task.pathspec).run_id == 1

    assert namespace("user:bob") == "user:bob"
    assert [r.id for r in Flow("RecsFlow").runs()] == [3, 2]
    assert namespace("project_branch:prod") == "project_branch:prod"
    assert [r.id for r in Flow("RecsFlow").runs()] == [3]
    assert Flow("RecsFlow").latest_run == Run("RecsFlow/3")
    assert namespace(None) is None
    assert [r.id for r in Flow("RecsFlow").runs()] == [3, 2, 1]
    assert Run("RecsFlow/2").user == "bob"
    assert default_namespace() == "user:alice"
    with pytest.raises(ValueError, match="give a tag"):
        namespace("")

    # models, and the command line, are not namespaced: alice sees bob's versions and runs
    assert Model("recs:3").info.project_branch == "prod"
    listed = CliRunner().invoke(main, ["runs", "--flow", "RecsFlow"])
    assert listed.exit_code == 0 and listed.output.count("RecsFlow/") == 3, listed.output


def test_metadata_names_the_home_and_switches_it(tmp_path: Path, home: Path) -> None:
    path = str(write_flow(FLOW, tmp_path))
    assert shipyard("run", path, "--quiet").returncode == 0
    assert get_metadata() == f"local@{home}"
    other = tmp_path / "other-home"
    try:
        assert metadata(f"local@{other}") == f"local@{other.resolve()}"
        assert list_runs() == []
        assert metadata(str(home)) == f"local@{home.resolve()}"
        assert [r.id for r in list_runs()] == [1]
        with pytest.raises(ValueError, match=r"shipyard\.connect"):
            metadata("service@http://127.0.0.1:1")
    finally:
        assert default_metadata() == f"local@{home}"
    assert os.environ["SHIPYARD_HOME"] == str(home)


def test_gc_does_not_keep_a_run_for_its_project_tags(tmp_path: Path) -> None:
    path = str(
        write_flow(
            PLAIN.replace("class PlainFlow", "@project(name='movies')\nclass PlainFlow").replace(
                "from shipyard import FlowSpec, current, step",
                "from shipyard import FlowSpec, current, project, step",
            ),
            tmp_path,
        )
    )
    assert shipyard("run", path, "--quiet").returncode == 0
    assert shipyard("run", path, "--quiet", "--tag", "keep_me").returncode == 0
    namespace(None)
    assert [r.id for r in Flow("PlainFlow").runs()] == [2, 1]
    out = shipyard("gc", "--keep", "0", "--grace", "0s")
    assert out.returncode == 0, out.stderr
    assert "kept PlainFlow/2: tagged keep_me" in out.stdout
    assert [r.id for r in Flow("PlainFlow").runs()] == [2]
