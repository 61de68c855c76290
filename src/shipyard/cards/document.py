"""The card as one self-contained HTML document: inline CSS, images as ``data:`` URIs, charts
as inline SVG; no script and nothing fetched, so a card opens offline and under the strictest
content security policy (``default-src 'none'``)."""

from __future__ import annotations

from collections.abc import Iterable

from shipyard.cards.components import Component, escape, render_component

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2328; background: #f6f8fa; }
main { max-width: 1080px; margin: 0 auto; padding: 16px 24px 32px; }
header.card-head { border-bottom: 1px solid #d0d7de; margin-bottom: 16px; }
header.card-head h1 { font-size: 20px; margin: 8px 0 2px; }
header.card-head p { margin: 0 0 10px; color: #59636e; }
section.component { background: #fff; border: 1px solid #d0d7de; border-radius: 6px;
  padding: 12px 16px; margin: 0 0 12px; overflow-x: auto; }
h1, h2, h3, h4, h5, h6 { line-height: 1.25; margin: 12px 0 8px; }
h2.section { font-size: 16px; margin-top: 4px; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; border-radius: 4px; padding: 8px;
  overflow-x: auto; white-space: pre-wrap; word-break: break-word; margin: 6px 0; }
code { font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
p code, li code { background: #eff1f3; padding: 1px 4px; border-radius: 4px; }
blockquote { margin: 8px 0; padding: 0 12px; border-left: 4px solid #d0d7de; color: #59636e; }
table.data { border-collapse: collapse; font-size: 13px; }
table.data caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
table.data th, table.data td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left;
  vertical-align: top; }
table.data th { background: #f6f8fa; }
table.data tr.current td { background: #fff8c5; font-weight: 600; }
.more, .muted { color: #59636e; }
.more { font-style: italic; margin: 6px 0 0; }
figure.image { margin: 0; }
figure.image img { max-width: 100%; height: auto; }
figcaption { color: #59636e; font-size: 12px; }
.error-box { border: 1px solid #cf222e; background: #ffebe9; border-radius: 6px;
  padding: 8px 12px; color: #82071e; }
.error-box pre { background: #fff; }
.chart-svg { max-width: 100%; height: auto; font-size: 11px; fill: #1f2328; }
.chart-svg .grid { stroke: #eaeef2; }
.chart-svg .axis { stroke: #8c959f; }
.chart-svg .chart-title { font-size: 14px; font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { color: #59636e; }
dl.facts dd { margin: 0; }
ol.dag { list-style: none; padding: 0; margin: 0; }
ol.dag li { padding: 2px 0; }
ol.dag li.current { font-weight: 600; }
ol.dag .kind { color: #59636e; font-size: 12px; }
"""


def document(title: str, subtitle: str, sections: Iterable[str]) -> str:
    """A complete HTML page: the head, a header (``title``, ``subtitle``: plain text), and
    each of ``sections`` (HTML fragments) in a box of its own."""
    body = "\n".join(f'<section class="component">{s}</section>' for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f'<header class="card-head"><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>\n'
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def render_components(components: Iterable[Component]) -> list[str]:
    """Each component's HTML; one that fails becomes an error box in its place."""
    return [render_component(c) for c in components]


__all__ = ["CSS", "document", "render_components"]
