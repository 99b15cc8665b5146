"""Settings → Usage (/app/settings/usage): the business's API usage for the last 24 hours and this
month (Nairobi), in all, per app, per key and per endpoint; the request log, newest first, with its
filters; and its Excel export. Owner and manager, as GET /api/usage (core.usage.use_cases decides and
counts; this page parses the filters and renders)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from core.access.permissions import Permission
from core.errors import InvalidInput
from core.usage import use_cases
from core.usage.schemas import StatusClass
from core.usage.service import RequestFilter
from web.exports import xlsx_response
from web.panel.app_settings import settings_page
from web.panel.forms import choice, page_url, parse_uuid
from web.panel.security import CurrentViewer, Viewer, business

router = APIRouter(include_in_schema=False)

PAGE = 50
FIELDS = ("app", "key", "status", "route")


def _form(request: Request) -> dict[str, str]:
    qp = request.query_params
    return {name: qp.get(name, "").strip()[:200] for name in FIELDS}


def _filter(form: dict[str, str]) -> tuple[RequestFilter, dict[str, str]]:
    errors: dict[str, str] = {}
    app_id = parse_uuid(form["app"], "app", errors, "Choose an app from the list.")
    key_id = parse_uuid(form["key"], "key", errors, "Choose a key from the list.")
    status = choice(StatusClass, form["status"], "status", errors, "Choose an answer class from the list.")
    return (
        RequestFilter(app_id=app_id, key_id=key_id, status_class=status, route=form["route"] or None),
        errors,
    )


async def _page(
    request: Request, viewer: Viewer, form: dict[str, str], errors: dict[str, str], cursor: str = ""
) -> HTMLResponse:
    actor = viewer.actor
    filters, more = _filter(form)
    errors = {**errors, **more}
    # The app and key lists of the filters: every app and key the business has, from the month's figures.
    everything = await use_cases.usage_figures(actor)
    ctx: dict[str, Any] = {
        "form": form,
        "errors": errors,
        "status_classes": [s.value for s in StatusClass],
        "all_apps": [a for a in everything.this_month.apps if a.app_id is not None],
        "all_keys": everything.this_month.keys,
        "routes": sorted({e.route for e in everything.this_month.endpoints}),
        "figures": None,
        "items": [],
        "next_url": None,
        "first_url": None,
        "export_url": None,
    }
    if not errors:
        try:
            narrowed = filters.app_id is not None or filters.key_id is not None
            ctx["figures"] = (
                await use_cases.usage_figures(actor, app_id=filters.app_id, key_id=filters.key_id)
                if narrowed
                else everything
            )
            page = await use_cases.list_requests(actor, filters=filters, cursor=cursor or None, limit=PAGE)
        except InvalidInput as exc:  # a cursor that was tampered with
            ctx["errors"] = {exc.field or "cursor": exc.message}
        else:
            ctx["items"] = page.items
            if page.next_cursor:
                ctx["next_url"] = page_url("/app/settings/usage", form, cursor=page.next_cursor) + "#log"
            if cursor:
                ctx["first_url"] = page_url("/app/settings/usage", form) + "#log"
            ctx["export_url"] = page_url("/app/settings/usage/export.xlsx", form)
    return settings_page(
        request, viewer, "app/settings_usage.html", ctx, status=422 if ctx["errors"] else 200
    )


@router.get("/app/settings/usage", response_class=HTMLResponse)
async def usage_page(request: Request, viewer: CurrentViewer, cursor: str = "") -> HTMLResponse:
    business(viewer, Permission.usage_read)
    return await _page(request, viewer, _form(request), {}, cursor=cursor[:200])


@router.get("/app/settings/usage/export.xlsx", response_class=StreamingResponse, response_model=None)
async def usage_export(request: Request, viewer: CurrentViewer) -> StreamingResponse | HTMLResponse:
    """The log with the page's filters as .xlsx (all pages): the same file and audit row (export.usage)
    as GET /api/usage/export.xlsx."""
    business(viewer, Permission.usage_read)
    form = _form(request)
    filters, errors = _filter(form)
    if errors:
        return await _page(request, viewer, form, errors)
    return xlsx_response(await use_cases.export_requests(viewer.actor, filters=filters))
