"""Documents read from a folder: Markdown, reStructuredText (``.rst``, Sphinx's ``.rst.txt``),
HTML and plain text, each with its metadata from YAML front matter (``---`` at the top) or, for
HTML, ``<meta name=... content=...>``. Front matter ``index: false`` or ``sensitive: true``
keeps a document out of the index, as ``exclude`` globs do.

>>> docs = load_documents("docs/", exclude=["drafts/*"])          # doctest: +SKIP
>>> docs[0].path, docs[0].type, docs[0].meta                       # doctest: +SKIP
('guide/intro.md', 'md', {'year': 2024})
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipyard.retrieval.errors import DocumentError
from shipyard.retrieval.sections import Section, html_sections, split_sections

#: file suffix -> document type
SUFFIXES = {
    ".md": "md",
    ".markdown": "md",
    ".rst": "rst",
    ".rst.txt": "rst",
    ".html": "html",
    ".htm": "html",
    ".txt": "txt",
}


@dataclass(frozen=True)
class Document:
    """One document: ``path`` relative to the folder it was read from (``/``-separated),
    ``type`` its format, ``text`` its plain text, ``meta`` its front matter. ``sections``
    are its headings and the text under each; left empty, they are parsed from ``text``
    by ``type`` when the document is chunked (so a hand-made Document may hold Markdown)."""

    path: str
    type: str
    title: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()

    def outline(self) -> tuple[Section, ...]:
        """The document's sections (parsed from ``text`` if none were given)."""
        if self.sections:
            return self.sections
        return tuple(split_sections(self.text, self.type))


def document_type(path: str) -> str | None:
    """The type of a file by its suffix (``.rst.txt`` is reStructuredText), or None."""
    lower = path.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return SUFFIXES[suffix]
    return None


def _excluded(relpath: str, exclude: Iterable[str]) -> bool:
    return any(
        fnmatch.fnmatchcase(relpath, pattern) or fnmatch.fnmatchcase(relpath, pattern + "/*")
        for pattern in exclude
    )


def load_documents(
    root: str | os.PathLike[str],
    exclude: Iterable[str] = (),
    *,
    types: Iterable[str] | None = None,
) -> list[Document]:
    """Every document under ``root`` (hidden files and folders skipped), sorted by path.

    ``exclude`` are globs on the path relative to ``root`` (``"whatsnew/*"``; a folder's name
    excludes what is under it); ``types`` keeps only those types (``{"rst", "md"}``). A
    document whose front matter says ``index: false`` or ``sensitive: true`` is left out."""
    base = Path(root)
    if not base.is_dir():
        raise DocumentError("is not a directory (load_documents reads a folder)", str(base))
    patterns = list(exclude)
    wanted = set(types) if types is not None else None
    docs: list[Document] = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            full = Path(folder) / name
            relpath = full.relative_to(base).as_posix()
            kind = document_type(name)
            if kind is None or (wanted is not None and kind not in wanted):
                continue
            if _excluded(relpath, patterns):
                continue
            doc = read_document(full, relpath, kind)
            if doc is not None:
                docs.append(doc)
    docs.sort(key=lambda d: d.path)
    return docs


def read_document(path: Path, relpath: str, kind: str) -> Document | None:
    """One file as a Document, or None when its metadata keeps it out of the index."""
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DocumentError(f"cannot be read: {exc.strerror}", relpath) from exc
    meta, body = front_matter(raw, relpath)
    if kind == "html":
        sections, page_title, html_meta = html_sections(body)
        meta = {**{k: _scalar(v) for k, v in html_meta.items()}, **meta}
        title = str(meta.get("title") or _first_heading(sections) or page_title)
    else:
        sections = split_sections(body, kind)
        title = str(meta.get("title") or _first_heading(sections) or "")
    if not keep(meta):
        return None
    if "year" not in meta and isinstance(meta.get("date"), dt.date):
        meta["year"] = meta["date"].year
    title = title or Path(relpath).name.split(".")[0]
    text = "\n\n".join(s.text for s in sections)
    return Document(relpath, kind, title, text, meta, tuple(sections))


def keep(meta: dict[str, Any]) -> bool:
    """False when metadata keeps a document out: ``index: false``, ``sensitive: true`` or
    (HTML) ``<meta name="robots" content="noindex">``."""
    if meta.get("index") is False or meta.get("sensitive") is True:
        return False
    return "noindex" not in str(meta.get("robots", "")).lower()


def front_matter(text: str, relpath: str) -> tuple[dict[str, Any], str]:
    """YAML front matter between ``---`` lines at the very top, and the text after it."""
    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            try:
                meta = yaml.safe_load("\n".join(lines[1:end])) or {}
            except yaml.YAMLError as exc:
                raise DocumentError(f"front matter is not valid YAML: {exc}", relpath) from exc
            if not isinstance(meta, dict):
                raise DocumentError("front matter is not a mapping of keys to values", relpath)
            return {str(k): v for k, v in meta.items()}, "\n".join(lines[end + 1 :])
    return {}, text


def _scalar(value: str) -> Any:
    """An HTML meta value read as YAML reads a scalar ("2024" -> 2024, "false" -> False)."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, str | int | float | bool) else value


def _first_heading(sections: list[Section]) -> str:
    for section in sections:
        if section.heading_path:
            return section.heading_path[0]
    return ""
