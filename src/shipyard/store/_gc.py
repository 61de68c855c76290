"""The garbage-collection queries of the metadata store (see MetaStore.runs_for_gc)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shipyard.store._rows import chunks, not_live_clause
from shipyard.store.files import ENCODING as FILES_ENCODING
from shipyard.store.schema import (
    artifacts,
    attempts,
    deployment_versions,
    deployments,
    flows,
    model_versions,
    run_params,
    run_tags,
    runs,
    tasks,
)


def runs_for_gc_query(
    cutoff: datetime, *, older_than: datetime | None, keep_last: int | None
) -> sa.Select[Any]:
    """Runs that are finished or dead, and older than ``older_than`` (if given), and beyond
    the newest ``keep_last`` of their flow (if given; live runs count among the newest)."""
    if keep_last is not None and (isinstance(keep_last, bool) or keep_last < 0):
        raise ValueError(f"keep_last must be a whole number >= 0, got {keep_last!r}")
    if older_than is not None and older_than.tzinfo is None:
        raise ValueError(f"older_than={older_than!r} is naive: pass an aware (UTC) datetime")
    query = sa.select(runs).where(not_live_clause(cutoff))
    if older_than is not None:
        query = query.where(runs.c.created_at < older_than)
    if keep_last is not None:
        newest_first = (runs.c.created_at.desc(), runs.c.run_id.desc())
        rank = sa.func.row_number().over(partition_by=runs.c.flow_name, order_by=newest_first)
        ranked = sa.select(runs.c.run_id, rank.label("rank")).subquery()
        query = query.join(ranked, ranked.c.run_id == runs.c.run_id).where(
            ranked.c.rank > keep_last
        )
    return query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc())


def delete_runs(conn: Connection, run_ids: list[int]) -> None:
    """Delete the runs, every row under them, and flows left without runs (explicitly, not
    through ON DELETE CASCADE, so it does not depend on SQLite's foreign_keys pragma)."""
    for part in chunks(run_ids):
        task_ids = sa.select(tasks.c.task_id).where(tasks.c.run_id.in_(part))
        conn.execute(artifacts.delete().where(artifacts.c.task_id.in_(task_ids)))
        conn.execute(attempts.delete().where(attempts.c.task_id.in_(task_ids)))
        conn.execute(tasks.delete().where(tasks.c.run_id.in_(part)))
        conn.execute(run_tags.delete().where(run_tags.c.run_id.in_(part)))
        conn.execute(run_params.delete().where(run_params.c.run_id.in_(part)))
        conn.execute(runs.delete().where(runs.c.run_id.in_(part)))
    has_runs = sa.select(runs.c.run_id).where(runs.c.flow_name == flows.c.name).exists()
    conn.execute(flows.delete().where(~has_runs))


def referenced_keys_query(excluding: list[int] | None = None) -> sa.CompoundSelect[Any]:
    """Every blob key a row points at (may contain NULLs; the caller drops them); with
    ``excluding``, as if those runs were deleted (what ``gc --dry-run`` would free)."""
    kept_tasks = sa.select(tasks.c.task_id)
    kept_runs: sa.ColumnElement[bool] = sa.true()
    if excluding:
        kept_tasks = kept_tasks.where(tasks.c.run_id.not_in(excluding))
        kept_runs = runs.c.run_id.not_in(excluding)
    return sa.union(
        sa.select(artifacts.c.key).where(artifacts.c.task_id.in_(kept_tasks)),
        sa.select(attempts.c.stdout_key).where(attempts.c.task_id.in_(kept_tasks)),
        sa.select(attempts.c.stderr_key).where(attempts.c.task_id.in_(kept_tasks)),
        sa.select(runs.c.code_key).where(kept_runs),
        # a registered model outlives its run; a deployed service keeps its code snapshot
        sa.select(model_versions.c.key),
        sa.select(model_versions.c.code_key),
        sa.select(deployment_versions.c.code_key),
    )


def manifest_keys_query(excluding: list[int] | None = None) -> sa.CompoundSelect[Any]:
    """The blob keys of the file-artifact manifests rows point at (artifacts of kept tasks,
    model versions): gc keeps the files these manifests list too (see store/files.py)."""
    kept_tasks = sa.select(tasks.c.task_id)
    if excluding:
        kept_tasks = kept_tasks.where(tasks.c.run_id.not_in(excluding))
    return sa.union(
        sa.select(artifacts.c.key).where(
            artifacts.c.encoding == FILES_ENCODING, artifacts.c.task_id.in_(kept_tasks)
        ),
        sa.select(model_versions.c.key).where(model_versions.c.encoding == FILES_ENCODING),
    )


def kept_runs(conn: Connection, run_ids: list[int]) -> dict[int, list[str]]:
    """Why gc keeps some of these runs unless they are named: ``run_id -> reasons`` for
    runs that have tags, that registered model versions, or whose model versions a
    deployment serves (its current version's pins)."""
    reasons: dict[int, list[str]] = {}
    wanted = set(run_ids)
    for part in chunks(run_ids):
        tagged: dict[int, list[str]] = {}
        for run_id, tag in conn.execute(
            sa.select(run_tags.c.run_id, run_tags.c.tag)
            .where(run_tags.c.run_id.in_(part))
            # the tags @project puts on every run of its flows say where, not "keep this"
            .where(~run_tags.c.tag.like("project:%"), ~run_tags.c.tag.like("project_branch:%"))
            .order_by(run_tags.c.tag)
        ):
            tagged.setdefault(int(run_id), []).append(str(tag))
        for run_id, tags in tagged.items():
            reasons.setdefault(run_id, []).append("tagged " + ", ".join(tags))
    served: dict[str, list[str]] = {}  # "name:version" -> services
    current = sa.select(deployment_versions.c.service, deployment_versions.c.pins).join(
        deployments,
        sa.and_(
            deployments.c.service == deployment_versions.c.service,
            deployments.c.current_version == deployment_versions.c.version,
        ),
    )
    for service, pins in conn.execute(current.where(deployments.c.active.is_(sa.true()))):
        for spec in set((pins or {}).values()):
            served.setdefault(str(spec), []).append(str(service))
    produced: dict[int, list[str]] = {}
    for part in chunks(run_ids):
        for run_id, name, version in conn.execute(
            sa.select(model_versions.c.run_id, model_versions.c.name, model_versions.c.version)
            .where(model_versions.c.run_id.in_(part))
            .order_by(model_versions.c.name, model_versions.c.version)
        ):
            if int(run_id) in wanted:
                produced.setdefault(int(run_id), []).append(f"{name}:{version}")
    for run_id, specs in produced.items():
        text = "registered " + ", ".join(specs)
        services = sorted({s for spec in specs for s in served.get(spec, ())})
        if services:
            text += " (deployed: " + ", ".join(services) + ")"
        reasons.setdefault(run_id, []).append(text)
    return reasons


__all__ = [
    "delete_runs",
    "kept_runs",
    "manifest_keys_query",
    "referenced_keys_query",
    "runs_for_gc_query",
]
