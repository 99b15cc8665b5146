"""Platform admin → Usage (/admin/usage): API usage across businesses this month, the busiest first,
with each one's live pushes against its plan's quota and its refused keys in the last day. The figures
are core's (core.usage.use_cases_admin); a business's own detail is its Settings → Usage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from core.usage.use_cases_admin import usage_across_businesses
from web.panel.admin_access import admin_actor
from web.panel.security import CurrentViewer
from web.panel.templating import render

router = APIRouter(include_in_schema=False)

SHOWN = 200


@router.get("/admin/usage", response_class=HTMLResponse)
async def usage_page(
    request: Request, viewer: CurrentViewer, q: Annotated[str, Query(max_length=100)] = ""
) -> HTMLResponse:
    """`q`: only the businesses whose name or slug holds it."""
    usage = await usage_across_businesses(admin_actor(viewer), limit=SHOWN, search=q or None)
    return render(request, "admin/usage.html", {"usage": usage, "shown": SHOWN, "q": q}, viewer=viewer)
