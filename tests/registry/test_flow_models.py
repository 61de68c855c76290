"""Models from real flows: a class defined in the flow file loads in another process from
another directory (through the run's code snapshot), and ``current.register_model``
registers only when the task succeeds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.registry import Model, Registry
from shipyard.store import context
from shipyard.testing import run_flow, write_flow

_SCORER_FLOW = """
from shipyard import FlowSpec, step


class Scorer:
    def __init__(self, weight):
        self.weight = weight

    def predict(self, xs):
        return [self.weight * x for x in xs]


class ScoreFlow(FlowSpec):
    @step
    def start(self):
        self.model = Scorer(3)
        self.next(self.end)

    @step
    def end(self):
        pass
"""

_LOADER = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("error")
    from shipyard.registry import Model
    model = Model(sys.argv[1])
    print(model.resolve(), type(model.load()).__name__, model.load().predict([1, 2]))
    """
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(path))
    for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(var, raising=False)
    yield path
    context.reset()


def test_a_flow_class_loads_in_another_process_and_directory(home: Path, tmp_path: Path) -> None:
    flow_dir = tmp_path / "flows"
    flow_dir.mkdir()
    run = run_flow(write_flow(_SCORER_FLOW, flow_dir, "scorer_flow"))
    assert run.successful
    task = run["start"].task
    version = Registry().register_artifact(f"{task.pathspec}:model", "scorer", metrics={"m": 1})
    Registry().set_alias("scorer", version.version, "prod")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", _LOADER, "scorer@prod"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(maxsplit=2) == ["scorer:1", "Scorer", "[3, 6]\n"]
    assert Model("scorer").info.module == version.module and version.code_key is not None


_REGISTERING_FLOW = """
from shipyard import FlowSpec, current, retry, step


class RegisterFlow(FlowSpec):
    @step
    def start(self):
        self.model = {"weights": [1, 2]}
        self.next(self.train)

    @retry(times=1, minutes_between_retries=0)
    @step
    def train(self):
        current.register_model("ranker", self.model, metrics={"auc": 0.5 + current.retry_count})
        current.register_model("ranker", "model", tags=["by-name"])
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails after registering")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_register_model_commits_only_the_successful_attempt(home: Path) -> None:
    run = run_flow(_REGISTERING_FLOW)
    task = run["train"].task
    assert run.successful, task.exception
    versions = Registry().versions("ranker")
    assert [(v.version, v.metrics, v.tags) for v in versions] == [
        (1, {"auc": 1.5}, ()),
        (2, {}, ("by-name",)),
    ]
    assert all(v.pathspec == task.pathspec for v in versions)
    assert [v.artifact_name for v in versions] == ["model", "model"]
    assert Model("ranker:1").load() == {"weights": [1, 2]}


def test_a_small_artifact_registered_by_name_gets_a_blob_of_its_own(home: Path) -> None:
    # the value lives in its artifact row (it is under 1 KiB); a model version needs a blob
    run = run_flow(
        """
from shipyard import FlowSpec, current, step

class TinyFlow(FlowSpec):
    @step
    def start(self):
        self.lookup = {"a": 1}
        current.register_model("tiny", "lookup")
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    assert run.successful
    key = run["start"].task.artifacts["lookup"].sha
    assert (home / "blobs" / key[:2] / key).exists()
    assert Model("tiny").load() == {"a": 1}
