"""gc keeps tagged runs and runs behind registered models (and deployments) unless named;
``--dry-run`` says what it would free. Flows run for real in a private home."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipyard.cli.main import main
from shipyard.client import NotFound, Run
from shipyard.client.gc import collect
from shipyard.registry import Model
from shipyard.serve.deployments import DeploymentStore, VersionStatus
from shipyard.store.context import default_stores
from shipyard.testing import run_flow, write_flow

FLOW = """
from shipyard import FlowSpec, Parameter, current, step

class KeepFlow(FlowSpec):
    register = Parameter("register", default=False)

    @step
    def start(self):
        self.table = {"w": list(range(200))}
        print("training")
        if self.register:
            current.register_model("keeper", "table")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def gc(*args: str) -> str:
    result = CliRunner().invoke(main, ["gc", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_gc_keeps_tagged_and_model_runs_unless_named(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    tagged = run_flow(path, tags=("baseline",))
    producer = run_flow(path, register=True)
    plain = [run_flow(path), run_flow(path)]
    store = DeploymentStore(default_stores().meta)
    version = store.add_version(
        "keeper-svc", entry="svc.py:Keeper", code_key="0" * 64, replicas=1, env={},
        pins={"keeper@prod": "keeper:1"}, created_by="tester",
    )  # fmt: skip
    store.mark("keeper-svc", version.version, VersionStatus.LIVE)

    dry = collect(older_than=None, keep_last=0, dry_run=True, grace=timedelta(0))
    assert sorted(dry.runs) == sorted(r.pathspec for r in plain)
    assert dry.kept == {
        tagged.pathspec: ["tagged baseline"],
        producer.pathspec: ["registered keeper:1 (deployed: keeper-svc)"],
    }
    assert dry.blobs > 0 and dry.bytes and dry.bytes > 0
    out = gc("--keep", "0", "--dry-run", "--grace", "0s")
    assert f"kept {tagged.pathspec}: tagged baseline" in out
    assert f"kept {producer.pathspec}: registered keeper:1 (deployed: keeper-svc)" in out
    assert f"would delete {dry.blobs} blob(s), freeing " in out

    out = gc("--keep", "0", "--grace", "0s")
    assert "deleted 2 run(s)" in out
    for run in plain:
        with pytest.raises(NotFound):
            Run(run.pathspec)
    assert "baseline" in Run(tagged.pathspec).tags
    assert Run(producer.pathspec)["start"].task.stdout == "training\n"

    # named: deleted whatever it is; the model version outlives its run
    out = gc(producer.pathspec, "--grace", "0s")
    assert f"deleted 1 run(s): {producer.pathspec}" in out and "kept" not in out
    assert Model("keeper:1").load() == {"w": list(range(200))}
    missing = CliRunner().invoke(main, ["gc", "KeepFlow/999"])
    assert missing.exit_code == 1 and "KeepFlow/999" in missing.output
