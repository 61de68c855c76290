"""Daily: did the ranker's service compute the features training would have computed?

    python examples/movie_ranker/skew.py run                      # the last 24 hours of logs
    python examples/movie_ranker/skew.py run --service ranker --hours 168
    shipyard schedule create examples/movie_ranker/skew.py        # daily (@schedule)

    start ─► end

``start`` reads the serving log of ``--service`` (``score_title``'s requests: facts,
aggregates with the as-of time they were served, features, prediction), recomputes every
request's features offline from its logged facts with ``FEATURES.frame`` (each aggregate
joined at the as-of time the service was entitled to: a value within its declared staleness
is recomputed exactly as served, a staler one as of the oldest time allowed), replays the
recomputed features through the registered scorer, and compares (``shipyard.features.skew``):

- row-level skew, per feature: the logged online value vs the offline recompute, by request id;
- distribution skew, per feature: the scorer's training set (``ScorerFlow``'s ``training``)
  vs the served values (JS and PSI for numbers, L∞ for categories);
- prediction skew: the logged predictions vs the replay.

It keeps ``flagged`` (the features and checks over their thresholds), ``metrics``, the
report and ``causes`` (per feature flagged row by row: ``code`` if it still differs when
recomputed with the aggregates as served, ``staleness`` if not), and draws them in its
card. Thresholds: the documented defaults, settable per feature with ``THRESHOLDS`` below.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from scorer_flow import SCORER

from features import FEATURES, Aggregates, movielens_events
from shipyard import Flow, FlowSpec, Parameter, current, schedule, step
from shipyard.cards import Markdown, card
from shipyard.cards.skew import skew_components
from shipyard.features.reader import facts_frame, lookup_frames, read_serving_log
from shipyard.features.skew import SkewReport, Thresholds, check_skew, row_skew
from shipyard.registry import Model

#: per-feature thresholds over the defaults: days since release drifts with the calendar by
#: design (every title gets older), so its distribution is watched loosely
THRESHOLDS: dict[str, Thresholds | dict[str, float]] = {
    "days_since_release": {"psi": 1.0, "js": 0.3},
}


def recompute(log: Any, aggregates: Aggregates) -> Any:
    """The logged requests' features recomputed offline from their facts, with their ids."""
    facts = facts_frame(log)
    offline = FEATURES.frame(facts, history=aggregates.history(), ts="at")
    offline.insert(0, "request_id", log["request_id"].to_numpy())
    return offline.reset_index(drop=True)


def causes(log: Any, online: Any, report: SkewReport) -> dict[str, str]:
    """For each feature the row-level check flags, where the difference comes from: the
    features recomputed once more with the aggregates *as the service was given them*
    (``lookup_frames``). Still different: the code (``"code"``); equal: the aggregates were
    staler than declared (``"staleness"``)."""
    flagged = [r.feature for r in report.rows if r.flagged]
    if not flagged:
        return {}
    facts = facts_frame(log)
    served = FEATURES.frame(facts, lookups=lookup_frames(log), ts="at")
    served.insert(0, "request_id", log["request_id"].to_numpy())
    again = {
        r.feature: r for r in row_skew(online, served.reset_index(drop=True), features=flagged)
    }
    return {name: "code" if again[name].flagged else "staleness" for name in flagged}


def check_log(
    log: Any, aggregates: Aggregates, training: Any, scorer: Any
) -> tuple[SkewReport, dict[str, str]]:
    """The three checks over a serving log (see the module doc); the report and, per
    feature flagged row by row, its cause (:func:`causes`)."""
    offline = recompute(log, aggregates)
    online = log[["request_id", *FEATURES.names, "prediction"]].reset_index(drop=True)
    replayed = scorer.score_frame(offline) if scorer is not None else None
    report = check_skew(
        online,
        offline=offline,
        training=training[list(FEATURES.names)] if training is not None else None,
        features=list(FEATURES.names),
        thresholds=THRESHOLDS,
        prediction="prediction" if replayed is not None else None,
        replayed=replayed,
    )
    return report, causes(log, online, report)


@schedule(daily=True)
class SkewFlow(FlowSpec):
    """Training/serving skew of the ranker's per-request features, from its serving log."""

    service = Parameter("service", default="ranker", help="the deployed service's name")
    hours = Parameter("hours", default=24, help="how far back the serving log is read")

    @card(type="blank")
    @step
    def start(self) -> None:
        """Read the log, recompute, compare; the card shows what alarmed and why."""
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=float(self.hours))
        log = read_serving_log(self.service, since=since)
        log = log[log["facts"].map(lambda f: isinstance(f, dict) and "at" in f)]  # score_title
        self.requests = len(log)
        self.flagged: list[dict[str, Any]] = []
        self.causes: dict[str, str] = {}
        self.metrics: dict[str, float] = {"requests": float(self.requests)}
        if self.requests:
            self.report, self.causes = self._check(log)
            self.flagged = self.report.flagged
            self.metrics.update(self.report.metrics())
            print(self.report.summary())
            head = f"{self.requests:,} logged requests of `{self.service}` since {since:%F %T} UTC"
            current.card.append(Markdown(head))
            current.card.extend(skew_components(self.report))
            if self.causes:
                lines = [f"- **{f}**: {cause}" for f, cause in self.causes.items()]
                current.card.append(
                    Markdown(
                        "## Why (recomputed again with the aggregates as served)\n\n"
                        "*code*: the online code computes differently; *staleness*: the "
                        "aggregates were older than declared.\n\n" + "\n".join(lines)
                    )
                )
        else:
            current.card.append(Markdown(f"No logged `score_title` request of {self.service!r}"))
        self.next(self.end)

    def _check(self, log: Any) -> tuple[SkewReport, dict[str, str]]:
        trained = Flow("ScorerFlow").latest_successful_run
        training = trained["start"].task.data.training if trained is not None else None
        scorer = Model(SCORER).load()
        return check_log(log, Aggregates(movielens_events()), training, scorer)

    @step
    def end(self) -> None:
        """Done: ``flagged`` is empty when nothing alarmed."""
        print(f"{len(self.flagged)} check(s) over threshold")


if __name__ == "__main__":
    SkewFlow()
