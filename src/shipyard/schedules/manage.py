"""What the ``shipyard schedule`` and ``shipyard backfill`` commands do, without the CLI.

Creating or changing a schedule needs an **admin key**, checked against the metadata
database's keys exactly as the host's admin API checks one: the key from ``--key`` /
``SHIPYARD_KEY``, else the local admin token ``$SHIPYARD_HOME/admin.token`` that
``shipyard serve`` writes (mode 0600). Reading schedules needs none.
"""

from __future__ import annotations

import ast
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shipyard.schedules.cron import Cron, zone
from shipyard.schedules.decorators import EventSpec, triggers_of
from shipyard.schedules.errors import (
    AdminKeyRequired,
    CronError,
    PublishKeyRequired,
    ScheduleDefinitionError,
)
from shipyard.schedules.policies import Policies
from shipyard.schedules.records import FireKind, ScheduleRecord
from shipyard.schedules.store import NewVersion, ScheduleStore, fire_row
from shipyard.store.meta import MetaStore

#: the most fire times one backfill may create
MAX_BACKFILL = 10000


def require_admin(meta: MetaStore, key: str | None, home: Path) -> str:
    """The admin key's name if ``key`` (else ``SHIPYARD_KEY``, else the local admin token)
    is a valid admin key of this database; raises :class:`AdminKeyRequired`."""
    from shipyard.keys import KeyStore, read_admin_token

    given = key or os.environ.get("SHIPYARD_KEY") or read_admin_token(home)
    if not given:
        raise AdminKeyRequired(
            "creating or changing a schedule needs an admin key: give --key (or set "
            "SHIPYARD_KEY), or run this on the host's machine after `shipyard serve` has "
            f"written {home / 'admin.token'}"
        )
    with KeyStore(meta) as keys:
        record = keys.verify(given)
    if record is None or not record.allows("admin"):
        raise AdminKeyRequired(
            "the key given is not a valid admin key of this database (revoked, expired, "
            "of another scope, or of another database): `shipyard keys create --scope admin`"
        )
    return record.name or record.label


def require_publisher(meta: MetaStore, key: str | None, home: Path) -> str:
    """The key's name if ``key`` (else ``SHIPYARD_KEY``, else the local admin token) is a
    valid key of this database with scope ``events:publish`` or ``admin``; raises
    :class:`PublishKeyRequired`."""
    from shipyard.keys import KeyStore, read_admin_token
    from shipyard.keys.scopes import EVENTS_PUBLISH

    given = key or os.environ.get("SHIPYARD_KEY") or read_admin_token(home)
    if not given:
        raise PublishKeyRequired(
            f"publishing an event needs a key with scope {EVENTS_PUBLISH!r} (or admin): give "
            "--key (or set SHIPYARD_KEY); `shipyard keys create --scope events:publish` "
            "makes one"
        )
    with KeyStore(meta) as keys:
        record = keys.verify(given)
    if record is None:
        raise PublishKeyRequired(
            "the key given is not a valid key of this database (unknown, revoked or expired)"
        )
    if not record.allows(EVENTS_PUBLISH):
        raise PublishKeyRequired(
            f"key {record.label} has scopes [{', '.join(record.scopes)}], which do not allow "
            f"publishing events: use a key with scope {EVENTS_PUBLISH!r} (or admin)"
        )
    return record.name or record.label


def _defaults(flow_cls: type) -> dict[str, Any]:
    import json

    from shipyard.flow.parameters import IncludeFile, flow_parameters

    out: dict[str, Any] = {}
    for p in flow_parameters(flow_cls):
        if isinstance(p, IncludeFile):
            continue
        if not p.has_default or p.default is None:
            out[p.name] = None  # known, no default: a run needs it given (--param)
            continue
        value = p.default() if callable(p.default) else p.default
        try:
            json.dumps(value)
        except TypeError:
            value = str(value)
        out[p.name] = value
    return out


def create(
    store: ScheduleStore,
    flow_file: str | Path,
    *,
    name: str | None,
    user: str,
    now: datetime,
    blobs: Any,
    flow_name: str | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[str, int, NewVersion]:
    """Register the flow in ``flow_file`` as a new version of schedule ``name`` (default:
    the flow's name), with a snapshot of its code and its parameters' defaults. ``cron``,
    ``timezone`` and ``overrides`` (policies) take precedence over ``@schedule``."""
    import hashlib

    from shipyard.flow.loader import load_flow
    from shipyard.store.code import pack_code

    try:
        loaded = load_flow(flow_file, flow_name)
    except ScheduleDefinitionError as exc:  # a decorator refused: point at the user's line
        raise ScheduleDefinitionError(f"{_where(exc, Path(flow_file))}{exc.message}") from None
    except SyntaxError as exc:
        raise ScheduleDefinitionError(
            f"{flow_file}:{exc.lineno}: {exc.msg} (the flow file does not compile)"
        ) from None
    loaded.graph()  # a flow that would not run is refused now, not at 3 a.m.
    found = triggers_of(loaded.flow_cls)
    expr = cron or (found.time.cron if found.time else None)
    tz = timezone or (found.time.timezone if found.time else "UTC")
    policies = found.time.policies if found.time else Policies()
    try:
        if expr is not None:
            Cron.parse(expr)
        zone(tz)
        policies = policies.merged(**(overrides or {}))
    except CronError as exc:
        raise ScheduleDefinitionError(exc.message) from None
    if expr is None and not found.events and not found.finishes:
        raise ScheduleDefinitionError(
            f"{loaded.flow_cls.__name__} has no @schedule, @trigger or @trigger_on_finish, "
            "and no --cron was given: nothing would ever start it "
            "(`shipyard schedule trigger` still can, once it exists)"
        )
    name = name or loaded.flow_cls.__name__
    _check_name(name)
    code = pack_code(loaded.source_file, loaded.module_name)
    code_key = hashlib.sha256(code).hexdigest()
    blobs.put(code_key, [code])
    new = NewVersion(
        flow_name=loaded.flow_cls.__name__,
        code_key=code_key,
        module=loaded.module_name,
        flow_file=_flow_file(code),
        parameters=_defaults(loaded.flow_cls),
        cron=expr,
        timezone=tz,
        triggers=found.triggers_json(),
        policies=policies,
    )
    check_loops(store, name, new)
    check_self_trigger(name, loaded.flow_cls.__name__, Path(loaded.source_file), found.events)
    version = store.save(name, new, user=user, now=now)
    return name, version, new


def check_loops(store: ScheduleStore, name: str, new: NewVersion) -> None:
    """Refuse a version whose ``@trigger_on_finish`` would close a loop with the live
    schedules (A's end starts B, B's end starts A): it would run forever. Only flow-finish
    edges are known beforehand; a flow that publishes an event its own trigger waits for
    cannot be seen from here."""
    edges: dict[str, dict[str, str]] = {}  # upstream flow -> {downstream flow: schedule}
    versions = [(r.name, r.current.flow_name, r.current.triggers) for r in store.list()]
    versions = [v for v in versions if v[0] != name] + [(name, new.flow_name, new.triggers)]
    for schedule_name, flow, triggers in versions:
        for spec in triggers:
            if spec.get("type") == "flow":
                edges.setdefault(str(spec["flow"]), {}).setdefault(flow, schedule_name)
    start = new.flow_name
    path: list[str] = [start]

    def walk(flow: str) -> list[str] | None:
        for nxt in sorted(edges.get(flow, {})):
            if nxt == start:
                return [*path, start]
            if nxt in path:
                continue
            path.append(nxt)
            found = walk(nxt)
            if found:
                return found
            path.pop()
        return None

    cycle = walk(start)
    if cycle is None:
        return
    steps = [
        f"schedule {edges[a][b]!r} runs {b} when {a} finishes"
        for a, b in zip(cycle, cycle[1:], strict=False)
    ]
    raise ScheduleDefinitionError(
        f"schedule {name!r} would close a trigger loop: {' -> '.join(cycle)} "
        f"({'; '.join(steps)}); each run would start the next forever. Remove one "
        "@trigger_on_finish (or delete one of those schedules) first"
    )


#: calls (by name) that publish a registry or cache event: a flow whose @trigger waits for
#: that event and makes such a call starts itself
_EVENT_CALLS = {
    "register_model": "model.registered",
    "register_artifact": "model.registered",
    "set_alias": "model.alias-moved",
}
#: ``cache.<name>(...)``: a new cache version, published when it closes
_CACHE_CALLS = ("writer", "bulk", "publish")
_CLI_PUBLISH = re.compile(r"\bevent\s+publish\s+([A-Za-z0-9][A-Za-z0-9_.:-]*)")


def published_events(source: str) -> list[tuple[str, int, str]]:
    """The events the flow's code publishes, as far as its source shows: (event name, line,
    what publishes it) for a ``publish...(..., "name", ...)`` call with the name as a
    literal, ``shipyard event publish NAME`` in a string, ``current.register_model``
    (``model.registered``), ``set_alias`` (``model.alias-moved``) and ``cache.writer`` /
    ``cache.bulk`` / ``cache.publish`` (``cache.published``). An event name computed at run
    time is not seen."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found: list[tuple[str, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in _CLI_PUBLISH.finditer(node.value):
                found.append((match.group(1), node.lineno, "shipyard event publish"))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called in _EVENT_CALLS:
            found.append((_EVENT_CALLS[called], node.lineno, f"{called}()"))
        if (
            isinstance(func, ast.Attribute)
            and called in _CACHE_CALLS
            and isinstance(func.value, ast.Name)
            and func.value.id == "cache"
        ):
            found.append(("cache.published", node.lineno, f"cache.{called}()"))
        if "publish" in called.lower():
            literals = [*node.args, *(k.value for k in node.keywords)]
            for arg in literals:
                items = arg.elts if isinstance(arg, ast.List | ast.Tuple) else [arg]
                for item in items:
                    if isinstance(item, ast.Constant) and isinstance(item.value, str):
                        found.append((item.value, node.lineno, f"{called}()"))
    return found


def check_self_trigger(
    name: str, flow_name: str, source_file: Path, events: Sequence[EventSpec]
) -> None:
    """Refuse a flow that publishes an event its own ``@trigger`` waits for (from a step, or
    by registering a model, moving an alias or publishing a cache version): each run would
    start the next forever. What the source shows is checked (:func:`published_events`)."""
    waits = {e.name for e in events}
    if not waits:
        return
    try:
        source = source_file.read_text()
    except (OSError, UnicodeDecodeError):
        return
    for event, line, how in published_events(source):
        if event in waits:
            raise ScheduleDefinitionError(
                f"{source_file}:{line}: schedule {name!r} would close a trigger loop: "
                f"{flow_name} publishes {event!r} ({how}) and its own @trigger waits for "
                f"{event!r}: {flow_name} -> {event} -> {flow_name}, each run would start the "
                "next forever. Trigger on another event, or publish another one"
            )


def _where(exc: BaseException, flow_file: Path) -> str:
    """``file:line: `` of the deepest frame of ``exc`` in ``flow_file``, or nothing."""
    import traceback

    target = flow_file.resolve()
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == target:
            found = f"{flow_file}:{frame.lineno}: "
    return found


def _flow_file(code: bytes) -> str:
    """The flow file's path inside the snapshot (its manifest says)."""
    import io
    import json
    import zipfile

    from shipyard.store.code import MANIFEST

    with zipfile.ZipFile(io.BytesIO(code)) as archive:
        return str(json.loads(archive.read(MANIFEST))["flow_file"])


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", name):
        raise ScheduleDefinitionError(
            f"schedule name {name!r}: use 1-128 letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``k=v`` pairs (``--param``) as a dict; a pair without ``=`` is refused."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ScheduleDefinitionError(f"--param {pair!r}: write NAME=VALUE, e.g. alpha=0.5")
        out[key] = value
    return out


def trigger_now(
    store: ScheduleStore, name: str, params: dict[str, Any], *, user: str, now: datetime
) -> int:
    """A manual fire of ``name`` now (its run starts on the scheduler's next tick);
    returns the fire record's id."""
    record = store.get(name)
    unknown = set(params) - _parameter_names(record)
    if unknown:
        raise ScheduleDefinitionError(
            f"--param {', '.join(sorted(unknown))}: not a parameter of {record.flow_name} "
            f"(it has: {', '.join(sorted(_parameter_names(record))) or 'none'})"
        )
    row = fire_row(
        schedule=name,
        version=record.version,
        kind=FireKind.MANUAL,
        event_id=f"manual:{secrets.token_hex(8)}",
        due_at=now,
        now=now,
        params=params,
        trigger={"by": user},
    )
    store.add_fires([row])
    fire = store.fire_for_event(name, row["event_id"])
    assert fire is not None  # just inserted under a fresh random key
    return fire.id


def _parameter_names(record: ScheduleRecord) -> set[str]:
    return set(record.current.parameters)


def backfill_times(record: ScheduleRecord, start: datetime, end: datetime) -> list[datetime]:
    """The schedule's fire times in [start, end]."""
    if record.current.cron is None:
        raise ScheduleDefinitionError(
            f"schedule {record.name!r} has no cron (it runs on events only): nothing to backfill"
        )
    if end < start:
        raise ScheduleDefinitionError(f"--end {end.isoformat()} is before --start")
    cron = Cron.parse(record.current.cron)
    times = []
    for when in cron.fire_times(start - timedelta(microseconds=1), record.current.timezone, end):
        times.append(when)
        if len(times) > MAX_BACKFILL:
            raise ScheduleDefinitionError(
                f"the range holds more than {MAX_BACKFILL} fire times: backfill a shorter range"
            )
    return times


def backfill(
    store: ScheduleStore,
    name: str,
    start: datetime,
    end: datetime,
    *,
    max_parallel: int,
    dry_run: bool,
    now: datetime,
) -> tuple[list[datetime], list[datetime]]:
    """One run per fire time of ``name`` in [start, end], at most ``max_parallel`` at once:
    (fire times created, fire times that have a record already). Twice is a no-op."""
    if max_parallel < 1:
        raise ScheduleDefinitionError(f"--max-parallel {max_parallel}: give 1 or more")
    record = store.get(name)
    times = backfill_times(record, start, end)
    existing = store.existing_times(name, times)
    new = [t for t in times if t not in existing]
    if not dry_run and new:
        store.add_fires(
            [
                fire_row(
                    schedule=name,
                    version=record.version,
                    kind=FireKind.BACKFILL,
                    scheduled_for=t,
                    due_at=now,
                    now=now,
                    trigger={"max_parallel": max_parallel},
                )
                for t in new
            ]
        )
    return new, sorted(existing)


def next_times(record: ScheduleRecord, count: int, now: datetime) -> list[datetime]:
    """The next ``count`` fire times of ``record`` after ``now`` (jitter not included)."""
    if record.current.cron is None:
        return []
    cron = Cron.parse(record.current.cron)
    out: list[datetime] = []
    for when in cron.fire_times(max(now, record.cursor), record.current.timezone):
        out.append(when)
        if len(out) >= count:
            break
    return out


__all__ = [
    "MAX_BACKFILL",
    "backfill",
    "backfill_times",
    "check_loops",
    "check_self_trigger",
    "create",
    "next_times",
    "parse_params",
    "published_events",
    "require_admin",
    "require_publisher",
    "trigger_now",
]
