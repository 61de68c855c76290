"""The registry's SQL: adding a version, reading versions and aliases, the audit log.

Every function takes a connection; the caller owns the transaction. Versions are numbered
from a counter on the model's row: ``UPDATE models SET last_version = last_version + 1`` takes
the row lock on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` already holds the write lock), so two
transactions registering the same name queue there and get distinct numbers, and a number
is never handed out twice. The (name, version) primary key backs this up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from shipyard.registry.records import AuditEntry, ModelVersion
from shipyard.registry.signature import Signature
from shipyard.store.events import insert_event
from shipyard.store.records import ArtifactRecord
from shipyard.store.schema import audit_log, model_aliases, model_versions, models, run_tags, runs


def now() -> datetime:
    return datetime.now(UTC)


def insert_ignore(conn: Connection, table: sa.Table, values: dict[str, Any]) -> None:
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).values(values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).values(values).on_conflict_do_nothing())


def run_code(conn: Connection, run_id: int) -> tuple[str | None, str | None]:
    """The run's ``(code_key, module)``; ``(None, None)`` if the run is unknown."""
    row = conn.execute(sa.select(runs.c.code_key, runs.c.graph).where(runs.c.run_id == run_id))
    found = row.first()
    if found is None:
        return None, None
    graph = found.graph if isinstance(found.graph, dict) else {}
    module = graph.get("module")
    return found.code_key, module if isinstance(module, str) else None


def run_project(conn: Connection, run_id: int) -> tuple[str | None, str | None]:
    """The run's ``(project, branch)`` from its ``project:``/``project_branch:`` tags
    (``@project`` flows); ``(None, None)`` for other runs."""
    found = conn.execute(
        sa.select(run_tags.c.tag).where(
            run_tags.c.run_id == run_id,
            sa.or_(run_tags.c.tag.like("project:%"), run_tags.c.tag.like("project_branch:%")),
        )
    ).scalars()
    values = dict(str(tag).split(":", 1) for tag in found)
    return values.get("project"), values.get("project_branch")


def add_version(
    conn: Connection,
    *,
    name: str,
    record: ArtifactRecord,
    artifact_name: str | None,
    flow_name: str,
    run_id: int,
    step_name: str,
    task_id: int,
    metrics: dict[str, float],
    tags: list[str],
    libraries: dict[str, str],
    user: str,
    signature: dict[str, Any] | None = None,
) -> int:
    """Insert the next version of ``name`` (creating the model) and its audit entry."""
    at = now()
    insert_ignore(conn, models, {"name": name, "created_at": at, "last_version": 0})
    version = int(
        conn.execute(
            models.update()
            .where(models.c.name == name)
            .values(last_version=models.c.last_version + 1)
            .returning(models.c.last_version)
        ).scalar_one()
    )
    code_key, module = run_code(conn, run_id)
    project, project_branch = run_project(conn, run_id)
    conn.execute(
        model_versions.insert().values(
            name=name,
            version=version,
            flow_name=flow_name,
            run_id=run_id,
            step_name=step_name,
            task_id=task_id,
            artifact_name=artifact_name,
            key=record.key,
            offset=record.offset,
            length=record.length,
            size=record.size,
            encoding=record.encoding,
            type_name=record.type_name,
            preview=record.preview,
            code_key=code_key,
            module=module,
            metrics=metrics,
            tags=tags,
            libraries=libraries,
            user=user,
            created_at=at,
            signature=signature,
            project=project,
            project_branch=project_branch,
        )
    )
    lineage = f"{flow_name}/{run_id}/{step_name}/{task_id}"
    if artifact_name:
        lineage += f":{artifact_name}"
    add_audit(conn, user, "register", name, to_version=version, detail={"lineage": lineage})
    # the event commits with the version: a @trigger(event="model.registered") flow fires
    insert_event(
        conn,
        "model.registered",
        {"model": name, "version": version, "flow": flow_name, "run_id": run_id},
        source="registry",
        user=user,
        now=at,
    )
    return version


def add_audit(
    conn: Connection,
    user: str,
    action: str,
    model: str | None,
    *,
    alias: str | None = None,
    from_version: int | None = None,
    to_version: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the audit log (hosting records its deploys through this too)."""
    conn.execute(
        audit_log.insert().values(
            at=now(),
            user=user,
            action=action,
            model=model,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            detail=detail,
        )
    )


def model_names(conn: Connection) -> list[str]:
    return list(conn.execute(sa.select(models.c.name).order_by(models.c.name)).scalars())


def aliases(conn: Connection, names: Sequence[str]) -> dict[str, dict[str, int]]:
    """name -> {alias: version} for ``names``."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    if names:
        query = (
            sa.select(model_aliases.c.name, model_aliases.c.alias, model_aliases.c.version)
            .where(model_aliases.c.name.in_(list(names)))
            .order_by(model_aliases.c.alias)
        )
        for row in conn.execute(query):
            found[row.name][row.alias] = int(row.version)
    return found


def version_record(row: Row[Any], alias_map: dict[str, int]) -> ModelVersion:
    aliases_here = tuple(sorted(a for a, v in alias_map.items() if v == row.version))
    return ModelVersion(
        name=row.name,
        version=int(row.version),
        aliases=aliases_here,
        metrics=dict(row.metrics or {}),
        tags=tuple(row.tags or ()),
        flow_name=row.flow_name,
        run_id=int(row.run_id),
        step_name=row.step_name,
        task_id=int(row.task_id),
        artifact_name=row.artifact_name,
        artifact=ArtifactRecord(
            name=row.artifact_name or row.name,
            key=row.key,
            size=int(row.size),
            encoding=row.encoding,
            type_name=row.type_name,
            preview=row.preview,
            offset=row.offset,
            length=row.length,
        ),
        code_key=row.code_key,
        module=row.module,
        libraries=dict(row.libraries or {}),
        user=row.user,
        created_at=row.created_at,
        signature=Signature.from_json(row.signature) if row.signature else None,
        project=row.project,
        project_branch=row.project_branch,
    )


def select_versions(conn: Connection, name: str) -> list[ModelVersion]:
    """Every version of ``name``, oldest first (empty if the model does not exist)."""
    query = (
        sa.select(model_versions)
        .where(model_versions.c.name == name)
        .order_by(model_versions.c.version)
    )
    rows = conn.execute(query).all()
    alias_map = aliases(conn, [name]).get(name, {})
    return [version_record(row, alias_map) for row in rows]


def select_version(conn: Connection, name: str, version: int) -> ModelVersion | None:
    query = sa.select(model_versions).where(
        model_versions.c.name == name, model_versions.c.version == version
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    return version_record(row, aliases(conn, [name]).get(name, {}))


def latest_versions(conn: Connection) -> list[tuple[ModelVersion, int]]:
    """(the newest version, the number of versions) of every model, by name."""
    newest = (
        sa.select(
            model_versions.c.name,
            sa.func.max(model_versions.c.version).label("version"),
            sa.func.count().label("n_versions"),
        )
        .group_by(model_versions.c.name)
        .subquery()
    )
    query = (
        sa.select(model_versions, newest.c.n_versions)
        .join(
            newest,
            sa.and_(
                newest.c.name == model_versions.c.name,
                newest.c.version == model_versions.c.version,
            ),
        )
        .order_by(model_versions.c.name)
    )
    rows = conn.execute(query).all()
    alias_map = aliases(conn, [row.name for row in rows])
    return [(version_record(row, alias_map.get(row.name, {})), int(row.n_versions)) for row in rows]


def audit_entries(conn: Connection, name: str | None, limit: int | None) -> list[AuditEntry]:
    """Newest first. For one model: its own entries, and the deploys (and rollbacks) that
    pinned one of its versions (hosting records those with no model, the versions in
    ``detail["pins"]``), shown as entries of the model (:func:`as_model_entry`)."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc())
    if name is None:
        if limit is not None:
            query = query.limit(limit)
    else:
        query = query.where(sa.or_(audit_log.c.model == name, audit_log.c.model.is_(None)))
    entries: list[AuditEntry] = []
    for row in conn.execute(query):
        record = AuditEntry(
            id=int(row.id),
            at=row.at,
            user=row.user,
            action=row.action,
            model=row.model,
            alias=row.alias,
            from_version=row.from_version,
            to_version=row.to_version,
            detail=row.detail,
        )
        entry = as_model_entry(record, name) if name is not None and row.model is None else record
        if entry is not None:
            entries.append(entry)
            if limit is not None and len(entries) >= limit:
                break
    return entries


def as_model_entry(entry: AuditEntry, name: str) -> AuditEntry | None:
    """A hosting entry that pinned a version of model ``name`` as an entry of the model:
    ``to_version`` the version pinned, ``alias`` the alias it was pinned through (if any);
    None if it pinned none of its versions."""
    pins = (entry.detail or {}).get("pins") or {}
    for spec, pinned in sorted(pins.items()) if isinstance(pins, dict) else ():
        model, _, version = str(pinned).rpartition(":")
        if model == name and version.isdigit():
            _, at, alias = str(spec).partition("@")
            return replace(entry, model=name, alias=alias if at else None, to_version=int(version))
    return None


def referenced_keys_query() -> sa.CompoundSelect[Any]:
    """Blob keys registered model versions need (the model and its code snapshot); may hold
    NULLs. gc must keep these: see ``MetaStore.referenced_blob_keys``."""
    return sa.union(sa.select(model_versions.c.key), sa.select(model_versions.c.code_key))


__all__ = [
    "add_audit",
    "add_version",
    "aliases",
    "audit_entries",
    "latest_versions",
    "model_names",
    "referenced_keys_query",
    "run_code",
    "select_version",
    "select_versions",
]
