"""A small, safe Markdown subset rendered to HTML.

Supported: ATX headings (``#`` to ``######``), paragraphs, ``**strong**``/``__strong__``,
``*emphasis*``/``_emphasis_``, inline ``code``, fenced code blocks (```), ``-``/``*``/``+``
and ``1.`` lists, ``>`` quotes, ``---`` rules and ``[links](https://...)``. Everything else is
text: every ``<``, ``>``, ``&`` and quote the user wrote is escaped, so no HTML (and no script)
passes through. Links keep only ``http://`` and ``https://`` targets; any other scheme
(``javascript:``, ``data:``) shows the link text without a link.
"""

from __future__ import annotations

import html
import re

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
_BULLET = re.compile(r"^[ \t]*[-*+][ \t]+(.*)$")
_ORDERED = re.compile(r"^[ \t]*(\d{1,9})[.)][ \t]+(.*)$")
_QUOTE = re.compile(r"^[ \t]*>[ \t]?(.*)$")
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$")

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^()\s]+)\)")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.S)
_EM_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])", re.S)
_EM_UNDER = re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])", re.S)
_SLOT = re.compile("\x00(\\d+)\x00")


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def safe_url(url: str) -> str | None:
    """``url`` if it is an absolute http(s) address, else None."""
    url = url.strip()
    if re.match(r"^https?://[^\s/?#]+", url, re.I) and not re.search(r"[\x00-\x20<>\"'`]", url):
        return url
    return None


def inline(text: str) -> str:
    """Inline Markdown (code, links, strong, emphasis) of one block, as escaped HTML."""
    slots: list[str] = []

    def keep(fragment: str) -> str:
        slots.append(fragment)
        return f"\x00{len(slots) - 1}\x00"

    def code(match: re.Match[str]) -> str:
        return keep(f"<code>{_escape(match.group(2).strip())}</code>")

    def link(match: re.Match[str]) -> str:
        label = _emphasis(_escape(match.group(1)))
        url = safe_url(match.group(2))
        if url is None:
            return keep(label)
        return keep(f'<a href="{_escape(url)}" rel="noopener noreferrer nofollow">{label}</a>')

    text = text.replace("\x00", "")
    text = _CODE_SPAN.sub(code, text)
    text = _LINK.sub(link, text)
    text = _emphasis(_escape(text))
    while _SLOT.search(text):  # a link label may itself hold a code span
        text = _SLOT.sub(lambda m: slots[int(m.group(1))], text)
    return text


def _emphasis(escaped: str) -> str:
    escaped = _STRONG.sub(lambda m: f"<strong>{m.group(2)}</strong>", escaped)
    escaped = _EM_STAR.sub(lambda m: f"<em>{m.group(1)}</em>", escaped)
    return _EM_UNDER.sub(lambda m: f"<em>{m.group(1)}</em>", escaped)


def _list(lines: list[str], start: int, pattern: re.Pattern[str], tag: str) -> tuple[str, int]:
    items: list[str] = []
    i = start
    first_number = None
    while i < len(lines):
        match = pattern.match(lines[i])
        if match:
            if tag == "ol" and first_number is None:
                first_number = int(match.group(1))
            items.append(match.group(match.lastindex or 1))
        elif lines[i].strip() and items and lines[i][:1] in " \t":
            items[-1] += " " + lines[i].strip()  # a continuation line of the item
        else:
            break
        i += 1
    body = "".join(f"<li>{inline(item)}</li>" for item in items)
    attrs = f' start="{first_number}"' if tag == "ol" and first_number not in (None, 1) else ""
    return f"<{tag}{attrs}>{body}</{tag}>", i


def _starts_block(line: str) -> bool:
    return bool(
        not line.strip()
        or _HEADING.match(line)
        or _FENCE.match(line)
        or _BULLET.match(line)
        or _ORDERED.match(line)
        or _QUOTE.match(line)
        or _RULE.match(line)
    )


def markdown_to_html(text: str) -> str:
    """Render the Markdown subset described in the module docstring to an HTML fragment."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(4).split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if not line.strip():
            i += 1
        elif fence:
            marker, body = fence.group(1), []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            i += 1  # the closing fence (or the end of the text)
            out.append(f"<pre><code>{_escape(chr(10).join(body))}</code></pre>")
        elif heading := _HEADING.match(line):
            level = len(heading.group(1))
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
            i += 1
        elif _RULE.match(line):
            out.append("<hr>")
            i += 1
        elif _BULLET.match(line):
            fragment, i = _list(lines, i, _BULLET, "ul")
            out.append(fragment)
        elif _ORDERED.match(line):
            fragment, i = _list(lines, i, _ORDERED, "ol")
            out.append(fragment)
        elif _QUOTE.match(line):
            quoted = []
            while i < len(lines) and (match := _QUOTE.match(lines[i])):
                quoted.append(match.group(1))
                i += 1
            out.append(f"<blockquote>{markdown_to_html(chr(10).join(quoted))}</blockquote>")
        else:
            para = [line.strip()]
            i += 1
            while i < len(lines) and not _starts_block(lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{inline(' '.join(para))}</p>")
    return "\n".join(out)


__all__ = ["inline", "markdown_to_html", "safe_url"]
