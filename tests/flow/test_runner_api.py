"""``Runner`` as Metaflow users call it: parameters at ``run()``, ``with Runner(...)``,
``async_run()`` with ``wait()`` and ``stream_log()``, ``resume()``; real subprocesses."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from shipyard import Runner
from shipyard.client import Flow
from shipyard.flow.exceptions import FlowDefinitionError, ParameterError
from shipyard.testing import write_flow

FLOW = """
import os
from shipyard import FlowSpec, Parameter, step

class AlphaFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    label = Parameter("label", default="x")

    @step
    def start(self):
        print("alpha is", self.alpha)
        self.next(self.middle)

    @step
    def middle(self):
        if os.environ.get("BREAK_MIDDLE") == "1":
            raise RuntimeError("broken on purpose")
        self.doubled = self.alpha * 2
        self.next(self.end)

    @step
    def end(self):
        print("doubled", self.doubled, self.label)
"""


def test_run_takes_parameters_and_returns_an_executing_run(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    with Runner(str(path), show_output=False) as runner:
        result = runner.run(alpha=3, tags=["baseline"])
        assert result.status == "successful" and result.returncode == 0
        assert result.run.successful and result.run.data.doubled == 6.0
        assert "baseline" in result.run.tags
        assert "doubled 6.0 x" in result.stdout
        out_dir = runner._tmp
        assert out_dir.is_dir()
    assert not out_dir.exists()  # leaving the block removed the output files


def test_show_output_prints_the_run_as_it_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_flow(FLOW, tmp_path)
    with Runner(path) as runner:  # show_output defaults to True, as in Metaflow
        result = runner.run(label="shown")
    printed = capsys.readouterr().out
    assert "doubled 1.0 shown" in printed and printed == result.stdout


def test_a_run_in_another_home_is_read_from_there(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    other = tmp_path / "other-home"
    with Runner(path, show_output=False, env={"SHIPYARD_HOME": str(other)}) as runner:
        result = runner.run(alpha=4)
    assert result.run.successful and result.run.data.doubled == 8.0
    assert (other / "meta.db").exists()
    assert not (Path(os.environ["SHIPYARD_HOME"]) / "meta.db").exists()


def test_an_unknown_parameter_is_refused_before_anything_runs(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    with Runner(path, show_output=False) as runner:
        with pytest.raises(ParameterError, match=r"no parameter 'alpah'.*alpha, label"):
            runner.run(alpah=3)
        with pytest.raises(ParameterError, match="alpha"):
            runner.run(alpha="not a number")
        with pytest.raises(ParameterError, match="--branch needs a flow decorated with @project"):
            runner.run(branch="exp")
    with pytest.raises(FlowDefinitionError, match="does not exist"):
        Runner(tmp_path / "nope.py")
    assert not (Path(os.environ["SHIPYARD_HOME"]) / "meta.db").exists()  # no run was made


def test_a_failed_run_says_failed_and_resume_reruns_from_the_failure(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    with Runner(path, show_output=False, env={"BREAK_MIDDLE": "1"}) as runner:
        failed = runner.run(alpha=2)
    assert failed.status == "failed" and failed.returncode == 1
    assert not failed.run.successful and "broken on purpose" in failed.stderr + failed.stdout
    with Runner(path, show_output=False, label="for runs only") as runner:
        resumed = runner.resume(origin_run_id=failed.run.id)
        assert resumed.status == "successful", resumed.stderr
        assert resumed.run.origin_run == failed.run
        assert resumed.run.data.doubled == 4.0
        with pytest.raises(ParameterError, match="reuses the origin run's"):
            runner.resume(origin_run_id=failed.run.id, alpha=5)
        again = runner.resume(origin_run_id=resumed.run.id, step="middle")
        assert again.status == "successful" and again.run.data.doubled == 4.0


def test_async_run_streams_the_log_and_waits(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)

    async def go() -> tuple[str, list[str], str]:
        async with Runner(path, quiet=True) as runner:
            executing = await runner.async_run(alpha=5, label="streamed")
            first = executing.status
            lines = [line async for _, line in executing.stream_log("stdout")]
            await executing.wait(timeout=60)
            return first, lines, executing.status

    first, lines, status = asyncio.run(go())
    assert first in ("running", "successful")
    assert status == "successful"
    assert any("doubled 10.0 streamed" in line for line in lines)
    run = Flow("AlphaFlow").latest_run
    assert run is not None and run.successful and run.parameters["label"] == "streamed"


def test_wait_with_a_timeout_stops_the_run(tmp_path: Path) -> None:
    slow = FLOW.replace('print("alpha is", self.alpha)', "import time; time.sleep(60)")
    path = write_flow(slow, tmp_path)

    async def go() -> str:
        runner = Runner(path)
        try:
            executing = await runner.async_run()
            await executing.wait(timeout=1)
            return executing.status
        finally:
            runner.cleanup()

    assert asyncio.run(go()) == "timeout"
    run = Flow("AlphaFlow").latest_run
    assert run is not None and run.status.value in ("killed", "running", "dead")
