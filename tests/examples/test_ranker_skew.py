"""The ranker's skew check against four bugs injected into the online path, one at a time.

The real thing end to end, in process: ``ScorerFlow`` trains the scorer on
``FEATURES.frame`` and registers it with its feature set; the ``Ranker`` service (through
``ServiceClient``, the worker's own dispatch code) answers ``score_title`` requests replayed
from MovieLens ratings, computing features per request with ``FEATURES.row`` and writing each
to its real serving log; the check reads the log back, recomputes every request offline from
its logged facts and compares (``SkewFlow``'s ``check_log``).

The bugs, each a plausible divergence of a service's copy of the feature code or its data:

- unit: ``days_since_release`` in hours (every request);
- stale aggregate: the profile aggregates three days old, past their declared 6 hours (the
  requests whose profile rated something in between);
- missing default: 0 instead of -1 days for a title without a year (the ~3% whose feed
  leaves the year out);
- text normalisation: genres lower-cased but not stripped of hyphens, so ``Sci-Fi`` never
  matches a profile's ``scifi`` (the requests for Sci-Fi and Film-Noir titles of profiles
  who like them).

Clean traffic, and clean traffic eighteen months later (natural drift), raise no row-level
alarm.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.cards import get_cards
from shipyard.features import FeatureSet, feature
from shipyard.features.reader import read_serving_log
from shipyard.features.servinglog import ServingLog
from shipyard.serve import ServiceClient
from shipyard.testing import run_flow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "movie_ranker"
REQUESTS = 300
#: the share of titles whose feed has no release year
NO_YEAR = 0.03

TINY_RANKER = """
from shipyard import FlowSpec, current, step


class TinyRankerFlow(FlowSpec):
    @step
    def start(self):
        from data import synthetic
        from model import ImplicitALS, Ranker

        r = synthetic(40, 20, per_user=5).ratings
        als = ImplicitALS(factors=2, iterations=2).fit(r.matrix())
        self.model = Ranker.build(als, r.user_ids, r.item_ids, None, r.matrix())
        self.next(self.end)

    @step
    def end(self):
        current.register_model("ranker", self.model)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A home with the scorer trained by ScorerFlow (and a tiny home-row ranker), the
    service module, the scorer's training set and the aggregates."""
    home = tmp_path_factory.mktemp("ranker-skew")
    patch = pytest.MonkeyPatch()
    patch.setenv("SHIPYARD_HOME", str(home))
    for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        patch.delenv(name, raising=False)
    patch.syspath_prepend(str(EXAMPLE))
    try:
        tiny = home / "tiny_ranker_flow.py"
        tiny.write_text(TINY_RANKER)
        assert run_flow(tiny).successful
        run = run_flow(EXAMPLE / "scorer_flow.py", until="2015-01-01", events=4000)
        assert run.successful
        service = importlib.import_module("service")
        yield {
            "service": service,
            "training": run["start"].task.data.training,
            "aggregates": service.serving_aggregates(),
            "skew": importlib.import_module("skew"),
            "features": importlib.import_module("features"),
        }
    finally:
        patch.undo()
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", "") or "").startswith(str(EXAMPLE)):
                del sys.modules[name]


def _requests(world: dict[str, Any], start: str, count: int = REQUESTS) -> list[dict[str, Any]]:
    """``score_title`` bodies replayed from ``count`` ratings drawn from the 90 days after
    ``start``, in time order; the titles whose feed has no year (a stable ~3% by item id) are
    sent without one."""
    events = world["features"].movielens_events()
    t0 = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC).timestamp()
    window = events[(events["at"] >= t0) & (events["at"] < t0 + 90 * 86_400)]
    after = window.sample(n=count, random_state=0).sort_values("at", kind="stable")
    bodies = []
    for facts in world["features"].facts_of(after):
        if zlib.crc32(facts["item_id"].encode()) % 1000 < NO_YEAR * 1000:
            facts.pop("year", None)
        bodies.append(facts)
    return bodies


def _serve(world: dict[str, Any], service_class: type, name: str, bodies: list[dict[str, Any]]):
    """Send ``bodies`` through the service in process; the check over its serving log."""
    with ServiceClient(service_class, name=name) as client:
        for body in bodies:
            status, answer = client.post("score_title", body)
            assert status == 200, answer
        for bad, field in (({"year": 1500}, "year"), ({"at": -5.0}, "at")):
            status, answer = client.post("score_title", {**bodies[0], **bad})
            assert status == 422 and answer["error"]["field"] == field, answer  # not logged
        assert client.instance.serving_log.flush()
        warnings = client.table.warnings
    log = read_serving_log(name)
    assert len(log) == len(bodies)
    scorer = client.instance.scorer
    report, causes = world["skew"].check_log(log, world["aggregates"], world["training"], scorer)
    assert set(causes) == {r.feature for r in report.rows if r.flagged}
    return report, causes, warnings


def _buggy(world: dict[str, Any], **overrides: Any) -> type:
    """The Ranker with its own serving log and ``overrides`` (a feature set, a method)."""
    service = world["service"]
    names = world["features"].FEATURES  # a buggy set has the same names, in order
    attributes = {"serving_log": ServingLog(sample=1.0, features=names), **overrides}
    return type("BuggyRanker", (service.Ranker,), attributes)


def _with(world: dict[str, Any], replaced: Any) -> FeatureSet:
    """``FEATURES`` with one feature replaced by a divergent copy of the same name."""
    features = world["features"]
    return FeatureSet(
        "ranker-scoring",
        [replaced if f.name == replaced.name else f for f in features.FEATURES.features],
        lookups=features.FEATURES.lookups,
    )


def _row_flags(report: Any) -> set[str]:
    return {f["feature"] for f in report.flagged if f["check"] == "row"}


def test_clean_and_time_shifted_traffic_raise_no_row_level_alarm(world: dict[str, Any]) -> None:
    for name, start in (("clean", "2015-03-01"), ("later", "2016-09-01")):
        bodies = _requests(world, start)
        assert any("year" not in b for b in bodies)  # the missing-year path is exercised
        report, causes, warnings = _serve(world, _buggy(world), f"ranker-{name}", bodies)
        assert causes == {}
        assert warnings == []  # the service computes the version the scorer learnt
        assert not report.row_alarm, report.summary()
        # the world moved (a few active profiles, their tastes): distributions see it
        assert any(f["check"] in ("js", "psi", "linf") for f in report.flagged)
        assert all(r.mismatched == 0 and r.compared == len(bodies) for r in report.rows)
        assert report.prediction is not None and report.prediction.mismatched == 0
        assert not any(f["check"] == "prediction" for f in report.flagged)


def test_each_injected_bug_is_flagged_on_the_feature_it_breaks(world: dict[str, Any]) -> None:
    features = world["features"]

    @feature(name="days_since_release")
    def in_hours(facts: dict[str, Any]) -> float:
        year = facts.get("year")
        if year is None:
            return features.MISSING_DAYS
        return (float(facts["at"]) - features.release_time(year)) / 3600.0

    @feature(name="days_since_release")
    def zero_if_unknown(facts: dict[str, Any]) -> float:
        year = facts.get("year")
        if year is None:
            return 0.0
        return (float(facts["at"]) - features.release_time(year)) / features.DAY

    @feature(name="genre_overlap")
    def lower_only(facts: dict[str, Any], lookups: dict[str, Any]) -> float:
        mine = {g.strip().lower() for g in (facts.get("genres") or "").split("|") if g}
        favourite = {g for g in (lookups["profile"]["top_genres"] or "").split("|") if g}
        union = mine | favourite
        return len(mine & favourite) / len(union) if union else 0.0

    def three_days_stale(self: Any, at: float) -> float:
        return features.Aggregates.refreshed(at) - 3 * 86_400.0

    bugs = {
        "unit": ({"features": _with(world, in_hours)}, {"days_since_release"}),
        "stale": ({"lookup_time": three_days_stale}, {"profile_rating_count"}),
        "default": ({"features": _with(world, zero_if_unknown)}, {"days_since_release"}),
        "text": ({"features": _with(world, lower_only)}, {"genre_overlap"}),
    }
    bodies = _requests(world, "2015-03-01")
    missing = sum("year" not in b for b in bodies) / len(bodies)
    assert 0.005 < missing < 0.1  # only a few percent of requests take the default path
    for name, (overrides, expected) in bugs.items():
        buggy = _buggy(world, **overrides)
        report, causes, warnings = _serve(world, buggy, f"ranker-{name}", bodies)
        flagged = _row_flags(report)
        assert expected <= flagged, (name, report.summary())
        rows = {r.feature: r for r in report.rows}
        if name == "stale":  # both aggregates are served 3 days old: only what they feed
            assert flagged <= {
                "profile_rating_count",
                "profile_mean_rating",
                "genre_overlap",
                "title_popularity",
            }
        else:
            assert flagged == expected, (name, report.summary())
        if name == "default":
            assert rows["days_since_release"].rate == pytest.approx(missing, abs=1e-9)
            assert all(e["offline"] == -1.0 for e in rows["days_since_release"].examples)
        elif name == "unit":
            assert rows["days_since_release"].rate == pytest.approx(1 - missing, abs=1e-9)
        else:  # the stale aggregate and the text bug touch some requests, not all
            assert 0.0 < rows[next(iter(expected))].rate < 0.5, (name, report.summary())
        # recomputed with the aggregates as served: the stale bug vanishes, code bugs stay
        want = "staleness" if name == "stale" else "code"
        assert set(causes.values()) == {want}, (name, causes)
        if "features" in overrides:  # a divergent copy of the code: a new version, warned
            assert any("ranker-scoring" in w for w in warnings), warnings
        if name in ("unit", "stale"):  # the replayed model disagrees with what was served
            assert report.prediction is not None and report.prediction.flagged
    # the daily flow over one of those logs: the same verdict as an artifact, metrics, a card
    run = run_flow(EXAMPLE / "skew.py", service="ranker-default", hours=1)
    assert run.successful
    data = run["start"].task.data
    assert data.requests == len(bodies)
    assert [(f["feature"], f["check"]) for f in data.flagged if f["check"] == "row"] == [
        ("days_since_release", "row")
    ]
    assert data.metrics["row_mismatch.days_since_release"] == pytest.approx(missing, abs=1e-9)
    assert data.causes == {"days_since_release": "code"}
    (skew_card,) = get_cards(run["start"].task)
    html = skew_card.html
    assert "days_since_release" in html and "ALARM" in html and "examples of mismatches" in html
