"""The web panel: /admin for platform admins, /app for businesses, /login. Server-rendered (Jinja2),
no CDN: the CSS and the few lines of JS are served from web/panel/static."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from web.panel import auth_routes, home, impersonation

STATIC = Path(__file__).parent / "static"


def install_panel(app: FastAPI) -> None:
    router = APIRouter(include_in_schema=False)
    for module in (auth_routes, home, impersonation):
        router.include_router(module.router)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
