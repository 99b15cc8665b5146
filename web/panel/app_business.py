"""The business view: dashboard (more pages to come in this module)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from web.panel.security import CurrentViewer, business
from web.panel.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/app", response_class=HTMLResponse)
async def app_home(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    business(viewer)
    return render(request, "app/home.html", {}, viewer=viewer)
