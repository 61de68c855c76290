"""The registry's read and admin side: versions, aliases, the audit log, loading.

>>> reg = Registry()                                   # the process-wide stores (settings)
>>> reg.set_alias("ranker", 3, "prod")                 # doctest: +SKIP
>>> reg.get("ranker@prod").version                     # doctest: +SKIP
3
"""

from __future__ import annotations

import difflib
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shipyard.config import current_user
from shipyard.registry import _db
from shipyard.registry.errors import ModelNotFound, ModelSpecError, RegistryError
from shipyard.registry.libraries import warn_mismatches
from shipyard.registry.names import (
    ModelSpec,
    check_alias,
    check_name,
    check_version,
    clean_metrics,
    clean_tags,
    parse_spec,
)
from shipyard.registry.records import AuditEntry, ModelSummary, ModelVersion
from shipyard.registry.signature import Signature, with_feature_set
from shipyard.store.blobs import BlobNotFound, BlobStore, keep_blob, read_record
from shipyard.store.events import insert_event
from shipyard.store.meta import MetaStore
from shipyard.store.records import TaskRecord, TaskStatus
from shipyard.store.schema import model_aliases, models

_NO_MODELS = (
    "no models are registered yet: call current.register_model(...) in a step, or "
    "`shipyard models register Flow/run/step/task:artifact --name NAME`"
)


def _versions_text(count: int) -> str:
    return "version 1" if count == 1 else f"versions 1 to {count}"


class Registry:
    """Model versions, aliases and the audit log in the metadata store.

    ``meta`` (and ``blobs``, ``home`` for loading) default to the client's process-wide
    stores from the settings (``SHIPYARD_DB_URL``, ``SHIPYARD_STORE_URL``, ``SHIPYARD_HOME``).
    """

    def __init__(
        self,
        meta: MetaStore | None = None,
        *,
        blobs: BlobStore | None = None,
        home: Path | None = None,
    ) -> None:
        self._meta = meta
        self._blobs = blobs
        self._home = home

    # --- stores ------------------------------------------------------------------------
    def _meta_store(self) -> MetaStore:
        if self._meta is not None:
            return self._meta
        from shipyard.store.context import default_stores

        return default_stores().meta

    def _blob_store(self) -> BlobStore:
        if self._blobs is None:
            if self._meta is None:
                from shipyard.store.context import default_stores

                return default_stores().blobs
            from shipyard.store.blobs import open_blob_store

            self._blobs = open_blob_store()
        return self._blobs

    def _home_dir(self) -> Path:
        if self._home is None:
            from shipyard.config import settings

            return settings().home
        return self._home

    def _read(self) -> sa.Connection:
        return self._meta_store().reader.connect()

    def _write(self) -> Any:
        return self._meta_store().writer.begin()

    # --- reading -----------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every registered model's name, sorted."""
        with self._read() as conn:
            return _db.model_names(conn)

    def aliases(self, names: Iterable[str]) -> dict[str, dict[str, int]]:
        """``{name: {alias: version}}`` for ``names``, in one query: what a host following
        aliases polls (a model without aliases, or unknown, is absent)."""
        wanted = sorted({check_name(n) for n in names})
        if not wanted:
            return {}
        with self._read() as conn:
            return dict(_db.aliases(conn, wanted))

    def list_models(self) -> list[ModelSummary]:
        """Each model with its newest version and aliases, by name."""
        with self._read() as conn:
            latest = _db.latest_versions(conn)
            alias_map = _db.aliases(conn, [v.name for v, _ in latest])
        return [
            ModelSummary(name=v.name, latest=v, versions=n, aliases=alias_map.get(v.name, {}))
            for v, n in latest
        ]

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first. Raises :class:`ModelNotFound`."""
        check_name(name)
        with self._read() as conn:
            found = _db.select_versions(conn, name)
            if not found:
                raise self._unknown_model(conn, name)
        return found

    def get(self, spec: str | ModelSpec) -> ModelVersion:
        """The version ``spec`` names: ``name`` (the latest), ``name:3`` or ``name@alias``.

        Raises :class:`ModelSpecError` for a malformed spec and :class:`ModelNotFound`
        (listing the names, versions or aliases that exist) when nothing matches.
        """
        parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
        name = parsed.name
        with self._read() as conn:
            last = conn.execute(
                sa.select(models.c.last_version).where(models.c.name == name)
            ).scalar()
            if not last:
                raise self._unknown_model(conn, name)
            version = parsed.version if parsed.version is not None else int(last)
            if parsed.alias is not None:
                alias_map = _db.aliases(conn, [name]).get(name, {})
                if parsed.alias not in alias_map:
                    raise ModelNotFound(str(parsed), self._no_alias(name, parsed.alias, alias_map))
                version = alias_map[parsed.alias]
            found = _db.select_version(conn, name, version)
        if found is None:
            raise ModelNotFound(
                str(parsed),
                f"model {name!r} has no version {version}; it has {_versions_text(int(last))} "
                f"(`shipyard models show {name}`)",
            )
        return found

    def _unknown_model(self, conn: sa.Connection, name: str) -> ModelNotFound:
        names = _db.model_names(conn)
        if not names:
            return ModelNotFound(name, f"no model named {name!r}: {_NO_MODELS}")
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        return ModelNotFound(name, f"no model named {name!r}{hint}; registered models: {shown}")

    @staticmethod
    def _no_alias(name: str, alias: str, alias_map: Mapping[str, int]) -> str:
        if not alias_map:
            return (
                f"model {name!r} has no alias {alias!r} (it has no aliases); set one with "
                f"`shipyard models alias {name} VERSION {alias}`"
            )
        have = ", ".join(f"{a} -> {v}" for a, v in sorted(alias_map.items()))
        return f"model {name!r} has no alias {alias!r}; its aliases: {have}"

    def audit(self, name: str | None = None, *, limit: int | None = 100) -> list[AuditEntry]:
        """The audit log, newest first, for one model or all."""
        if name is not None:
            check_name(name)
        with self._read() as conn:
            return _db.audit_entries(conn, name, limit)

    def log_event(
        self,
        action: str,
        *,
        model: str | None,
        alias: str | None = None,
        from_version: int | None = None,
        to_version: int | None = None,
        detail: Mapping[str, Any] | None = None,
        user: str | None = None,
    ) -> None:
        """Append an entry to the audit log (hosting records ``deploy``/``rollback`` here).

        >>> Registry().log_event("deploy", model="ranker", to_version=3,
        ...                      detail={"service": "ranker"})  # doctest: +SKIP
        """
        if not isinstance(action, str) or not 0 < len(action) <= 32:
            raise ModelSpecError(f"bad audit action {action!r}: 1-32 characters, e.g. 'deploy'")
        with self._write() as conn:
            _db.add_audit(
                conn,
                user or current_user(),
                action,
                model,
                alias=alias,
                from_version=from_version,
                to_version=to_version,
                detail=dict(detail) if detail is not None else None,
            )

    def referenced_blob_keys(self) -> set[str]:
        """Blob keys registered versions need (models and code snapshots): gc keeps these."""
        with self._read() as conn:
            return {k for k in conn.execute(_db.referenced_keys_query()).scalars() if k}

    # --- aliases -----------------------------------------------------------------------
    def set_alias(
        self, name: str, version: int, alias: str, *, user: str | None = None
    ) -> int | None:
        """Point ``alias`` at ``name:version`` (creating or moving it; audited). Returns the
        version it pointed at before (None if new). Raises :class:`ModelNotFound`."""
        check_name(name)
        check_alias(alias)
        version = check_version(version)
        who = user or current_user()
        with self._write() as conn:
            self._lock_model(conn, name)
            if _db.select_version(conn, name, version) is None:
                last = conn.execute(
                    sa.select(models.c.last_version).where(models.c.name == name)
                ).scalar_one()
                raise ModelNotFound(
                    f"{name}:{version}",
                    f"model {name!r} has no version {version}; it has {_versions_text(last)}",
                )
            where = (model_aliases.c.name == name, model_aliases.c.alias == alias)
            before = conn.execute(sa.select(model_aliases.c.version).where(*where)).scalar()
            if before == version:
                return version
            values = {"version": version, "updated_at": _db.now(), "updated_by": who}
            if before is None:
                conn.execute(model_aliases.insert().values(name=name, alias=alias, **values))
            else:
                conn.execute(model_aliases.update().where(*where).values(**values))
            _db.add_audit(
                conn,
                who,
                "alias.set" if before is None else "alias.move",
                name,
                alias=alias,
                from_version=before,
                to_version=version,
            )
            # in the same transaction: the move and its event commit together
            insert_event(
                conn,
                "model.alias-moved",
                {"model": name, "alias": alias, "version": version, "previous": before},
                source="registry",
                user=who,
            )
        return None if before is None else int(before)

    def delete_alias(self, name: str, alias: str, *, user: str | None = None) -> int:
        """Remove ``alias`` (audited). Returns the version it pointed at."""
        check_name(name)
        check_alias(alias)
        who = user or current_user()
        with self._write() as conn:
            self._lock_model(conn, name)
            where = (model_aliases.c.name == name, model_aliases.c.alias == alias)
            before = conn.execute(sa.select(model_aliases.c.version).where(*where)).scalar()
            if before is None:
                alias_map = _db.aliases(conn, [name]).get(name, {})
                raise ModelNotFound(f"{name}@{alias}", self._no_alias(name, alias, alias_map))
            conn.execute(model_aliases.delete().where(*where))
            _db.add_audit(conn, who, "alias.delete", name, alias=alias, from_version=before)
        return int(before)

    def _lock_model(self, conn: sa.Connection, name: str) -> None:
        # PostgreSQL: FOR UPDATE serializes alias moves of one model; SQLite's BEGIN
        # IMMEDIATE already holds the database's write lock (FOR UPDATE is not rendered)
        query = sa.select(models.c.name).where(models.c.name == name).with_for_update()
        if conn.execute(query).first() is None:
            raise self._unknown_model(conn, name)

    # --- registering from the command line ---------------------------------------------
    def register_artifact(
        self,
        address: str,
        name: str,
        *,
        metrics: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        user: str | None = None,
        signature: Any = None,
        features: Any = None,
    ) -> ModelVersion:
        """Register the artifact ``Flow/run/step[/task]:artifact`` as the next version of
        ``name`` without unpickling it (only its metadata row is read). Its input signature
        is ``signature`` if given (see :meth:`Signature.of`), else none: nothing is loaded
        to infer one. ``features``: the ``FeatureSet`` the model was trained on (recorded in
        the signature).

        Library versions: the producing task's, if it recorded them (``result["libraries"]``),
        else none (``{}``), so loading such a version cannot warn about mismatches.
        """
        from shipyard.store.pathspec import parse_artifact

        check_name(name)
        clean = clean_metrics(metrics)
        tag_list = clean_tags(tags)
        inputs = Signature.of(signature) if signature is not None else None
        if features is not None:
            inputs = with_feature_set(inputs, features)
        try:
            spec, artifact = parse_artifact(address)
        except ValueError as exc:
            raise ModelSpecError(str(exc)) from None
        meta = self._meta_store()
        task = self._find_task(meta, spec.flow, spec.run_id or 0, spec.step or "", spec.task_id)
        record = meta.get_artifact(task.task_id, artifact)
        if record is None:
            have = ", ".join(a.name for a in meta.list_artifacts(task.task_id)) or "none"
            raise RegistryError(
                f"task {task.pathspec} has no artifact {artifact!r}; its artifacts: {have}"
            )
        libraries = task.result.get("libraries") if isinstance(task.result, dict) else None
        keep_blob(self._blob_store(), record)
        with self._write() as conn:
            version = _db.add_version(
                conn,
                name=name,
                record=record,
                artifact_name=artifact,
                flow_name=task.flow_name,
                run_id=task.run_id,
                step_name=task.step_name,
                task_id=task.task_id,
                metrics=clean,
                tags=tag_list,
                libraries=dict(libraries) if isinstance(libraries, dict) else {},
                user=user or current_user(),
                signature=inputs.to_json() if inputs is not None else None,
            )
        return self.get(ModelSpec(name, version=version))

    @staticmethod
    def _find_task(
        meta: MetaStore, flow: str, run_id: int, step: str, task_id: int | None
    ) -> TaskRecord:
        run = meta.get_run(flow, run_id)
        if run is None:
            raise RegistryError(f"no run {flow}/{run_id} (`shipyard runs --flow {flow}`)")
        tasks = [t for t in meta.list_tasks(run_id, step) if task_id in (None, t.task_id)]
        where = f"{flow}/{run_id}/{step}" + (f"/{task_id}" if task_id is not None else "")
        if not tasks:
            raise RegistryError(f"no task {where} (`shipyard show {flow}/{run_id}`)")
        done = [t for t in tasks if t.status is TaskStatus.SUCCEEDED]
        if len(done) != 1:
            if not done:
                raise RegistryError(
                    f"{where} has not succeeded ({tasks[0].status.value}): only a succeeded "
                    "task's artifacts are recorded"
                )
            ids = ", ".join(str(t.task_id) for t in done[:5])
            raise ModelSpecError(f"step {where} has {len(done)} tasks ({ids}); name one")
        return done[0]

    # --- loading -----------------------------------------------------------------------
    def stage_code(self, version: ModelVersion) -> Path | None:
        """Extract the code snapshot of ``version``'s run under ``home/code`` now (None: it
        has none). :meth:`load` does it when a class is not importable; a host does it for
        its workers, whose view of ``home`` is read-only."""
        from shipyard.store.code import extract_code

        code_key = version.code_key
        if code_key is None:
            return None
        blobs = self._blob_store()
        try:
            data = blobs.get(code_key)
        except BlobNotFound:
            raise RegistryError(
                f"model {version.spec}: its code snapshot {code_key} is missing from "
                f"{blobs.url} (a different SHIPYARD_STORE_URL?)"
            ) from None
        return extract_code(data, code_key, self._home_dir())

    def stage_files(self, version: ModelVersion) -> Path | None:
        """Materialise a file-artifact model (:class:`shipyard.Files`) under ``home/files``
        now (None: the version is not one). A host does it for its workers, whose view of
        ``home`` is read-only; anywhere else ``load().path`` does it on first use."""
        from shipyard.store import files, staging

        if version.artifact.encoding != files.ENCODING:
            return None
        tree = self.load(version)
        try:
            return staging.materialise(tree, self._blob_store(), self._home_dir())
        except files.FilesError as exc:
            raise RegistryError(f"model {version.spec}: {exc}") from None

    def load(self, version: ModelVersion) -> Any:
        """Unpickle the version's object, importing classes from its run's code snapshot.

        Warns (:class:`ModelVersionWarning`) first if Python or a recorded library differs
        in major.minor. Loading runs code from whoever could write the store: trust it.
        """
        from shipyard.store import files, serialize
        from shipyard.store.code import ClassFinder
        from shipyard.store.errors import CodeSnapshotError

        warn_mismatches(version.spec, version.libraries, stacklevel=4)
        blobs = self._blob_store()
        record = version.artifact
        code_key = version.code_key

        def fetch() -> Path:
            path = self.stage_code(version)
            assert path is not None
            return path

        try:
            data = read_record(blobs, record)
        except BlobNotFound:
            raise RegistryError(
                f"model {version.spec} points at blob {record.key}, which is missing from "
                f"{blobs.url} (a different SHIPYARD_STORE_URL?)"
            ) from None
        finder = ClassFinder(version.module, fetch if code_key is not None else None)
        try:
            value = serialize.decode(data, find_class=finder)
            return files.bind(value, blobs, self._home)
        except CodeSnapshotError as exc:
            raise RegistryError(f"model {version.spec}: {exc}") from exc
        except (ImportError, AttributeError, ValueError, pickle.UnpicklingError) as exc:
            raise RegistryError(
                f"cannot load model {version.spec} ({record.type_name}, from "
                f"{version.lineage}): {type(exc).__name__}: {exc}"
            ) from exc


__all__ = ["Registry"]
