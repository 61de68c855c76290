"""Build the flow's DAG from its source and validate it before anything runs.

Transitions are read from the AST of each ``@step`` method (its ``self.next(...)`` call), so
errors point at the user's own file and line. Every rule is a small named check in
``RULES``; each raises :class:`GraphError` naming the step, the file, the line and a fix.
"""

from __future__ import annotations

import ast
import difflib
import enum
import inspect
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shipyard.flow.exceptions import GraphError


class NodeType(enum.StrEnum):
    LINEAR = "linear"  # one next step
    SPLIT = "split"  # static branches: self.next(self.a, self.b)
    FOREACH = "foreach"  # self.next(self.train, foreach="grid")
    JOIN = "join"  # takes `inputs` (its own transition may still branch or fan out)
    END = "end"


@dataclass
class Node:
    name: str
    func: Callable[..., Any]
    lineno: int
    source_file: str
    doc: str
    is_join: bool
    out: list[str] = field(default_factory=list)
    foreach: str | None = None
    next_lineno: int | None = None
    next_count: int = 0
    next_is_last: bool = True
    decorators: list[Any] = field(default_factory=list)
    # filled in by traversal
    inputs: list[str] = field(default_factory=list)
    split_parents: list[str] = field(default_factory=list)
    closes: str | None = None  # for a join: the split it closes
    matching_join: str | None = None  # for a split: its join

    @property
    def fans_out(self) -> bool:
        """Whether its transition opens a split (static branches or a foreach)."""
        return self.foreach is not None or len(self.out) > 1

    @property
    def type(self) -> NodeType:
        if self.name == "end":
            return NodeType.END
        if self.is_join:
            return NodeType.JOIN
        if self.foreach is not None:
            return NodeType.FOREACH
        if len(self.out) > 1:
            return NodeType.SPLIT
        return NodeType.LINEAR

    def error(self, message: str, hint: str | None = None, *, at_next: bool = False) -> GraphError:
        line = self.next_lineno if at_next and self.next_lineno else self.lineno
        return GraphError(
            f"step {self.name!r}: {message}",
            step=self.name,
            source_file=self.source_file,
            lineno=line,
            hint=hint,
        )


class Graph:
    """The validated DAG of a flow class."""

    def __init__(self, flow_cls: type) -> None:
        self.flow_cls = flow_cls
        self.flow_name = flow_cls.__name__
        self.nodes: dict[str, Node] = {}
        self.source_file = inspect.getsourcefile(flow_cls) or "<unknown>"
        #: decorators above the class (``@pypi_base``), see shipyard.flow.decorators
        self.flow_decorators: list[Any] = list(getattr(flow_cls, "_flow_decorators", []))
        for name, func in _step_functions(flow_cls):
            self.nodes[name] = _parse_node(name, func)
        for rule in RULES:
            rule(self)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes[name] for name in self.order)

    @property
    def order(self) -> list[str]:
        """Steps in a topological order, start first, ties in definition order."""
        indegree = {n: len(self.nodes[n].inputs) for n in self.nodes}
        ready = [n for n in self.nodes if indegree[n] == 0]
        result: list[str] = []
        while ready:
            name = ready.pop(0)
            result.append(name)
            for child in self.nodes[name].out:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        return result

    def to_json(self, module: str) -> dict[str, Any]:
        return {
            "flow": self.flow_name,
            "file": self.source_file,
            "module": module,
            "order": self.order,
            "steps": {
                node.name: {
                    "type": node.type.value,
                    "next": list(node.out),
                    "foreach": node.foreach,
                    "lineno": node.lineno,
                    "doc": node.doc,
                    "decorators": [d.name for d in node.decorators],
                    "in": list(node.inputs),
                }
                for node in self
            },
        }


def _step_functions(flow_cls: type) -> list[tuple[str, Callable[..., Any]]]:
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(flow_cls.__mro__):
        for name, value in vars(klass).items():
            if callable(value) and getattr(value, "is_step", False):
                found[name] = value
    return sorted(found.items(), key=lambda item: _lineno(item[1]))


def _lineno(func: Callable[..., Any]) -> int:
    try:
        return inspect.getsourcelines(func)[1]
    except (OSError, TypeError):
        return 0


def _parse_node(name: str, func: Callable[..., Any]) -> Node:
    source_file = inspect.getsourcefile(func) or "<unknown>"
    lines, first = inspect.getsourcelines(func)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    fdef = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    arg_count = len(fdef.args.args)
    doc = (inspect.getdoc(func) or "").strip().split("\n")[0]
    node = Node(
        name=name,
        func=func,
        lineno=first + fdef.lineno - 1,
        source_file=source_file,
        doc=doc,
        is_join=arg_count == 2,
        decorators=list(getattr(func, "decorators", [])),
    )
    if arg_count not in (1, 2):
        raise node.error(
            f"a step takes (self) or, for a join, (self, inputs); this one takes {arg_count}",
            hint=f"def {name}(self): ... or def {name}(self, inputs): ...",
        )
    calls = [
        c
        for c in ast.walk(fdef)
        if isinstance(c, ast.Call)
        and isinstance(c.func, ast.Attribute)
        and c.func.attr == "next"
        and isinstance(c.func.value, ast.Name)
        and c.func.value.id == "self"
    ]
    node.next_count = len(calls)
    if calls:
        call = calls[-1]
        node.next_lineno = first + calls[0].lineno - 1
        last = fdef.body[-1]
        node.next_is_last = isinstance(last, ast.Expr) and last.value is call and len(calls) == 1
        for arg in call.args:
            if not (
                isinstance(arg, ast.Attribute)
                and isinstance(arg.value, ast.Name)
                and arg.value.id == "self"
            ):
                raise node.error(
                    "self.next() takes steps as self.<step> attributes",
                    hint="write self.next(self.train), not a string or a variable",
                    at_next=True,
                )
            node.out.append(arg.attr)
        for kw in call.keywords:
            if kw.arg == "foreach":
                if not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)):
                    raise node.error(
                        "foreach= takes the *name* of an artifact as a string literal",
                        hint='self.next(self.train, foreach="grid")',
                        at_next=True,
                    )
                node.foreach = kw.value.value
            else:
                raise node.error(
                    f"self.next() got an unknown keyword {kw.arg!r}",
                    hint="the only keyword is foreach=",
                    at_next=True,
                )
    return node


# --- rules -----------------------------------------------------------------------------


def check_start_and_end(graph: Graph) -> None:
    for required in ("start", "end"):
        if required not in graph.nodes:
            raise GraphError(
                f"flow {graph.flow_name} has no {required!r} step",
                source_file=graph.source_file,
                hint=f"add a method `@step\n    def {required}(self): ...`",
            )
    if graph.nodes["start"].is_join:
        raise graph.nodes["start"].error("the start step cannot take inputs")


def check_next_calls(graph: Graph) -> None:
    for node in graph.nodes.values():
        if node.name == "end":
            if node.next_count:
                raise node.error("the end step must not call self.next()", at_next=True)
            continue
        if node.next_count == 0:
            raise node.error(
                "it does not call self.next()",
                hint="end the step with self.next(self.<next step>)",
            )
        if not node.next_is_last:
            raise node.error(
                "self.next() must be called exactly once, as the step's last statement",
                hint="compute the choice first; a step's transitions are fixed by its source",
                at_next=True,
            )


def check_targets_exist(graph: Graph) -> None:
    for node in graph.nodes.values():
        for target in node.out:
            if target not in graph.nodes:
                close = difflib.get_close_matches(target, graph.nodes, n=1)
                raise node.error(
                    f"self.next() names an unknown step {target!r}",
                    hint=f"did you mean self.{close[0]}?"
                    if close
                    else "is it decorated with @step?",
                    at_next=True,
                )
        if node.foreach is not None and len(node.out) != 1:
            raise node.error(
                "a foreach transition goes to exactly one step",
                hint=f'self.next(self.{node.out[0] if node.out else "step"}, foreach="...")',
                at_next=True,
            )
        if len(set(node.out)) != len(node.out):
            raise node.error("self.next() names the same step twice", at_next=True)


def check_foreach_names(graph: Graph) -> None:
    """``foreach="name"`` names an artifact some step sets (``self.name = ...``) or a
    parameter: a misspelt name fails here, with the names it may have meant, not at run
    time after the steps before it. Skipped when the flow sets attributes by computed name
    (``setattr(self, name, ...)``, ``self.__dict__``), since then anything may be set."""
    wanted = [node for node in graph.nodes.values() if node.foreach is not None]
    if not wanted:
        return
    assigned = _assigned_names(graph.flow_cls)
    if assigned is None:
        return
    for node in wanted:
        name = node.foreach or ""
        if name in assigned or hasattr(graph.flow_cls, name):
            continue
        known = sorted(
            assigned
            | {n for n in dir(graph.flow_cls) if not n.startswith("_") and n not in graph.nodes}
        )
        close = difflib.get_close_matches(name, known, n=1)
        raise node.error(
            f"foreach={name!r} names an artifact that no step sets",
            hint=f'did you mean foreach="{close[0]}"?'
            if close
            else f"set self.{name} to a list (or any iterable) before self.next()",
            at_next=True,
        )


def _assigned_names(flow_cls: type) -> set[str] | None:
    """Every ``self.<name>`` assigned in the source of the flow's classes (any method), or
    None when that cannot be known (a class without source, a name set by computation)."""
    names: set[str] = set()
    for klass in flow_cls.__mro__:
        if klass is object or klass.__module__.split(".")[0] == "shipyard":
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            return None
        for item in ast.walk(tree):
            if isinstance(item, ast.Attribute) and _is_self(item.value):
                if item.attr == "__dict__":
                    return None
                if isinstance(item.ctx, ast.Store | ast.Del):
                    names.add(item.attr)
            elif (
                isinstance(item, ast.Call)
                and isinstance(item.func, ast.Name)
                and item.func.id in ("setattr", "vars")
                and item.args
                and _is_self(item.args[0])
            ):
                label = item.args[1] if item.func.id == "setattr" and len(item.args) > 1 else None
                if not (isinstance(label, ast.Constant) and isinstance(label.value, str)):
                    return None
                names.add(label.value)
    return names


def _is_self(item: ast.AST) -> bool:
    return isinstance(item, ast.Name) and item.id == "self"


def check_inputs(graph: Graph) -> None:
    for node in graph.nodes.values():
        node.inputs = []
    for node in graph.nodes.values():
        for target in node.out:
            graph.nodes[target].inputs.append(node.name)


def check_reachable(graph: Graph) -> None:
    seen: set[str] = set()
    todo = ["start"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.nodes[name].out)
    for node in graph.nodes.values():
        if node.name not in seen:
            raise node.error(
                "it is unreachable from start",
                hint=f"add self.{node.name} to some step's self.next(), or remove it",
            )


def check_no_cycles(graph: Graph) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for child in graph.nodes[name].out:
            if state.get(child) == 1:
                cycle = " -> ".join([*path[path.index(child) :], child])
                raise graph.nodes[name].error(
                    f"the transitions form a cycle: {cycle}",
                    hint="a flow is a DAG; loop inside a step or use foreach",
                    at_next=True,
                )
            if child not in state:
                visit(child, [*path, child])
        state[name] = 2

    visit("start", ["start"])


def check_joins(graph: Graph) -> None:
    """Every split is closed by a join of the right arity; no step merges without a join."""
    for node in graph.nodes.values():
        if len(node.inputs) > 1 and not node.is_join:
            raise node.error(
                f"{len(node.inputs)} steps lead here ({', '.join(node.inputs)}) "
                "but it takes no inputs",
                hint=f"make it a join: def {node.name}(self, inputs): ...",
            )
    _assign_split_parents(graph)
    for node in graph.nodes.values():
        if not node.is_join:
            continue
        if node.closes is None:
            raise node.error(
                "it takes inputs but there is no split or foreach before it to join",
                hint=f"def {node.name}(self): ... (no inputs)",
            )
        split = graph.nodes[node.closes]
        if split.foreach is None and len(node.inputs) < 2:
            raise node.error(
                f"it joins the branches of {split.name!r} but only one branch leads here",
                hint=f"every branch of {split.name!r} must end in self.next(self.{node.name})",
            )
    end = graph.nodes["end"]
    if end.split_parents:
        split = graph.nodes[end.split_parents[-1]]
        kind = "foreach" if split.foreach is not None else "split"
        raise split.error(
            f"its {kind} is never joined before end",
            hint="add a join step: def join(self, inputs): ... self.next(self.end)",
            at_next=True,
        )


def _assign_split_parents(graph: Graph) -> None:
    seen: set[str] = set()

    def visit(node: Node, parents: list[str]) -> None:
        if node.name in seen:
            if node.is_join:
                return
            if node.split_parents != parents:
                raise node.error("it is reached from two different branches without a join")
            return
        seen.add(node.name)
        if node.is_join:
            if not parents:
                node.split_parents = []
            else:
                node.closes = parents[-1]
                graph.nodes[parents[-1]].matching_join = node.name
                parents = parents[:-1]
                node.split_parents = parents
        else:
            node.split_parents = parents
        child_parents = [*parents, node.name] if node.fans_out else parents
        for child in node.out:
            visit(graph.nodes[child], child_parents)

    visit(graph.nodes["start"], [])
    # every step leading into a join must be inside the split that join closes
    for node in graph.nodes.values():
        if not node.is_join or node.closes is None:
            continue
        for parent_name in node.inputs:
            parent = graph.nodes[parent_name]
            inner = parent.name if parent.fans_out else None
            innermost = inner or (parent.split_parents[-1] if parent.split_parents else None)
            if innermost != node.closes:
                raise node.error(
                    f"it joins branches of different splits ({parent_name!r} is not in a branch "
                    f"of {node.closes!r})",
                    hint="close the inner split with its own join first",
                )


def conda_refusal(name: str) -> str:
    """Why ``@conda`` / ``@conda_base`` are refused, and what to use instead."""
    instead = "@pypi_base(packages={...})" if name == "conda_base" else "@pypi(packages={...})"
    return (
        f"@{name} is not supported: no conda channel is reachable here; use {instead} "
        "(see README: Per-step environments)"
    )


def check_no_conda(graph: Graph) -> None:
    """Refuse ``@conda`` and ``@conda_base`` before anything runs (no conda channel is
    reachable here); ``@pypi`` builds per-step environments instead."""
    for deco in graph.flow_decorators:
        if deco.name == "conda_base":
            raise GraphError(
                f"flow {graph.flow_name}: {conda_refusal('conda_base')}",
                source_file=graph.source_file,
            )
    for node in graph.nodes.values():
        if any(d.name == "conda" for d in node.decorators):
            raise node.error(conda_refusal("conda"))


RULES: list[Callable[[Graph], None]] = [
    check_no_conda,
    check_start_and_end,
    check_next_calls,
    check_targets_exist,
    check_foreach_names,
    check_inputs,
    check_no_cycles,
    check_reachable,
    check_joins,
]
