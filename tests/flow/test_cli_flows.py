"""The run/resume command line: ``python flow.py ...`` and ``shipyard run|resume``,
through real subprocesses (the runtime exits the process) and click's CliRunner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from shipyard import Runner
from shipyard.cli.main import main
from shipyard.client import Flow, Run
from shipyard.store.records import RunStatus
from shipyard.testing import write_flow

FLOW = """
import os
from shipyard import FlowSpec, Parameter, JSONType, step

class ParamFlow(FlowSpec):
    \"\"\"Adds things up.\"\"\"
    alpha = Parameter("alpha", default=0.5, help="a float")
    count = Parameter("count", type=int, required=True, help="an int")
    grid = Parameter("grid", type=JSONType, default="[1, 2]")
    verbose = Parameter("verbose", default=False)

    @step
    def start(self):
        if os.environ.get("BREAK_START_AT") == str(self.count):
            raise RuntimeError("broken on purpose")
        self.total = self.alpha * self.count + sum(self.grid)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total, "verbose", self.verbose)

if __name__ == "__main__":
    ParamFlow()
"""


def python(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_python_flow_py_run_with_parameters(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    out = python(path, "run", "--count", "3", "--alpha", "2", "--grid", "[10]", "--verbose")
    assert out.returncode == 0, out.stderr
    assert "end/" in out.stdout and "total 16.0 verbose True" in out.stdout
    run = Flow("ParamFlow").latest_run
    assert run.successful and run["end"].task.data.total == 16.0
    assert run.parameters == {"alpha": 2.0, "count": 3, "grid": "[10]", "verbose": True}


def test_types_are_checked_before_anything_runs(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    out = python(path, "run", "--count", "three")
    assert out.returncode == 2
    assert "Invalid value for '--count'" in out.stderr and "'three' is not a valid integer" in (
        out.stderr
    )
    missing = python(path, "run")
    assert missing.returncode == 2 and "'count' is required" in missing.stderr
    bad_json = python(path, "run", "--count", "1", "--grid", "[1,")
    assert bad_json.returncode == 2 and "grid" in bad_json.stderr
    result = CliRunner().invoke(main, ["runs"])
    assert "ParamFlow" not in result.output


def test_shipyard_run_and_resume(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    runner = CliRunner()
    first = subprocess.run(
        [sys.executable, "-m", "shipyard", "run", str(path), "--count", "4", "--tag", "exp"],
        capture_output=True,
        text=True,
        env={**os.environ, "BREAK_START_AT": "4"},
        timeout=120,
    )
    assert first.returncode == 1
    assert "broken on purpose" in first.stdout + first.stderr
    assert "shipyard resume ParamFlow/1" in first.stdout
    failed = Run("ParamFlow/1")
    assert failed.status is RunStatus.FAILED and "exp" in failed.tags
    # `shipyard resume` with no argument picks the latest failed run, with its parameters
    second = subprocess.run(
        [sys.executable, "-m", "shipyard", "resume"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert second.returncode == 0, second.stdout + second.stderr
    resumed = Flow("ParamFlow").latest_run
    assert resumed.origin_run == failed and resumed["end"].task.data.total == 5.0
    # python flow.py resume RUN --step: re-runs from that step even though it succeeded
    third = python(path, "resume", str(resumed.id), "--step", "end")
    assert third.returncode == 0, third.stderr
    latest = Flow("ParamFlow").latest_run
    assert latest["start"].task.origin_pathspec is not None
    assert latest["end"].task.origin_pathspec is None
    bad = runner.invoke(main, ["resume", "ParamFlow/99"])
    assert bad.exit_code == 1 and "no run ParamFlow/99" in bad.output
    assert python(path, "resume", "1", "--step", "nope").returncode == 2


def test_flow_errors_point_at_the_file(tmp_path: Path) -> None:
    path = write_flow(FLOW.replace("self.next(self.end)", "self.next(self.ned)"), tmp_path)
    out = python(path, "run", "--count", "1")
    assert out.returncode == 1
    assert f"{path}:" in out.stderr and "unknown step 'ned'" in out.stderr
    assert "did you mean self.end?" in out.stderr
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.py")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_show_and_help(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    shown = python(path, "show")
    assert shown.returncode == 0 and "start" in shown.stdout and "-> end" in shown.stdout
    helped = python(path, "run", "--help")
    assert "--alpha" in helped.stdout and "a float" in helped.stdout
    assert "--max-workers" in helped.stdout


def test_runner_from_python(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    with Runner(path, show_output=False, count=2, grid=[1, 1], verbose=True) as runner:
        result = runner.run()
    run = result.run
    assert result.status == "successful" and result.returncode == 0
    assert isinstance(run, Run) and run.pathspec == "ParamFlow/1"
    assert run.successful
    assert run["end"].task.data.total == 3.0
    assert run["end"].task.data.verbose is True


def test_the_run_tells_its_pathspec_through_the_run_id_file(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    told = tmp_path / "pathspec"
    out = python(path, "run", "--count", "1", "--quiet", "--run-id-file", str(told))
    assert out.returncode == 0, out.stderr
    assert told.read_text() == "ParamFlow/1"


HYPHENATED = """
from shipyard import FlowSpec, Parameter, step

class HyphenFlow(FlowSpec):
    gateway_config = Parameter("gateway-config", default="none.yaml")
    workers = Parameter("workers", default=7)

    @step
    def start(self):
        self.seen = (self.gateway_config, self.workers)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    HyphenFlow()
"""


def test_a_hyphenated_parameter_name_is_an_option(tmp_path: Path) -> None:
    path = write_flow(HYPHENATED, tmp_path)
    out = python(path, "run", "--gateway-config", "gw.yaml", "--workers", "2")
    assert out.returncode == 0, out.stderr
    run = Flow("HyphenFlow").latest_run
    assert run["start"].task.data.seen == ("gw.yaml", 2)
    assert run.parameters == {"gateway-config": "gw.yaml", "workers": 2}
