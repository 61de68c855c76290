"""``@pypi`` / ``@pypi_base``: per-step environments built once from a wheelhouse the test
writes (``--pypi-find-links``, so pip runs with ``--no-index``: never PyPI), reused by
content hash; ``@conda`` / ``@conda_base`` are refused before anything runs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.cards import get_cards
from shipyard.client import Flow
from shipyard.client.errors import NotFound
from shipyard.flow.environments import FIND_LINKS_VAR, MARKER, step_environments
from shipyard.flow.exceptions import FlowError, GraphError
from shipyard.flow.loader import load_flow
from shipyard.testing import write_flow


def build_wheel(directory: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of ``name`` whose ``__version__`` is ``version``, written by hand
    (a zip with the metadata pip reads and a RECORD of hashes)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: shipyard-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    build_wheel(house, "tinypkg", "1.0")
    build_wheel(house, "tinypkg", "2.0")
    return house


FLOW = """
import os, sys
from shipyard import FlowSpec, pypi, step

class TinyFlow(FlowSpec):
    @pypi(packages={"tinypkg": "1.0"})
    @step
    def start(self):
        import tinypkg
        self.version = tinypkg.__version__
        self.prefix = sys.prefix
        self.from_with = os.environ.get("FROM_WITH")
        self.next(self.end)

    @step
    def end(self):
        try:
            import tinypkg
            self.leaked = True
        except ImportError:
            self.leaked = False

if __name__ == "__main__":
    TinyFlow()
"""


#: imported by every Python process the tests start (pip's included): a connection to
#: anything but this machine is refused, and written down
OFFLINE = """
import os, socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

def _check(address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        with open(os.environ["SHIPYARD_TEST_REFUSED"], "a") as log:
            log.write(f"{address}\\n")
        raise OSError(f"outbound connection to {address} refused by the test")

def connect(self, address):
    _check(address)
    return _connect(self, address)

def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)

socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
"""


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Processes the test starts cannot reach the internet, and pip's own configuration
    (this machine's find-links, an index URL) is left out: the wheelhouse the test names
    is the only place packages come from. Fails the test if anything tried."""
    site_dir = tmp_path / "offline"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(OFFLINE)
    refused = tmp_path / "refused.log"
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site_dir), *([path] if path else [])]))
    monkeypatch.setenv("SHIPYARD_TEST_REFUSED", str(refused))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", FIND_LINKS_VAR):
        monkeypatch.delenv(name, raising=False)
    yield refused
    assert not refused.exists(), f"something tried the network: {refused.read_text()}"


def test_the_processes_a_test_starts_are_offline(offline: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 80), 1)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 1 and "refused by the test" in probe.stderr
    assert "192.0.2.1" in offline.read_text()
    offline.unlink()


def shipyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def built_envs(home: Path) -> list[Path]:
    root = home / "envs"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_a_pypi_step_runs_in_its_environment_built_once(
    tmp_path: Path, home: Path, wheelhouse: Path
) -> None:
    path = write_flow(FLOW, tmp_path)
    first = shipyard("run", str(path), "--pypi-find-links", str(wheelhouse))
    assert first.returncode == 0, first.stderr + first.stdout
    assert "pypi: building the environment for start: tinypkg==1.0" in first.stdout
    assert f"from {wheelhouse} (pip --no-index --find-links)" in first.stdout  # never PyPI
    run = Flow("TinyFlow").latest_run
    assert run is not None and run.successful
    assert run["start"].task.data.version == "1.0"
    assert run["end"].task.data.leaked is False  # a step without @pypi cannot import it
    (env,) = built_envs(home)
    assert run["start"].task.data.prefix == str(env)  # it ran with the environment's python
    marker = env / MARKER
    built = (marker.read_text(), marker.stat().st_mtime_ns)
    assert json.loads(built[0])["requirements"] == ["tinypkg==1.0"]

    # a second run (with --with decorators, which the task attaches in its own python)
    # reuses the environment: no build, the marker untouched
    second = shipyard(
        "run",
        str(path),
        "--pypi-find-links",
        str(wheelhouse),
        "--with",
        "environment:vars={'FROM_WITH': 'yes'}",
        "--with",
        "card",  # a plugin's decorator: its module is imported in the environment's python
    )
    assert second.returncode == 0, second.stderr + second.stdout
    assert "pypi: building" not in second.stdout
    assert built_envs(home) == [env]
    assert (marker.read_text(), marker.stat().st_mtime_ns) == built
    again = Flow("TinyFlow").latest_run
    assert again is not None and again.pathspec != run.pathspec
    assert again["start"].task.data.version == "1.0"
    assert again["start"].task.data.from_with == "yes"
    assert [c.type for c in get_cards(again["start"].task)] == ["default"]


def test_two_runs_at_once_build_the_environment_once(
    tmp_path: Path, home: Path, wheelhouse: Path
) -> None:
    path = write_flow(FLOW, tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "shipyard", "run", str(path), "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, FIND_LINKS_VAR: str(wheelhouse)},  # the variable, this time
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    builds = sum(out.count("pypi: building the environment") for out, _ in outputs)
    assert builds == 1
    assert len(built_envs(home)) == 1
    assert not [p for p in (home / "envs").iterdir() if p.name.endswith(".building")]
    runs = list(Flow("TinyFlow"))
    assert len(runs) == 2 and all(r["start"].task.data.version == "1.0" for r in runs)


def test_pypi_base_applies_to_every_step_and_a_steps_own_pypi_wins(
    tmp_path: Path, home: Path, wheelhouse: Path
) -> None:
    path = write_flow(
        """
from shipyard import FlowSpec, pypi, pypi_base, step

@pypi_base(packages={"TinyPkg": "1.0"})
class BaseFlow(FlowSpec):
    @step
    def start(self):
        import tinypkg
        self.first = tinypkg.__version__
        self.next(self.end)

    @pypi(packages={"tinypkg": "2.0"})
    @step
    def end(self):
        import tinypkg
        self.second = tinypkg.__version__
""",
        tmp_path,
    )
    out = shipyard("run", str(path), "--pypi-find-links", str(wheelhouse))
    assert out.returncode == 0, out.stderr + out.stdout
    run = Flow("BaseFlow").latest_run
    assert run is not None
    assert (run["start"].task.data.first, run["end"].task.data.second) == ("1.0", "2.0")
    assert len(built_envs(home)) == 2


def test_a_pip_failure_fails_the_run_before_any_step(
    tmp_path: Path, home: Path, wheelhouse: Path
) -> None:
    path = write_flow(FLOW.replace('"tinypkg": "1.0"', '"tinypkg": "9.9"'), tmp_path)
    out = shipyard("run", str(path), "--pypi-find-links", str(wheelhouse))
    assert out.returncode == 1
    assert "@pypi could not build the environment of step(s) start: tinypkg==9.9" in out.stderr
    assert "No matching distribution found for tinypkg==9.9" in out.stderr  # pip's own words
    with pytest.raises(NotFound):  # no run was recorded: nothing ran
        Flow("TinyFlow")
    assert built_envs(home) == []  # and no half-built environment is left to be used


def test_a_python_that_is_not_there_is_refused(tmp_path: Path) -> None:
    loaded = load_flow(write_flow(FLOW.replace('"1.0"}', '"1.0"}, python="3.99"'), tmp_path))
    with pytest.raises(FlowError, match=r"python='3.99'.*there is no working python3.99 on PATH"):
        step_environments(loaded.graph())
    bad = write_flow(FLOW.replace('"1.0"}', '"1.0"}, python="three"'), tmp_path)
    with pytest.raises(GraphError, match="expected a version like"):
        load_flow(bad).graph()
    bad = write_flow(FLOW.replace('"tinypkg": "1.0"', '"tinypkg": 1.0'), tmp_path)
    with pytest.raises(GraphError, match="the version of 'tinypkg' must be a string"):
        load_flow(bad).graph()


def test_the_requirement_set_is_normalized_before_it_is_hashed(tmp_path: Path) -> None:
    one = write_flow(FLOW.replace('{"tinypkg": "1.0"}', '{"Tiny_Pkg": "1.0", "b": ""}'))
    two = write_flow(FLOW.replace('{"tinypkg": "1.0"}', '{"b": "", "tiny-pkg": "==1.0"}'))
    first = step_environments(load_flow(one).graph())["start"]
    second = step_environments(load_flow(two).graph())["start"]
    assert first.requirements == ["b", "tiny-pkg==1.0"]
    assert first.key == second.key


CONDA = """
from shipyard import FlowSpec, conda, conda_base, step

{base}
class CondaFlow(FlowSpec):
    {step_deco}
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CondaFlow()
"""


def test_conda_and_conda_base_are_refused_before_anything_runs(tmp_path: Path) -> None:
    step_level = write_flow(
        CONDA.format(base="", step_deco='@conda(libraries={"numpy": "1.26"})'), tmp_path
    )
    out = shipyard("run", str(step_level))
    assert out.returncode == 1
    assert (
        "step 'start': @conda is not supported: no conda channel is reachable here; "
        "use @pypi(packages={...}) (see README: Per-step environments)"
    ) in out.stderr
    flow_level = write_flow(CONDA.format(base='@conda_base(python="3.11")', step_deco=""), tmp_path)
    with pytest.raises(GraphError, match=r"@conda_base is not supported.*use @pypi_base\("):
        load_flow(flow_level).graph()
    as_metaflow = subprocess.run(
        [sys.executable, str(flow_level), "--environment=conda", "run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert as_metaflow.returncode == 2
    assert "--environment=conda: @conda is not supported" in as_metaflow.stderr
    with pytest.raises(NotFound):  # nothing ran
        Flow("CondaFlow")


def test_environment_pypi_is_accepted_as_metaflow_spells_it(
    tmp_path: Path, wheelhouse: Path
) -> None:
    path = write_flow(FLOW, tmp_path)
    out = subprocess.run(
        [sys.executable, str(path), "--environment=pypi", "run", "--pypi-find-links", wheelhouse],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    run = Flow("TinyFlow").latest_run
    assert run is not None and run["start"].task.data.version == "1.0"


def test_a_pypi_task_fails_and_times_out_as_any_task(tmp_path: Path, wheelhouse: Path) -> None:
    source = """
import time
from shipyard import FlowSpec, pypi, step

class EnvFailFlow(FlowSpec):
    @pypi(packages={"tinypkg": "2.0"})
    @step
    def start(self):
        import tinypkg
        if tinypkg.__version__ == "2.0" and "MODE" == "raise":
            raise ValueError("boom in " + tinypkg.__version__)
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    raising = write_flow(source.replace("MODE", "raise"), tmp_path)
    out = shipyard("run", str(raising), "--pypi-find-links", str(wheelhouse))
    assert out.returncode == 1
    run = Flow("EnvFailFlow").latest_run
    assert run is not None
    error = run["start"].task.exception
    assert (error["type"], error["message"]) == ("ValueError", "boom in 2.0")
    assert str(raising) in error["traceback"] and "shipyard/flow" not in error["traceback"]

    sleeping = write_flow(source.replace("MODE", "sleep"), tmp_path)
    out = shipyard(
        "run", str(sleeping), "--pypi-find-links", str(wheelhouse), "--with", "timeout:seconds=1"
    )
    assert out.returncode == 1
    assert "pypi: building" not in out.stdout  # the same requirement set: built already
    run = Flow("EnvFailFlow").latest_run
    assert run is not None and run["start"].task.exception["type"] == "TimeoutError"
