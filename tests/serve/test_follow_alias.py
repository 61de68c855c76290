"""Continuous delivery: a deployment that follows a model alias (``deploy --follow m@prod``)
rolls when the alias moves — a real host, real workers, real HTTP on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hosts import HostProcess

from shipyard.serve.deployments import DeploymentStore
from shipyard.serve.follow import FollowStore, Outcome, claim_expired
from shipyard.store import context as _stores
from shipyard.store.meta import MetaStore

#: seconds between the host's looks at the followed aliases, in these tests
INTERVAL = 0.5

MODELS_FLOW = """
from shipyard import FlowSpec, step, current

class FollowModels(FlowSpec):
    @step
    def start(self):
        # m:1, m:2 and m:4 load; m:3 is a model the service refuses
        for w in (1, 2, 3, 4):
            current.register_model("m", {"w": w, "bad": w == 3})
        self.next(self.end)

    @step
    def end(self):
        pass
"""

SERVICE = """
import time
from shipyard import Model
from shipyard.serve import Service, endpoint


class Ranker(Service):
    def load(self):
        model = Model(SPEC)
        if model.load()["bad"]:
            raise RuntimeError("this model is broken")
        self.spec = model.resolve()

    @endpoint
    def which(self, ms: int = 0) -> str:
        time.sleep(ms / 1000)
        return self.spec
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    home = tmp_path_factory.mktemp("follow")
    process = HostProcess(home, env={"SHIPYARD_FOLLOW_INTERVAL": str(INTERVAL)}).start()
    try:
        with pytest.MonkeyPatch.context() as patch:  # the models, in the host's home
            patch.setenv("SHIPYARD_HOME", str(home))
            for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
                patch.delenv(name, raising=False)
            _stores.reset()
            from shipyard.testing import run_flow

            run_flow(MODELS_FLOW)
            _stores.reset()
        yield process
    finally:
        process.stop()


@pytest.fixture
def meta(host: HostProcess) -> Iterator[MetaStore]:
    store = MetaStore.open(f"sqlite:///{host.home / 'meta.db'}")
    try:
        yield store
    finally:
        store.close()


def _alias(meta: MetaStore, alias: str, version: int) -> None:
    from shipyard.registry import Registry

    Registry(meta).set_alias("m", version, alias, user="retrain")


def _service(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "ranker_service.py"
    path.write_text(f"SPEC = {spec!r}\n{SERVICE}")
    return path


def _which(host: HostProcess, service: str) -> str:
    response = host.post(f"/{service}/which", {})
    assert response.status_code == 200, response.text
    return str(response.json())


def _shown(host: HostProcess, service: str) -> dict[str, Any]:
    response = httpx.get(f"{host.url}/api/v1/deployments/{service}", headers=host.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _wait(what: str, seen: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not seen():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


class Load:
    """Clients calling ``service`` over and over, until stopped, at most ``limit`` calls or
    ``seconds``: every answer kept (status, body)."""

    def __init__(self, host: HostProcess, service: str, clients: int = 4) -> None:
        self.url, self.service = host.url, service
        self.results: list[tuple[int, str]] = []
        self.limit, self.deadline = 5000, time.monotonic() + 90
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while (
                not self._stop.is_set()
                and len(self.results) < self.limit
                and time.monotonic() < self.deadline
            ):
                r = client.post(f"/{self.service}/which", json={"ms": 20})
                self.results.append((r.status_code, r.text))

    def answers(self, body: str) -> int:
        return sum(1 for _, text in self.results if text == f'"{body}"')

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def test_a_followed_alias_move_rolls_the_service_with_zero_failed_requests(
    host: HostProcess, meta: MetaStore, tmp_path: Path
) -> None:
    from shipyard.registry import Registry

    _alias(meta, "prod", 1)
    out = host.deploy(
        f"{_service(tmp_path, 'm@prod')}:Ranker", "ranker", "--replicas", "2", "--follow", "m@prod"
    )
    assert "following m@prod" in out.stdout
    assert _which(host, "ranker") == "m:1"
    with Load(host, "ranker") as load:
        _wait("answers from m:1", lambda: load.answers("m:1") >= 20)
        moved = host.cli("models", "alias", "m", "2", "prod", remote=False)
        assert "follows m@prod: its host rolls it from m:1 to version 2" in moved.stdout
        _wait("answers from m:2", lambda: load.answers("m:2") >= 20)
    failed = [r for r in load.results if r[0] != 200]
    assert failed == [] and load.answers("m:1") and load.answers("m:2"), failed[:5]
    assert _which(host, "ranker") == "m:2"
    # the host noticed within the bound: the new version was recorded soon after the move
    move = next(e for e in Registry(meta).audit("m") if e.action == "alias.move")
    version = DeploymentStore(meta).versions("ranker")[-1]
    assert version.created_by == "follow:m@prod" and version.pins["m@prod"] == "m:2"
    assert version.created_at - move.at < timedelta(seconds=INTERVAL + 2.0)
    # why it rolled: the audit log, `shipyard deployments`, the UI's page
    follow = next(e for e in Registry(meta).audit(limit=None) if e.action == "follow")
    assert follow.detail is not None and follow.detail["reason"] == "followed m@prod → 2"
    assert "followed m@prod → 2" in host.cli("models", "audit", "m", remote=False).stdout
    shown = host.cli("deployments", "ranker").stdout
    assert "following m@prod" in shown and "by follow:m@prod" in shown
    assert "last: followed m@prod → 2 (v2)" in shown
    page = httpx.get(f"{host.url}/ui/deployments/ranker").text
    assert "following <code>m@prod</code>" in page and "followed m@prod → 2" in page


def test_a_new_version_that_fails_keeps_the_old_serving_and_following_goes_on(
    host: HostProcess, meta: MetaStore, tmp_path: Path
) -> None:
    _alias(meta, "canary", 2)
    host.deploy(f"{_service(tmp_path, 'm@canary')}:Ranker", "canary", "--follow", "m@canary")
    assert _which(host, "canary") == "m:2"
    with Load(host, "canary", clients=2) as load:
        _alias(meta, "canary", 3)  # a model the service refuses to load
        _wait(
            "a recorded failure",
            lambda: "did not start" in (_shown(host, "canary")["follows"][0]["note"] or ""),
        )
    assert load.results and all(code == 200 for code, _ in load.results)
    assert load.answers("m:2") == len(load.results)  # the old version kept serving
    shown = _shown(host, "canary")
    failed = [v for v in shown["versions"] if v["status"] == "failed"]
    assert len(failed) == 1 and "this model is broken" in failed[0]["message"]
    assert failed[0]["pins"]["m@canary"] == "m:3"
    assert any(e["event"] == "follow_failed" for e in shown["events"])
    assert shown["follows"][0]["outcome"] == "failed"
    listed = host.cli("deployments", "canary").stdout
    assert "m@canary → 3: canary v2 did not start" in listed and "is broken" in listed
    assert "did not start" in httpx.get(f"{host.url}/ui/deployments/canary").text
    # the bad version is not tried again and again: following waits for the next move
    time.sleep(INTERVAL * 4)
    assert len(_shown(host, "canary")["versions"]) == 2
    _alias(meta, "canary", 4)
    _wait("answers from m:4", lambda: _which(host, "canary") == "m:4")
    assert _shown(host, "canary")["follows"][0]["outcome"] == "live"


def test_rollback_pauses_following_until_a_deploy_follows_again(
    host: HostProcess, meta: MetaStore, tmp_path: Path
) -> None:
    path = _service(tmp_path, "m@stable")
    _alias(meta, "stable", 1)
    host.deploy(f"{path}:Ranker", "stable", "--follow", "m@stable")
    _alias(meta, "stable", 2)
    _wait("answers from m:2", lambda: _which(host, "stable") == "m:2")
    out = host.cli("rollback", "stable")
    assert "following m@stable (paused)" in out.stdout and "rolled back to v1" in out.stdout
    assert _which(host, "stable") == "m:1"
    current = _shown(host, "stable")["current_version"]
    _alias(meta, "stable", 4)  # a paused follow does not move the deployment
    time.sleep(INTERVAL * 4)
    assert _which(host, "stable") == "m:1"
    assert _shown(host, "stable")["current_version"] == current
    shown = host.cli("deployments", "stable").stdout
    assert "paused" in shown and "deploy again with --follow m@stable to resume" in shown
    assert "paused</span>" in httpx.get(f"{host.url}/ui/deployments/stable").text
    # --follow again: pinned where the alias points now, and followed from here
    again = host.deploy(f"{path}:Ranker", "stable", "--follow", "m@stable")
    assert "(paused)" not in again.stdout
    assert _which(host, "stable") == "m:4"
    _alias(meta, "stable", 2)
    _wait("answers from m:2", lambda: _which(host, "stable") == "m:2")
    # and a deploy without --follow follows nothing
    host.deploy(f"{path}:Ranker", "stable")
    assert _shown(host, "stable")["follows"] == []


def test_follow_takes_an_alias_only(host: HostProcess, tmp_path: Path) -> None:
    path = _service(tmp_path, "m@prod")
    out = host.cli("deploy", f"{path}:Ranker", "--name", "x", "--follow", "m:2", check=False)
    assert out.returncode == 2 and "follow an alias, name@alias" in out.stderr
    body = {"name": "x", "entry": "s.py:X", "code": "", "follow": ["Bad@@"]}
    answer = host.post("/api/v1/deployments", body, headers=host.admin)
    assert answer.status_code == 422 and "--follow 'Bad@@'" in answer.json()["error"]["message"]


def test_one_claim_wins_a_move(db_url: str) -> None:
    # several hosts on one database: the compare-and-set on the follow's row lets one roll
    meta = MetaStore.open(db_url)
    try:
        deployments = DeploymentStore(meta)
        version = deployments.add_version(
            "svc", entry="s.py:S", code_key="0" * 64, replicas=1, env={}, pins={}, created_by="t"
        )
        from shipyard.serve.deployments import VersionStatus

        deployments.mark("svc", version.version, VersionStatus.LIVE, pins={"m@prod": "m:1"})
        one, two = FollowStore(meta), FollowStore(meta)
        one.replace("svc", {"m@prod": "m:1"}, "ann")
        [(seen, pins)] = one.watched()
        assert pins == {"m@prod": "m:1"} and seen.target == 1 and not seen.paused
        assert one.claim(seen, 2) is True
        assert two.claim(seen, 2) is False  # read before the first claim: it lost
        claimed = two.get("svc", "m@prod")
        assert claimed is not None and claimed.claimed_at is not None
        assert claimed.target == 2 and claimed.outcome is None
        # the claim holds while its host renews it; once it stops, another host takes over
        assert not claim_expired(claimed, 60)
        assert claim_expired(claimed, 60, now=claimed.claimed_at + timedelta(seconds=61))
        one.renew("svc", "m@prod", 2)
        assert two.claim(claimed, 2) is False  # renewed since it was read: still held
        renewed = two.get("svc", "m@prod")
        assert renewed is not None and renewed.claimed_at is not None
        assert renewed.claimed_at > claimed.claimed_at
        assert two.claim(renewed, 2) is True  # as after the lease: the row is as it read it
        two.settle("svc", "m@prod", target=2, outcome=Outcome.LIVE, note="followed")
        assert not claim_expired(one.of("svc")[0], 0)  # settled: nothing to take over
        [paused] = one.pause("svc", "rolled back", "ann")
        assert paused.spec == "m@prod" and one.watched() == []
        assert one.replace("svc", {}, "ann") == ["m@prod"] and one.of("svc") == []
    finally:
        meta.close()
