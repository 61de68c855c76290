"""Card components: what a step appends to ``current.card``.

Each component turns itself into an HTML fragment with :meth:`Component.render`; every piece
of user data is escaped on the way. Components never raise while they are built from bad input:
the problem is kept and shown in the card as an error box (see :func:`render_component`), so a
report can never fail the task it describes.

>>> current.card.append(Markdown("# Results"))                        # doctest: +SKIP
>>> current.card.append(Table([[1, 0.93]], headers=["fold", "auc"]))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shipyard.cards.markdown import markdown_to_html
from shipyard.store.serialize import preview as _preview

#: characters of one table cell shown before it is cut
CELL_CHARS = 500


def escape(text: object) -> str:
    """``text`` (any object, through ``str``) escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


class Component:
    """Base class of card components. Subclasses implement :meth:`render`."""

    def render(self) -> str:
        """This component as an HTML fragment (escaped, self-contained, no remote asset)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def error_box(what: str, exc: BaseException | str) -> str:
    """The box a component that failed to render shows instead of itself."""
    detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return (
        f'<div class="error-box" role="alert"><strong>{escape(what)} could not be rendered'
        f"</strong><pre>{escape(detail)}</pre></div>"
    )


def render_component(component: Component) -> str:
    """``component.render()``, or an error box (and a note on stderr) if that raised."""
    try:
        return component.render()
    except Exception as exc:  # noqa: BLE001 - a report must never fail its task
        print(f"card: {type(component).__name__} failed to render: {exc!r}", file=sys.stderr)
        return error_box(type(component).__name__, exc)


def _is(obj: object, package: str, *names: str) -> bool:
    """Whether ``obj`` is one of the classes ``names`` of ``package``, without importing it."""
    cls = type(obj)
    return (cls.__module__ or "").partition(".")[0] == package and cls.__name__ in names


# --- Markdown -------------------------------------------------------------------------
class Markdown(Component):
    """Text in a safe Markdown subset (headings, emphasis, code, lists, quotes, http(s) links);
    any HTML in it is shown as text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def render(self) -> str:
        if not isinstance(self.text, str):
            raise TypeError(f"Markdown takes a str, got {type(self.text).__name__}")
        return f'<div class="markdown">{markdown_to_html(self.text)}</div>'


# --- Table ----------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if isinstance(value, Component):
        return render_component(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return escape(f"{value:.6g}")
    text = str(value)
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "…"
    return escape(text)


def _dataframe_rows(frame: Any, limit: int) -> tuple[list[str], Iterable[Sequence[Any]], int]:
    if _is(frame, "pandas", "Series"):
        frame = frame.to_frame()
    # the default 0..n-1 index says nothing: show the index only when it is named or not a range
    index = frame.index
    with_index = index.name is not None or type(index).__name__ != "RangeIndex"
    headers = [str(c) for c in frame.columns]
    if with_index:
        headers.insert(0, "" if index.name is None else str(index.name))
    rows = frame.head(limit).itertuples(index=with_index, name=None)
    return headers, rows, len(frame)


def _table_rows(
    data: Any, headers: Sequence[Any] | None, limit: int
) -> tuple[list[str], list[Sequence[Any]], int]:
    """(headers, at most ``limit`` rows, the total number of rows)."""
    if _is(data, "pandas", "DataFrame", "Series"):
        found, frame_rows, total = _dataframe_rows(data, limit)
        return [str(h) for h in headers] if headers else found, list(frame_rows), total
    if isinstance(data, Mapping):
        data = [[key, value] for key, value in data.items()]
        headers = headers or ["key", "value"]
    if isinstance(data, str | bytes) or not isinstance(data, Iterable):
        raise TypeError(
            f"Table takes a list of rows, a list of dicts or a pandas DataFrame, "
            f"got {type(data).__name__}"
        )
    rows: list[Any] = []
    total = 0
    keys: dict[Any, None] = {}
    for row in data:
        total += 1
        if isinstance(row, Mapping):
            keys.update((k, None) for k in row)
        elif isinstance(row, str | bytes) or not isinstance(row, Iterable):
            raise TypeError(f"Table row {total - 1} is a {type(row).__name__}, not a list")
        if len(rows) < limit:
            rows.append(row if isinstance(row, Mapping) else list(row))
    if keys:  # a list of dicts: one column per key, in the order first seen
        columns = list(headers) if headers else list(keys)
        rows = [[r.get(k) for k in columns] if isinstance(r, Mapping) else r for r in rows]
        return [str(k) for k in columns], rows, total
    return [str(h) for h in headers or ()], rows, total


class Table(Component):
    """A table from a list of rows (``headers`` optional), a list of dicts (one column per
    key), a dict (key/value rows) or a pandas DataFrame or Series. Only the first
    ``max_rows`` rows are shown, followed by "… N more rows". Cells may be components."""

    def __init__(
        self,
        data: Any = None,
        headers: Sequence[Any] | None = None,
        *,
        max_rows: int = 100,
        title: str | None = None,
    ) -> None:
        self.data = [] if data is None else data
        self.headers = headers
        self.max_rows = max_rows
        self.title = title

    @classmethod
    def from_dataframe(cls, frame: Any, *, max_rows: int = 100, title: str | None = None) -> Table:
        """A table of a pandas DataFrame (the same as ``Table(frame)``)."""
        return cls(frame, max_rows=max_rows, title=title)

    def render(self) -> str:
        limit = max(int(self.max_rows), 0)
        headers, rows, total = _table_rows(self.data, self.headers, limit)
        parts = ['<div class="table-wrap"><table class="data">']
        if self.title:
            parts.append(f"<caption>{escape(self.title)}</caption>")
        if headers:
            parts.append("<thead><tr>")
            parts.extend(f"<th>{escape(h)}</th>" for h in headers)
            parts.append("</tr></thead>")
        parts.append("<tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
        parts.append("</tbody></table>")
        if total > len(rows):
            more = total - len(rows)
            parts.append(f'<p class="more">… {more} more row{"s" if more != 1 else ""}</p>')
        if total == 0:
            parts.append('<p class="muted">empty table</p>')
        parts.append("</div>")
        return "".join(parts)


# --- Image ----------------------------------------------------------------------------
def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "image/svg+xml"
    raise ValueError("not a PNG, JPEG, GIF or SVG image (give the file's bytes)")


def _figure_png(obj: Any) -> bytes:
    figure = getattr(obj, "figure", None) if not hasattr(obj, "savefig") else obj
    if figure is None or not hasattr(figure, "savefig"):
        raise TypeError(f"cannot make an image of a {type(obj).__name__}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _image_bytes(src: Any) -> tuple[bytes, str]:
    if isinstance(src, bytes | bytearray | memoryview):
        data = bytes(src)
        return data, _sniff(data)
    if isinstance(src, str):
        raise TypeError("Image takes the image's bytes, not a str: open(path, 'rb').read()")
    if (type(src).__module__ or "").startswith("matplotlib"):
        return _figure_png(src), "image/png"
    if (type(src).__module__ or "").startswith("PIL"):
        buffer = io.BytesIO()
        src.save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"
    raise TypeError(
        f"Image takes PNG/JPEG/GIF/SVG bytes or a matplotlib Figure, got {type(src).__name__}"
    )


class Image(Component):
    """An image embedded in the card as a ``data:`` URI: PNG, JPEG, GIF or SVG bytes, a
    matplotlib Figure (or Axes), or a PIL image. A figure is drawn when the Image is made,
    so later changes to it (or ``plt.close()``) do not change the card."""

    def __init__(self, src: Any, label: str | None = None) -> None:
        self.label = label
        self._error: Exception | None = None
        self._data = b""
        self._mime = ""
        try:
            self._data, self._mime = _image_bytes(src)
        except Exception as exc:  # noqa: BLE001 - shown in the card instead
            self._error = exc

    @classmethod
    def from_matplotlib(cls, figure: Any, label: str | None = None) -> Image:
        """An image of a matplotlib Figure (the same as ``Image(figure)``)."""
        return cls(figure, label=label)

    def render(self) -> str:
        if self._error is not None:
            raise self._error
        uri = f"data:{self._mime};base64,{base64.b64encode(self._data).decode('ascii')}"
        alt = escape(self.label or "image")
        caption = f"<figcaption>{escape(self.label)}</figcaption>" if self.label else ""
        return f'<figure class="image"><img src="{uri}" alt="{alt}">{caption}</figure>'


# --- Artifact -------------------------------------------------------------------------
class Artifact(Component):
    """A value's type and a bounded preview (the same kind the task page shows), taken when
    the component is made."""

    def __init__(self, value: Any, name: str | None = None, *, limit: int = 2000) -> None:
        self.name = name
        self.type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        self.preview = _preview(value, limit)

    def render(self) -> str:
        name = f"<code>{escape(self.name)}</code> " if self.name else ""
        return (
            f'<div class="artifact">{name}<span class="muted">{escape(self.type_name)}</span>'
            f'<pre class="preview">{escape(self.preview)}</pre></div>'
        )


__all__ = [
    "Artifact",
    "Component",
    "Image",
    "Markdown",
    "Table",
    "error_box",
    "escape",
    "render_component",
]
