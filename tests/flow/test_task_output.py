"""A task's two streams are captured with a time per line, so ``shipyard logs`` shows them
interleaved in the order they were written: a failed task's traceback after its prints."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from shipyard.cli.main import main
from shipyard.store.records import RunStatus
from shipyard.testing import run_flow

FLOW = """
import subprocess, sys, warnings
from shipyard import FlowSpec, step

class NoisyFlow(FlowSpec):
    @step
    def start(self):
        print("loading", flush=False)
        print("a warning", file=sys.stderr)
        print("partial", end="")
        sys.stdout.flush()
        print(" line")
        sys.stdout.buffer.write(b"raw bytes\\n")
        subprocess.run(["echo", "from a child"], check=True)
        for i in range(3):
            print(f"row {i}")
            print(f"note {i}", file=sys.stderr)
        print("about to fail")
        raise ValueError("bad row 7")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def logs(*args: str) -> str:
    result = CliRunner().invoke(main, ["logs", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_logs_of_a_failed_task_interleave_prints_and_the_traceback(tmp_path: Path) -> None:
    run = run_flow(FLOW)
    assert run.record.status is RunStatus.FAILED
    task = run["start"].task
    both = logs(task.pathspec).splitlines()
    assert both[:9] == [
        "loading",
        "a warning",
        "partial line",
        "raw bytes",
        "from a child",
        "row 0",
        "note 0",
        "row 1",
        "note 1",
    ]
    assert both[9:12] == ["row 2", "note 2", "about to fail"]
    assert both[12] == "Traceback (most recent call last):"
    assert both[-1] == "ValueError: bad row 7"
    assert "\x1e" not in "".join(both) and "\x1f" not in "".join(both)
    # one stream each, and the client's views
    assert logs(task.pathspec, "--stdout").splitlines()[-1] == "about to fail"
    assert logs(task.pathspec, "--stderr").splitlines()[:2] == ["a warning", "note 0"]
    assert task.stderr.endswith("ValueError: bad row 7\n") and "\x1e" not in task.stderr
    stamped = logs(task.pathspec, "--timestamps").splitlines()
    assert stamped[0].endswith(" loading") and stamped[0][:4].isdigit()
    times = [t for t, _ in task.loglines("stdout")]
    assert times[0] is not None and times == sorted(times)  # type: ignore[type-var]
    # `shipyard show TASK` ends with the same, both streams in order
    shown = CliRunner().invoke(main, ["show", task.pathspec]).output
    tail = shown[shown.index("output (last 20 lines") :].splitlines()
    assert tail[tail.index("loading") :] == both  # all of it: under 20 lines
    assert tail.index("about to fail") < tail.index("Traceback (most recent call last):")
    # the step's and the run's logs, prefixed
    step = logs(f"{run.pathspec}/start").splitlines()
    assert step[0] == f"start/{task.id} | loading" and step[-1].endswith("| ValueError: bad row 7")


def test_the_failure_hint_names_a_command_that_shows_the_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    from shipyard.testing import write_flow

    path = write_flow(FLOW + "\nif __name__ == '__main__':\n    NoisyFlow()\n", tmp_path)
    out = subprocess.run(
        [sys.executable, str(path), "run"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0
    hint = next(line for line in out.stdout.splitlines() if "see the logs:" in line)
    command = hint.split("see the logs: shipyard ", 1)[1].split()
    shown = logs(*command[1:])
    assert "ValueError: bad row 7" in shown and "about to fail" in shown
    pathspec = command[1].rsplit("/", 2)[0]
    show = CliRunner().invoke(main, ["show", pathspec]).output
    suggested = show.split("(shipyard logs ", 1)[1].split(")", 1)[0].split()
    assert "ValueError: bad row 7" in logs(*suggested)
    # the UI's task page names the same command
    from starlette.testclient import TestClient

    from shipyard.keys import Guard, KeyStore
    from shipyard.store.context import default_stores
    from shipyard.ui import standalone

    stores = default_stores()
    app = standalone(stores.meta, stores.blobs, Guard(KeyStore(stores.meta)))
    client = TestClient(app, client=("127.0.0.1", 1234), base_url="http://127.0.0.1:8002")
    page = client.get(f"/ui/runs/{command[1]}").text
    ui_command = page.split('id="logs-hint"', 1)[1].split("<code>", 1)[1].split("</code>")[0]
    assert ui_command.startswith("shipyard logs ")
    assert "ValueError: bad row 7" in logs(*ui_command.split()[2:])


def test_stamped_streams_order_whole_partial_and_empty_lines(tmp_path: Path) -> None:
    import os

    from shipyard.flow.output import StampedStream
    from shipyard.store.loglines import Clock, interleave

    out_fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    err_fd = os.open(tmp_path / "err", os.O_WRONLY | os.O_CREAT)
    clock = Clock()
    out, err = StampedStream(out_fd, clock), StampedStream(err_fd, clock)
    print("a", file=out)
    print("err", file=err)
    print(file=out)
    out.write("part")
    out.flush()
    err.write("x\ny\n\n")
    out.write("ial\nnext")
    out.write("z" * 9000)  # a long line with no end is written, not held
    assert (tmp_path / "out").read_text().endswith("z" * 9000)
    out.flush()
    os.close(out_fd)
    os.close(err_fd)
    merged = interleave((tmp_path / "out").read_text(), (tmp_path / "err").read_text())
    assert [(line.stream, line.text) for line in merged] == [
        ("stdout", "a"),
        ("stderr", "err"),
        ("stdout", ""),
        ("stdout", "partial"),
        ("stderr", "x"),
        ("stderr", "y"),
        ("stderr", ""),
        ("stdout", "next" + "z" * 9000),
    ]
