"""The API documentation page, `/docs` (Swagger UI), with every script, style and icon served by this
process.

FastAPI's default page loads Swagger UI from a CDN, so on a server or laptop without internet (or
behind a proxy that blocks jsDelivr) `/docs` was a blank page. The files come from the
`fastapi-offline` package, which republishes the current swagger-ui-dist bundle; we use its files,
not its `FastAPIOffline` factory, so the app keeps being built in one place.

There is no `/redoc`: ReDoc fetches its "API docs by Redocly" logo from cdn.redoc.ly whatever its
script's origin, so it cannot be made to stay on this machine, and Swagger UI covers the same need.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"


def install_docs(app: FastAPI) -> None:
    """Mount the assets and the page; create the app with `docs_url=None, redoc_url=None`."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        # root_path: behind a proxy that mounts the app under a prefix, links must carry it.
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
