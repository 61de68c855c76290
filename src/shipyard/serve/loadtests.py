"""Load tests kept with the deployment they hit: ``shipyard loadtest SERVICE/ENDPOINT``
sends its summary and HTML report to the host (``POST /api/v1/deployments/{name}/loadtests``),
which keeps them with the service's current version, so "what does version 7 hold" has an
answer on the UI's deployment page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from shipyard.store.meta import MetaStore
from shipyard.store.schema import loadtests

#: the largest report kept, in characters (a report is ~20-50 kB; a bigger one is dropped,
#: the summary kept)
MAX_REPORT = 2 << 20
#: load tests listed per service on its page
RECENT = 20


@dataclass(frozen=True)
class LoadTestRecord:
    id: int
    service: str
    version: int | None
    created_at: datetime
    created_by: str
    summary: dict[str, Any]
    has_report: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "summary": self.summary,
            "has_report": self.has_report,
        }


class LoadTestStore:
    """Record load tests and read them back."""

    def __init__(self, meta: MetaStore) -> None:
        self.engine = meta.engine

    def record(
        self,
        service: str,
        version: int | None,
        summary: dict[str, Any],
        *,
        report: str | None,
        created_by: str,
    ) -> LoadTestRecord:
        now = datetime.now(UTC)
        if report is not None and len(report) > MAX_REPORT:
            report = None
        with self.engine.begin() as conn:
            result = conn.execute(
                loadtests.insert().values(
                    service=service,
                    version=version,
                    created_at=now,
                    created_by=created_by,
                    summary=summary,
                    report=report,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return LoadTestRecord(
                int(key[0]), service, version, now, created_by, summary, report is not None
            )

    def recent(self, service: str, limit: int = RECENT) -> list[LoadTestRecord]:
        """The service's newest load tests, newest first."""
        c = loadtests.c
        query = (
            sa.select(c.id, c.service, c.version, c.created_at, c.created_by, c.summary,
                      c.report.is_not(None))
            .where(c.service == service)
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(limit)
        )  # fmt: skip
        with self.engine.connect() as conn:
            return [LoadTestRecord(*row) for row in conn.execute(query)]

    def report(self, service: str, loadtest_id: int) -> str | None:
        """The HTML report of one load test of ``service`` (None: no such test or report)."""
        c = loadtests.c
        query = sa.select(c.report).where(c.id == loadtest_id, c.service == service)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return str(value) if value is not None else None


__all__ = ["MAX_REPORT", "RECENT", "LoadTestRecord", "LoadTestStore"]
