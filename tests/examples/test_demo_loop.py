"""``make demo``'s loop, end to end on small data: examples/movie_ranker/demo.py trains a first
ranker, serves it following ranker@prod, creates the schedule, triggers a retrain through the
host's scheduler (type manual), the gate passes, prod moves and the deployment rolls with
every request answered; a poor retrain is registered and keeps prod. The demo ends by itself,
leaves nothing running and ends with the command that brings the host back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "movie_ranker" / "demo.py"


def _processes_using(home: Path) -> list[int]:
    """Processes whose environment names ``home`` (the host, its workers, the runs)."""
    found = []
    needle = f"SHIPYARD_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(300)
def test_demo_schedules_retrains_gates_and_rolls_the_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env |= {"SHIPYARD_HOME": str(home), "SHIPYARD_FOLLOW_INTERVAL": "0.2"}
    done = subprocess.run(
        [sys.executable, str(DEMO), "--users", "300", "--items", "150"],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    assert _processes_using(home) == []  # the host, its replicas and the runs all ended
    last = out.rstrip().splitlines()[-2:]
    assert last == [
        "it is up. Bring the host and the UI back up with:",
        f"  SHIPYARD_HOME={home} .venv/bin/shipyard serve --port 8000",
    ]

    # the schedule, as @schedule says, and its next fire times shown in Amsterdam time
    assert "cron '0 */4 * * *' (Europe/Amsterdam)" in out
    assert re.search(r"\d\d:00:00Z  \(\d{4}-\d\d-\d\d \d\d:00 CES?T\)", out)
    # two triggers, each started by the host's scheduler as a run of type manual
    assert out.count("started by the scheduler (trigger: manual)") == 2
    passed, failed = re.findall(r"    gate: (.*)", out)
    assert passed.startswith("passed: gate NDCG@10") and "of ranker:1 (at prod)" in passed
    assert failed.startswith("failed: gate NDCG@10") and "prod stays at ranker:2" in failed
    assert "roll: ranker@prod moved ranker:1 -> ranker:2" in out
    # requests during the retrain and the roll: every one a 200, from both versions
    traffic = re.search(r"during the retrain and the roll, (\d+) requests: (.*)", out)
    assert traffic, out
    total = int(traffic[1])
    answered = re.fullmatch(rf"{total} x 200 \((\d+) by ranker:1, (\d+) by ranker:2\)", traffic[2])
    assert answered, traffic[2]
    assert int(answered[1]) > 0 and int(answered[2]) >= 20
    assert re.search(r"ranker@prod is still ranker:2; meanwhile (\d+) requests: \1 x 200 ", out)

    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    from shipyard import Flow, Model
    from shipyard.schedules import ScheduleStore
    from shipyard.serve.deployments import DeploymentStore
    from shipyard.store.meta import MetaStore

    with MetaStore.open() as meta:
        schedules = ScheduleStore(meta)
        record = schedules.get("MovieRankerFlow")
        assert (record.current.cron, record.current.timezone) == (
            "0 */4 * * *",
            "Europe/Amsterdam",
        )
        fires = sorted(schedules.fires("MovieRankerFlow"), key=lambda f: f.id)
        assert [(f.kind.value, f.exit_code, f.run_id) for f in fires] == [
            ("manual", 0, 2),
            ("manual", 0, 3),
        ]
        deployments = DeploymentStore(meta)
        versions = deployments.versions("ranker")
        deployment = deployments.get("ranker")
    runs = {r.id: r for r in Flow("MovieRankerFlow").runs()}
    assert runs[1].trigger is None  # the first run, by hand
    for run_id, fire in ((2, fires[0]), (3, fires[1])):
        trigger = runs[run_id].trigger
        assert trigger is not None
        assert (trigger["type"], trigger["schedule"], trigger["fire_id"]) == (
            "manual",
            "MovieRankerFlow",
            fire.id,
        )
    assert runs[2].parameters["factors"] == "16,32,64"  # the schedule's defaults
    assert runs[3].parameters["factors"] == "1"  # --param overrides them

    assert Model("ranker@prod").version == 2
    assert "gate=failed" in Model("ranker:3").info.tags
    by_version = {v.version: v for v in versions}
    assert deployment is not None and deployment.current_version == 2
    assert by_version[1].pins == {"ranker@prod": "ranker:1"}
    assert by_version[2].pins == {"ranker@prod": "ranker:2"}
    assert by_version[2].created_by == "follow:ranker@prod"
    assert by_version[2].status.value == "live" and len(versions) == 2  # the poor one: no roll
