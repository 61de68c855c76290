"""The host's own index: ``GET /`` (the services it serves) and ``GET /openapi.json`` (one
OpenAPI document of them all).

In the combined document every service's component is renamed ``<service>.<name>``
(``ranker.Pair``: two services may both define ``Pair``; a service name has no dot, so the
first dot splits them) and every ``$ref`` rewritten to match; each operation gets the tag of
its service and the ``operationId`` ``<service>.<endpoint>``.

>>> doc = combined_openapi({"ranker": {"paths": {"/ranker/home": {"post": {}}},
...     "components": {"schemas": {"Pair": {"type": "object"}}}}})
>>> sorted(doc["components"]["schemas"]), doc["paths"]["/ranker/home"]["post"]["operationId"]
(['ranker.Pair'], 'ranker.home')
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

from shipyard.serve.docs import STYLE

__all__ = ["combined_openapi", "index_page", "prefers_html", "prefixed"]

#: keys whose value is data (a default, an example), never a schema: left as they are
_DATA = frozenset({"default", "example", "examples", "const", "enum"})
#: keys whose value maps names (a field, a status code, a media type) to what has refs
_MAPS = frozenset(
    {
        "properties",
        "patternProperties",
        "$defs",
        "definitions",
        "dependentSchemas",
        "responses",
        "content",
        "headers",
        "schemas",
    }
)


def prefixed(service: str, name: str) -> str:
    """The combined document's name of ``service``'s component ``name``: ``ranker.Pair``."""
    return f"{service}.{name}"


def rewrite_refs(node: Any, rename: Callable[[str], str]) -> Any:
    """A copy of ``node`` (an OpenAPI or JSON Schema part) with every local ``$ref`` and
    discriminator mapping passed through ``rename``; defaults and examples untouched."""
    if isinstance(node, list):
        return [rewrite_refs(item, rename) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = rename(value)
        elif key in _DATA:
            out[key] = value
        elif key in _MAPS and isinstance(value, Mapping):
            out[key] = {name: rewrite_refs(sub, rename) for name, sub in value.items()}
        elif key == "discriminator" and isinstance(value, Mapping):
            mapping = value.get("mapping")
            out[key] = dict(value)
            if isinstance(mapping, Mapping):
                out[key]["mapping"] = {
                    k: rename(v) if isinstance(v, str) else v for k, v in mapping.items()
                }
        else:
            out[key] = rewrite_refs(value, rename)
    return out


def combined_openapi(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One OpenAPI 3.1 document of every service's ``documents[service]``."""
    paths: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {}
    tags = []
    for service, doc in sorted(documents.items()):

        def rename(ref: str, service: str = service) -> str:
            parts = ref.split("/")
            if len(parts) == 4 and parts[:2] == ["#", "components"]:
                return "/".join([*parts[:3], prefixed(service, parts[3])])
            return ref

        for kind, named in (doc.get("components") or {}).items():
            if isinstance(named, Mapping):
                target = components.setdefault(kind, {})
                for name, value in named.items():
                    target[prefixed(service, name)] = rewrite_refs(value, rename)
        for path, item in (doc.get("paths") or {}).items():
            item = rewrite_refs(item, rename)
            endpoint = path.rsplit("/", 1)[-1]
            for operation in item.values():
                if isinstance(operation, dict):
                    operation["operationId"] = f"{service}.{endpoint}"
                    operation["tags"] = [service]
            paths[path] = item
        tag: dict[str, Any] = {"name": service}
        info = doc.get("info") or {}
        if info.get("description"):
            tag["description"] = info["description"]
        tags.append(tag)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "shipyard services",
            "version": ",".join(
                f"{s}={(d.get('info') or {}).get('version', '?')}"
                for s, d in sorted(documents.items())
            )
            or "0",
            "description": "Every service of this host: POST /{service}/{endpoint}.",
        },
        "tags": tags,
        "paths": paths,
        "components": components,
    }


def prefers_html(accept: str) -> bool:
    """Whether an ``Accept`` header ranks ``text/html`` above ``application/json`` (a
    browser's does: ``text/html,...,*/*;q=0.8``; curl's ``*/*`` does not)."""
    html_q = json_q = 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media in ("text/html", "text/*", "*/*"):
            html_q = max(html_q, q if media == "text/html" else min(q, 0.999))
        if media in ("application/json", "application/*", "*/*"):
            json_q = max(json_q, q if media == "application/json" else min(q, 0.999))
    return html_q > json_q


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def index_page(index: Mapping[str, Any], nonce: str, *, ui: bool = False) -> str:
    """``GET /`` for a browser: the services of ``index`` (the JSON answer) as a table;
    ``ui``: link to the web UI at ``/ui/``."""
    rows = []
    for service in index["services"]:
        name = service["name"]
        endpoints = ", ".join(f"<code>{_e(e)}</code>" for e in service["endpoints"])
        rows.append(
            f'<tr data-service="{_e(name)}"><td><a href="{_e(service["docs"])}">{_e(name)}</a>'
            f'<div class="muted">{_e(service.get("description") or "")}</div></td>'
            f"<td>v{_e(service['version'])}</td>"
            f"<td>{_e(service['replicas']['ready'])} of {_e(service['replicas']['total'])}</td>"
            f"<td>{endpoints}</td>"
            f'<td><a href="{_e(service["docs"])}">docs</a> · '
            f'<a href="{_e(service["openapi"])}">openapi.json</a></td></tr>'
        )
    table = (
        '<table id="services"><thead><tr><th>service</th><th>version</th><th>ready</th>'
        f"<th>endpoints</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">No service is deployed (<code>shipyard deploy</code>).</p>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>services · shipyard</title><style nonce="{_e(nonce)}">{STYLE}</style></head><body>
<header class="top"><a class="brand" href="/">shipyard</a>
<a href="/openapi.json">openapi.json</a>{'<a href="/ui/">UI</a>' if ui else ""}</header>
<main><h1>Services</h1>{table}
<p class="muted">Call one with <code>POST /{{service}}/{{endpoint}}</code> and a JSON object
of its parameters, or from Python:
<code>shipyard.connect(url, key).{{service}}.{{endpoint}}(...)</code>.</p></main></body></html>"""
