"""The metadata store: flows, runs, tasks, attempts, artifacts, tags, parameters, log pointers.

SQLAlchemy Core over SQLite (WAL, the default, under ``SHIPYARD_HOME``) or PostgreSQL
(``SHIPYARD_DB_URL``). Only the flow runtime writes (through its recorder process, see
``flow/ledger.py``); tasks report back to it. Every write method is one short transaction,
or a savepoint inside :meth:`MetaStore.transaction` (the recorder applies what has arrived
in one). The schema is versioned with Alembic migrations that run automatically when the
store is opened.

Errors (see :mod:`shipyard.store.errors`): :class:`MetaStoreError` for anything the store
refuses (bad state, unknown schema revision), :class:`RecordNotFound` (also a LookupError)
when the run/task/attempt does not exist.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipyard.store import _rows, schema
from shipyard.store.bootstrap import database_file, private_database
from shipyard.store.engine import create_engine, read_only, savepoint
from shipyard.store.errors import MetaStoreError, RecordNotFound
from shipyard.store.records import (
    ArtifactRecord,
    AttemptRecord,
    RunRecord,
    RunStatus,
    TaskRecord,
    TaskStatus,
)
from shipyard.store.schema import (
    HEAD_REVISION,
    artifacts,
    attempts,
    flows,
    run_params,
    run_tags,
    runs,
    tasks,
)

#: a RUNNING run is DEAD after max(3 * heartbeat_seconds, this) without a heartbeat
MIN_DEAD_AFTER_SECONDS = 2.0

_UNFINISHED = (TaskStatus.PENDING.value, TaskStatus.RUNNING.value)
_ENDED = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.KILLED)


def _now() -> datetime:
    return datetime.now(UTC)


class MetaStore:
    """Typed access to the metadata database.

    >>> meta = MetaStore.open()            # from settings (SHIPYARD_DB_URL or the SQLite default)
    >>> run_id = meta.create_run("MyFlow", user="ann", params={}, tags=[], graph={}, code_key=None)
    """

    def __init__(self, engine: Engine, *, dead_after: timedelta) -> None:
        """Prefer :meth:`open`, which also migrates the schema."""
        self._engine = engine
        self._reader = read_only(engine)
        self.dead_after = dead_after
        self.url = engine.url.render_as_string(hide_password=True)
        self._local = threading.local()  # .tx: the connection of an open transaction()

    @classmethod
    def open(cls, url: str | None = None) -> MetaStore:
        """Connect (default: ``settings().db_url``) and upgrade the schema to head if needed."""
        from shipyard.config import settings

        conf = settings()
        url = url or conf.db_url
        path = database_file(url)
        if path is not None:
            private_database(path)
        engine = create_engine(url)
        dead_after = max(3 * conf.heartbeat_seconds, MIN_DEAD_AFTER_SECONDS)
        store = cls(engine, dead_after=timedelta(seconds=dead_after))
        try:
            store._migrate()
        except BaseException:
            engine.dispose()
            raise
        return store

    def _migrate(self) -> None:
        from shipyard.store import migrations

        with self._reader.connect() as conn:
            current = migrations.current_revision(conn)
        if current == HEAD_REVISION:
            return
        if current is None and migrations.create_fresh(self._engine):
            return
        if current is None:  # another process created it meanwhile (runtime and recorder)
            with self._reader.connect() as conn:
                if migrations.current_revision(conn) == HEAD_REVISION:
                    return
        migrations.upgrade(self._engine)  # only now pay for importing Alembic

    @property
    def writer(self) -> Engine:
        """The SQLAlchemy engine for writes, for parts that keep their own tables in this
        database (registry, keys, deployments): on SQLite a transaction starts with
        ``BEGIN IMMEDIATE``, taking the write lock up front (see :mod:`shipyard.store.engine`).

        >>> with meta.writer.begin() as conn:              # doctest: +SKIP
        ...     conn.execute(api_keys.insert().values(...))
        """
        return self._engine

    @property
    def reader(self) -> Engine:
        """The engine for reads: on SQLite a transaction starts with a deferred ``BEGIN``,
        a snapshot that never blocks a writer. Same connection pool as :attr:`writer`.

        >>> with meta.reader.connect() as conn:            # doctest: +SKIP
        ...     conn.execute(sa.select(api_keys)).all()
        """
        return self._reader

    @property
    def engine(self) -> Engine:
        """The same engine as :attr:`writer` (the name callers used before it had a pair)."""
        return self._engine

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the writes (and reads) of this thread inside the block one transaction:
        all committed at the end, or none if the block raises. A write method that raises
        inside it undoes only its own part (it runs in a savepoint). Nests."""
        if getattr(self._local, "tx", None) is not None:
            yield
            return
        with self._engine.begin() as conn:
            self._local.tx = conn
            try:
                yield
            finally:
                self._local.tx = None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        tx: Connection | None = getattr(self._local, "tx", None)
        if tx is None:
            with self._engine.begin() as conn:
                yield conn
        else:
            with savepoint(tx):
                yield tx

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        tx: Connection | None = getattr(self._local, "tx", None)
        if tx is not None:  # see the transaction's own writes
            yield tx
            return
        with self._reader.connect() as conn:
            yield conn

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> MetaStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _cutoff(self) -> datetime:
        return _now() - self.dead_after

    # --- runs -------------------------------------------------------------------------
    def create_run(
        self,
        flow_name: str,
        *,
        user: str,
        params: dict[str, Any],
        tags: Iterable[str],
        graph: dict[str, Any],
        code_key: str | None,
        origin_run_id: int | None = None,
        run_id: int | None = None,
        at: datetime | None = None,
        trigger: dict[str, Any] | None = None,
    ) -> int:
        """Insert a RUNNING run (heartbeat now) and return its run id (unique in this DB):
        ``run_id`` if given (one reserved by ``bootstrap.IdReserver``), else a new one.
        ``at``: when it happened, if not now (as for every write that takes it)."""
        tag_list = _rows.clean_tags(tags)
        now = at or _now()
        explicit = {} if run_id is None else {"run_id": run_id}
        with self._write() as conn:
            _rows.insert_ignore(conn, flows, {"name": flow_name, "created_at": now})
            run_id = conn.execute(
                runs.insert()
                .values(
                    **explicit,
                    flow_name=flow_name,
                    status=RunStatus.RUNNING.value,
                    user=user,
                    created_at=now,
                    heartbeat_at=now,
                    graph=graph,
                    code_key=code_key,
                    origin_run_id=origin_run_id,
                    trigger=trigger,
                )
                .returning(runs.c.run_id)
            ).scalar_one()
            assert run_id is not None
            if tag_list:
                conn.execute(run_tags.insert(), [{"run_id": run_id, "tag": t} for t in tag_list])
            if params:
                rows = [{"run_id": run_id, "name": k, "value": v} for k, v in params.items()]
                conn.execute(run_params.insert(), rows)
        return run_id

    def heartbeat(self, run_id: int) -> None:
        """Tell readers the run's runtime is alive (call every ``heartbeat_seconds``)."""
        self._update_run(run_id, heartbeat_at=_now())

    def finish_run(self, run_id: int, status: RunStatus, *, at: datetime | None = None) -> None:
        """Record the run's final status and finished_at."""
        if status in (RunStatus.RUNNING, RunStatus.DEAD):
            raise MetaStoreError(
                f"finish_run(run {run_id}, {status.value!r}): a finished run is succeeded, "
                "failed or killed"
            )
        now = at or _now()
        self._update_run(run_id, status=status.value, finished_at=now, heartbeat_at=now)

    def _update_run(self, run_id: int, **values: Any) -> None:
        with self._write() as conn:
            result = conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
            if result.rowcount == 0:
                raise RecordNotFound(f"no run with id {run_id} in {self.url}")

    def get_run(self, flow_name: str, run_id: int) -> RunRecord | None:
        """The run, with status DEAD if RUNNING and the heartbeat is older than the limit."""
        record = self.get_run_by_id(run_id)
        return record if record is not None and record.flow_name == flow_name else None

    def get_run_by_id(self, run_id: int) -> RunRecord | None:
        """The run with this id whatever its flow (ids are unique in the database)."""
        with self._read() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).all()
            found = _rows.load_runs(conn, rows, self._cutoff())
        return found[0] if found else None

    def list_runs(
        self,
        flow_name: str | None = None,
        *,
        tags: Sequence[str] = (),
        status: RunStatus | None = None,
        since: datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
        user: str | None = None,
    ) -> list[RunRecord]:
        """Newest first. ``tags``: runs having all of them. ``status=DEAD`` works too.
        ``since``: runs created at or after it (on the indexed column). ``user``: runs
        that user started."""
        cutoff = self._cutoff()
        query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        if since is not None:
            query = query.where(runs.c.created_at >= since)
        if flow_name is not None:
            query = query.where(runs.c.flow_name == flow_name)
        if user is not None:
            query = query.where(runs.c.user == user)
        for tag in dict.fromkeys(tags):
            has_tag = sa.select(run_tags.c.run_id).where(
                run_tags.c.run_id == runs.c.run_id, run_tags.c.tag == tag
            )
            query = query.where(has_tag.exists())
        if status is not None:
            query = query.where(_rows.status_clause(RunStatus(status), cutoff))
        query = query.limit(limit).offset(offset or None)
        with self._read() as conn:
            return _rows.load_runs(conn, conn.execute(query).all(), cutoff)

    def flow_names(self) -> list[str]:
        """Every flow with at least one run, sorted."""
        with self._read() as conn:
            return list(conn.execute(sa.select(flows.c.name).order_by(flows.c.name)).scalars())

    def add_tags(self, run_id: int, tags: Iterable[str]) -> None:
        """Add tags to the run (tags it has already are ignored)."""
        tag_list = _rows.clean_tags(tags)
        with self._write() as conn:
            self._check_run(conn, run_id)
            for tag in tag_list:
                _rows.insert_ignore(conn, run_tags, {"run_id": run_id, "tag": tag})

    def tag_counts(self, flow_name: str | None = None) -> list[tuple[str, int]]:
        """Every tag in use (on ``flow_name``'s runs, or on any run) with how many runs
        have it, by tag."""
        count = sa.func.count(run_tags.c.run_id)
        query = sa.select(run_tags.c.tag, count).group_by(run_tags.c.tag).order_by(run_tags.c.tag)
        if flow_name is not None:
            query = query.join(runs, runs.c.run_id == run_tags.c.run_id).where(
                runs.c.flow_name == flow_name
            )
        with self._read() as conn:
            return [(str(tag), int(n)) for tag, n in conn.execute(query)]

    def remove_tags(self, run_id: int, tags: Iterable[str]) -> None:
        """Remove tags from the run (tags it does not have are ignored)."""
        tag_list = _rows.clean_tags(tags)
        with self._write() as conn:
            self._check_run(conn, run_id)
            conn.execute(
                run_tags.delete().where(run_tags.c.run_id == run_id, run_tags.c.tag.in_(tag_list))
            )

    def _check_run(self, conn: Connection, run_id: int) -> None:
        if conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first() is None:
            raise RecordNotFound(f"no run with id {run_id} in {self.url}")

    # --- tasks ------------------------------------------------------------------------
    def create_task(
        self,
        run_id: int,
        step_name: str,
        *,
        foreach_stack: Sequence[dict[str, Any]],
        input_task_ids: Sequence[int],
        log_dir: str | None = None,
    ) -> int:
        """Insert a PENDING task and return its task id (unique in this DB)."""
        return self.create_tasks(run_id, [(step_name, foreach_stack, input_task_ids, log_dir)])[0]

    def create_tasks(
        self,
        run_id: int,
        items: Sequence[tuple[str, Sequence[dict[str, Any]], Sequence[int], str | None]],
        *,
        task_ids: Sequence[int] | None = None,
        at: datetime | None = None,
    ) -> list[int]:
        """:meth:`create_task` for many ``(step_name, foreach_stack, input_task_ids,
        log_dir)`` in one transaction (a foreach fanning out); returns the ids in order:
        ``task_ids`` if given (reserved by ``bootstrap.IdReserver``), else new ones."""
        if not items:
            return []
        if task_ids is not None and len(task_ids) != len(items):
            raise ValueError(f"{len(items)} tasks but {len(task_ids)} task ids")
        now = at or _now()
        rows = [
            {
                **({} if task_ids is None else {"task_id": task_ids[i]}),
                "run_id": run_id,
                "step_name": step_name,
                "status": TaskStatus.PENDING.value,
                "created_at": now,
                "attempts": 0,
                "foreach_stack": list(stack),
                "input_task_ids": list(inputs),
                "log_dir": log_dir,
            }
            for i, (step_name, stack, inputs, log_dir) in enumerate(items)
        ]
        with self._write() as conn:
            self._check_run(conn, run_id)
            result = conn.execute(
                tasks.insert().returning(tasks.c.task_id, sort_by_parameter_order=True), rows
            )
            return [int(task_id) for task_id in result.scalars()]

    def start_attempt(
        self, task_id: int, attempt: int, *, pid: int | None, at: datetime | None = None
    ) -> None:
        """Record attempt ``attempt`` (0-based) as RUNNING; the task becomes RUNNING."""
        now = at or _now()
        with self._write() as conn:
            result = conn.execute(
                tasks.update()
                .where(tasks.c.task_id == task_id)
                .values(
                    status=TaskStatus.RUNNING.value,
                    started_at=sa.func.coalesce(tasks.c.started_at, now),
                    attempts=attempt + 1,
                )
            )
            if result.rowcount == 0:
                raise RecordNotFound(f"no task with id {task_id} in {self.url}")
            try:  # the whole write is undone (its transaction, or its savepoint in one)
                conn.execute(
                    attempts.insert().values(
                        task_id=task_id,
                        attempt=attempt,
                        status=TaskStatus.RUNNING.value,
                        started_at=now,
                        pid=pid,
                    )
                )
            except sa.exc.IntegrityError:
                raise MetaStoreError(
                    f"task {task_id} attempt {attempt} was started already; "
                    "start the next attempt with attempt + 1"
                ) from None

    def record_pid(self, task_id: int, attempt: int, pid: int) -> None:
        """The process id of a started attempt (known once its process is forked, after
        :meth:`start_attempt`)."""
        with self._write() as conn:
            conn.execute(
                attempts.update()
                .where(attempts.c.task_id == task_id, attempts.c.attempt == attempt)
                .values(pid=pid)
            )

    def finish_attempt(
        self,
        task_id: int,
        attempt: int,
        *,
        status: TaskStatus,
        error: dict[str, Any] | None = None,
        stdout_key: str | None = None,
        stderr_key: str | None = None,
        artifacts: Sequence[ArtifactRecord] = (),
        result: dict[str, Any] | None = None,
        final: bool = True,
        also: Callable[[Connection], None] | None = None,
        at: datetime | None = None,
    ) -> None:
        """In ONE transaction: close the attempt, and if ``final`` set the task's status,
        finished_at, result and (on success) its artifacts. A non-final failed attempt (one
        that will be retried) records the attempt only. ``also`` runs inside the same
        transaction (e.g. the registry committing the models the task registered): if it
        raises, nothing is recorded."""
        status = TaskStatus(status)
        if status not in _ENDED:
            raise MetaStoreError(
                f"finish_attempt(task {task_id}, attempt {attempt}): status {status.value!r} "
                "is not an end state; use succeeded, failed or killed"
            )
        now = at or _now()
        with self._write() as conn:
            closed = conn.execute(
                attempts.update()
                .where(attempts.c.task_id == task_id, attempts.c.attempt == attempt)
                .values(
                    status=status.value,
                    finished_at=now,
                    error=error,
                    stdout_key=stdout_key,
                    stderr_key=stderr_key,
                )
            )
            if closed.rowcount == 0:
                raise RecordNotFound(
                    f"task {task_id} has no attempt {attempt} in {self.url}: "
                    "call start_attempt first"
                )
            if not final:
                return
            conn.execute(
                tasks.update()
                .where(tasks.c.task_id == task_id)
                .values(status=status.value, finished_at=now, result=result or {})
            )
            if status is TaskStatus.SUCCEEDED and artifacts:
                rows = [_rows.artifact_row(task_id, a) for a in artifacts]
                conn.execute(schema.artifacts.insert(), rows)  # param shadows the table
            if also is not None:
                also(conn)

    def clone_task(self, run_id: int, origin_task_id: int, *, input_task_ids: Sequence[int]) -> int:
        """Copy a SUCCEEDED task of another run into ``run_id`` (for resume): same step,
        foreach_stack, result, artifacts (rows pointing at the same blobs), attempts copied
        as one succeeded attempt with the same log keys; ``origin_task_id`` recorded."""
        return self.clone_tasks(run_id, [(origin_task_id, input_task_ids)])[0]

    def clone_tasks(self, run_id: int, items: Sequence[tuple[int, Sequence[int]]]) -> list[int]:
        """:meth:`clone_task` for many ``(origin_task_id, input_task_ids)`` in one
        transaction and a handful of statements; returns the new task ids in order."""
        from shipyard.store._clone import clone_tasks

        if not items:
            return []
        with self._write() as conn:
            self._check_run(conn, run_id)
            return clone_tasks(conn, run_id, items, now=_now(), url=self.url)

    def get_task(self, task_id: int) -> TaskRecord | None:
        """The task with this id (ids are unique in the database), or None."""
        query = sa.select(*_rows.TASK_COLUMNS).join(runs).where(tasks.c.task_id == task_id)
        with self._read() as conn:
            row = conn.execute(query).first()
        return _rows.task_record(row) if row is not None else None

    def list_tasks(self, run_id: int, step_name: str | None = None) -> list[TaskRecord]:
        """In creation order."""
        query = (
            sa.select(*_rows.TASK_COLUMNS)
            .join(runs)
            .where(tasks.c.run_id == run_id)
            .order_by(tasks.c.task_id)
        )
        if step_name is not None:
            query = query.where(tasks.c.step_name == step_name)
        with self._read() as conn:
            return [_rows.task_record(row) for row in conn.execute(query)]

    def step_summaries(self, run_id: int) -> list[dict[str, Any]]:
        """Per step of the run, in order of each step's first task: ``{"step_name", "tasks"
        (count), "counts" ({task status value: count}, every status present), "started_at"
        (earliest), "finished_at" (latest; None while no task finished), "reused" (tasks a
        resume reused: their times, the origin run's, are left out of the two)}``."""
        with self._read() as conn:
            return [_rows.step_summary(r) for r in conn.execute(_rows.step_summary_query(run_id))]

    def list_attempts(self, task_id: int) -> list[AttemptRecord]:
        """The task's attempts, oldest first."""
        query = (
            sa.select(attempts).where(attempts.c.task_id == task_id).order_by(attempts.c.attempt)
        )
        with self._read() as conn:
            return [_rows.attempt_record(row) for row in conn.execute(query)]

    def list_artifacts(self, task_id: int) -> list[ArtifactRecord]:
        """The task's artifacts, sorted by name."""
        query = (
            sa.select(artifacts).where(artifacts.c.task_id == task_id).order_by(artifacts.c.name)
        )
        with self._read() as conn:
            return [_rows.artifact_record(row) for row in conn.execute(query)]

    def get_artifact(self, task_id: int, name: str) -> ArtifactRecord | None:
        """One artifact of the task by name, or None."""
        query = sa.select(artifacts).where(artifacts.c.task_id == task_id, artifacts.c.name == name)
        with self._read() as conn:
            row = conn.execute(query).first()
        return _rows.artifact_record(row) if row is not None else None

    def kill_unfinished_tasks(self, run_id: int, *, at: datetime | None = None) -> None:
        """Mark every PENDING/RUNNING task (and its open attempt) of the run KILLED."""
        now, killed = at or _now(), TaskStatus.KILLED.value
        unfinished = sa.select(tasks.c.task_id).where(
            tasks.c.run_id == run_id, tasks.c.status.in_(_UNFINISHED)
        )
        with self._write() as conn:
            conn.execute(
                attempts.update()
                .where(
                    attempts.c.task_id.in_(unfinished),
                    attempts.c.status == TaskStatus.RUNNING.value,
                )
                .values(status=killed, finished_at=now)
            )
            conn.execute(
                tasks.update()
                .where(tasks.c.run_id == run_id, tasks.c.status.in_(_UNFINISHED))
                .values(status=killed, finished_at=now)
            )

    # --- garbage collection -----------------------------------------------------------
    def runs_for_gc(
        self, *, older_than: datetime | None = None, keep_last: int | None = None
    ) -> list[RunRecord]:
        """Finished (or dead) runs created before ``older_than``, and/or beyond the newest
        ``keep_last`` per flow. Never a RUNNING run with a live heartbeat.

        Both given: a run is collected only if both rules let it go (``keep_last`` keeps the
        newest runs of each flow however old). Neither given: nothing is collected."""
        from shipyard.store._gc import runs_for_gc_query

        if older_than is None and keep_last is None:
            return []
        cutoff = self._cutoff()
        query = runs_for_gc_query(cutoff, older_than=older_than, keep_last=keep_last)
        with self._read() as conn:
            return _rows.load_runs(conn, conn.execute(query).all(), cutoff)

    def delete_runs(self, run_ids: Sequence[int]) -> None:
        """Delete the runs and everything under them (tasks, attempts, artifacts, tags, params)."""
        from shipyard.store._gc import delete_runs

        if run_ids:
            with self._write() as conn:
                delete_runs(conn, list(dict.fromkeys(run_ids)))

    def runs_gc_keeps(self, run_ids: Sequence[int]) -> dict[int, list[str]]:
        """``run_id -> reasons`` for those of these runs that gc keeps unless named: tagged
        runs, runs that registered model versions (and which deployment serves them)."""
        from shipyard.store._gc import kept_runs

        with self._read() as conn:
            return kept_runs(conn, list(dict.fromkeys(run_ids)))

    def files_manifest_keys(self, excluding: Sequence[int] = ()) -> set[str]:
        """The blob keys of the file-artifact manifests that rows point at (kept artifacts,
        model versions); with ``excluding`` (run ids), as if those runs were deleted. gc
        keeps the file blobs these manifests list (``shipyard.store.files.file_keys``)."""
        from shipyard.store._gc import manifest_keys_query

        with self._read() as conn:
            return set(conn.execute(manifest_keys_query(list(excluding))).scalars())

    def referenced_blob_keys(self, excluding: Sequence[int] = ()) -> set[str]:
        """Every blob key any row still points at (artifacts, logs, code snapshots); with
        ``excluding`` (run ids), as if those runs were deleted."""
        from shipyard.store._gc import referenced_keys_query

        left_out = list(excluding)
        with self._read() as conn:
            query = referenced_keys_query(left_out)
            keys = {key for key in conn.execute(query).scalars() if key}
            # a foreach split keeps its items in one blob named in the task's result
            with_result = sa.select(schema.tasks.c.result).where(schema.tasks.c.result.is_not(None))
            if left_out:
                with_result = with_result.where(schema.tasks.c.run_id.not_in(left_out))
            results = conn.execute(with_result).scalars()
            for result in results:
                if not isinstance(result, dict):
                    continue
                split = result.get("foreach")
                if split and split.get("items_key"):
                    keys.add(split["items_key"])
                # the HTML of the cards the task rendered
                keys.update(c["key"] for c in result.get("cards") or () if c.get("key"))
        return keys


__all__ = ["MIN_DEAD_AFTER_SECONDS", "MetaStore", "MetaStoreError", "RecordNotFound"]
