"""``@card``: render an HTML report of a task when it succeeds.

>>> @card                                  # the default card: artifacts, timings, DAG
... @step
... def train(self): ...
>>> @card(type="blank", id="metrics")      # only what the step appends
... @step
... def evaluate(self):
...     current.card["metrics"].append(Markdown("# AUC 0.93"))   # doctest: +SKIP

Types: ``"default"`` (the task's facts and artifacts, then any appended components) and
``"blank"`` (only the appended components). Without ``type=``, a card shows the default
content when nothing was appended and only the components otherwise.

The card is rendered in the task process after its artifacts are stored, written as a blob
(keyed by the SHA-256 of its HTML) and described in the task's result:
``{"id", "type", "key", "title", "size"}``. A card that fails to render never fails the task.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

from shipyard.cards.collector import CardCollector, CardHandle
from shipyard.cards.default import DagStep, TaskFacts, default_sections
from shipyard.cards.document import document, render_components
from shipyard.flow.decorators import StepDecorator, TaskContext
from shipyard.store.records import ArtifactRecord

if TYPE_CHECKING:
    from shipyard.flow.graph import Graph, Node

F = TypeVar("F", bound=Callable[..., Any])

CARD_TYPES = ("default", "blank")
#: the id of a card declared without ``id=``
DEFAULT_ID = "default"
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class CardDecorator(StepDecorator):
    """``@card(type="default"|"blank", id=None, title=None)``; several cards on one step need
    different ids."""

    name = "card"
    defaults: dict[str, Any] = {"type": None, "id": None, "title": None}

    def __init__(self, **attributes: Any) -> None:
        super().__init__(**attributes)
        if self.attributes["id"] is not None:
            # the duplicate check of init_decorators compares names: cards differ by id
            self.name = f"card:{self.attributes['id']}"
        self._dag: list[DagStep] = []

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.attributes.items() if v is not None)
        return f"@card({args})"

    @property
    def card_id(self) -> str:
        return str(self.attributes["id"] or DEFAULT_ID)

    @property
    def card_type(self) -> str:
        return str(self.attributes["type"] or DEFAULT_ID)

    # hooks ---------------------------------------------------------------------------
    def step_init(self, graph: Graph, node: Node) -> None:
        kind, card_id, title = (self.attributes[k] for k in ("type", "id", "title"))
        if kind is not None and kind not in CARD_TYPES:
            raise node.error(
                f"@card(type={kind!r}): unknown card type",
                hint="use type='default' (artifacts, timings, DAG) or type='blank'",
            )
        if card_id is not None and not (isinstance(card_id, str) and _ID.match(card_id)):
            raise node.error(
                f"@card(id={card_id!r}): an id is 1-64 letters, digits, '_', '-' or '.'"
            )
        if title is not None and not isinstance(title, str):
            raise node.error(f"@card(title={title!r}): title must be a str")
        same = [d for d in node.decorators if isinstance(d, CardDecorator) and d is not self]
        if any(d.card_id == self.card_id for d in same):
            raise node.error(
                f"two @card decorators have the id {self.card_id!r}",
                hint='give each card of the step its own id: @card(id="...")',
            )
        self._dag = [
            DagStep(name, graph[name].type.value, tuple(graph[name].out)) for name in graph.order
        ]

    def task_pre_step(self, ctx: TaskContext) -> None:
        _collector(ctx)._add(
            self.card_id, self.card_type, explicit_id=self.attributes["id"] is not None
        )

    def task_finished(self, ctx: TaskContext, ok: bool) -> None:
        if not ok:
            return  # only successful tasks keep cards
        try:
            descriptor = self._write(ctx, _collector(ctx)[self.card_id])
        except Exception as exc:  # noqa: BLE001 - a report must never fail its task
            print(f"card {self.card_id!r} could not be written: {exc!r}", file=sys.stderr)
            return
        ctx.extras.setdefault("cards", []).append(descriptor)

    # rendering -----------------------------------------------------------------------
    def _title(self, ctx: TaskContext) -> str:
        if self.attributes["title"]:
            return str(self.attributes["title"])
        explicit = self.attributes["id"]
        return f"{ctx.spec.step_name}: {explicit}" if explicit else str(ctx.spec.step_name)

    def render(self, ctx: TaskContext, handle: CardHandle) -> str:
        """The card's HTML document for the task ``ctx`` with ``handle``'s components."""
        spec = ctx.spec
        sections = render_components(handle.components)
        kind = self.attributes["type"]
        if kind == "default" or (kind is None and not handle.components):
            sections.extend(default_sections(self._facts(ctx)))
        if not sections:
            sections = [
                '<p class="muted">This card is empty: append components to it with '
                "<code>current.card.append(...)</code> in the step.</p>"
            ]
        pathspec = f"{spec.flow_name}/{spec.run_id}/{spec.step_name}/{spec.task_id}"
        rendered = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        subtitle = f"{pathspec} · attempt {spec.attempt} · {self.card_type} card · {rendered}"
        return document(self._title(ctx), subtitle, sections)

    def _write(self, ctx: TaskContext, handle: CardHandle) -> dict[str, Any]:
        data = self.render(ctx, handle).encode("utf-8")
        key = hashlib.sha256(data).hexdigest()
        ctx.store.put(key, [data])
        return {
            "id": self.card_id,
            "type": self.card_type,
            "key": key,
            "title": self._title(ctx),
            "size": len(data),
        }

    def _facts(self, ctx: TaskContext) -> TaskFacts:
        spec = ctx.spec
        records = _artifact_records(ctx)
        params = set(spec.param_names)
        return TaskFacts(
            pathspec=f"{spec.flow_name}/{spec.run_id}/{spec.step_name}/{spec.task_id}",
            step_name=spec.step_name,
            attempt=spec.attempt,
            started=_collector(ctx).started,
            finished=time.time(),
            index=spec.index,
            parameters=[r for r in records if r.name in params],
            artifacts=[r for r in records if r.name not in params],
            dag=list(self._dag),
        )


def _collector(ctx: TaskContext) -> CardCollector:
    """The task's ``current.card``, made by its first ``@card`` hook."""
    collector = ctx.current_names.get("card")
    if not isinstance(collector, CardCollector):
        spec = ctx.spec
        collector = CardCollector((spec.flow_name, spec.run_id, spec.task_id, spec.attempt))
        ctx.current_names["card"] = collector
    return collector


def _artifact_records(ctx: TaskContext) -> list[ArtifactRecord]:
    """The records the task persisted. The task hands them over as ``ctx.artifacts`` once
    they are; otherwise they are rebuilt the way the task persisted them (the inherited ones
    are records already; the step's own values are encoded again, not stored, for the preview
    and size). Never unpickles anything."""
    if ctx.artifacts is not None:
        return list(ctx.artifacts.values())
    from shipyard.store.serialize import encode

    inherited = ctx.flow.__dict__.get("_data")
    records: dict[str, ArtifactRecord] = {}
    if inherited is not None:
        records.update((name, inherited[name]) for name in inherited)
    for name, value in list(ctx.flow.__dict__.items()):
        if not name.startswith("_"):
            records[name] = encode(value, name=name).record(name)
    return list(records.values())


@overload
def card(func: F) -> F: ...
@overload
def card(
    *, type: str | None = None, id: str | None = None, title: str | None = None
) -> CardDecorator: ...
def card(func: F | None = None, **attributes: Any) -> F | CardDecorator:
    """``@card`` or ``@card(type="default"|"blank", id="...", title="...")`` on a step."""
    if func is not None and callable(func):
        return CardDecorator()(func)
    return CardDecorator(**attributes)


__all__ = ["CARD_TYPES", "DEFAULT_ID", "CardDecorator", "card"]
