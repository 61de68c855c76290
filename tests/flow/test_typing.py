"""The user and plugin seams type-check: ``@retry`` and ``@retry(times=2)``, ``current``'s
properties, and a misspelt argument or name is an error (mypy, with the project's config)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SOURCE = """
from typing import assert_type

from shipyard import FlowSpec, catch, current, environment, resources, retry, step, timeout
from shipyard.cards import card
from shipyard.cards.collector import CardCollector
from shipyard.flow.current import RegisterModel
from shipyard.flow.decorators import RetryDecorator, StepDecorator, TaskContext


class TypedFlow(FlowSpec):
    @retry
    @catch(var="failure")
    @timeout(minutes=2)
    @resources(cpu=2, memory=1024)
    @environment(vars={"A": "1"})
    @card(type="blank")
    @step
    def start(self) -> None:
        assert_type(current.run_id, int)
        assert_type(current.origin_run_id, int | None)
        assert_type(current.card, CardCollector)
        assert_type(current.register_model, RegisterModel)
        self.next(self.end)

    @retry(times=2)
    @card
    @step
    def end(self) -> None:
        pass


class Audit(StepDecorator):
    def task_finished(self, ctx: TaskContext, ok: bool) -> None:
        ctx.extras.setdefault("audit", []).append(ctx.spec.step_name)


assert_type(retry(times=2), RetryDecorator)
retry(tims=2)
current.flow_nme
"""


def test_decorators_and_current_type_check(tmp_path: Path) -> None:
    checked = tmp_path / "typed_flow.py"
    checked.write_text(textwrap.dedent(SOURCE))
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), str(checked)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={"MYPYPATH": str(ROOT / "src"), "PATH": ""},
    )  # fmt: skip
    errors = [line.split(": error: ")[1] for line in out.stdout.splitlines() if ": error: " in line]
    assert errors == [
        'Unexpected keyword argument "tims" for overloaded function "retry"; '
        'did you mean "times"?  [call-overload]',
        '"Current" has no attribute "flow_nme"; maybe "flow_name"?  [attr-defined]',
    ], out.stdout
