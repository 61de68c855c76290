"""End to end through a real host: a flow registers a model with its FeatureSet (recorded in
the input signature), a service computing the same set deploys quietly and logs what it
serves; a changed feature helper is warned at deploy, and refused when the set must match."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from shipyard.cli.main import main
from shipyard.features import read_serving_log
from shipyard.registry import Registry, Signature
from shipyard.store import context
from shipyard.testing import run_flow

FEATURES = """
from shipyard.features import FeatureSet, Lookup, feature

SCALE = {scale}


@feature
def scaled(facts) -> float:
    return facts["x"] * SCALE


@feature
def mean(facts, lookups) -> float:
    return lookups["profile"]["mean"]


FS = FeatureSet("scorer-features", [scaled, mean],
                lookups={{"profile": Lookup("profile_id", default={{"mean": 3.0}})}},
                must_match={must_match})
"""

FLOW = """
from shipyard import FlowSpec, current, step
from feats import FS


class ScorerFlow(FlowSpec):
    @step
    def start(self):
        current.register_model("scorer", {"w": [1.0, 0.5]}, features=FS)
        self.next(self.end)

    @step
    def end(self):
        pass
"""

SERVICE = """
from datetime import timedelta

from shipyard import Model, Service, endpoint
from shipyard.features import ServingLog
from feats import FS


class Scorer(Service):
    features = FS
    serving_log = ServingLog(max_age=timedelta(milliseconds=200), flush_interval=0.05)

    def load(self):
        self.model = Model("scorer").load()

    @endpoint
    def score(self, x: float, profile_id: str) -> float:
        facts = {"x": x, "profile_id": profile_id}
        lookups = {"profile": {"mean": 4.0}} if profile_id == "p1" else {}
        row = FS.row(facts, lookups)
        prediction = sum(w * v for w, v in zip(self.model["w"], row.values()))
        self.serving_log.log(facts=facts, lookups=lookups, features=row, prediction=prediction)
        return prediction
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _folder(root: Path, name: str, *, scale: str, must_match: bool) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "feats.py").write_text(FEATURES.format(scale=scale, must_match=must_match))
    (folder / "service.py").write_text(SERVICE)
    return folder


class _Host:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.env = {**os.environ, "SHIPYARD_HOME": str(home)}
        for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
            self.env.pop(var, None)
        home.mkdir(parents=True, exist_ok=True)
        self.log = open(home / "host.log", "ab")  # noqa: SIM115 - closed in stop()
        port = self.url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "serve", "--port", port],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError((home / "host.log").read_text()[-3000:])

    def deploy(self, folder: Path) -> Result:
        """``shipyard deploy`` in this process (no interpreter to start each time)."""
        target = f"{folder / 'service.py'}:Scorer"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SHIPYARD_HOME", str(self.home))
            return CliRunner().invoke(
                main, ["deploy", target, "--name", "scorer", "--url", self.url]
            )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Host]:
    root = tmp_path_factory.mktemp("feature-deploy")
    process = _Host(root / "home")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def trained(host: _Host, tmp_path_factory: pytest.TempPathFactory) -> Signature:
    flow_dir = _folder(tmp_path_factory.mktemp("flow"), "train", scale="2.0", must_match=False)
    (flow_dir / "scorer_flow.py").write_text(FLOW)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHIPYARD_HOME", str(host.home))
        for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
            patch.delenv(var, raising=False)
        patch.syspath_prepend(str(flow_dir))
        context.reset()
        try:
            assert run_flow(flow_dir / "scorer_flow.py").successful
            signature = Registry().get("scorer").signature
        finally:
            sys.modules.pop("feats", None)
            context.reset()
    assert signature is not None
    return signature


def test_the_signature_records_the_feature_set(trained: Signature) -> None:
    assert trained.names == ("scaled", "mean")
    assert [c.dtype for c in trained.columns] == ["float", "float"]
    assert trained.feature_set is not None and trained.feature_set["name"] == "scorer-features"
    assert len(trained.feature_set["version"]) == 16
    # one record: the feature set is inside the signature's JSON, and reads back
    data = trained.to_json()
    assert data["feature_set"] == dict(trained.feature_set)
    assert Signature.from_json(data) == trained
    # a record written before feature sets existed loads as before
    old = {"columns": [{"name": "a", "dtype": "float"}], "named": True, "source": "sklearn"}
    assert Signature.from_json(old).feature_set is None


def test_same_features_deploy_quietly_and_serving_is_logged(
    host: _Host, trained: Signature, tmp_path: Path
) -> None:
    done = host.deploy(_folder(tmp_path, "same", scale="2.0", must_match=False))
    assert done.exit_code == 0, done.output
    assert "warning" not in done.output
    for x, profile in ((1.0, "p1"), (2.0, "p2"), (3.0, "p1")):
        reply = httpx.post(f"{host.url}/scorer/score", json={"x": x, "profile_id": profile})
        assert reply.status_code == 200, reply.text
    deadline = time.monotonic() + 20
    frame = read_serving_log("scorer", home=host.home)
    while len(frame) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        frame = read_serving_log("scorer", home=host.home)
    assert frame["scaled"].tolist() == [2.0, 4.0, 6.0]
    assert frame["mean"].tolist() == [4.0, 3.0, 4.0]  # p2: the lookup's default
    assert frame["prediction"].tolist() == [4.0, 5.5, 8.0]
    assert frame["facts"][1] == {"x": 2.0, "profile_id": "p2"}
    # the worker's writer counts in Prometheus; the host's /metrics adds the workers' up
    written = 'shipyard_serving_log_written_total{service="scorer"} 3.0'
    text = httpx.get(f"{host.url}/metrics").text
    while written not in text and time.monotonic() < deadline:
        time.sleep(0.1)
        text = httpx.get(f"{host.url}/metrics").text
    assert written in text
    assert 'shipyard_serving_log_dropped_total{service="scorer"} 0.0' in text  # none dropped


def test_a_changed_helper_constant_is_warned_then_refused_when_it_must_match(
    host: _Host, trained: Signature, tmp_path: Path
) -> None:
    warned = host.deploy(_folder(tmp_path, "changed", scale="2.5", must_match=False))
    assert warned.exit_code == 0, warned.output
    assert "warning: feature set 'scorer-features'" in warned.output
    assert f"trained with version {trained.feature_set['version']}" in warned.output  # type: ignore[index]
    refused = host.deploy(_folder(tmp_path, "strict", scale="2.5", must_match=True))
    assert refused.exit_code != 0
    message = refused.output
    assert "must_match=True" in message and "did not start" in message
    # the version before keeps serving
    reply = httpx.post(f"{host.url}/scorer/score", json={"x": 1.0, "profile_id": "p1"})
    assert (reply.status_code, reply.json()) == (200, 4.5)
