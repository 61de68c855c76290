"""A load test's HTML report, kept with the deployment (:mod:`shipyard.serve.loadtests`),
served as its own document under the cards' policy: no script, no fetch, sandboxed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from shipyard.serve.loadtests import LoadTestRecord, LoadTestStore
from shipyard.store.meta import MetaStore
from shipyard.ui.cards import CARD_HEADERS
from shipyard.ui.context import PageNotFound, UIContext


def recent_loadtests(meta: MetaStore, service: str) -> list[LoadTestRecord]:
    """The service's newest load tests, for ``_loadtests.html`` on its page."""
    return LoadTestStore(meta).recent(service)


def loadtest_report(ctx: UIContext, request: Request) -> Response:
    service = request.path_params["service"]
    try:
        loadtest_id = int(request.path_params["loadtest_id"])
    except ValueError:
        raise PageNotFound("a load test is named by its number") from None
    report = LoadTestStore(ctx.meta).report(service, loadtest_id)
    if report is None:
        raise PageNotFound(f"service {service!r} has no load test {loadtest_id} with a report")
    return HTMLResponse(report, headers=CARD_HEADERS)


__all__ = ["loadtest_report", "recent_loadtests"]
