"""``/{service}/docs``: a small page of the service's endpoints with a form to try each.
Our own HTML and a few lines of JavaScript; nothing is fetched from the internet."""

from __future__ import annotations

import html
import json
from typing import Any

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222 }}
section {{ border: 1px solid #ddd; border-radius: 6px; padding: .5rem 1rem; margin: 1rem 0 }}
pre, textarea {{ font: 13px ui-monospace, monospace; background: #f6f6f6; padding: .5rem;
  width: 100%; box-sizing: border-box; white-space: pre-wrap }}
code {{ background: #f0f0f0; padding: 0 .25rem }} button {{ padding: .25rem 1rem }}
</style></head><body>
<h1>{title}</h1>
<p>Each endpoint takes a JSON object of its parameters by name. OpenAPI:
<a href="openapi.json">openapi.json</a></p>
{sections}
<script>
for (const form of document.querySelectorAll("form")) {{
  form.addEventListener("submit", async (event) => {{
    event.preventDefault();
    const out = form.querySelector("output");
    try {{
      const response = await fetch(form.action, {{method: "POST",
        headers: {{"content-type": "application/json"}}, body: form.body.value}});
      out.textContent = response.status + "\\n" + await response.text();
    }} catch (error) {{ out.textContent = String(error); }}
  }});
}}
</script></body></html>"""

_SECTION = """<section><h2><code>POST {path}</code></h2><p>{summary}</p>
<details><summary>request schema</summary><pre>{schema}</pre></details>
<form action="{path}"><textarea name="body" rows="4">{example}</textarea>
<button>Send</button><pre><output></output></pre></form></section>"""


def docs_page(service: str, openapi: dict[str, Any]) -> str:
    sections = []
    for path, item in sorted(openapi.get("paths", {}).items()):
        post = item.get("post", {})
        schema = (
            post.get("requestBody", {})
            .get("content", {})
            .get("application/json", {})
            .get("schema", {})
        )
        sections.append(
            _SECTION.format(
                path=html.escape(path),
                summary=html.escape(post.get("summary") or post.get("description") or ""),
                schema=html.escape(json.dumps(schema, indent=2)),
                example=html.escape("{}"),
            )
        )
    return _PAGE.format(
        title=html.escape(f"{service} — shipyard service"),
        sections="\n".join(sections) or "<p>No endpoints.</p>",
    )
