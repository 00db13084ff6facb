"""The API docs page, served with its own assets (DESIGN §10, A1, A9).

Swagger UI's files come from the `swagger-ui-bundle-v2` package and are served by the
service itself under `ASSETS`; the page's start-up script is the console's static
`api-docs.js`. Nothing is fetched from another site, so the page works without internet
access and under the strict Content-Security-Policy of worker/admin/headers.py.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # ships no py.typed


def mount(app: FastAPI, docs_url: str, openapi_url: str, title: str) -> None:
    """The page at `docs_url`, its assets under `docs_url`/assets."""
    assets = f"{docs_url}/assets"
    page = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{escape(title)} — API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body data-openapi="{escape(openapi_url)}">
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="/static/api-docs.js"></script>
</body>
</html>
"""

    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    app.add_api_route(docs_url, docs, include_in_schema=False)
    app.mount(assets, StaticFiles(directory=swagger_ui_path), name="api-docs-assets")
