"""Documents split at their headings: Markdown, reStructuredText (Sphinx sources included) and
HTML become a list of :class:`Section` — a heading path and the plain text under it, up to the
next heading — so that no chunk ever crosses a section and each carries where it came from.

>>> [(s.heading_path, s.text) for s in split_sections("# A\\nx\\n## B\\ny", "md")]
[(('A',), 'x'), (('A', 'B'), 'y')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any


@dataclass(frozen=True)
class Section:
    """The text under one heading; ``heading_path`` runs from the top-level heading down."""

    heading_path: tuple[str, ...]
    text: str


class _Outline:
    """Collects sections while a parser walks a document: a stack of (level, heading)."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.stack: list[tuple[int, str]] = []
        self.lines: list[str] = []

    def heading(self, level: int, title: str) -> None:
        self.flush()
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, title))

    def flush(self) -> None:
        text = _tidy("\n".join(self.lines))
        self.lines = []
        if text:
            self.sections.append(Section(tuple(t for _, t in self.stack), text))

    def done(self) -> list[Section]:
        self.flush()
        return self.sections


def _tidy(text: str) -> str:
    """Trailing spaces off, runs of blank lines down to one, no blank lines at the ends."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n")


def split_sections(text: str, kind: str) -> list[Section]:
    """``text`` of format ``kind`` ("md", "rst", "html" or "txt") split at its headings."""
    if kind == "md":
        return _markdown(text)
    if kind == "rst":
        return _rst(text)
    if kind == "html":
        return html_sections(text)[0]
    return _Outline().done() if not text.strip() else [Section((), _tidy(text))]


# -- Markdown -----------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _markdown(text: str) -> list[Section]:
    outline = _Outline()
    lines = text.splitlines()
    fence: str | None = None
    for i, line in enumerate(lines):
        if fence is not None:
            outline.lines.append(line)
            if line.strip().startswith(fence):
                fence = None
            continue
        match = _FENCE.match(line)
        if match:
            fence = match.group(1)
            outline.lines.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            outline.heading(len(atx.group(1)), _md_inline(atx.group(2)))
            continue
        setext = _SETEXT.match(line)
        if (
            setext
            and outline.lines
            and outline.lines[-1].strip()
            and (i < 2 or not lines[i - 2].strip())  # a one-line paragraph above it
        ):
            title = outline.lines.pop()
            outline.heading(1 if setext.group(1)[0] == "=" else 2, _md_inline(title.strip()))
            continue
        outline.lines.append(_md_inline(line))
    return outline.done()


def _md_inline(line: str) -> str:
    """Links and images reduced to their text (the URL is noise for search)."""
    return _MD_LINK.sub(r"\1", line)


# -- reStructuredText ---------------------------------------------------------------------

_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")
_ROLE = re.compile(r":[\w:.+-]+:`([^`]*?)`")
_REF = re.compile(r"`([^`<]*?)\s*<[^>]*>`_{1,2}")
_LITERAL = re.compile(r"``(.+?)``")
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:.+-]+)::\s*(.*)$")
_COMMENT = re.compile(r"^(\s*)\.\.(\s|$)")
_OPTION = re.compile(r"^\s+:[\w-]+:(\s|$)")
#: directives whose whole block is left out: no prose in them
_DROP = {"index", "toctree", "highlight", "sectionauthor", "moduleauthor", "testsetup", "raw",
         "currentmodule", "tabularcolumns"}  # fmt: skip
#: a document-wide field before the first heading (``:tocdepth: 2``, ``:orphan:``)
_DOCINFO = re.compile(r"^:[\w-]+:(\s.*)?$")


def _rst_role(match: re.Match[str]) -> str:
    text = match.group(1)
    target = re.match(r"(.*?)\s*<[^>]*>$", text)
    if target and target.group(1):
        return target.group(1)
    return text.lstrip("~!")


def _rst_inline(line: str) -> str:
    line = _ROLE.sub(_rst_role, line)
    line = _REF.sub(r"\1", line)
    return _LITERAL.sub(r"\1", line)


def _rst(text: str) -> list[Section]:
    outline = _Outline()
    styles: list[tuple[str, bool]] = []  # adornment styles in order of appearance = levels
    lines = text.splitlines()
    skip_indent: int | None = None  # inside a dropped directive or a comment block
    options = False  # right after a directive line
    i = 0
    while i < len(lines):
        line = lines[i]
        if skip_indent is not None:
            if not line.strip() or len(line) - len(line.lstrip()) > skip_indent:
                i += 1
                continue
            skip_indent = None
        title, style, used = _rst_title(lines, i)
        if title is not None and style is not None:
            if style not in styles:
                styles.append(style)
            outline.heading(styles.index(style) + 1, _rst_inline(title))
            i += used
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            indent, name, args = directive.groups()
            if name in _DROP:
                skip_indent = len(indent)
            elif args:
                outline.lines.append(f"{indent}{_rst_inline(args)}")
            options = True
            i += 1
            continue
        comment = _COMMENT.match(line)
        if comment:  # a comment or a hyperlink target: `.. _label:`
            skip_indent = len(comment.group(1))
            i += 1
            continue
        if not outline.stack and _DOCINFO.match(line):
            i += 1
            continue
        if options and _OPTION.match(line):  # a directive's options: `:noindex:`
            i += 1
            continue
        options = False
        outline.lines.append(_rst_inline(line))
        i += 1
    return outline.done()


def _rst_title(lines: list[str], i: int) -> tuple[str | None, tuple[str, bool] | None, int]:
    """A section title at line ``i``: (title, style, lines used), or (None, None, 0)."""
    line = lines[i]
    over = _ADORNMENT.match(line)
    if over and i + 2 < len(lines):
        title, closing = lines[i + 1], lines[i + 2]
        if title.strip() and closing.rstrip() == line.rstrip() and not _ADORNMENT.match(title):
            return title.strip(), (over.group(1), True), 3
    if i + 1 < len(lines) and line.strip() and not line[0].isspace() and not over:
        under = _ADORNMENT.match(lines[i + 1])
        if under and len(lines[i + 1].rstrip()) >= len(line.rstrip()):
            if i == 0 or not lines[i - 1].strip():
                return line.strip(), (under.group(1), False), 2
    return None, None, 0


# -- HTML ---------------------------------------------------------------------------------

_BLOCK = {
    "p", "div", "section", "article", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr",
    "pre", "blockquote", "br", "hr", "figure", "figcaption", "main", "aside", "h1", "h2",
    "h3", "h4", "h5", "h6", "td", "th",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "noscript", "template", "nav", "header", "footer", "head"}
#: navigation a Sphinx (or similar) page wraps round its content
_SKIP_CLASSES = {"headerlink", "sphinxsidebar", "related", "footer", "clearer", "skip-link"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class _HTMLSections(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.outline = _Outline()
        self.meta: dict[str, str] = {}
        self.page_title = ""
        self.in_title = False
        self.skip: list[str] = []  # open elements of the subtree being skipped
        self.heading: tuple[int, list[str]] | None = None
        self.pre = 0
        self.buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "meta" and found.get("name") and found.get("content") is not None:
            self.meta[str(found["name"]).lower()] = str(found["content"])
        if tag == "title":
            self.in_title = True
        if self.skip:
            if tag not in _VOID:
                self.skip.append(tag)
            return
        classes = set((found.get("class") or "").split())
        if tag in _SKIP_TAGS or classes & _SKIP_CLASSES or found.get("role") == "navigation":
            if tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _BLOCK:
            self._break()
        if tag == "pre":
            self.pre += 1
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self._flush_text()
            self.heading = (int(tag[1]), [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if self.skip:
            if tag in self.skip:  # close up to the matching open tag (forgives bad nesting)
                while self.skip and self.skip.pop() != tag:
                    pass
            return
        if self.heading and tag == f"h{self.heading[0]}":
            level, parts = self.heading
            self.heading = None
            title = " ".join("".join(parts).split())
            if title:
                self.outline.heading(level, title)
            return
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _BLOCK:
            self._break()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.page_title += data
        if self.skip:
            return
        if self.heading is not None:
            self.heading[1].append(data)
        elif self.pre:
            self.buffer.append(data)
        else:
            self.buffer.append(re.sub(r"\s+", " ", data))

    def _break(self) -> None:
        if self.heading is None:
            self._flush_text()

    def _flush_text(self) -> None:
        text = "".join(self.buffer)
        self.buffer = []
        if self.pre:
            self.outline.lines.extend(text.strip("\n").splitlines())
        elif text.strip():
            self.outline.lines.append(text.strip())
        self.outline.lines.append("")


def html_sections(text: str) -> tuple[list[Section], str, dict[str, Any]]:
    """An HTML page's sections, its ``<title>`` and its ``<meta name=... content=...>``."""
    parser = _HTMLSections()
    parser.feed(text)
    parser.close()
    parser._flush_text()
    return parser.outline.done(), " ".join(parser.page_title.split()), dict(parser.meta)
