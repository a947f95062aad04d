"""`/docs`: the OpenAPI document as one self-contained HTML page.

FastAPI's default page loads Swagger UI from a CDN: blank offline, behind a strict proxy, or under a CSP. This page is
rendered on the server from the same document as `/openapi.json`, with no script and nothing fetched from anywhere.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import FastAPI, Request, Response

# Nothing but inline style may load; the page needs nothing else.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_CONSTRAINTS = (
    ("format", "format"),
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("minimum", "min"),
    ("maximum", "max"),
    ("pattern", "pattern"),
    ("default", "default"),
)
_STYLE = """body{margin:0 auto;max-width:70rem;padding:1rem 2rem;font-family:system-ui,sans-serif;line-height:1.4}
h2{margin-top:2rem;border-bottom:1px solid #ccc}h3{margin:1.5rem 0 .3rem}code{background:#f3f4f6;padding:0 .2rem}
.method{display:inline-block;min-width:4.5rem;font-weight:700}table{border-collapse:collapse;margin:.3rem 0}
th,td{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}th{background:#f9fafb}"""


def install(app: FastAPI, *, path: str = "/docs") -> None:
    rendered: list[bytes] = []

    async def docs(request: Request) -> Response:
        if not rendered:
            rendered.append(render(request.app.openapi()).encode())
        return Response(
            rendered[0],
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )

    app.add_api_route(path, docs, methods=["GET"], include_in_schema=False)


def render(document: dict[str, Any]) -> str:
    e = html.escape
    info = document.get("info", {})
    parts = [
        f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(info.get('title', 'API'))} API"
        f"</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(info.get('title', 'API'))} <small>{e(str(info.get('version', '')))}</small></h1>",
        f"<p>{e(info.get('description', ''))}</p>",
        '<p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI '
        f"{e(str(document.get('openapi', '')))}).</p><h2>Operations</h2>",
    ]
    for route, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            parts.append(_operation(route, method, operation))
    parts.append("<h2>Schemas</h2>")
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        parts.append(_schema(name, schema))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _operation(route: str, method: str, operation: dict[str, Any]) -> str:
    e = html.escape
    out = [
        f'<h3 id="{e(operation.get("operationId", ""))}"><span class="method">{e(method.upper())}</span>'
        f"<code>{e(route)}</code> — {e(operation.get('summary', ''))}</h3>"
    ]
    if operation.get("description"):
        out.append(f"<p>{e(operation['description'])}</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        out.append("<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th>meaning</th></tr>")
        for p in parameters:
            out.append(
                f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td>"
                f"<td>{'yes' if p.get('required') else 'no'}</td><td>{_describe(p.get('schema', {}))}</td>"
                f"<td>{e(p.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    body = operation.get("requestBody")
    if body:
        for media_type, content in body.get("content", {}).items():
            out.append(f"<p>Request body ({e(media_type)}): {_describe(content.get('schema', {}))}</p>")
    out.append("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>")
    for status, response in operation.get("responses", {}).items():
        schemas = "; ".join(
            f"{e(media_type)}: {_describe(content.get('schema', {}))}"
            for media_type, content in response.get("content", {}).items()
        )
        out.append(f"<tr><td>{e(status)}</td><td>{e(response.get('description', ''))}</td><td>{schemas}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _schema(name: str, schema: dict[str, Any]) -> str:
    e = html.escape
    out = [f'<h3 id="schema-{e(name)}">{e(name)}</h3>']
    if schema.get("description"):
        out.append(f"<p>{e(schema['description'])}</p>")
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        out.append("<table><tr><th>field</th><th>required</th><th>schema</th><th>meaning</th></tr>")
        for field, spec in properties.items():
            out.append(
                f"<tr><td><code>{e(field)}</code></td><td>{'yes' if field in required else 'no'}</td>"
                f"<td>{_describe(spec)}</td><td>{e(spec.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append(f"<p>{_describe(schema)}</p>")
    return "\n".join(out)


def _describe(schema: dict[str, Any]) -> str:
    """One line: type and every constraint, so a reader knows which values are accepted."""
    e = html.escape
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{e(name)}">{e(name)}</a>'
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            joiner = " and " if combinator == "allOf" else " or "
            return joiner.join(_describe(option) for option in schema[combinator])
    kind = schema.get("type", "any")
    text = e(str(kind))
    if kind == "array":
        text = f"array of {_describe(schema.get('items', {}))}"
    if "enum" in schema:
        text += " one of " + ", ".join(f"<code>{e(repr(value))}</code>" for value in schema["enum"])
    details = [f"{label} <code>{e(str(schema[key]))}</code>" for key, label in _CONSTRAINTS if key in schema]
    return text + (f" ({', '.join(details)})" if details else "")
