"""Graph validation: each rule's error names the step, the file and the line, and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.flow.exceptions import GraphError
from shipyard.flow.graph import NodeType
from shipyard.flow.loader import load_flow
from shipyard.testing import write_flow

HEAD = "from shipyard import FlowSpec, step, retry, catch, timeout, resources\n\n"


def graph_of(body: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_flow(write_flow(HEAD + body, tmp_path)).graph()


def error_of(body: str, tmp_path: Path) -> GraphError:
    with pytest.raises(GraphError) as info:
        graph_of(body, tmp_path)
    return info.value


def line_of(body: str, needle: str) -> int:
    lines = (HEAD + body).splitlines()
    return next(i + 1 for i, line in enumerate(lines) if needle in line)


CASES = {
    "missing_next": (
        """
class F(FlowSpec):
    @step
    def start(self):
        x = 1

    @step
    def end(self):
        pass
""",
        "start",
        "def start",
        "does not call self.next()",
    ),
    "unknown_step": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.trian)

    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "start",
        "self.next(self.trian)",
        "unknown step 'trian'",
    ),
    "unreachable": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def orphan(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "orphan",
        "def orphan",
        "unreachable",
    ),
    "foreach_without_join": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.train, foreach="items")

    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "start",
        'foreach="items"',
        "never joined",
    ),
    "join_wrong_arity": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "join",
        "def join",
        "takes no inputs",
    ),
    "join_without_split": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "join",
        "def join",
        "no split or foreach before it",
    ),
    "cycle": (
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.b)

    @step
    def b(self):
        self.next(self.a)

    @step
    def end(self):
        pass
""",
        "b",
        "self.next(self.a)\n\n    @step\n    def end",
        "cycle",
    ),
    "next_not_last": (
        """
class F(FlowSpec):
    @step
    def start(self):
        if True:
            self.next(self.end)
        else:
            self.next(self.end)

    @step
    def end(self):
        pass
""",
        "start",
        "            self.next(self.end)\n        else",
        "exactly once",
    ),
    "no_end": (
        """
class F(FlowSpec):
    @step
    def start(self):
        pass
""",
        None,
        None,
        "no 'end' step",
    ),
    "catch_on_foreach": (
        """
class F(FlowSpec):
    @catch(var="e")
    @step
    def start(self):
        self.items = [1]
        self.next(self.a, foreach="items")

    @step
    def a(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "start",
        "def start",
        "@catch cannot be used",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rule_names_step_file_and_line(case: str, tmp_path: Path) -> None:
    body, step, needle, message = CASES[case]
    err = error_of(body, tmp_path)
    assert message in str(err)
    assert err.step == step
    assert err.source_file is not None and err.source_file.endswith(".py")
    if needle is not None:
        first_line = needle.split("\n")[0]
        lines = (HEAD + body).splitlines()
        candidates = [i + 1 for i, line in enumerate(lines) if first_line in line]
        if "\n" in needle:  # disambiguate by what follows
            text = HEAD + body
            offset = text.index(needle)
            candidates = [text[:offset].count("\n") + 1]
        assert err.lineno in candidates, (err.lineno, candidates, str(err))
        assert f":{err.lineno}:" in str(err)
    assert err.hint is None or "hint:" in str(err)


def test_a_valid_graph_has_types_order_and_json(tmp_path: Path) -> None:
    graph = graph_of(
        """
class F(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.a, foreach="items")

    @retry(times=1)
    @step
    def a(self):
        \"\"\"Do the work.\"\"\"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        tmp_path,
    )
    assert graph.order == ["start", "a", "join", "end"]
    assert [n.type for n in graph] == [
        NodeType.FOREACH,
        NodeType.LINEAR,
        NodeType.JOIN,
        NodeType.END,
    ]
    data = graph.to_json("mod")
    assert data["steps"]["a"]["decorators"] == ["retry"]
    assert data["steps"]["a"]["doc"] == "Do the work."
    assert data["steps"]["join"]["in"] == ["a"]
    assert graph["start"].matching_join == "join"


def test_bad_decorator_arguments_are_graph_errors(tmp_path: Path) -> None:
    err = error_of(
        """
class F(FlowSpec):
    @timeout(seconds=-1)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        tmp_path,
    )
    assert err.step == "start" and "@timeout(seconds=-1)" in str(err)


FOREACH_FLOW = """
from shipyard import Parameter


class F(FlowSpec):
    size = Parameter("size", default=3)

    @step
    def start(self):
        self.grid = [1, 2]
        self.next(self.prep)

    @step
    def prep(self):
        self.next(self.a, foreach="NAME")

    @step
    def a(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_misspelt_foreach_name_is_caught_with_a_suggestion(tmp_path: Path) -> None:
    body = FOREACH_FLOW.replace("NAME", "gird")
    err = error_of(body, tmp_path)
    assert err.step == "prep"
    assert err.lineno == line_of(body, 'foreach="gird"')
    assert "foreach='gird' names an artifact that no step sets" in str(err)
    assert err.hint == 'did you mean foreach="grid"?'


@pytest.mark.parametrize(
    ("name", "setter"),
    [
        ("grid", ""),  # set in an earlier step
        ("size", ""),  # a parameter
        ("later", "\n        self.later = [1]"),  # set in this step
        ("pair", "\n        self.pair, self.other = [1], 2"),  # unpacked
        ("named", '\n        setattr(self, "named", [1])'),
        ("anything", "\n        setattr(self, 'any' + 'thing', [1])"),  # computed: not checked
    ],
)
def test_foreach_names_that_are_set_pass(tmp_path: Path, name: str, setter: str) -> None:
    body = FOREACH_FLOW.replace("NAME", name).replace(
        "    def prep(self):", "    def prep(self):" + setter
    )
    assert graph_of(body, tmp_path)["prep"].foreach == name


def test_a_foreach_name_with_nothing_close_says_how_to_set_it(tmp_path: Path) -> None:
    err = error_of(FOREACH_FLOW.replace("NAME", "zzz"), tmp_path)
    assert err.hint == "set self.zzz to a list (or any iterable) before self.next()"
