"""``Flow``: every run of one flow, newest first."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from shipyard.client.errors import NotFound
from shipyard.client.namespaces import namespace_filter
from shipyard.client.run import Run, check_tag
from shipyard.store import pathspec as _pathspec
from shipyard.store.context import default_stores
from shipyard.store.records import RunStatus


class Flow:
    """A flow, by class name.

    >>> run = Flow("DigitsFlow").latest_successful_run   # doctest: +SKIP
    >>> [r.id for r in Flow("DigitsFlow").runs("baseline")]  # doctest: +SKIP
    """

    def __init__(self, name: str) -> None:
        spec = _pathspec.parse(name, max_depth=1)
        self._stores = default_stores()
        known = self._stores.meta.flow_names()
        if spec.flow not in known:
            raise NotFound(
                spec.flow,
                f"flow {spec.flow!r} not found; known flows: {', '.join(sorted(known)) or 'none'}",
            )
        self.name = spec.flow
        self.pathspec = spec.flow

    def runs(self, *tags: str) -> list[Run]:
        """The flow's runs in the current namespace having all ``tags``, newest first."""
        user, ns_tag = namespace_filter()
        wanted = [check_tag(t) for t in tags] + ([ns_tag] if ns_tag else [])
        records = self._stores.meta.list_runs(self.name, tags=wanted, user=user, limit=None)
        return [Run._from_record(self._stores, r) for r in records]

    def _latest(self, status: RunStatus | None) -> Run | None:
        user, ns_tag = namespace_filter()
        records = self._stores.meta.list_runs(
            self.name, tags=[ns_tag] if ns_tag else [], status=status, user=user, limit=1
        )
        return Run._from_record(self._stores, records[0]) if records else None

    @property
    def latest_run(self) -> Run | None:
        return self._latest(None)

    @property
    def latest_successful_run(self) -> Run | None:
        return self._latest(RunStatus.SUCCEEDED)

    def __getitem__(self, run_id: int | str) -> Run:
        return Run(f"{self.name}/{run_id}")

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"


def list_runs(
    flow: str | None = None,
    *,
    tags: Sequence[str] = (),
    status: RunStatus | str | None = None,
    limit: int | None = 100,
) -> list[Run]:
    """Runs of every flow (or of ``flow``) in the current namespace having all ``tags``,
    newest first.

    >>> [r.pathspec for r in list_runs(status="failed", limit=5)]   # doctest: +SKIP
    """
    ctx = default_stores()
    wanted = RunStatus(status) if status is not None else None
    user, ns_tag = namespace_filter()
    records = ctx.meta.list_runs(
        flow,
        tags=[check_tag(t) for t in tags] + ([ns_tag] if ns_tag else []),
        status=wanted,
        limit=limit,
        user=user,
    )
    return [Run._from_record(ctx, r) for r in records]


def flows() -> list[Flow]:
    """Every flow that has at least one run, by name."""
    ctx = default_stores()
    result = []
    for name in sorted(ctx.meta.flow_names()):
        flow = Flow.__new__(Flow)
        flow._stores, flow.name, flow.pathspec = ctx, name, name
        result.append(flow)
    return result
