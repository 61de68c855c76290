"""examples/catalogue_search with the embedding model (run inside a loopback-only network
namespace by tests/examples/test_catalogue_search.py): on a sample of the catalogue, facet
counts equal a direct count, a filter matching few films returns k, hybrid recall@10 holds
its own against keyword and dense alone on the held-out queries, facets equal the core's
count and a search equals fusing every ranking; then the flow registers catalogue-index, a
second run embeds only the titles the latest catalogue-index lacks, a real host serves
Catalogue, and /catalogue/search answers the issue's shapes with clear 422s for bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "catalogue_search"
sys.path.insert(0, str(EXAMPLE))

import filmdata  # noqa: E402
import queries  # noqa: E402
import search  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("SHIPYARD_CATALOGUE_NETNS") != "1",
    reason="run by tests/examples/test_catalogue_search.py inside a network namespace",
)


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return filmdata.sample(filmdata.load_catalogue(), 800)


@pytest.fixture(scope="module")
def engine(sample, tmp_path_factory) -> search.Engine:
    from shipyard.retrieval import Embedder

    folder = tmp_path_factory.mktemp("catalogue")
    search.build(sample, Embedder(), folder)
    return search.Engine.load(folder)


def test_facets_filters_and_the_fusion_on_held_out_queries(engine, sample) -> None:
    made = queries.make_queries(sample, exact=100, misspelled=300, partial=100, facet=40)
    result = queries.evaluate(engine, sample, made)
    assert result["facets"] == {
        "queries": 40.0, "all_results_match": 1.0, "counts_exact": 1.0, "k_returned": 1.0
    }  # fmt: skip
    test = result["test"]
    hybrid = test["hybrid (tuned)"]["all"]["recall"]
    assert hybrid >= max(test["keyword"]["all"]["recall"], test["dense"]["all"]["recall"])
    assert test["hybrid (tuned)"]["misspelled"]["recall"] >= 0.9

    # facet counts (integer codes, np.bincount) equal the core's count over what matched;
    # a search runs only the rankers its weights fuse, and answers as if it ran them all
    for q in made[::10]:
        f = search.core_filters(q["filters"])
        rankings, matched = engine.rankings(q["query"], f)
        got = engine.search(q["query"], 10, f)["facets"]
        assert got == {key: engine.index.columns.counts(key, matched) for key in search.FACETS}
        assert [list(c) for c in got.values()] == [
            list(engine.index.columns.counts(key, matched)) for key in search.FACETS
        ]  # most frequent first, as the core orders them
        for w in ({"fuzzy": 1.0}, {"bm25": 1.0, "dense": 0.0, "fuzzy": 2.0}, {"dense": 1.0}):
            alone = engine.search(q["query"], 10, f, weights=w)["results"]
            fused = engine.fuse(rankings, 10, w)
            assert [r["id"] for r in alone] == [engine.index.chunks[r].id for r, _ in fused]

    # a filter only a few films pass: k of them come back, whatever the query
    combos = Counter((g, f["decade"]) for f in sample for g in f["genres"])
    (genre, decade), n = min(((c, m) for c, m in combos.items() if m >= 3), key=lambda x: x[1])
    filters = {"genre": genre, "decade": decade}
    for query in ("zzzz qqqq", "love", ""):
        found = engine.search(query, n, search.core_filters(filters))
        assert len(found["results"]) == n, (query, filters)
        assert all(genre in r["genres"] and r["year"] // 10 * 10 == decade
                   for r in found["results"])  # fmt: skip

    # facets count every film that matched, beyond the k returned
    from shipyard.retrieval.keywords import words

    terms = Counter(w for f in sample for w in set(words(f["title"])) if len(w) > 3)
    common = terms.most_common(1)[0][0]
    found = engine.search(common, 3)
    assert len(found["results"]) == 3
    assert sum(found["facets"]["decade"].values()) >= terms[common] > 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*args], env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_flow_deploy_and_search_over_http(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(tmp_path / "home")
    shipyard = [sys.executable, "-m", "shipyard"]
    out = _run(env, sys.executable, str(EXAMPLE / "flow.py"), "run", "--sample", "300")
    assert "300 of 58788 films" in out and "registered catalogue-index" in out, out
    shown = _run(env, *shipyard, "models", "show", "catalogue-index")
    assert "sample=300" in shown and "misspelled_recall@10" in shown, shown
    assert "300 titles embedded, 0 vectors reused" in out, out

    # the weekly rebuild: a catalogue that gained and lost films reuses the vectors of the
    # latest catalogue-index for every title it holds and embeds only the others
    everything = filmdata.load_catalogue()
    before = {f["title"] for f in filmdata.sample(everything, 300)}
    films = filmdata.sample(everything, 320)
    new = {f["title"] for f in films} - before
    assert 0 < len(new) < 320
    out = _run(env, sys.executable, str(EXAMPLE / "flow.py"), "run", "--sample", "320")
    assert "320 of 58788 films" in out and "registered catalogue-index" in out, out
    embedded = sum(f["title"] in new for f in films)
    assert f"{embedded} titles embedded, {320 - embedded} vectors reused" in out, out

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "host.log", "wb")  # noqa: SIM115 - closed in finally
    host = subprocess.Popen(
        [*shipyard, "serve", "--port", str(port), "--no-scheduler"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert host.poll() is None, (tmp_path / "host.log").read_text()[-3000:]
                time.sleep(0.1)
        _run(env, *shipyard, "deploy", f"{EXAMPLE / 'service.py'}:Catalogue",
             "--name", "catalogue", "--url", url)  # fmt: skip
        target = next(f for f in films if len(f["title"]) >= 8 and f["genres"])
        typo = target["title"][:3] + target["title"][4:]  # one letter dropped
        with httpx.Client(base_url=url, timeout=60) as client:
            got = client.post("/catalogue/search", json={"query": typo})
            assert got.status_code == 200, got.text
            body = got.json()
            assert set(body) == {"results", "facets"} and set(body["facets"]) == {
                "genre", "decade"
            }  # fmt: skip
            assert 1 <= len(body["results"]) <= 10
            assert set(body["results"][0]) == {"title", "year", "genres", "score"}
            assert [target["title"], target["year"]] in [
                [r["title"], r["year"]] for r in body["results"][:3]
            ]
            assert all(isinstance(r["score"], float) for r in body["results"])

            filters = {"genre": "drama", "decade": 1990, "min_rating": 6.5}
            got = client.post("/catalogue/search", json={"query": "", "k": 5, "filters": filters})
            assert got.status_code == 200, got.text
            body = got.json()
            direct = queries.direct_counts(films, filters)
            assert body["facets"]["genre"] == {g: n for g, n in direct["genre"].items()}
            assert body["facets"]["decade"] == {"1990": direct["decade"][1990]}
            assert len(body["results"]) == min(5, direct["decade"][1990])
            assert all("Drama" in r["genres"] for r in body["results"])

            for bad, field in (
                ({"query": "x", "k": 0}, "k"),
                ({"k": 3}, "query"),
                ({"query": "   "}, "query"),
                ({"query": "x", "filters": {"genre": "western"}}, "filters.genre"),
                ({"query": "x", "filters": {"decade": 1995}}, "filters.decade"),
                ({"query": "x", "filters": {"min_rating": 11}}, "min_rating"),
                ({"query": "x", "filters": {"studio": "MGM"}}, "studio"),
            ):
                answer = client.post("/catalogue/search", json=bad)
                assert answer.status_code == 422, (bad, answer.text)
                assert field in json.dumps(answer.json()["error"]), (bad, answer.text)
                assert "Traceback" not in answer.text
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(30)
        log.close()
