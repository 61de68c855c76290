"""Each component's HTML, escaping first: user text never becomes markup."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

import shipyard.cards
from shipyard.cards import Artifact, BarChart, Component, Image, LineChart, Markdown, Table
from shipyard.cards.components import render_component
from shipyard.cards.markdown import markdown_to_html


def test_markdown_escapes_html_and_script() -> None:
    html = Markdown('<script>alert("x")</script>\n\n<img src=x onerror=alert(1)>').render()
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_markdown_subset() -> None:
    html = markdown_to_html(
        "# Title\n## Sub *it*\n\nSome **bold**, _em_, `a<b` and snake_case_name.\n"
        "- one\n- two\n\n3. three\n4. four\n\n> quoted\n\n```\n<raw> **not bold**\n```\n---"
    )
    assert "<h1>Title</h1>" in html and "<h2>Sub <em>it</em></h2>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html
    assert "<code>a&lt;b</code>" in html and "snake_case_name" in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert '<ol start="3"><li>three</li><li>four</li></ol>' in html
    assert "<blockquote><p>quoted</p></blockquote>" in html
    assert "<pre><code>&lt;raw&gt; **not bold**</code></pre>" in html
    assert "<hr>" in html


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[ok](https://example.com/a?b=1&c=2)", '<a href="https://example.com/a?b=1&amp;c=2"'),
        ("[ok](http://example.com)", '<a href="http://example.com"'),
        ("[bad](javascript:alert)", "<p>bad</p>"),
        ("[bad](data:text/html,hi)", "<p>bad</p>"),
        ("[bad](//evil.example)", "<p>bad</p>"),
        ('[q](https://e.com/"onmouseover="x)', "<p>q</p>"),
        ("[*x*](https://e.com/*y*)", '<a href="https://e.com/*y*" rel'),
    ],
)
def test_markdown_links_are_http_only(source: str, expected: str) -> None:
    html = markdown_to_html(source)
    assert expected in html
    assert "javascript:" not in html and "data:" not in html and "<em>y" not in html


def test_table_from_rows_dicts_and_mapping() -> None:
    html = Table([[1, "<b>"], [2.123456789, None]], headers=["n", "<h>"]).render()
    assert "<th>n</th><th>&lt;h&gt;</th>" in html
    assert "<td>1</td><td>&lt;b&gt;</td>" in html and "<td>2.12346</td><td></td>" in html
    dicts = Table([{"a": 1}, {"b": 2, "a": 3}]).render()
    assert "<th>a</th><th>b</th>" in dicts
    assert "<tr><td>1</td><td></td></tr><tr><td>3</td><td>2</td></tr>" in dicts
    assert "<th>key</th><th>value</th>" in Table({"k": "v"}).render()


def test_table_caps_rows() -> None:
    html = Table([[i] for i in range(25)], max_rows=10).render()
    assert html.count("<tr>") == 10 and "… 15 more rows" in html
    assert "more row" not in Table([[1]], max_rows=1).render()


def test_table_from_dataframe_with_and_without_index() -> None:
    frame = pd.DataFrame({"x": range(30), "<y>": [f"v{i}" for i in range(30)]})
    html = Table(frame, max_rows=5).render()
    assert "<th>x</th><th>&lt;y&gt;</th>" in html and "… 25 more rows" in html
    indexed = Table.from_dataframe(frame.set_index("x")).render()
    assert "<th>x</th><th>&lt;y&gt;</th>" in indexed and "<td>29</td><td>v29</td>" in indexed


def test_table_cells_may_be_components() -> None:
    html = Table([[Markdown("**b**")]]).render()
    assert "<strong>b</strong>" in html


def test_image_from_bytes_and_figure(png: bytes) -> None:
    html = Image(png, label='a "plot"').render()
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="a &quot;plot', html)
    svg = Image(b'<svg xmlns="http://www.w3.org/2000/svg"></svg>').render()
    assert 'src="data:image/svg+xml;base64,' in svg
    assert "data:image/jpeg;" in Image(b"\xff\xd8\xff\xe0rest").render()

    class Figure:  # what matplotlib's Figure looks like to Image
        def savefig(self, target: Any, format: str, bbox_inches: str) -> None:
            assert format == "png"
            target.write(png)

    Figure.__module__ = "matplotlib.figure"
    assert "data:image/png;base64," in Image.from_matplotlib(Figure()).render()


@pytest.mark.parametrize(
    ("source", "message"),
    [(b"plain text", "not a PNG"), ("/tmp/x.png", "not a str"), (3, "got int")],
)
def test_bad_images_render_an_error_box(source: Any, message: str) -> None:
    html = render_component(Image(source))
    assert 'class="error-box"' in html and message in html


def test_artifact_preview_is_escaped() -> None:
    html = Artifact({"k": "<v>"}, name="cfg").render()
    assert "<code>cfg</code>" in html and "builtins.dict" in html
    assert "&lt;v&gt;" in html and "<v>" not in html


def test_line_chart_series_gaps_and_labels() -> None:
    html = LineChart(
        x=[0, 1, 2, 3],
        y={"<train>": [1.0, None, 0.5, 0.25], "valid": [1.0, 0.8, float("nan"), 0.4]},
        title="loss <1>",
        xlabel="epoch",
    ).render()
    # each series breaks at its gap; a lone point is a marker, not a line: 1 + 1 polylines
    assert html.count("<polyline") == 2
    assert "&lt;train&gt;" in html and "loss &lt;1&gt;" in html and "<train>" not in html
    assert "epoch" in html
    assert html.count("<circle") == 6
    categorical = LineChart({"mon": 1, "tue": 3, "wed": 2}).render()
    assert ">mon<" in categorical and "<polyline" in categorical


def test_bar_chart_grouped_and_negative() -> None:
    html = BarChart(x=["a", "b"], y={"s1": [1, -2], "s2": [3, 4]}).render()
    assert html.count("<rect x=") >= 4 and "s1: b = -2" in html
    assert "no data" in BarChart([]).render()


def test_bad_chart_data_renders_an_error_box() -> None:
    html = render_component(LineChart(x=[1, 2], y=[1, 2, 3]))
    assert 'class="error-box"' in html and "has 3 values but x has 2" in html


def test_a_failing_component_becomes_an_error_box() -> None:
    class Boom(Component):
        def render(self) -> str:
            raise ValueError("<boom>")

    html = render_component(Boom())
    assert "Boom could not be rendered" in html and "&lt;boom&gt;" in html


def test_public_names() -> None:
    assert shipyard.cards.__all__ == sorted(shipyard.cards.__all__)
    for name in shipyard.cards.__all__:
        assert getattr(shipyard.cards, name) is not None
