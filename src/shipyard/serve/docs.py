"""``/{service}/docs``: the page of a service's endpoints, and a form to try each.

For each endpoint: its request and response schemas as nested tables (``$ref``s resolved,
a recursive one named once and not followed), an example of each
(:class:`~shipyard.serve.examples.SchemaReader`), and a "Try it" form prefilled with the
example request. The API key typed on the page is kept in the tab's ``sessionStorage`` and
sent as ``Authorization: Bearer <key>``; never in a URL. Everything a service wrote
(docstrings, field descriptions, names) is HTML-escaped; the page's own style and script
are inline, allowed by a per-response nonce (:func:`page_headers`), and nothing is fetched
from elsewhere: the page works offline.
"""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import Mapping
from typing import Any

from shipyard.serve.examples import NoExample, SchemaReader

__all__ = ["STYLE", "docs_page", "new_nonce", "page_headers"]

#: the look of the host's own pages: the UI's colours (ui/static/ui.css), no external CSS
STYLE = """
:root { --fg: #1d2330; --muted: #6b7280; --panel: #f5f6f8; --line: #d9dce3; --accent: #2357c6;
  --ok: #2e9d5b; --bad: #d64545; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
header.top { display: flex; align-items: center; gap: 18px; padding: 10px 24px;
  background: #182033; color: #fff; }
header.top a { color: #cfd7ea; } header.top .brand { color: #fff; font-weight: 600; }
main { padding: 16px 24px 48px; max-width: 1100px; }
h1 { font-size: 20px; margin: 8px 0 10px; } h2 { font-size: 16px; margin: 0 0 6px; }
h3 { font-size: 13px; margin: 14px 0 4px; text-transform: uppercase; color: var(--muted); }
code, pre, textarea, output { font-family: ui-monospace, Menlo, Consolas, monospace;
  font-size: 12.5px; }
pre, output { display: block; background: var(--panel); border: 1px solid var(--line);
  border-radius: 4px; padding: 8px; margin: 4px 0; white-space: pre-wrap;
  word-break: break-word; }
.muted { color: var(--muted); } .doc { white-space: pre-wrap; }
section.endpoint { border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px;
  margin: 16px 0; }
.method { background: var(--accent); color: #fff; border-radius: 4px; padding: 1px 6px;
  font-size: 12px; margin-right: 6px; }
.badge { display: inline-block; padding: 0 6px; border: 1px solid var(--line);
  border-radius: 10px; font-size: 12px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 4px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
table.schema table.schema { margin-top: 6px; background: #fbfcfd; }
.type { font-family: ui-monospace, Menlo, Consolas, monospace; color: #6b3fa0; }
.required { color: var(--bad); font-size: 12px; }
.cycle { color: var(--muted); font-style: italic; }
.closed { font-size: 12px; margin: 0 0 4px; }
label.key { display: flex; gap: 8px; align-items: center; margin: 10px 0; }
input, button, textarea { font: inherit; padding: 4px 8px; border: 1px solid var(--line);
  border-radius: 4px; }
input#key, textarea { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
input#key { width: 28rem; }
textarea { width: 100%; min-height: 6rem; }
output:empty { display: none; }
button { background: var(--panel); cursor: pointer; }
.answer-status.ok { color: var(--ok); font-weight: 600; }
.answer-status.bad { color: var(--bad); font-weight: 600; }
"""

_SCRIPT = """
(() => {
  const key = document.getElementById("key");
  key.value = sessionStorage.getItem("shipyard.key") || "";
  key.addEventListener("input", () => {
    if (key.value) sessionStorage.setItem("shipyard.key", key.value);
    else sessionStorage.removeItem("shipyard.key");
  });
  for (const form of document.querySelectorAll("form.try")) {
    const body = form.querySelector("textarea");
    const example = body.value;
    form.querySelector("button.reset").addEventListener("click", () => { body.value = example; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const status = form.querySelector(".answer-status");
      const out = form.querySelector("output");
      const headers = {"content-type": "application/json"};
      if (key.value.trim()) headers["authorization"] = "Bearer " + key.value.trim();
      status.className = "answer-status";
      status.textContent = "sending…";
      out.textContent = "";
      const url = new URL("./" + encodeURIComponent(form.dataset.endpoint), location.href);
      const started = performance.now();
      try {
        const response = await fetch(url, {method: "POST", headers, body: body.value,
          credentials: "omit", cache: "no-store"});
        const text = await response.text();
        const ms = Math.round(performance.now() - started);
        status.textContent = `${response.status} ${response.statusText} · ${ms} ms`;
        status.className = "answer-status " + (response.ok ? "ok" : "bad");
        status.dataset.status = String(response.status);
        try { out.textContent = JSON.stringify(JSON.parse(text), null, 2); }
        catch { out.textContent = text; }
      } catch (error) {
        status.textContent = "the request failed: " + error;
        status.className = "answer-status bad";
      }
    });
  }
})();
"""


def new_nonce() -> str:
    """A fresh nonce for one page's inline style and script."""
    return secrets.token_urlsafe(16)


def page_headers(nonce: str) -> dict[str, str]:
    """The headers of a page the host renders: only its own inline style and script (by
    ``nonce``), requests only to this host, never framed, never cached."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def docs_page(service: str, openapi: Mapping[str, Any], nonce: str) -> str:
    """The HTML page of ``service`` from its OpenAPI document (``nonce``: see
    :func:`page_headers`)."""
    components = openapi.get("components", {}).get("schemas", {})
    reader = SchemaReader(components if isinstance(components, Mapping) else {})
    info = openapi.get("info", {})
    sections = [
        _endpoint(reader, path, item["post"])
        for path, item in sorted(openapi.get("paths", {}).items())
        if isinstance(item, Mapping) and isinstance(item.get("post"), Mapping)
    ]
    description = info.get("description") or ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{_e(service)} · shipyard service</title>
<style nonce="{_e(nonce)}">{STYLE}</style></head><body>
<header class="top"><a class="brand" href="../">shipyard</a>
<a href="../">all services</a><a href="openapi.json">openapi.json</a></header>
<main>
<h1 id="service">{_e(service)}</h1>
{f'<p class="doc" id="description">{_e(description)}</p>' if description else ""}
<p class="muted">Each endpoint takes a JSON object of its parameters by name and answers
its return value as JSON; an error is <code>{{"error": {{"type", "message", "field"?,
"error_id"?}}}}</code>.</p>
<label class="key">API key <input id="key" type="password" autocomplete="off"
 spellcheck="false" placeholder="sy_… (not needed while the host has no invoke key)">
<span class="muted">kept in this tab only; sent as <code>Authorization: Bearer</code></span>
</label>
{"".join(sections) or "<p>No endpoints.</p>"}
</main>
<script nonce="{_e(nonce)}">{_SCRIPT}</script></body></html>"""


def _endpoint(reader: SchemaReader, path: str, op: Mapping[str, Any]) -> str:
    name = path.rsplit("/", 1)[-1]
    request = _json_schema(op.get("requestBody", {}))
    response = _json_schema(op.get("responses", {}).get("200", {}))
    summary = op.get("summary") or ""
    description = op.get("description") or ""
    extra = op.get("x-shipyard", {})
    badges = []
    if isinstance(extra, Mapping):
        if extra.get("batch"):
            badges.append(f"batched, up to {_e(extra.get('max_batch_size', '?'))} items")
        if extra.get("timeout"):
            badges.append(f"timeout {_e(extra['timeout'])} s")
    request_example = _example(reader, request)
    response_example = _example(reader, response)
    prefill = request_example if request_example is not None else "{}"
    return f"""<section class="endpoint" id="endpoint-{_e(name)}" data-endpoint="{_e(name)}">
<h2><span class="method">POST</span><code>{_e(path)}</code>
{" ".join(f'<span class="badge">{b}</span>' for b in badges)}</h2>
{f'<p class="doc summary">{_e(summary)}</p>' if summary and summary != name else ""}
{f'<p class="doc description">{_e(description)}</p>' if description else ""}
<div class="request"><h3>Request body</h3>{render_schema(reader, request)}
<h3>Example request</h3>{_example_block(request_example, "request-example")}</div>
<div class="response"><h3>Response (200)</h3>{render_schema(reader, response)}
<h3>Example response</h3>{_example_block(response_example, "response-example")}</div>
<h3>Try it</h3>
<form class="try" data-endpoint="{_e(name)}">
<textarea name="body" rows="{min(20, prefill.count(chr(10)) + 2)}" spellcheck="false">{
        _e(prefill)
    }</textarea>
<p><button type="submit" class="send">Send</button> <button type="button" class="reset">Reset
to the example</button> <span class="answer-status"></span></p>
<output></output>
</form></section>"""


def _json_schema(part: Any) -> Any:
    """The ``application/json`` schema of a request body or a response."""
    if not isinstance(part, Mapping):
        return None
    return part.get("content", {}).get("application/json", {}).get("schema")


def _example(reader: SchemaReader, schema: Any) -> str | None:
    """The example of ``schema`` as indented JSON, or None if it has none."""
    if schema is None:
        return None
    try:
        return json.dumps(reader.example(schema), indent=2, ensure_ascii=False)
    except NoExample:
        return None


def _example_block(example: str | None, css: str) -> str:
    if example is None:
        return '<p class="muted">no example: the schema cannot be met without recursion</p>'
    return f'<pre class="{css}">{_e(example)}</pre>'


# -- the schema tree ----------------------------------------------------------------------
def render_schema(reader: SchemaReader, schema: Any, seen: tuple[str, ...] = ()) -> str:
    """``schema`` as HTML: its type, and a table of the properties of an object (nested for
    nested objects). A ``$ref`` is resolved and named; one already being shown further up
    (a recursive schema) is named and not followed."""
    if schema is None:
        return '<p class="muted">nothing</p>'
    if schema is True or schema == {}:
        return '<span class="type">any JSON value</span>'
    if not isinstance(schema, Mapping):
        return '<span class="type">nothing</span>'  # false: no value is valid
    name = reader.ref_name(schema)
    if name is not None:
        if name in seen:
            return (
                f'<span class="type">{_e(_title(reader, name))}</span> '
                '<span class="cycle">(recursive: its fields are shown above)</span>'
            )
        seen = (*seen, name)
    node = reader.resolve(schema)
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list):
        return _union(reader, branches, seen)
    if isinstance(node.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            merged.update(reader.resolve(part))
        return render_schema(reader, merged, seen)
    label = _e(_type_label(reader, node, name))
    out = f'<span class="type">{label}</span>'
    notes = _constraints(node)
    if notes:
        out += f' <span class="muted">{_e(notes)}</span>'
    properties = node.get("properties")
    if isinstance(properties, Mapping) and properties:
        out += _properties_table(reader, node, properties, seen)
    elif isinstance(node.get("items"), Mapping) and _nested(reader, node["items"]):
        out += "<div>each: " + render_schema(reader, node["items"], seen) + "</div>"
    elif isinstance(node.get("prefixItems"), list):
        items = "".join(
            f"<li>{render_schema(reader, item, seen)}</li>" for item in node["prefixItems"]
        )
        out += f"<ol start=0>{items}</ol>"
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping) and extra and _nested(reader, extra):
        out += "<div>each value: " + render_schema(reader, extra, seen) + "</div>"
    return out


def _union(reader: SchemaReader, branches: list[Any], seen: tuple[str, ...]) -> str:
    non_null = [b for b in branches if reader.resolve(b).get("type") != "null"]
    if len(non_null) == 1 and len(branches) == 2:  # Optional[X]: X or null
        return render_schema(reader, non_null[0], seen) + ' <span class="muted">or null</span>'
    items = "".join(f"<li>{render_schema(reader, b, seen)}</li>" for b in branches)
    return f'<span class="type">one of</span><ul class="union">{items}</ul>'


def _properties_table(
    reader: SchemaReader, node: Mapping[str, Any], properties: Mapping[str, Any], seen: Any
) -> str:
    listed = node.get("required")
    required = listed if isinstance(listed, list) else []
    rows = []
    for prop, sub in properties.items():
        sub_node = reader.resolve(sub) if isinstance(sub, Mapping) else {}
        about = sub_node.get("description") or ""
        if isinstance(sub, Mapping) and "default" in sub:
            default = json.dumps(sub["default"], ensure_ascii=False)
            about = f"{about} (default {default})".strip()
        flag = '<span class="required">required</span>' if prop in required else ""
        rows.append(
            f'<tr data-field="{_e(prop)}"><td><code>{_e(prop)}</code> {flag}</td>'
            f"<td>{render_schema(reader, sub, seen)}</td>"
            f'<td class="doc">{_e(about)}</td></tr>'
        )
    closed = (
        '<p class="closed muted">Other fields are refused.</p>'
        if node.get("additionalProperties") is False
        else ""
    )
    return (
        '<table class="schema"><thead><tr><th>field</th><th>type</th>'
        f"<th>description</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{closed}"
    )


def _nested(reader: SchemaReader, schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` needs more than its type label (an object, a union, a tuple...)."""
    node = reader.resolve(schema)
    return bool(
        node.get("properties")
        or node.get("anyOf")
        or node.get("oneOf")
        or node.get("allOf")
        or node.get("prefixItems")
        or (isinstance(node.get("items"), Mapping) and _nested(reader, node["items"]))
        or _constraints(node)
    )


def _title(reader: SchemaReader, name: str) -> str:
    target = reader.components.get(name)
    title = target.get("title") if isinstance(target, Mapping) else None
    return str(title or name)


def _type_label(reader: SchemaReader, node: Mapping[str, Any], name: str | None) -> str:
    """``Pair`` (a named model), ``array of string``, ``object of string → number``..."""
    if name is not None and (node.get("properties") or node.get("enum")):
        return _title(reader, name) + (" (object)" if node.get("properties") else "")
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array":
        if isinstance(node.get("prefixItems"), list):
            return f"array of {len(node['prefixItems'])} items"
        items = node.get("items")
        return "array of " + _short(reader, items) if isinstance(items, Mapping) else "array"
    if kind == "object" or (kind is None and "additionalProperties" in node):
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping) and extra and not node.get("properties"):
            return "object of string → " + _short(reader, extra)
        return "object"
    if kind == "string" and isinstance(node.get("format"), str):
        return f"string ({node['format']})"
    if kind is None and "const" in node:
        return "constant"
    return str(kind) if kind else "any JSON value"


def _short(reader: SchemaReader, schema: Mapping[str, Any]) -> str:
    """A one-line name for an item or value type."""
    name = reader.ref_name(schema)
    if name is not None:
        return _title(reader, name)
    node = reader.resolve(schema)
    if node.get("anyOf") or node.get("oneOf"):
        return "(see below)"
    return _type_label(reader, node, None)


def _constraints(node: Mapping[str, Any]) -> str:
    """The constraints of a schema in words: ``> 0, ≤ 5``, ``one of: "a", "b"``..."""
    words = {
        "minimum": "≥ {}",
        "exclusiveMinimum": "> {}",
        "maximum": "≤ {}",
        "exclusiveMaximum": "< {}",
        "multipleOf": "a multiple of {}",
        "minLength": "at least {} characters",
        "maxLength": "at most {} characters",
        "pattern": "matching {}",
        "minItems": "at least {} items",
        "maxItems": "at most {} items",
        "minProperties": "at least {} fields",
        "maxProperties": "at most {} fields",
    }
    notes = [text.format(node[key]) for key, text in words.items() if key in node]
    if node.get("uniqueItems"):
        notes.append("no duplicates")
    if isinstance(node.get("enum"), list):
        values = ", ".join(json.dumps(v, ensure_ascii=False) for v in node["enum"])
        notes.append(f"one of: {values}")
    if "const" in node:
        notes.append(f"always {json.dumps(node['const'], ensure_ascii=False)}")
    return ", ".join(notes)
