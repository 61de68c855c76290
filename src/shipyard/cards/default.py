"""The default card's sections: the task (timings, attempt, foreach index), the flow's
parameters, the step's place in the DAG, and the task's artifacts. Everything comes from the
artifact records written when the task persisted (type, size, preview): nothing is unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shipyard.cards.components import Table, escape, render_component
from shipyard.store.records import ArtifactRecord

#: characters of an artifact preview shown in the default card
PREVIEW_CHARS = 1000


@dataclass(frozen=True)
class DagStep:
    """One step of the flow's DAG as the default card lists it."""

    name: str
    kind: str  # NodeType value: linear, split, foreach, join, end
    out: tuple[str, ...] = ()


@dataclass
class TaskFacts:
    """What the default card shows about one task."""

    pathspec: str
    step_name: str
    attempt: int
    started: float  # epoch seconds
    finished: float
    index: int | None = None
    parameters: list[ArtifactRecord] = field(default_factory=list)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    dag: list[DagStep] = field(default_factory=list)


def size(num: int) -> str:
    """Bytes as a short human string: ``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{num} B"  # pragma: no cover


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _preview(record: ArtifactRecord) -> str:
    text = record.preview
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 1] + "…"
    return f'<pre class="preview">{escape(text)}</pre>'


def task_section(facts: TaskFacts) -> str:
    rows = [
        ("Task", facts.pathspec),
        ("Attempt", str(facts.attempt)),
        ("Started", _when(facts.started)),
        ("Finished", _when(facts.finished)),
        ("Duration", f"{max(facts.finished - facts.started, 0.0):.2f} s"),
    ]
    if facts.index is not None:
        rows.append(("Foreach index", str(facts.index)))
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<h2 class="section">Task</h2><dl class="facts" id="task-facts">{items}</dl>'


def parameters_section(parameters: Sequence[ArtifactRecord]) -> str:
    if not parameters:
        return '<h2 class="section">Parameters</h2><p class="muted">This flow has none.</p>'
    rows = [[p.name, p.preview] for p in sorted(parameters, key=lambda p: p.name)]
    table = render_component(Table(rows, headers=["name", "value"]))
    return f'<h2 class="section">Parameters</h2><div id="parameters">{table}</div>'


def dag_section(dag: Sequence[DagStep], current: str) -> str:
    if not dag:
        return ""
    items = []
    for step in dag:
        after = f" → {escape(', '.join(step.out))}" if step.out else ""
        mark = ' class="current" aria-current="step"' if step.name == current else ""
        here = " ◀ this step" if step.name == current else ""
        items.append(
            f"<li{mark}><code>{escape(step.name)}</code> "
            f'<span class="kind">({escape(step.kind)})</span>{after}{here}</li>'
        )
    return f'<h2 class="section">DAG</h2><ol class="dag" id="dag">{"".join(items)}</ol>'


def artifacts_section(artifacts: Sequence[ArtifactRecord]) -> str:
    if not artifacts:
        return '<h2 class="section">Artifacts</h2><p class="muted">This task stored none.</p>'
    rows = "".join(
        f'<tr data-artifact="{escape(a.name)}"><td><code>{escape(a.name)}</code></td>'
        f"<td><code>{escape(a.type_name)}</code></td><td>{escape(size(a.size))}</td>"
        f"<td>{_preview(a)}</td></tr>"
        for a in sorted(artifacts, key=lambda a: a.name)
    )
    return (
        '<h2 class="section">Artifacts</h2><div class="table-wrap"><table class="data" '
        'id="artifacts"><thead><tr><th>name</th><th>type</th><th>size</th><th>preview</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def default_sections(facts: TaskFacts) -> list[str]:
    """The default card's sections, in order."""
    sections = [
        task_section(facts),
        parameters_section(facts.parameters),
        dag_section(facts.dag, facts.step_name),
        artifacts_section(facts.artifacts),
    ]
    return [s for s in sections if s]


__all__ = ["DagStep", "TaskFacts", "default_sections", "size"]
