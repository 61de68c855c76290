"""The runs page: every run, newest first, filtered by flow, status, tag and age (``since``:
1h, 24h, 7d or all), a page at a time (``LIMIT``/``OFFSET`` in SQL, one row more than shown
to know whether a next page exists), and its JSON twin that the page polls while a run on
it is running."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipyard.store.records import RunRecord, RunStatus
from shipyard.ui.context import PageError, UIContext
from shipyard.ui.formats import duration, seconds_between, when

PAGE_SIZE = 50
MAX_PAGE = 1_000_000
STATUSES = tuple(s.value for s in RunStatus)
#: the ``since`` choices: how far back runs are shown ("all": no limit)
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "all": None}


@dataclass(frozen=True)
class RunFilters:
    flow: str | None
    status: RunStatus | None
    tag: str | None
    page: int
    since: str = "all"

    def cutoff(self) -> datetime | None:
        """The oldest creation time shown, or None for every run."""
        span = SINCE[self.since]
        return datetime.now(UTC) - span if span is not None else None

    def query(self, page: int | None = None) -> str:
        """The query string for these filters (on ``page``)."""
        from urllib.parse import urlencode

        values: dict[str, str] = {}
        if self.flow:
            values["flow"] = self.flow
        if self.status:
            values["status"] = self.status.value
        if self.tag:
            values["tag"] = self.tag
        if self.since != "all":
            values["since"] = self.since
        if (page or self.page) != 1:
            values["page"] = str(page or self.page)
        return urlencode(values)


def filters(request: Request) -> RunFilters:
    """The filters in the query string, or :class:`PageError` naming the bad one."""
    params = request.query_params
    status_text = params.get("status") or None
    if status_text is not None and status_text not in STATUSES:
        raise PageError(f"status {status_text!r} is not one of {', '.join(STATUSES)}")
    since = params.get("since") or "all"
    if since not in SINCE:
        raise PageError(f"since {since!r} is not one of {', '.join(SINCE)}")
    page_text = params.get("page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise PageError(f"page {page_text!r} is not a page number (1, 2, ...)")
    return RunFilters(
        flow=params.get("flow") or None,
        status=RunStatus(status_text) if status_text else None,
        tag=(params.get("tag") or "").strip() or None,
        page=int(page_text),
        since=since,
    )


def load(ctx: UIContext, wanted: RunFilters) -> tuple[list[RunRecord], bool]:
    """The page of runs and whether there is a next page."""
    tags = [wanted.tag] if wanted.tag else []
    offset = (wanted.page - 1) * PAGE_SIZE
    found = ctx.meta.list_runs(
        wanted.flow,
        tags=tags,
        status=wanted.status,
        since=wanted.cutoff(),
        limit=PAGE_SIZE + 1,
        offset=offset,
    )
    return found[:PAGE_SIZE], len(found) > PAGE_SIZE


def fingerprint(runs: list[RunRecord]) -> str:
    """Changes whenever a run on the page appears, goes or changes status."""
    return ",".join(f"{r.run_id}:{r.status.value}" for r in runs)


def runs_page(ctx: UIContext, request: Request) -> Response:
    wanted = filters(request)
    runs, has_next = load(ctx, wanted)
    return ctx.render(
        request,
        "runs.html",
        title="Runs",
        nav="runs",
        runs=runs,
        filters=wanted,
        flows=ctx.meta.flow_names(),
        statuses=STATUSES,
        since_choices=list(SINCE),
        has_next=has_next,
        live=any(r.status is RunStatus.RUNNING for r in runs),
        fingerprint=fingerprint(runs),
        poll_url=_base(request) + "/api/runs?" + wanted.query(),
    )


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def runs_json(ctx: UIContext, request: Request) -> Response:
    wanted = filters(request)
    runs, has_next = load(ctx, wanted)
    body: dict[str, Any] = {
        "live": any(r.status is RunStatus.RUNNING for r in runs),
        "fingerprint": fingerprint(runs),
        "has_next": has_next,
        "runs": [
            {
                "pathspec": r.pathspec,
                "status": r.status.value,
                "created_at": when(r.created_at),
                "duration": duration(seconds_between(r.created_at, r.finished_at)),
                "tags": list(r.tags),
            }
            for r in runs
        ],
    }
    return JSONResponse(body)


__all__ = ["PAGE_SIZE", "SINCE", "RunFilters", "filters", "load", "runs_json", "runs_page"]
