"""``make demo-catalogue``: index a 2,000-film sample of the catalogue, serve it, and search it
the way people remember titles — misspelled, in part, by genre, decade and rating.

Runs under its own SHIPYARD_HOME (``.demo/catalogue/``), ends by itself and leaves nothing
running; the last lines say how to bring the host back up. About two minutes on a 2-core
machine (the full catalogue is ``python examples/catalogue_search/flow.py run``: minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # examples/demo_support.py

from demo_support import deployed, post, post_refused, shipyard, step  # noqa: E402

SAMPLE = int(os.environ.get("CATALOGUE_SAMPLE", "2000"))
SEARCHES = [
    ("a misspelled title", {"query": "Prince and the Shwogirl", "k": 3}),
    ("part of a title", {"query": "Showgirl", "k": 3}),
    (
        "a genre and a decade with a good rating (no words)",
        {"query": "", "k": 5, "filters": {"genre": "Comedy", "decade": 1950, "min_rating": 7}},
    ),
    ("words and a filter", {"query": "love", "k": 5, "filters": {"genre": "Drama"}}),
]


def show(url: str, body: dict[str, object]) -> None:
    answer = post(f"{url}/catalogue/search", body)
    assert isinstance(answer, dict)
    print(f"POST /catalogue/search {json.dumps(body)}")
    for film in answer["results"]:
        print(f"  {film['score']:.4f}  {film['title']} ({film['year']})  {film['genres']}")
    print(f"  facets: genre {answer['facets']['genre']}")
    print(f"          decade {answer['facets']['decade']}")


def main() -> int:
    home = Path(os.environ.get("SHIPYARD_HOME") or HERE.parents[1] / ".demo" / "catalogue")
    os.environ["SHIPYARD_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    step(f"index: a stratified sample of {SAMPLE} films, scored on held-out queries")
    started = time.monotonic()
    flow = [sys.executable, str(HERE / "flow.py"), "run", "--sample", str(SAMPLE)]
    subprocess.run(flow, check=True)
    print(f"(the flow took {time.monotonic() - started:.0f} s)")
    shipyard("models", "show", "catalogue-index")

    with deployed(
        home,
        "the index deployed as the catalogue service",
        f"{HERE / 'service.py'}:Catalogue",
        "catalogue",
    ) as url:
        for what, body in SEARCHES:
            step(f"search: {what}")
            show(url, body)
        step("bad input: a clear 422")
        bad = b'{"query": "x", "filters": {"genre": "western"}}'
        print(f"genre 'western' -> {post_refused(f'{url}/catalogue/search', bad)}")

    step("done: the host has stopped and nothing is left running")
    print("Look at the index and its held-out scores (shipyard models show catalogue-index),")
    print("the card of the run (shipyard show CatalogueIndexFlow), and the service, which the")
    print("host restores, at http://127.0.0.1:8000/catalogue/docs. The weekly rebuild of the")
    print("whole catalogue is `shipyard schedule create examples/catalogue_search/flow.py`.")
    print("Bring the host and the UI back up with:")
    print(f"  SHIPYARD_HOME={home} .venv/bin/shipyard serve --port 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
