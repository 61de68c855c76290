"""Where a flow's tasks run, configured in the usual order (flag > SHIPYARD_EXECUTOR /
SHIPYARD_RAY_ADDRESS > config.yaml > local), and ``--detach`` refused clearly where it cannot
work: without Ray, without a cluster address, or with a database or store the cluster could
not reach. Nothing here starts Ray (every refusal comes before it would)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from shipyard.cli.main import main
from shipyard.config import ConfigError, settings
from shipyard.flow.ray_detach import check_reachable
from shipyard.flow.ray_executor import RayExecutorError
from shipyard.testing import write_flow

FLOW = """
from shipyard import FlowSpec, step

class TinyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    for name in (
        "SHIPYARD_DB_URL",
        "SHIPYARD_STORE_URL",
        "SHIPYARD_EXECUTOR",
        "SHIPYARD_RAY_ADDRESS",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


def test_executor_and_ray_address_resolve_flag_env_config_default(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = settings()
    assert (conf.executor, conf.ray_address) == ("local", None)
    (home / "config.yaml").write_text("executor: ray\nray_address: 10.0.0.5:6379\n")
    conf = settings()
    assert (conf.executor, conf.ray_address) == ("ray", "10.0.0.5:6379")
    monkeypatch.setenv("SHIPYARD_EXECUTOR", "local")
    monkeypatch.setenv("SHIPYARD_RAY_ADDRESS", "10.0.0.6:6379")
    conf = settings()
    assert (conf.executor, conf.ray_address) == ("local", "10.0.0.6:6379")
    conf = settings(executor="ray", ray_address="10.0.0.7:6379")
    assert (conf.executor, conf.ray_address) == ("ray", "10.0.0.7:6379")
    assert "executor" not in conf.extra and "ray_address" not in conf.extra


def test_a_bad_executor_in_config_yaml_is_refused_naming_the_file(home: Path) -> None:
    (home / "config.yaml").write_text("executor: spark\n")
    with pytest.raises(ConfigError, match=r"config.yaml: expected local or ray, got 'spark'"):
        settings()


def test_detach_without_ray_is_refused(home: Path, tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    out = CliRunner().invoke(main, ["run", str(path), "--detach"])
    assert out.exit_code == 2, out.output
    assert "--detach runs the runtime in a Ray cluster: it needs --executor ray" in out.output
    assert "TinyFlow/" not in out.output  # no run began


def test_detach_needs_a_cluster_address(home: Path, tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    out = CliRunner().invoke(main, ["run", str(path), "--executor", "ray", "--detach"])
    assert out.exit_code == 1, out.output
    assert "--detach needs an existing cluster to run in: give --ray-address" in out.output


def test_config_yaml_sends_the_run_to_ray_and_env_and_flags_override_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.yaml says ray on a remote cluster: --detach is refused for the SQLite file,
    naming that cluster (read from config.yaml), before anything connects."""
    path = write_flow(FLOW, tmp_path)
    (home / "config.yaml").write_text("executor: ray\nray_address: 10.9.9.9:6379\n")
    runner = CliRunner()
    out = runner.invoke(main, ["run", str(path), "--detach"])
    assert out.exit_code == 1, out.output
    assert "SQLite file" in out.output and "the Ray cluster at 10.9.9.9:6379" in out.output
    assert "SHIPYARD_DB_URL" in out.output
    # the environment beats config.yaml
    monkeypatch.setenv("SHIPYARD_RAY_ADDRESS", "10.8.8.8:6379")
    out = runner.invoke(main, ["run", str(path), "--detach"])
    assert "the Ray cluster at 10.8.8.8:6379" in out.output, out.output
    monkeypatch.setenv("SHIPYARD_EXECUTOR", "local")
    out = runner.invoke(main, ["run", str(path), "--detach"])
    assert out.exit_code == 2 and "needs --executor ray" in out.output, out.output
    # and a flag beats the environment
    out = runner.invoke(main, ["run", str(path), "--executor", "ray", "--detach"])
    assert "the Ray cluster at 10.8.8.8:6379" in out.output, out.output
    out = runner.invoke(
        main, ["run", str(path), "--executor", "ray", "--ray-address", "10.7.7.7:1", "--detach"]
    )
    assert "the Ray cluster at 10.7.7.7:1" in out.output, out.output
    # config.yaml's executor with no flag and no environment: a local run stays local
    monkeypatch.delenv("SHIPYARD_EXECUTOR")
    (home / "config.yaml").write_text("executor: local\n")
    out = runner.invoke(main, ["run", str(path)])
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize(
    ("db_url", "store_url", "address", "refused"),
    [
        ("sqlite:////tmp/x/meta.db", "file:///tmp/x/blobs", "127.0.0.1:6379", None),
        ("sqlite:////tmp/x/meta.db", "file:///tmp/x/blobs", "localhost:6379", None),
        ("sqlite:////tmp/x/meta.db", "s3://bucket", "10.0.0.5:6379", "SQLite file /tmp/x/meta.db"),
        ("postgresql://u@127.0.0.1/db", "s3://bucket", "10.0.0.5:6379", "this machine's loopback"),
        ("postgresql://u@db.internal/db", "file:///tmp/b", "10.0.0.5:6379", "blob store file://"),
        ("postgresql://u@db.internal/db", "s3://bucket", "ray://10.0.0.5:10001", None),
    ],
)
def test_a_detached_run_needs_a_database_and_store_the_cluster_reaches(
    db_url: str, store_url: str, address: str, refused: str | None
) -> None:
    if refused is None:
        check_reachable(db_url, store_url, address)
        return
    with pytest.raises(RayExecutorError, match="--detach: ") as caught:
        check_reachable(db_url, store_url, address)
    assert refused in str(caught.value) and address in str(caught.value)
